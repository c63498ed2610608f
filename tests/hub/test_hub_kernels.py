"""Two hub users run notebooks in their own single-user servers, through the kernels API and
websocket as JupyterLab does, with Dockyter loaded by the site-wide IPython profile."""

from __future__ import annotations

import pytest

from .conftest import singleuser_prefix
from .hubserver import Hub, User
from .labkernel import LabKernel

pytestmark = [pytest.mark.docker, pytest.mark.hub]


@pytest.fixture
def notebook(request: pytest.FixtureRequest):
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
    site_profile = singleuser_prefix(hub) / "etc" / "ipython" / "ipython_config.py"
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
