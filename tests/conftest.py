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
   with ``servers.under_each_runtime``, a test runs once under runc and once under
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
8. A real dockyter-server. ``dockyter_server`` (``dockyter_server(**settings)``: a real server on
   127.0.0.1, in a thread, stopped at teardown), under ``oci_runtime`` and ``executor_kind``
   ("engine" unless parametrized by ``servers.under_each_executor``); ``run_image`` (the bash
   test image where they run their work), ``host_dir`` (a host directory to allow as a mount root).
9. The Swarm cluster. ``swarm_cluster`` (session: the three-node Swarm of ``.ci/cluster``, up if
   needed and down again if this session brought it up), ``swarm_image``, ``swarm_server``
   (executor ``swarm``; fails a test that leaves a service, network or container on the
   cluster), ``loopback_program`` (the loopback check, built with this machine's C compiler).

The plain helpers (``wait_until``, ``dockyter_containers``, ...) live in ``helpers.py``; those of
the fixtures above in ``shells.py`` (``run_cell``, ``ConfigHome``...), ``recording.py`` and ``kernels.py``
(``start_kernel``, ``containers_of``), ``servers.py`` (``start_server``, ``RunningServer``, the
``under_each_*`` parametrizations) and ``cluster.py`` (``Cluster``, ``fail_on_leftovers``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cluster import Cluster, fail_on_leftovers
from cluster import down as cluster_down
from cluster import up as cluster_up
from engines import engine_named
from helpers import (
    REGISTRY_BINARY,
    Registry,
    dockyter_container_owners,
    engine_problem,
    image_name,
    image_problem,
    owned_elsewhere,
    remove_containers,
    running_registry,
    runtime_problem,
    wait_until,
)
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from kernels import Kernel, start_kernel
from servers import RunningServer, start_server
from shells import CellRun, ConfigHome, Loaded, run_cell
from traitlets.config import Config

if TYPE_CHECKING:
    from recording import RecordingBackend

SESSION_LABEL = "io.dockyter.server-session"  # a server's session containers (dockyter.server.sessions)

# pytester runs whole pytest sessions (to test the session guard); engine_fixtures the container
# engines' (docker, podman, rootless podman).
pytest_plugins = ["pytester", "engine_fixtures"]

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


@pytest.fixture(scope="session")
def plot_image() -> str:
    """The python image with gnuplot (examples/07_files.ipynb): DOCKYTER_TEST_PLOT_IMAGE, default
    dockyter-test/gnuplot:1, built on the python image by the same `.ci/images --all`."""
    return _image("DOCKYTER_TEST_PLOT_IMAGE")


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
    """Fails the test (in teardown) if a labelled container it started is still there after it.

    Dockyter, if the test left it loaded in this process's shell, is unloaded first (the ``ip``
    fixture would do it next): its prestarted containers live as long as it does, no longer.
    """
    before = set(dockyter_container_owners())
    yield
    if InteractiveShell.initialized() and "dockyter" in InteractiveShell.instance().extension_manager.loaded:
        InteractiveShell.instance().run_line_magic("unload_ext", "dockyter")
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
    for name in ("_exit_code", "_docker_runs"):
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


def registry_binary() -> str:
    """Debian's docker-registry; skips (or fails, under DOCKYTER_REQUIRE_DOCKER=1 as in CI) without it."""
    binary = shutil.which(REGISTRY_BINARY) or f"/usr/bin/{REGISTRY_BINARY}"
    if not Path(binary).exists():
        skip_or_fail(f"{REGISTRY_BINARY} is not installed (bash .ci/provision installs it, as root)")
    return binary


@pytest.fixture(scope="module")
def registry(tmp_path_factory, test_image) -> Iterator[Registry]:
    """A registry on a free port of 127.0.0.1 for this module, its storage in a temporary folder."""
    with running_registry(registry_binary(), tmp_path_factory.mktemp("registry"), test_image) as running:
        yield running


# =============================================================================================
# 8. A real dockyter-server
# =============================================================================================


@pytest.fixture
def executor_kind(request: pytest.FixtureRequest) -> str:
    """The executor of the test's servers: its parameter under ``under_each_executor`` (or
    ``under_each_engine``: "podman" is the engine executor on rootful podman), else "engine"."""
    kind: str = getattr(request, "param", "engine")
    if kind == "podman":
        skip_or_fail(engine_named("podman").image_problem(image_name("DOCKYTER_TEST_IMAGE")))
    return kind


@pytest.fixture
def run_image(request: pytest.FixtureRequest, executor_kind: str) -> str:
    """The bash test image where the servers run their work: the engine's (podman has it under the
    same name), or the cluster registry's."""
    image: str = request.getfixturevalue("swarm_image" if executor_kind == "swarm" else "test_image")
    return image


@pytest.fixture
def dockyter_server(
    request: pytest.FixtureRequest, oci_runtime: str, executor_kind: str
) -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``dockyter_server(**settings_overrides) -> RunningServer``; all stopped at teardown.

    Under ``oci_runtime`` and ``executor_kind``: ``[swarm]`` servers run their work on the
    cluster, and nothing of theirs may be left there after the test; ``[podman]`` servers run
    theirs on rootful podman (``docker_command = ["podman"]``), and nothing may be left there.
    """
    started: list[RunningServer] = []
    cluster: Cluster | None = request.getfixturevalue("swarm_cluster") if executor_kind == "swarm" else None

    def start(**overrides: Any) -> RunningServer:
        if oci_runtime:
            overrides.setdefault("runtime", oci_runtime)
        if cluster is not None:
            overrides.setdefault("executor", "swarm")
            overrides.setdefault("docker_command", cluster.docker_command)
            # Its images come from the cluster's registry, on a private network: named, so allowed.
            overrides.setdefault("allowed_registries", ["docker.io", cluster.registry])
        if executor_kind == "podman":
            overrides.setdefault("docker_command", ["podman"])
        running = start_server(**overrides)
        if running.settings.executor == "swarm":
            running.cluster = cluster or request.getfixturevalue("swarm_cluster")
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.stop()
    if cluster is not None:
        fail_on_leftovers(cluster, tuple(running.settings.server_name for running in started))
    if executor_kind == "podman":  # the session guard looks at Docker's engine only
        podman = engine_named("podman")
        left = {name for running in started for name in podman.labelled(f"io.dockyter.server={running.executor.label}")}
        left |= {name for running in started for name in podman.labelled(f"{SESSION_LABEL}={running.executor.label}")}
        if left:
            podman.remove(*left)
            pytest.fail(
                f"containers left on podman by this test's servers (now removed): {sorted(left)}", pytrace=False
            )


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A host directory every user can enter (pytest's tmp_path is private to root), for servers
    to allow as a mount root; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="dockyter-host-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# =============================================================================================
# 9. The Swarm cluster
# =============================================================================================


@pytest.fixture(scope="session")
def swarm_cluster() -> Iterator[Cluster]:
    """The three-node Swarm of .ci/cluster: brought up if needed, and down again if this session did."""
    if os.geteuid() != 0:
        skip_or_fail("the Swarm cluster of .ci/cluster needs root (network namespaces, dockerd)")
    cluster, brought_up, problem = cluster_up()
    skip_or_fail(problem or None)
    assert cluster is not None
    yield cluster
    if brought_up:
        cluster_down()


@pytest.fixture(scope="session")
def swarm_image(swarm_cluster: Cluster) -> str:
    """The bash test image, as the cluster's nodes pull it from the cluster's registry."""
    return f"{swarm_cluster.registry}/dockyter-test/bash:1"


@pytest.fixture(scope="session")
def loopback_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loopback check (dockyter/server/swarm/loopback_only.c), built with this machine's C compiler."""
    from dockyter.server.swarm.loopbackcheck import LoopbackCheckError, build

    try:
        return build(tmp_path_factory.mktemp("loopback") / "loopback-only")
    except LoopbackCheckError as error:
        skip_or_fail(str(error))
        raise


@pytest.fixture
def swarm_server(
    swarm_cluster: Cluster, dockyter_server: Callable[..., RunningServer]
) -> Iterator[Callable[..., RunningServer]]:
    """Factory: a real dockyter-server whose executions run on the cluster; nothing may be left after."""
    started: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        values: dict[str, Any] = {
            "executor": "swarm",
            "docker_command": swarm_cluster.docker_command,
            # The nodes pull from the cluster's registry, on a private network: named, so allowed.
            "allowed_registries": ["docker.io", swarm_cluster.registry],
        }
        values.update(overrides)
        started.append(dockyter_server(**values))
        return started[-1]

    yield start
    # dockyter_server's own teardown comes after this one: stop the servers (and so their runs) first.
    for server in reversed(started):
        server.stop()
    fail_on_leftovers(swarm_cluster, tuple(server.settings.server_name for server in started))
