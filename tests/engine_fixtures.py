"""The ``engine`` parameter: the local backend's tests on Docker, podman and podman rootless.

A test that asks for ``engine`` runs once per engine (ids ``docker``, ``podman``,
``podman-rootless``; ``@pytest.mark.parametrize("engine", [...], indirect=True)`` picks fewer).
An engine that is not there skips the test with one line, or fails it under
``DOCKYTER_REQUIRE_DOCKER=1`` (CI); ``.ci/provision`` (as root) installs podman, loads the test
images into its storages and makes the rootless test user (``.ci/podman``).

* ``engine``: the :class:`engines.Engine`. After the test, no container labelled
  ``io.dockyter.managed`` that the test started may be left in that engine's storage, and no
  process of the rootless user but podman's pause process may be left running.
* ``engine_image``, ``engine_sh_image``: the bash and sh test images, checked on that engine.
* ``engine_shell``, ``engine_cell``: the ``ip`` shell and ``cell`` of ``conftest.py`` with
  ``Dockyter.docker_command`` pointed at the engine (rootless: through ``setpriv``, so the CLI
  runs as the test user while the shell stays in this process).
* ``engine_kernel``: a real kernel whose Dockyter uses the engine. Rootless, the kernel itself
  runs as the test user with ``docker_command = ["podman"]``, as a rootless user's notebook does.
* ``engine_differs(reason, *names)``: marks the running test as an expected failure (strict) on
  the engines ``names`` (default: both podmans), with the reason in the report: a difference
  that is known and not yet handled shows in every run, and turns into a failure once fixed.

To move an existing local-backend test onto every engine: ask for ``engine_cell`` or
``engine_kernel`` instead of ``cell`` or ``kernel``, ``engine_image`` instead of ``test_image``,
and replace ``docker(...)`` with ``engine.run(...)`` and ``containers_of(pid)`` with
``engine.containers_of(pid)``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LEFTOVER_WAIT, skip_or_fail
from engines import ENGINE_NAMES, Engine, RootlessUser, clock_ticks, engine_named, rootless_user
from helpers import descends_from, image_name, load_cleanup_done, owned_elsewhere, wait_until
from IPython.core.interactiveshell import InteractiveShell
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from kernels import Kernel, start_kernel
from shells import CellRun, run_cell

PODMANS = ("podman", "podman-rootless")
_rootless_used = pytest.StashKey[bool]()


# -- the engine and its images ---------------------------------------------------------------------


@pytest.fixture(params=ENGINE_NAMES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The engine this run of the test uses; checks for leftovers after it."""
    chosen = engine_named(request.param)
    skip_or_fail(chosen.problem())
    chosen.warm_up()
    if chosen.rootless:
        request.config.stash[_rootless_used] = True
    before, started = set(chosen.labelled()), clock_ticks()
    yield chosen
    # Dockyter, if the test left it loaded in this process's shell, goes first (the ``ip``
    # fixture would unload it next): its prestarted containers live as long as it does.
    if InteractiveShell.initialized() and "dockyter" in InteractiveShell.instance().extension_manager.loaded:
        InteractiveShell.instance().run_line_magic("unload_ext", "dockyter")
    left = _new_containers(chosen, before)
    if left:
        chosen.remove(*left)
        pytest.fail(
            f"Dockyter containers left in {chosen.name} by this test (now removed): {', '.join(left)}", pytrace=False
        )
    user = chosen.user
    if user is not None:
        # conmon, slirp4netns, a container's processes, a kernel: none may outlive the test. Only
        # what started during it counts, and only this run's own children are killed: another test
        # run may use the user at the same time (its processes would be reported, never killed).
        wait_until(lambda: not user.busy(started), timeout=LEFTOVER_WAIT, interval=0.2)
        busy = user.busy(started)
        if busy:
            user.stop([pid for pid in busy if descends_from(pid, os.getpid())])
            pytest.fail(f"processes of {user.name} left running since this test began: {busy}", pytrace=False)


def _new_containers(chosen: Engine, before: set[str]) -> list[str]:
    """Containers this test left: new since ``before``, owned by a process of this run (or a dead one).

    One without an owner label cannot be told apart from another test run's on a shared engine:
    the session guard of conftest.py (Docker) answers for those.
    """

    def new() -> list[str]:
        owners = chosen.labelled()
        return sorted(
            name for name, owner in owners.items() if name not in before and owner and not owned_elsewhere(owner)
        )

    wait_until(lambda: not new(), timeout=LEFTOVER_WAIT, interval=0.2)
    return new()


def _image_on(chosen: Engine, variable: str) -> str:
    image = image_name(variable)
    skip_or_fail(chosen.image_problem(image))
    return image


@pytest.fixture
def engine_image(engine: Engine) -> str:
    """The bash test image (DOCKYTER_TEST_IMAGE), present on the engine."""
    return _image_on(engine, "DOCKYTER_TEST_IMAGE")


@pytest.fixture
def engine_sh_image(engine: Engine) -> str:
    """The image without bash (DOCKYTER_TEST_SH_IMAGE), present on the engine."""
    return _image_on(engine, "DOCKYTER_TEST_SH_IMAGE")


@pytest.fixture
def engine_differs(request: pytest.FixtureRequest, engine: Engine) -> Callable[..., None]:
    """``engine_differs(reason, *names)``: this test is expected to fail on those engines (strict)."""

    def differs(reason: str, *names: str) -> None:
        if engine.name in (names or PODMANS):
            request.node.add_marker(pytest.mark.xfail(reason=f"{engine.name}: {reason}", strict=True))

    return differs


