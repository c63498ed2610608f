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

The plain helpers (``wait_until``, ``dockyter_containers``, ...) live in ``helpers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from helpers import (
    dockyter_container_owners,
    engine_problem,
    image_name,
    image_problem,
    owned_elsewhere,
    remove_containers,
    runtime_problem,
    wait_until,
)

# pytester runs whole pytest sessions (to test the session guard); the others are our fixture modules.
pytest_plugins = [
    "pytester",
    "core_fixtures",
    "kernel_fixtures",
    "server_fixtures",
    "registry_fixtures",
    "swarm_fixtures",
    "engine_fixtures",
]

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
    """Gives ``@pytest.mark.docker`` its meaning, before any other fixture starts anything."""
    if request.node.get_closest_marker("docker") is not None:
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
