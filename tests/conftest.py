"""Shared test infrastructure: container engine, test images, leftover containers.

Sections (add new fixtures in a section of their own, below the others):

1. Engine and images. ``@pytest.mark.docker`` on a test means it needs a usable container
   engine and the bash test image; the fixtures ``docker_cli``, ``test_image``, ``sh_image``
   and ``python_image`` check what they provide. When something is missing the test SKIPS
   with the reason, or FAILS with it under ``DOCKYTER_REQUIRE_DOCKER=1`` (as in CI, which
   must not pass by skipping everything).
2. Leftover containers. Every container Dockyter starts carries the label
   ``io.dockyter.managed``; none may outlive the test that started it. ``no_leftover_containers``
   checks one test; a guard at the end of the session checks the whole run, removes what it
   finds and fails the run.
3. OCI runtimes. ``oci_runtime`` is the runtime the ``dockyter_server`` fixture's servers put
   on their containers (the ``runtime`` setting; "" for the engine's default). Parametrized
   with ``server_fixtures.under_each_runtime``, a test runs once under runc and once under
   gVisor's runsc; a runtime the engine lacks skips, or fails under DOCKYTER_REQUIRE_DOCKER=1.
4. An IPython shell with Dockyter. ``isolated_home`` (HOME, XDG_CONFIG_HOME and the working
   directory in a temporary folder, no DOCKYTER_* configuration), ``ip`` (the process's
   InteractiveShell with Dockyter freshly loaded), ``cell`` (``cell(text)`` runs a cell in it),
   ``recording_backend`` (a backend named "recording" that runs nothing and keeps the requests).
5. Configuration files. ``config_home`` (where dockyter.toml is looked for), ``load_dockyter``
   (``load_dockyter(**traits)`` loads the extension with ``traits`` as the IPython config layer,
   as ``c.Dockyter.<name>`` would set them), ``ipshell`` (loaded over the files a test wrote).
6. A real kernel. ``kernel``: ipykernel through jupyter_client, Dockyter loaded, HOME isolated.
7. A registry. ``registry``: Debian's ``docker-registry`` on a free port of 127.0.0.1, for a
   module; ``push_fresh_image()`` pushes an image with a layer of its own, so a cell pulls it.

The plain helpers (``wait_until``, ``dockyter_containers``, ...) live in ``helpers.py``; those of
the fixtures above in ``shells.py`` (``run_cell``, ``ConfigHome``...), ``recording.py`` and ``kernels.py``
(``start_kernel``, ``containers_of``). The server's fixtures are in ``server_fixtures.py`` and
``swarm_fixtures.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import (
    REGISTRY_BINARY,
    Registry,
    answers,
    docker,
    dockyter_container_owners,
    engine_problem,
    free_port,
    image_name,
    image_problem,
    owned_elsewhere,
    remove_containers,
    runtime_problem,
    wait_until,
)
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from kernels import Kernel, start_kernel
from shells import CellRun, ConfigHome, Loaded, run_cell
from traitlets.config import Config

if TYPE_CHECKING:
    from recording import RecordingBackend

# pytester runs whole pytest sessions (to test the session guard); the others are the server's
# fixtures and the container engines' (docker, podman, rootless podman).
pytest_plugins = ["pytester", "server_fixtures", "swarm_fixtures", "engine_fixtures"]

# =============================================================================================
# 1. Engine and images
# =============================================================================================

REQUIRE_DOCKER = os.environ.get("DOCKYTER_REQUIRE_DOCKER") == "1"


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeated so that this file works on its own (pytester).
    config.addinivalue_line("markers", "docker: needs a running container engine and the local test images")


def skip_or_fail(problem: str | None) -> None:
    """Skip the current test because of ``problem``, or fail it under DOCKYTER_REQUIRE_DOCKER=1."""
    if problem is None:
        return
    if REQUIRE_DOCKER:
        pytest.fail(f"{problem} (required: DOCKYTER_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(problem)


def _image(variable: str) -> str:
    image = image_name(variable)
    skip_or_fail(image_problem(image))
    return image


@pytest.fixture(autouse=True)
def _docker_marker(request: pytest.FixtureRequest) -> None:
    """Gives ``@pytest.mark.docker`` its meaning, before any other fixture starts anything.

    A test on the ``engine`` parameter (engine_fixtures.py) checks its own engine and images instead.
    """
    if request.node.get_closest_marker("docker") is not None and "engine" not in request.fixturenames:
        request.getfixturevalue("test_image")


@pytest.fixture
def docker_cli() -> list[str]:
    """The container CLI as an argv prefix (``["docker"]``), once the engine answers."""
    skip_or_fail(engine_problem())
    return ["docker"]


@pytest.fixture(scope="session")
def test_image() -> str:
    """An image with bash and busybox tools: DOCKYTER_TEST_IMAGE, default dockyter-test/bash:1."""
    return _image("DOCKYTER_TEST_IMAGE")


@pytest.fixture(scope="session")
def sh_image() -> str:
    """An image WITHOUT bash (sh only): DOCKYTER_TEST_SH_IMAGE, default dockyter-test/sh:1."""
    return _image("DOCKYTER_TEST_SH_IMAGE")


@pytest.fixture(scope="session")
def python_image() -> str:
    """An image with python3 and numpy: DOCKYTER_TEST_PYTHON_IMAGE, default dockyter-test/python:1.

    Slow to build, so only built by `.ci/provision --all` or DOCKYTER_BUILD_PYTHON_IMAGE=1.
    """
    return _image("DOCKYTER_TEST_PYTHON_IMAGE")


# =============================================================================================
# 2. Leftover containers
# =============================================================================================

# Seconds to let containers go away before calling them left behind: `--rm` removal is
# asynchronous. DOCKYTER_LEFTOVER_WAIT shortens it where a leftover is expected.
LEFTOVER_WAIT = float(os.environ.get("DOCKYTER_LEFTOVER_WAIT", "10"))

_existing_at_start = pytest.StashKey[set[str]]()
_left_behind = pytest.StashKey[list[str]]()


def _new_containers(before: set[str]) -> list[str]:
    """Labelled containers not in ``before`` and not another run's, once given time to go away."""

    def new() -> list[str]:
        owners = dockyter_container_owners()
        return sorted(name for name, owner in owners.items() if name not in before and not owned_elsewhere(owner))

    wait_until(lambda: not new(), timeout=LEFTOVER_WAIT, interval=0.2)
    return new()


