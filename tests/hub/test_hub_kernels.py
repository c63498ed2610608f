"""Two hub users run notebooks in their own single-user servers, through the kernels API and
websocket as JupyterLab does, with Dockyter loaded by the recipe's site-wide IPython profile and
every container run by dockyter-server, the hub's managed service: no token configured by anyone."""

from __future__ import annotations

import os
import re
import secrets
import signal
from collections.abc import Callable, Iterator

import pytest
from helpers import docker, wait_until
from kernels import containers_of

from dockyter.server.sessions.sessionregistry import REVOKED

from .conftest import CACHE_SECONDS
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
        if kernel.user.model().get("server"):
            kernel.close()


def displayed(execution) -> str:
    return "".join(str(m["content"]["data"].get("text/plain", "")) for m in execution.of_type("display_data"))


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
    table = displayed(kernel.run("%docker_config")).splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in table if line.strip()}
    assert rows["timeout"] == ["3600.0", "from", "ipython_config.py"], rows["timeout"]
    assert rows["backend"] == ["'api'", "from", "ipython_config.py"], rows["backend"]
    assert rows["api_url"] == [repr(hub.service_url), "from", "ipython_config.py"], rows["api_url"]
    # %load_ext in a notebook still works beside the profile.
    again = kernel.run("%load_ext dockyter")
    assert again.reply["status"] == "ok", again.reply


def test_the_status_names_the_hub_user_without_showing_the_token(alice: User, bob: User, notebook) -> None:
    for user, groups in ((alice, "gpu"), (bob, "students")):
        kernel = notebook(user)
        token = kernel.run("import os; print(os.environ['JUPYTERHUB_API_TOKEN'])").stdout.strip()
        status = kernel.run("%docker_status")
        shown = displayed(status) + status.stdout + status.stderr
        assert f"from JupyterHub, user {user.name}: accepted" in shown, shown
        assert re.search(rf"policy groups\s+{groups}", shown), shown
        assert token and token not in shown


def test_both_users_cells_stream_and_give_exit_codes(
    alice: User, bob: User, hub: Hub, notebook, test_image: str
) -> None:
    for user in (alice, bob):
        kernel = notebook(user)
        cell = f"%%docker --no-raise-error {test_image}\nfor i in 1 2 3; do echo step $i; sleep 0.6; done\nexit 3"
        execution = kernel.run(cell)
        assert execution.reply["status"] == "ok", execution.reply
        assert execution.stdout.split() == ["step", "1", "step", "2", "step", "3"], execution.stdout + execution.stderr
        # Live: the first line came well before the last, not all at the end.
        assert execution.arrival("step 3") - execution.arrival("step 1") > 0.8
        assert kernel.run("print(_exit_code)").stdout.strip() == "3"
        # `!` under %docker runs there too, captured or not, with its exit code.
        assert kernel.run(f"%docker {test_image}").reply["status"] == "ok"
        bang = kernel.run(f"!echo {user.name} $((6 * 7))")
        assert bang.stdout.strip() == f"{user.name} 42", bang.stdout + bang.stderr
        captured = kernel.run("lines = !echo one; echo two\nprint(list(lines))")
        assert captured.stdout.strip() == "['one', 'two']", captured.stdout + captured.stderr
        kernel.run("!exit 4")
        assert kernel.run("print(_exit_code)").stdout.strip() == "4"
    # The server's log names the hub user of each execution.
    who = {event["who"] for event in hub.service_events("execution")}
    assert {"hub:alice", "hub:bob"} <= who, who


def test_a_session_keeps_its_shell_and_a_group_without_sessions_gets_none(
    alice: User, bob: User, hub: Hub, notebook, test_image: str
) -> None:
    kernel = notebook(alice)
    assert kernel.run(f"%docker_session start warm {test_image}").reply["status"] == "ok"
    kernel.run("%%docker --session warm\ncd /tmp && export KEPT=yes")
    kept = kernel.run("%%docker --session warm\necho $KEPT $PWD")
    assert kept.stdout.strip() == "yes /tmp", kept.stdout + kept.stderr
    assert [e["who"] for e in hub.service_events("session_start")][-1:] == ["hub:alice"]
    # bob is in students, whose table says sessions = false; alice's gpu says nothing, so hers stand.
    refused = notebook(bob).run(f"%docker_session start warm {test_image}")
    # A magic that cannot do its work ends the cell in error, with one line and no traceback of ours.
    assert refused.reply["status"] == "error", refused.reply
    shown = "\n".join(refused.reply["traceback"]) + refused.stdout + refused.stderr
    assert "your groups (students) have no sessions on this server" in shown, shown
    assert "Traceback" not in shown, shown


def test_stopping_a_server_ends_its_kernels_and_their_sessions(
    alice: User, hub: Hub, notebook, test_image: str
) -> None:
    """The hub stops a server with SIGINT; the recipe's jupyter_server_config.py makes that a clean stop."""
    kernel = notebook(alice, "stopped.ipynb")
    assert kernel.run(f"%docker_session start warm {test_image}").reply["status"] == "ok"
    # A line never run before starts a container made for it (a line run before may take one
    # prestarted for it, which server_containers() cannot tell from those still waiting).
    fresh_line = f"-e LINE={secrets.token_hex(4)} {test_image}"
    kernel.collect(kernel.submit(f"%%docker {fresh_line}\necho started; sleep 60"), until="started")
    assert len(hub.server_containers()) == 2, hub.server_containers()
    alice.stop_server()
    assert wait_until(lambda: not hub.kernel_pids(alice.name), timeout=10), "alice's kernels outlived her server"
    assert f"Kernel shutdown: {kernel.kernel_id}" in hub.log.read_text()
    # The kernel ended its session itself, and the server removed the running cell's container.
    assert wait_until(lambda: not hub.server_containers(), timeout=10), hub.server_containers()


def test_a_stopped_servers_sessions_end_even_if_its_kernel_said_nothing(
    alice: User, hub: Hub, notebook, test_image: str
) -> None:
    """A kernel killed outright ends nothing itself: the server notices that the hub revoked the token."""
    kernel = notebook(alice, "killed.ipynb")
    assert kernel.run(f"%docker_session start warm {test_image}").reply["status"] == "ok"
    (session,) = hub.server_containers()
    for pid in hub.kernel_pids(alice.name):
        os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not hub.kernel_pids(alice.name), timeout=10)
    assert hub.server_containers() == [session], "the session ended before the server stopped"
    alice.stop_server()  # the hub deletes the server's token
    assert wait_until(lambda: not hub.server_containers(), timeout=CACHE_SECONDS + 5), hub.server_containers()
    (ended,) = [e for e in hub.service_events("session_end") if e["container"] == session]
    assert ended["why"] == REVOKED, ended


def test_the_docker_backend_too_stops_a_running_cell_when_the_hub_stops_the_server(
    alice: User, hub: Hub, notebook, test_image: str
) -> None:
    """A user may still choose the local engine (as root here); the clean stop reaches its containers too."""
    kernel = notebook(alice, "running.ipynb")
    kernel.run("%config Dockyter.backend = 'docker'")
    kernel.collect(kernel.submit(f"%%docker {test_image}\necho started; sleep 60"), until="started")
    kernels = hub.kernel_pids(alice.name)
    assert len(kernels) == 1, marked_processes(hub.run_mark, alice.name)
    (container,) = containers_of(kernels[0], running_only=True)
    try:
        alice.stop_server()
        gone = wait_until(lambda: docker("container", "inspect", container).returncode != 0, timeout=10)
        assert gone, f"{container} outlived alice's server"
    finally:
        docker("rm", "-f", container)
