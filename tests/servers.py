"""A real ``dockyter-server`` for tests: uvicorn on 127.0.0.1, a free port, real containers.

The fixtures that start them are in conftest.py (section 8: ``dockyter_server``,
``executor_kind``, ``run_image``, ``host_dir``); this module holds what they and the tests
share, imported by name:

* :func:`start_server` starts one in a background thread of the test process, with a fresh
  token and its own ``server_name`` (so that its start-up clean-up never touches another
  test's containers), ``pull="never"`` (no registry is reachable here) and ``prestart=0`` (cold
  executions, unless a test asks for prestarted containers); the server package
  is imported lazily, so this module loads even where the ``server`` extra is not installed;
* :class:`RunningServer` is one started server: its URL, token, settings, and what is left of
  its work (``containers()``, ``exists()``, ``runs()``: on a Swarm its services and each node's
  containers);
* ``@under_each_runtime`` runs a test once with its servers' containers under runc and once
  under gVisor's runsc; ``@under_each_executor`` once on the engine and once on the three-node
  Swarm of ``.ci/cluster`` (cluster.py); ``@under_each_place`` under runc and runsc on the
  engine, on rootful podman and on the Swarm; ``@under_each_engine`` on Docker's engine and on rootful podman
  (``dockyter-server --docker-command podman``, executor kind ``podman``), and
  ``@under_each_engine_and_the_swarm`` on those two and the Swarm. Such a test asks for
  ``run_image`` (the bash test image where the work runs) rather than ``test_image``;
* :func:`start_server_process` starts the real ``dockyter-server`` command instead, for what a
  thread cannot show: a SIGKILL and a restart, the CPU time of the server process alone.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0

# Runs a test that uses ``dockyter_server`` once with each runtime (test ids [runc], [runsc]).
under_each_runtime = pytest.mark.parametrize("oci_runtime", ["runc", "runsc"], indirect=True)

# Runs a test that uses ``dockyter_server`` once with each executor (test ids [engine], [swarm]).
under_each_executor = pytest.mark.parametrize(
    "executor_kind", ["engine", pytest.param("swarm", marks=pytest.mark.swarm)], indirect=True
)

# The engine executor on Docker and on rootful podman (test ids [engine], [podman]).
under_each_engine = pytest.mark.parametrize("executor_kind", ["engine", "podman"], indirect=True)

# Docker's engine, podman, and the Swarm (test ids [engine], [podman], [swarm]).
under_each_engine_and_the_swarm = pytest.mark.parametrize(
    "executor_kind", ["engine", "podman", pytest.param("swarm", marks=pytest.mark.swarm)], indirect=True
)

# Both at once, where they make sense: a service cannot choose its runtime (the settings refuse
# one with executor = "swarm"; the nodes' default runs it), so the Swarm runs once, not per runtime;
# so does rootful podman (its default runtime, runc), whose check reads podman's inspect.
under_each_place = pytest.mark.parametrize(
    ("oci_runtime", "executor_kind"),
    [("runc", "engine"), ("runsc", "engine"), ("", "podman"), pytest.param("", "swarm", marks=pytest.mark.swarm)],
    indirect=True,
    ids=["runc", "runsc", "podman", "swarm"],
)


@dataclass
class RunningServer:
    """One started server."""

    url: str  # http://127.0.0.1:PORT, no trailing slash
    token: str | None  # an accepted token (None when auth is off)
    settings: Any  # dockyter.server.settings.Settings
    app: Any  # the FastAPI application
    server: Any  # the uvicorn server (dockyter.server.http.serve.Server)
    thread: threading.Thread
    stopped: bool = field(default=False)
    cluster: Any = None  # cluster.Cluster, when its executions run there (executor = "swarm")

    @property
    def cli(self) -> list[str]:
        """The container CLI of its engine (``docker``, or ``podman``)."""
        return list(self.settings.docker_command)

    @property
    def executor(self) -> Any:
        """The server's executor (running executions, labels): an EngineExecutor, or a SwarmExecutor."""
        return self.app.state.executor

    def headers(self, token: str | None = None, **extra: str) -> dict[str, str]:
        """Request headers carrying ``token`` (default: the server's own)."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(extra)
        return headers

    def containers(self) -> list[str]:
        """Names of what this server's work left, running or not: its containers on the engine;
        on a Swarm, its services and each node's containers (as NODE/NAME)."""
        if self.cluster is None:
            return containers_with_label(f"io.dockyter.server={self.executor.label}", self.cli)
        names = (self.settings.server_name,)  # unique to this test server
        on_nodes = self.cluster.containers(names)
        return self.cluster.services(names) + [f"{node}/{name}" for node, found in on_nodes.items() for name in found]

    def exists(self, execution_id: str) -> bool:
        """Whether the execution's container (engine) or service (Swarm) exists: what a cancel
        removes before it answers. On a Swarm the node stops the task's container a moment later."""
        if self.cluster is None:
            return container_exists("dockyter-" + execution_id, self.cli)
        return self.cluster.docker("service", "inspect", "dockyter-" + execution_id).returncode == 0

    def runs(self, execution_id: str) -> bool:
        """Whether anything of the execution still runs: its container; on a Swarm, its service or
        a running container of its task on any node."""
        if self.cluster is None:
            return self.exists(execution_id)
        if self.exists(execution_id):
            return True
        label = f"label=io.dockyter.execution={execution_id}"
        return any(
            self.cluster.docker("ps", "--quiet", "--filter", label, node=node).stdout.strip()
            for node in self.cluster.nodes
        )

    def execute(self, body: dict[str, Any], *, token: str | None = None, timeout: float = 60.0) -> httpx.Response:
        """``POST /execute`` for the plain JSON reply."""
        return httpx.post(self.url + "/execute", json=body, headers=self.headers(token), timeout=timeout)

    @contextmanager
    def stream(
        self, body: dict[str, Any], *, token: str | None = None, timeout: float = 60.0
    ) -> Iterator[Iterator[dict[str, Any]]]:
        """``POST /execute`` asking for NDJSON: yields an iterator of events (raises on a non-200)."""
        headers = self.headers(token, Accept="application/x-ndjson")
        with httpx.Client(timeout=timeout) as client:
            with client.stream("POST", self.url + "/execute", json=body, headers=headers) as response:
                if response.status_code != 200:
                    response.read()
                    raise AssertionError(f"{response.status_code}: {response.text}")
                assert response.headers["content-type"] == "application/x-ndjson"
                yield (json.loads(line) for line in response.iter_lines() if line)

    def stop(self) -> None:
        """Shut the server down as a signal would, and wait for it (idempotent)."""
        if self.stopped:
            return
        self.stopped = True
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
        if self.thread.is_alive():
            raise RuntimeError(f"dockyter-server at {self.url} did not stop within {STOP_TIMEOUT:g} s")