# -- a shell and a kernel on the engine ------------------------------------------------------------


@pytest.fixture
def engine_shell(engine: Engine, ip: InteractiveShell) -> InteractiveShell:
    """The ``ip`` shell with Dockyter's docker_command pointed at ``engine``.

    ``engine`` comes first, so its leftover check runs after the shell's unload has removed the sessions.
    """
    load_cleanup_done()  # on the engine it was loaded with (docker), before the test starts anything
    ip.run_line_magic("config", f"Dockyter.docker_command = {list(engine.command)!r}")
    return ip


@pytest.fixture
def engine_cell(engine_shell: InteractiveShell) -> Callable[[str], CellRun]:
    """``engine_cell(text)`` runs a cell in the engine's shell and returns a CellRun."""
    return lambda text: run_cell(engine_shell, text)


@pytest.fixture
def engine_kernel(engine: Engine, tmp_path: Path) -> Iterator[Kernel]:
    """A fresh kernel with Dockyter loaded and pointed at ``engine``; rootless, run as the test user."""
    if engine.user is not None:
        work = Path(tempfile.mkdtemp(prefix="dockyter-rootless-"))
        try:
            os.chown(work, engine.user.uid, engine.user.gid)
            started = start_user_kernel(engine.user, work)
            yield from _loaded(started, ["podman"], f"{engine.user.uid} {work / 'cwd'}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    home = tmp_path / "kernel-home"  # not "home": a test may have isolated_home's as well
    home.mkdir()
    started = start_kernel(
        tmp_path, {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "DOCKYTER_CONFIG": ""}
    )
    yield from _loaded(started, list(engine.command))


def _loaded(started: Kernel, docker_command: list[str], whoami: str | None = None) -> Iterator[Kernel]:
    """``started`` with Dockyter loaded on ``docker_command``; ``whoami``: the "uid cwd" it must run with."""
    try:
        if whoami is not None:
            answer = started.run("import os; print(os.getuid(), os.getcwd())").stdout
            assert answer == f"{whoami}\n", f"the kernel runs as {answer!r}, not {whoami!r}"
        for line in ("%load_ext dockyter", f"%config Dockyter.docker_command = {docker_command!r}"):
            reply = started.run(line).reply
            assert reply["status"] == "ok", reply
        yield started
    finally:
        started.shutdown()


# -- a kernel run as the rootless user --------------------------------------------------------------


def user_python(
    user: RootlessUser, module: str = "ipykernel_launcher", needs: str = "dockyter, ipykernel"
) -> list[str] | None:
    """The argv that runs ``module`` (a kernel) as ``user`` with ``needs`` importable; None if there is none.

    This venv's python first. When the user cannot run it (its interpreter lives under /root,
    as pyenv's does), the system's python of the same version with this venv's packages added
    (their compiled parts need the same minor version).
    """
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    add_site = f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})"
    candidates = [
        ([sys.executable, "-m", module], [sys.executable, "-c", f"import {needs}"]),
        (
            [
                system,
                "-S",
                "-c",
                f"{add_site}; import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)",
            ],
            [system, "-S", "-c", f"{add_site}; import {needs}"],
        ),
    ]
    for launch, check in candidates:
        try:
            answer = subprocess.run(user.argv(*check), capture_output=True, timeout=60, cwd="/")
        except (OSError, subprocess.TimeoutExpired):
            continue
        if answer.returncode == 0:
            return launch
    return None


class _UserKernelManager(KernelManager):
    """A kernel manager whose connection file (written 0600 by this root process) belongs to the kernel's user."""

    owner: tuple[int, int] = (-1, -1)

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        os.chown(self.connection_file, *self.owner)


def start_user_kernel(user: RootlessUser, work: Path) -> Kernel:
    """A kernel run as ``user`` in ``work`` (a directory of that user), its own files under ``work``.

    ``HOME`` stays the user's own: podman keeps its storage and storage.conf there. IPython's and
    Jupyter's directories go under ``work``, so nothing of a test stays in the user's home.
    """
    python = user_python(user)
    skip_or_fail(None if python else f"{user.name} can run no Python with Dockyter and ipykernel (see user_python)")
    assert python is not None
    specs = work / "kernelspecs"
    spec = specs / "dockyter-rootless"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [*user.become(), *python, "-f", "{connection_file}"],
                "display_name": f"Python as {user.name}",
                "language": "python",
                "interrupt_mode": "signal",
            }
        )
    )
    for name in ("cwd", "runtime", "ipython", "jupyter"):
        (work / name).mkdir()
        os.chown(work / name, user.uid, user.gid)
    manager = _UserKernelManager(
        kernel_name="dockyter-rootless",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)], ensure_native_kernel=False),
        connection_file=str(work / "runtime" / "kernel.json"),
    )
    manager.owner = (user.uid, user.gid)
    env = {
        **user.env(),
        "IPYTHONDIR": str(work / "ipython"),
        "JUPYTER_CONFIG_DIR": str(work / "jupyter"),
        "JUPYTER_DATA_DIR": str(work / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
        "DOCKYTER_CONFIG": "",
    }
    manager.start_kernel(cwd=str(work / "cwd"), env=env)
    return Kernel(manager)


# -- the end of the run ------------------------------------------------------------------------------


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # The rootless user's pause process, started by the first rootless test: end it, unless
    # another test run uses the user right now.
    user = rootless_user()
    if session.config.stash.get(_rootless_used, False) and user is not None:
        user.stop_if_idle()