@pytest.fixture
def no_leftover_containers(docker_cli: list[str]) -> Iterator[None]:
    """Fails the test (in teardown) if a labelled container it started is still there after it."""
    before = set(dockyter_container_owners())
    yield
    left = _new_containers(before)
    if left:
        remove_containers(left)
        pytest.fail(f"Dockyter containers left behind by this test (now removed): {', '.join(left)}", pytrace=False)


def pytest_sessionstart(session: pytest.Session) -> None:
    # Remember what was there before: those are a user's own containers, not this run's.
    if engine_problem() is None:
        session.config.stash[_existing_at_start] = set(dockyter_container_owners())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_existing_at_start, None)
    if before is None:
        return  # no engine at the start: nothing can have been started
    left = _new_containers(before)
    if left:
        remove_containers(left)
        session.config.stash[_left_behind] = left
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    left = config.stash.get(_left_behind, [])
    if left:
        terminalreporter.section("leftover containers", red=True)
        terminalreporter.write_line(
            f"Dockyter containers left behind: {', '.join(left)}. They are removed now, and this "
            "run fails: every test must remove the containers it starts.",
            red=True,
        )


# =============================================================================================
# 3. OCI runtimes
# =============================================================================================


@pytest.fixture
def oci_runtime(request: pytest.FixtureRequest) -> str:
    """The OCI runtime of the test's servers: its parameter when parametrized, else "" (the default)."""
    runtime: str = getattr(request, "param", "")
    if runtime:
        skip_or_fail(runtime_problem(runtime))
    return runtime


@pytest.fixture
def runsc() -> str:
    """gVisor's runtime name, once the engine is known to have it."""
    skip_or_fail(runtime_problem("runsc"))
    return "runsc"


