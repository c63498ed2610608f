"""Fixtures of the JupyterHub tests: one real hub for the tests of this folder, two users, a browser.

``hub``: a JupyterHub on 127.0.0.1 with its real proxy (configurable-http-proxy from npm), run
from the recipe's own ``docs/jupyterhub/jupyterhub_config.py`` (through
``tests/hub/jupyterhub_config.py``, which adds only what a test machine needs). Single-user
servers run in a Python environment whose ``etc/ipython/`` holds ``docs/jupyterhub/ipython_config.py``,
as the recipe places it; dockyter-server is the hub's managed service. Started once, by the first test here that needs it, and stopped when
the last test of this folder is done; then every process that carries the run's mark (the hub,
the proxy, single-user servers, kernels) must be gone, or the run fails.

``alice`` and ``bob``: hub users logged in through the hub's REST API, each with a running
server (started again if a test stopped it).

``browser``: headless Chromium (Debian's, through selenium and Debian's chromedriver) with a
fresh profile; when it quits, no process of it may be left. ``artifacts``: a folder for the
test's screenshots, ``test-artifacts/hub/<test name>/`` in the repository (gitignored), kept
after the run for a person to look at.

What they need is installed by ``bash .ci/provision`` (the ``test-hub`` extra, the proxy from
npm, Debian's chromium): when it is missing the tests skip, and under DOCKYTER_REQUIRE_DOCKER=1
(as in CI) the run stops here, before collecting them.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import REQUIRE_DOCKER, registry_binary, skip_or_fail
from helpers import Registry, remove_containers, running_registry, wait_until

from .browser import browser_problem, start_browser
from .hubserver import Hub, User, marked_processes
from .singleuser import make_environment

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

REPOSITORY = Path(__file__).resolve().parents[2]
CACHE_SECONDS = 3.0  # the service's hub_cache_seconds here: how late it may notice a revoked token
LEFTOVER_WAIT = 15.0  # seconds for a stopped hub's processes to go (a kernel notices its server's end within ~1 s)


def proxy_command() -> str | None:
    """configurable-http-proxy: .ci/provision links it into the venv's bin folder."""
    return shutil.which("configurable-http-proxy", path=os.path.dirname(sys.executable)) or shutil.which(
        "configurable-http-proxy"
    )


def hub_problem() -> str | None:
    for module in ("jupyterhub", "jupyterlab"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (bash .ci/provision installs the test-hub extra)"
    if proxy_command() is None:
        return "configurable-http-proxy is not installed (bash .ci/provision installs it from npm)"
    return None


if REQUIRE_DOCKER and (_missing := hub_problem() or browser_problem()):
    raise pytest.UsageError(f"{_missing} (required: DOCKYTER_REQUIRE_DOCKER=1)")


@pytest.fixture(scope="package")
def hub_registry(tmp_path_factory: pytest.TempPathFactory, test_image: str) -> Iterator[Registry]:
    """The registry the hub's service may pull from (allowed_registries names it): one for the folder."""
    with running_registry(registry_binary(), tmp_path_factory.mktemp("hub-registry"), test_image) as running:
        yield running


@pytest.fixture(scope="package")
def hub(tmp_path_factory: pytest.TempPathFactory, hub_registry: Registry, test_image: str) -> Iterator[Hub]:
    """The JupyterHub of this folder's tests, with dockyter-server as its managed service; everything
    it started (processes and the service's containers) is gone when it ends, or the run fails."""
    skip_or_fail(hub_problem())
    work = tmp_path_factory.mktemp("hub")
    environment = make_environment(work / "singleuser-env")
    repository = test_image.rsplit(":", 1)[0].rsplit("/", 1)[0]  # dockyter-test
    server_settings = {
        # The local test images and registry instead of the recipe's public ones.
        "allowed_images": f"{repository}/*,{hub_registry.host}/*",
        "allowed_registries": f"docker.io,{hub_registry.host}",
        # A short revocation bound keeps the tests of revocation and of stopped servers short.
        "hub_cache_seconds": str(CACHE_SECONDS),
    }
    started = Hub.start(work, environment, str(proxy_command()), server_settings)
    try:
        yield started
    finally:
        try:
            started.stop()
        finally:
            check_nothing_left(started.run_mark, "the hub")
            left = started.server_containers(prestarted=True)
            remove_containers(left)
            assert not left, f"containers left behind by the hub's dockyter-server (now removed): {left}"


def check_nothing_left(mark: str, what: str) -> None:
    """Fail (after killing them) if processes with the run ``mark`` outlive ``what``."""
    wait_until(lambda: not marked_processes(mark), timeout=LEFTOVER_WAIT, interval=0.2)
    left = marked_processes(mark)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        listing = "\n".join(f"  {pid} {command[:160]}" for pid, command in left)
        pytest.fail(f"processes left behind by {what} (now killed):\n{listing}", pytrace=False)


def _user(hub: Hub, name: str, logged_in: dict[str, User]) -> Iterator[User]:
    if name not in logged_in:
        logged_in[name] = hub.login(name)
    user = logged_in[name]
    user.start_server()
    yield user
    user.shut_down_kernels()  # the next test finds the server as a fresh one


@pytest.fixture(scope="package")
def _logged_in() -> dict[str, User]:
    return {}


@pytest.fixture
def alice(hub: Hub, _logged_in: dict[str, User]) -> Iterator[User]:
    """The hub user alice (group gpu), logged in, her server running; its kernels are shut down after the test."""
    yield from _user(hub, "alice", _logged_in)


@pytest.fixture
def bob(hub: Hub, _logged_in: dict[str, User]) -> Iterator[User]:
    """The hub user bob (group students), logged in, his server running; its kernels are shut down after the test."""
    yield from _user(hub, "bob", _logged_in)


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """``test-artifacts/hub/<test name>/`` in the repository, emptied for this test."""
    folder = REPOSITORY / "test-artifacts" / "hub" / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def browser(tmp_path: Path, artifacts: Path) -> Iterator[Chrome]:
    """Headless Chromium with a fresh profile; the test fails if any of its processes outlives it."""
    skip_or_fail(browser_problem())
    mark = secrets.token_hex(8)
    driver = start_browser(tmp_path / "chromium-profile", {"DOCKYTER_HUB_RUN": mark}, artifacts / "chromedriver.log")
    try:
        yield driver
    finally:
        driver.quit()
        check_nothing_left(mark, "the browser")
