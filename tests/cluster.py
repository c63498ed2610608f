"""The three-node Swarm of ``.ci/cluster`` for tests: :class:`Cluster`, and what is left on it.

The fixtures are in conftest.py (section 9): ``swarm_cluster`` (session) brings the cluster up
when it is not (root only) and takes it down at the end of the session if it brought it up;
one already up (``bash .ci/cluster up`` by hand) is left as found. Without root or without the
cluster, tests marked ``swarm`` skip, or fail under ``DOCKYTER_REQUIRE_DOCKER=1``.
``swarm_server`` and the ``[swarm]`` variants of ``dockyter_server`` check after each test that
no service, network or container of its servers is left anywhere on the cluster
(:func:`fail_on_leftovers`).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = ROOT / ".ci" / "cluster"
LEFTOVER_WAIT = 20.0  # a removed task's container leaves its overlay network in seconds


@dataclass(frozen=True)
class Cluster:
    """The running cluster: the manager's socket, the registry, and each node's socket."""

    host: str  # unix:///.../manager/docker.sock
    registry: str  # ADDRESS:PORT
    nodes: dict[str, str]  # node name (manager, worker1, worker2) -> its socket URL

    @property
    def docker_command(self) -> list[str]:
        return ["docker", "-H", self.host]

    def docker(self, *args: str, node: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``docker ARGS`` against the manager (or one ``node``); never raises on a non-zero exit."""
        host = self.nodes[node] if node else self.host
        return subprocess.run(
            ["docker", "-H", host, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )

    def script(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def services(self, servers: tuple[str, ...] = ()) -> list[str]:
        """Names of Dockyter's services; with ``servers``, only those of these server names."""
        ids = self.docker("service", "ls", "--quiet", "--filter", "label=io.dockyter.managed").stdout.split()
        if not ids:
            return []
        fmt = '{{.Spec.Name}}\t{{index .Spec.Labels "io.dockyter.server"}}'
        rows = [
            line.split("\t") for line in self.docker("service", "inspect", "--format", fmt, *ids).stdout.splitlines()
        ]
        return [row[0] for row in rows if len(row) == 2 and _ours(row[1], servers)]

    def networks(self, servers: tuple[str, ...] = ()) -> list[str]:
        return self._labelled("network", '{{.Name}}\t{{index .Labels "io.dockyter.server"}}', servers)

    def configs(self, servers: tuple[str, ...] = ()) -> list[str]:
        """Names of Dockyter's Swarm configs (the loopback check's)."""
        return self._labelled("config", '{{.Spec.Name}}\t{{index .Spec.Labels "io.dockyter.server"}}', servers)

    def _labelled(self, kind: str, fmt: str, servers: tuple[str, ...]) -> list[str]:
        names = self.docker(kind, "ls", "--filter", "label=io.dockyter.managed", "--format", "{{.Name}}").stdout.split()
        if not names:
            return []
        rows = [line.split("\t") for line in self.docker(kind, "inspect", "--format", fmt, *names).stdout.splitlines()]
        return [row[0] for row in rows if len(row) == 2 and _ours(row[1], servers)]

    def containers(self, servers: tuple[str, ...] = (), *, running: bool = False) -> dict[str, list[str]]:
        """Dockyter's containers on each node (only running ones with ``running``)."""
        found = {}
        state = ["--filter", "status=running"] if running else ["-a"]
        for node in self.nodes:
            answer = self.docker(
                "ps", *state, "--filter", "label=io.dockyter.managed",
                "--format", '{{.Names}}\t{{.Label "io.dockyter.server"}}', node=node,
            )  # fmt: skip
            rows = [line.split("\t") for line in answer.stdout.splitlines()]
            names = [row[0] for row in rows if len(row) == 2 and _ours(row[1], servers)]
            if names:
                found[node] = names
        return found

    def running(self, servers: tuple[str, ...] = ()) -> dict[str, list[str]]:
        """Dockyter's running containers on each node."""
        return self.containers(servers, running=True)

    def leftovers(self, servers: tuple[str, ...] = ()) -> dict[str, Any]:
        left = {
            "services": self.services(servers),
            "networks": self.networks(servers),
            "configs": self.configs(servers),
            "containers": self.containers(servers),
        }
        return {kind: value for kind, value in left.items() if value}


def _ours(label: str, servers: tuple[str, ...]) -> bool:
    """Whether an ``io.dockyter.server`` label (``name:instance``) belongs to one of ``servers`` (all if none)."""
    return not servers or label.split(":", 1)[0] in servers


def _cluster_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def up(timeout: float = 600.0) -> tuple[Cluster | None, bool, str]:
    """The running cluster, brought up first when it is not: (cluster, brought_up, problem).

    ``cluster`` is None when it could not be brought up, and ``problem`` says why.
    """
    status = subprocess.run(["bash", str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True, timeout=60)
    brought_up = status.returncode != 0
    if brought_up:
        started = subprocess.run(["bash", str(CLUSTER_SCRIPT), "up"], capture_output=True, text=True, timeout=timeout)
        if started.returncode != 0:
            down()
            return None, False, f"bash .ci/cluster up failed: {(started.stderr.strip().splitlines() or ['?'])[-1]}"
    env = _cluster_env(subprocess.run(["bash", str(CLUSTER_SCRIPT), "env"], capture_output=True, text=True).stdout)
    nodes = {
        key.removeprefix("DOCKYTER_CLUSTER_NODE_").lower(): value
        for key, value in env.items()
        if key.startswith("DOCKYTER_CLUSTER_NODE_")
    }
    return Cluster(env["DOCKYTER_CLUSTER_HOST"], env["DOCKYTER_CLUSTER_REGISTRY"], nodes), brought_up, ""


def down() -> None:
    """Take the cluster down (only for a session that brought it up)."""
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "down"], capture_output=True, timeout=120)


def fail_on_leftovers(cluster: Cluster, names: tuple[str, ...]) -> None:
    """Fails the test when the servers ``names`` left a service, network or container on the cluster.

    Only these servers: a benchmark or another test run may be using the cluster meanwhile.
    """
    if not names:
        return
    left = wait_until(lambda: not cluster.leftovers(names), timeout=LEFTOVER_WAIT, interval=0.3)
    if not left:
        found = cluster.leftovers(names)
        for name in found.get("services", []):
            cluster.docker("service", "rm", name)
        pytest.fail(f"left on the cluster by this test (services now removed): {found}", pytrace=False)