def start_server(**overrides: Any) -> RunningServer:
    """Start a server with test defaults changed by ``overrides`` (Settings field names)."""
    from dockyter.server.http.app import create_app
    from dockyter.server.http.serve import make_server
    from dockyter.server.settings.fields import Settings

    token = "test-" + secrets.token_urlsafe(24)
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "tokens": [f"tester:{token}"],
        "server_name": "test-" + secrets.token_hex(4),
        "pull": "never",
        # Executions run cold, each in a container of its own making, unless a test asks for
        # prestarted ones (tests/server/engine/test_server_prestart.py).
        "prestart": 0,
    }
    values.update(overrides)
    settings = Settings(**values)
    tokens = settings.token_table()
    app = create_app(settings)
    server = make_server(app, settings)
    # Our own socket, bound before the thread starts: the port is known and free.
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"dockyter-server:{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("dockyter-server did not start (see the captured log)")
        time.sleep(0.02)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    first_token = next(iter(tokens.values()), None) if settings.auth else None
    return RunningServer(f"http://{host}:{port}", first_token, settings, app, server, thread)


def containers_with_label(label: str, cli: list[str] | None = None) -> list[str]:
    """Names of all containers, running or not, with ``label`` (``key`` or ``key=value``), on ``cli``'s engine."""
    answer = subprocess.run(
        [*(cli or ["docker"]), "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return answer.stdout.split()


def container_exists(name: str, cli: list[str] | None = None) -> bool:
    answer = subprocess.run(
        [*(cli or ["docker"]), "container", "inspect", name], capture_output=True, text=True, timeout=60
    )
    return answer.returncode == 0


def start_server_process(log: Path, server_name: str, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m dockyter.server --no-auth`` on a free loopback port, once it answers: (process, url).

    Its output goes to ``log`` (appended); the caller stops the process.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "dockyter.server", "--no-auth", "--port", str(port), "--pull", "never",
         "--server-name", server_name, *flags],
        stdout=log.open("a"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"dockyter-server did not start: {log.read_text()}")
        time.sleep(0.1)
