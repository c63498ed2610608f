"""A real image registry on 127.0.0.1 (Debian's ``docker-registry``), for tests of pulls.

The engine trusts registries on 127.0.0.0/8 without TLS, so an image pushed there and
removed locally is pulled back through a cell exactly as from any registry.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import skip_or_fail
from helpers import docker, wait_until

REGISTRY_BINARY = "docker-registry"


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def registry(tmp_path_factory, test_image) -> Iterator[Registry]:
    """A registry on a free port of 127.0.0.1 for this module, its storage in a temporary folder."""
    binary = shutil.which(REGISTRY_BINARY) or f"/usr/bin/{REGISTRY_BINARY}"
    if not Path(binary).exists():  # skipped, or failed under DOCKYTER_REQUIRE_DOCKER=1 (as in CI)
        skip_or_fail(f"{REGISTRY_BINARY} is not installed (bash .ci/provision installs it, as root)")
    work = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = Registry(f"127.0.0.1:{port}", work, test_image)
    try:
        assert wait_until(lambda: _answers(f"http://{registry.host}/v2/"), timeout=15), "the registry did not start"
        yield registry
    finally:
        process.terminate()
        process.wait(timeout=10)
        # the images this module pulled back
        listing = docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"{registry.host}/*/*")
        names = listing.stdout.split() if listing.returncode == 0 else []
        if names:
            docker("rmi", "-f", *names)