# =============================================================================================
# 4. An IPython shell with Dockyter
# =============================================================================================


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, XDG_CONFIG_HOME and the working directory in a temporary folder; no DOCKYTER_* config."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("DOCKYTER_CONFIG", raising=False)
    monkeypatch.delenv("DOCKYTER_API_TOKEN", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def ip(isolated_home: Path) -> Iterator[InteractiveShell]:
    """The process's InteractiveShell with Dockyter freshly loaded; unloaded afterwards."""
    shell = InteractiveShell.instance()
    # %config writes into shell.config, which outlives the extension: start and end clean.
    shell.config.pop("Dockyter", None)
    shell.run_line_magic("load_ext", "dockyter")
    yield shell
    if "dockyter" in shell.extension_manager.loaded:
        shell.run_line_magic("unload_ext", "dockyter")
    shell.config.pop("Dockyter", None)
    for name in ("_exit_code",):
        shell.user_ns.pop(name, None)


@pytest.fixture
def cell(ip: InteractiveShell) -> Callable[[str], CellRun]:
    """``cell(text)`` runs a cell in the Dockyter shell and returns a CellRun."""
    return lambda text: run_cell(ip, text)


@pytest.fixture
def recording_backend(monkeypatch: pytest.MonkeyPatch) -> type[RecordingBackend]:
    """Make "recording" a known backend; its requests start empty."""
    from recording import RecordingBackend  # the package: only when used, so the guards above work without it

    from dockyter.backends import registry

    monkeypatch.setitem(registry.REGISTRY, "recording", "recording:RecordingBackend")
    monkeypatch.setattr(RecordingBackend, "requests", [])
    monkeypatch.setattr(RecordingBackend, "exit_code", 0)
    return RecordingBackend


# =============================================================================================
# 5. Configuration files
# =============================================================================================


@pytest.fixture
def config_home(isolated_home: Path) -> ConfigHome:
    return ConfigHome(isolated_home)


@pytest.fixture
def load_dockyter(config_home: ConfigHome) -> Iterator[Callable[..., Loaded]]:
    shell = InteractiveShell.instance()
    saved_config = shell.config

    def load(**traits: Any) -> Loaded:
        if "dockyter" in shell.extension_manager.loaded:
            shell.run_line_magic("unload_ext", "dockyter")
        config = deepcopy(saved_config)
        config.merge(Config({"Dockyter": traits}))
        shell.config = config
        with capture_output() as captured:
            shell.run_line_magic("load_ext", "dockyter")
        return Loaded(shell, captured.stdout, captured.stderr)

    yield load
    if "dockyter" in shell.extension_manager.loaded:
        shell.run_line_magic("unload_ext", "dockyter")
    shell.config = saved_config
    shell.user_ns.pop("_exit_code", None)


@pytest.fixture
def ipshell(load_dockyter: Callable[..., Loaded]) -> InteractiveShell:
    return load_dockyter().shell


# =============================================================================================
# 6. A real kernel
# =============================================================================================


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    """A fresh kernel with its HOME in a temporary folder and Dockyter loaded."""
    home = tmp_path / "home"
    home.mkdir()
    started = start_kernel(
        tmp_path, {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "DOCKYTER_CONFIG": ""}
    )
    try:
        reply = started.run("%load_ext dockyter").reply
        assert reply["status"] == "ok", reply
        yield started
    finally:
        started.shutdown()


# =============================================================================================
# 7. A registry
# =============================================================================================


@pytest.fixture(scope="module")
def registry(tmp_path_factory, test_image) -> Iterator[Registry]:
    """A registry on a free port of 127.0.0.1 for this module, its storage in a temporary folder."""
    binary = shutil.which(REGISTRY_BINARY) or f"/usr/bin/{REGISTRY_BINARY}"
    if not Path(binary).exists():  # skipped, or failed under DOCKYTER_REQUIRE_DOCKER=1 (as in CI)
        skip_or_fail(f"{REGISTRY_BINARY} is not installed (bash .ci/provision installs it, as root)")
    work = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = Registry(f"127.0.0.1:{port}", work, test_image)
    try:
        assert wait_until(lambda: answers(f"http://{registry.host}/v2/"), timeout=15), "the registry did not start"
        yield registry
    finally:
        process.terminate()
        process.wait(timeout=10)
        # the images this module pulled back
        listing = docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"{registry.host}/*/*")
        names = listing.stdout.split() if listing.returncode == 0 else []
        if names:
            docker("rmi", "-f", *names)
