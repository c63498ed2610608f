"""Plain helpers shared by the tests (``from helpers import wait_until``).

No pytest here: ``conftest.py`` turns these answers into skips, failures and fixtures.
``tests/`` is on ``sys.path`` through ``pythonpath`` in pyproject's pytest options.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# The label on every container Dockyter starts (dockyter.wire.contract.MANAGED_LABEL, checked by
# test_infrastructure.py). Spelled out so that the test infrastructure works even while the
# package does not import.
MANAGED_LABEL = "io.dockyter.managed"
OWNER_LABEL = "io.dockyter.owner"  # host:pid:starttime of the kernel that started it

# The local test images that .ci/images builds; each can be swapped for a public image on a
# machine that reaches a registry (for example DOCKYTER_TEST_IMAGE=bash:5).
DEFAULT_IMAGES = {
    "DOCKYTER_TEST_IMAGE": "dockyter-test/bash:1",
    "DOCKYTER_TEST_SH_IMAGE": "dockyter-test/sh:1",
    "DOCKYTER_TEST_PYTHON_IMAGE": "dockyter-test/python:1",
    "DOCKYTER_TEST_PLOT_IMAGE": "dockyter-test/gnuplot:1",
}

ENGINE_TIMEOUT = 20.0  # seconds for `docker info`: an engine slower than that is not usable


def image_name(variable: str) -> str:
    """The test image named by the environment ``variable``, or its default."""
    return os.environ.get(variable) or DEFAULT_IMAGES[variable]


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.1) -> T:
    """Call ``predicate`` until it returns something truthy or ``timeout`` seconds pass.

    Returns the last value, so ``assert wait_until(lambda: ...)`` fails on a timeout. For
    whatever happens asynchronously: a ``--rm`` container goes away a moment after it exits.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def load_cleanup_done(timeout: float = 30.0) -> None:
    """Wait for the clean-up that loading the extension starts in the background (thread
    ``dockyter-cleanup``): a test that makes orphans of its own must not race it."""
    for thread in threading.enumerate():
        if thread.name == "dockyter-cleanup":
            thread.join(timeout)


