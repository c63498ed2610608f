"""Two hub users run notebooks in their own single-user servers, through the kernels API and
websocket as JupyterLab does, with Dockyter loaded by the site-wide IPython profile."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator

import pytest
from helpers import docker, wait_until
from kernels import containers_of

from .hubserver import Hub, User, marked_processes
from .labkernel import LabKernel

pytestmark = [pytest.mark.docker, pytest.mark.hub]


@pytest.fixture
def notebook() -> Iterator[Callable[..., LabKernel]]:
    """Opens notebooks (``notebook(user, path)``), and closes them and their kernels after the test."""
    opened: list[LabKernel] = []

    def open_notebook(user: User, path: str = "Untitled.ipynb") -> LabKernel:
        kernel = LabKernel(user, path)
        opened.append(kernel)
        return kernel

    yield open_notebook
    for kernel in opened:
        kernel.close()


def test_each_user_runs_cells_in_their_own_server(alice: User, bob: User, notebook) -> None:
    for user in (alice, bob):
        kernel = notebook(user)
        execution = kernel.run("import os; print(os.environ['JUPYTERHUB_USER'], os.getcwd())")
        assert execution.reply["status"] == "ok", execution.reply
        name, cwd = execution.stdout.split()
        assert name == user.name
        assert cwd.endswith(f"/home/{user.name}")


def test_the_site_profile_loads_dockyter_in_every_kernel(alice: User, hub: Hub, notebook) -> None:
    kernel = notebook(alice)
    # The kernel read the profile where the recipe places it, and loaded Dockyter before any cell asked.
    site_profile = hub.singleuser_prefix / "etc" / "ipython" / "ipython_config.py"
    read = kernel.run(
        "from ipykernel.kernelapp import IPKernelApp\nprint(*IPKernelApp.instance().loaded_config_files, sep='\\n')"
    )
    assert str(site_profile) in read.stdout.splitlines(), (read.stdout, read.reply)
    loaded = kernel.run("print('dockyter' in get_ipython().extension_manager.loaded)")
    assert loaded.stdout.strip() == "True", loaded.stdout + loaded.stderr
    # With the profile's settings, and Dockyter says where they came from.
    config = kernel.run("%docker_config")
    assert config.reply["status"] == "ok", config.reply
    table = "".join(m["content"]["data"]["text/plain"] for m in config.of_type("display_data")).splitlines()
    timeout = next(line for line in table if line.split()[:1] == ["timeout"])
    assert timeout.split() == ["timeout", "3600.0", "from", "ipython_config.py"], timeout
    # %load_ext in a notebook still works beside the profile.
    again = kernel.run("%load_ext dockyter")
    assert again.reply["status"] == "ok", again.reply


def test_a_docker_cell_streams_and_gives_its_exit_code(alice: User, bob: User, notebook, test_image: str) -> None:
    for user in (alice, bob):
        kernel = notebook(user)
        cell = f"%%docker --no-raise-error {test_image}\nfor i in 1 2 3; do echo step $i; sleep 0.6; done\nexit 3"
        execution = kernel.run(cell)
        assert execution.reply["status"] == "ok", execution.reply
        assert execution.stdout.split() == ["step", "1", "step", "2", "step", "3"], execution.stdout
        # Live: the first line came well before the last, not all at the end.
        assert execution.arrival("step 3") - execution.arrival("step 1") > 0.8
        assert kernel.run("print(_exit_code)").stdout.strip() == "3"


def test_stopping_a_server_ends_its_kernels_and_their_sessions(alice: User, hub: Hub, notebook, test_image) -> None:
    kernel = notebook(alice, "stopped.ipynb")
    started = kernel.run(f"%docker_session start warm {test_image}")
    assert started.reply["status"] == "ok", started.reply
    session_container = re.search(r"container (dockyter-[0-9a-f]+)", started.stdout)
    assert session_container, started.stdout
    assert hub.kernel_pids(alice.name)
    alice.stop_server()
    assert wait_until(lambda: not hub.kernel_pids(alice.name), timeout=10), "alice's kernels outlived her server"
    # The session's shell reads end-of-file when its kernel goes: the container ends with it.
    gone = wait_until(lambda: docker("container", "inspect", session_container[1]).returncode != 0, timeout=15)
    assert gone, f"{session_container[1]} outlived alice's server"
    assert f"Kernel shutdown: {kernel.kernel_id}" in hub.log.read_text()


def test_a_server_stopped_by_sigterm_shuts_its_kernels_down(alice: User, hub: Hub, notebook, test_image) -> None:
    """SIGTERM makes a single-user server shut its kernels down, and Dockyter stops a running cell's container.

    The hub's own stop (LocalProcessSpawner) sends SIGINT first, and a server with no terminal takes
    that as KeyboardInterrupt: it exits at once and its kernels end a second later through
    ipykernel's parent poller (os._exit), with no shutdown and no cleanup (see the hub notes).
    """
    kernel = notebook(alice, "running.ipynb")
    kernel.collect(kernel.submit(f"%%docker {test_image}\necho started; sleep 60"), until="started")
    kernels = hub.kernel_pids(alice.name)
    assert len(kernels) == 1, marked_processes(hub.run_mark, alice.name)
    containers = containers_of(kernels[0], running_only=True)
    assert len(containers) == 1, (containers, docker("ps", "-a", "--format", "{{.Names}} {{.Labels}}").stdout)
    container = containers[0]
    (server,) = [
        pid for pid, command in marked_processes(hub.run_mark, alice.name) if "jupyterhub.singleuser" in command
    ]
    try:
        os.kill(server, signal.SIGTERM)
        gone = wait_until(lambda: docker("container", "inspect", container).returncode != 0, timeout=10)
        assert gone, f"{container} outlived alice's server"
        assert f"Kernel shutdown: {kernel.kernel_id}" in hub.log.read_text()
    finally:
        docker("rm", "-f", container)
        alice.stop_server()  # the hub learns that the server is gone