def docker(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS`` and capture its text output; never raises on a non-zero exit."""
    return subprocess.run(["docker", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


@functools.cache
def engine_problem() -> str | None:
    """Why no container engine is usable (None when ``docker info`` answers). Asked once."""
    try:
        answer = docker("info", "--format", "{{.ServerVersion}}", timeout=ENGINE_TIMEOUT)
    except FileNotFoundError:
        return "the docker CLI is not installed (bash .ci/provision installs and starts an engine)"
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer within {ENGINE_TIMEOUT:g} s"
    if answer.returncode != 0:
        last = (answer.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"no container engine answers `docker info`: {last} (bash .ci/provision starts one)"
    return None


@functools.cache
def runtime_problem(runtime: str) -> str | None:
    """Why the engine cannot run containers under the OCI ``runtime`` (None when it can). Asked once."""
    problem = engine_problem()
    if problem is not None:
        return problem
    answer = docker("info", "--format", "{{json .Runtimes}}", timeout=ENGINE_TIMEOUT)
    if f'"{runtime}"' not in answer.stdout:
        return (
            f"the engine has no {runtime} runtime (bash .ci/provision, as root, installs and registers gVisor's runsc)"
        )
    return None


def image_problem(image: str) -> str | None:
    """Why ``image`` cannot be used (None when the engine is usable and has it locally)."""
    problem = engine_problem()
    if problem is None and docker("image", "inspect", image).returncode != 0:
        ours = image in DEFAULT_IMAGES.values()
        problem = (
            f"the test image {image} is missing ({'bash .ci/provision --all builds it' if ours else 'docker pull it'})"
        )
    return problem


def dockyter_containers(label: str = MANAGED_LABEL) -> list[str]:
    """Names of all containers, running or not, that carry ``label`` (any value)."""
    answer = docker("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}")
    if answer.returncode != 0:
        raise RuntimeError(f"docker ps failed: {answer.stderr.strip()}")
    return answer.stdout.split()


def dockyter_container_owners(label: str = MANAGED_LABEL) -> dict[str, str]:
    """Like :func:`dockyter_containers`, with each container's owner label ('' when none)."""
    answer = docker(
        "ps", "-a", "--filter", f"label={label}", "--format", f'{{{{.Names}}}}\t{{{{.Label "{OWNER_LABEL}"}}}}'
    )
    if answer.returncode != 0:
        raise RuntimeError(f"docker ps failed: {answer.stderr.strip()}")
    return dict(line.partition("\t")[::2] for line in answer.stdout.splitlines() if line)


def owned_elsewhere(owner: str) -> bool:
    """True when ``owner`` is a live process on this host outside this process's tree, or a
    process that is gone but started before this run did.

    Such a container belongs to another test run or notebook sharing the engine (or is an
    orphan another run made on purpose, owned by a made-up dead process), so the leftover
    checks must neither blame this run for it nor remove it.
    """
    try:
        host, pid_text, started = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False  # never seen here: nobody else will clean it up
    if _start_time(pid) != started:  # gone: a process of this run's started after it
        mine = _start_time(os.getpid())
        return started.isdigit() and mine is not None and int(started) < int(mine)
    return not descends_from(pid, os.getpid())


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether process ``pid`` is ``ancestor`` or one of its descendants."""
    while pid > 1:
        if pid == ancestor:
            return True
        pid = _parent(pid)
    return False


def _proc_stat(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].decode().split()  # fields 3 and on
    except (OSError, IndexError):
        return []


def _start_time(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if len(fields) > 19 else None


def _parent(pid: int) -> int:
    fields = _proc_stat(pid)
    return int(fields[1]) if len(fields) > 1 else 0


def remove_containers(names: list[str]) -> None:
    """``docker rm --force --volumes`` them (their anonymous volumes too); one already gone is not an error."""
    if names:
        docker("rm", "--force", "--volumes", *names)


def running_containers(label: str = MANAGED_LABEL) -> list[str]:
    """Names of the running containers that carry ``label``."""
    answer = docker("ps", "--filter", f"label={label}", "--format", "{{.Names}}")
    return answer.stdout.split()


# -- a registry on 127.0.0.1 (the `registry` fixture) ---------------------------------------------

REGISTRY_BINARY = "docker-registry"  # Debian's


@dataclass
class Registry:
    """A running registry: ``push`` an image with a layer of its own, get its reference back."""

    host: str  # 127.0.0.1:PORT
    work: Path
    base_image: str

    def push_fresh_image(self, megabytes: int = 3) -> str:
        """An image (the bash test image plus ``megabytes`` of random data) in the registry only."""
        name = f"{self.host}/dockyter-pull/{secrets.token_hex(4)}:1"
        context = self.work / name.replace("/", "_").replace(":", "_")
        context.mkdir()
        (context / "blob").write_bytes(secrets.token_bytes(megabytes * 1_000_000))
        (context / "Dockerfile").write_text(f"FROM {self.base_image}\nCOPY blob /blob\n")
        for step in (("build", "-q", "-t", name, str(context)), ("push", name), ("rmi", name)):
            answer = docker(*step, timeout=120)
            assert answer.returncode == 0, f"docker {step[0]}: {answer.stderr}"
        return name


@contextlib.contextmanager
def running_registry(binary: str, work: Path, base_image: str) -> Iterator[Registry]:
    """Debian's registry on a free port of 127.0.0.1, its storage in ``work``; stopped, and the images
    pulled back from it removed, at the end."""
    port = free_port()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = Registry(f"127.0.0.1:{port}", work, base_image)
    try:
        assert wait_until(lambda: answers(f"http://{registry.host}/v2/"), timeout=15), "the registry did not start"
        yield registry
    finally:
        process.terminate()
        process.wait(timeout=10)
        listing = docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"{registry.host}/*/*")
        names = listing.stdout.split() if listing.returncode == 0 else []
        if names:
            docker("rmi", "-f", *names)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False
