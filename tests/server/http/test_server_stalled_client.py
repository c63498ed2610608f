"""A client that stops reading a stream (and never closes it) cannot hold a run.

The client is a raw socket with a small receive buffer: it sends the request asking for
NDJSON, reads the first events, then neither reads nor closes. The command prints without
pause, so the server's queue fills and, before the fix, the readers blocked on it, the CLI
could not drain the attach stream and `docker kill` / `rm` waited on their timeouts (41-60 s).
Now, once a stop is asked for, output is dropped and what the run started is gone within 5 s;
a client that reads later still gets the final exit event.

Each check runs for the three kinds of run: a container of the engine executor (gone from
`docker ps -a`), a command in a server session (`POST /sessions/{id}/execute`: the command
stops, the session stays and keeps its state) and a service of the Swarm executor (gone from
`docker service ls` on the cluster of .ci/cluster).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from helpers import wait_until
from servers import containers_with_label

pytestmark = pytest.mark.docker

GONE_WITHIN = 5.0  # seconds from the stop to the run's end and removal: the specified bound
FLOOD = "yes 0123456789abcdefghijklmnopqrstuvwxyz"  # prints as fast as the pipes take it
# A Swarm task's output goes through the node's log file before `service logs` reads it: lines
# of 4 kB, about 2.5 MB/s, so that a long stall does not fill the node's disk.
SWARM_FLOOD = (
    "bash -c 'l=$(printf %04000d 0); while :; do for i in 1 2 3 4 5 6 7 8 9 10; do echo $l; done; sleep 0.01; done'"  # noqa: E501
)
BIG = 1 << 40  # an output cap that a flood stalled by its client never reaches
SESSION_LABEL = "io.dockyter.server-session"


class StalledClient:
    """An NDJSON client on a raw socket that can stop reading at any point, and resume."""

    def __init__(self, url: str, token: str | None, body: dict[str, Any], path: str = "/execute") -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.socket = socket.socket()
        # A small window: the server's writes back up as soon as this client stops reading.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.settimeout(60)
        self.socket.connect((host, int(port)))
        payload = json.dumps(body).encode()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.socket.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: application/x-ndjson\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        self._raw = b""
        self._body = b""
        self._head_done = False
        self._ended = False
        self.events: list[dict[str, Any]] = []

    def read_until(self, wanted: str) -> dict[str, Any]:
        """Read until an event of kind ``wanted`` arrives; return it."""
        while True:
            for event in self.events:
                if event["event"] == wanted:
                    return event
            if self._ended:
                raise AssertionError(f"the stream ended without a {wanted!r} event: {self.events[-3:]}")
            self._receive()

    def _receive(self) -> None:
        data = self.socket.recv(65536)
        if not data:
            raise AssertionError("the server closed the connection before the stream ended")
        self._raw += data
        if not self._head_done:
            head, found, rest = self._raw.partition(b"\r\n\r\n")
            if not found:
                return
            assert head.startswith(b"HTTP/1.1 200"), head
            assert b"transfer-encoding: chunked" in head.lower(), head
            self._head_done, self._raw = True, rest
        # HTTP/1.1 chunked framing: SIZE\r\nDATA\r\n ... 0\r\n\r\n
        while True:
            size_line, found, rest = self._raw.partition(b"\r\n")
            if not found:
                break
            size = int(size_line.split(b";")[0], 16)
            if len(rest) < size + 2:
                break
            self._body += rest[:size]
            self._raw = rest[size + 2 :]
            if size == 0:
                self._ended = True
                break
        *lines, self._body = self._body.split(b"\n")
        self.events += [json.loads(line) for line in lines if line]

    def close(self) -> None:
        self.socket.close()


class Target:
    """Where a kind of run is posted, how to find the server's run, and whether it still runs."""

    flood = FLOOD
    timeout = 8.0  # a time limit that the stall comes before
    limit = 1 << 20  # an output cap below what the queue and the socket buffers hold

    def __init__(self, server: Any, image: str, path: str = "/execute") -> None:
        self.server = server
        self.image = image
        self.path = path

    def body(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return {"cmd": cmd, "args": self.image, **fields}

    def both_streams(self) -> str:
        """A command flooding stdout and stderr: both readers end up waiting for room in the queue."""
        return f"{self.flood} >&2 & {self.flood}"

    def run(self, run_id: str) -> Any:
        """The server's run object, None once it is over."""
        return self.server.executor.get(run_id)

    def present(self, run_id: str) -> bool:
        """Whether what the run started is still there (the container, the command, the service)."""
        return "dockyter-" + run_id in self.server.containers()

    def after_stop(self) -> None:
        """What must hold once the run was stopped (the fixtures check that nothing is left)."""

    def after_shutdown(self) -> None:
        assert not self.server.containers()


class SessionTarget(Target):
    """A command in a server session; stopping it stops the command, not the session."""

    def __init__(self, server: Any, image: str) -> None:
        made = httpx.post(f"{server.url}/sessions", json={"args": image}, headers=server.headers(), timeout=60)
        assert made.status_code == 201, made.text
        super().__init__(server, image, f"/sessions/{made.json()['id']}/execute")
        assert self.execute("KEPT=yes").status_code == 200

    def execute(self, cmd: str) -> httpx.Response:
        return httpx.post(self.server.url + self.path, json={"cmd": cmd}, headers=self.server.headers(), timeout=60)

    def body(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return {"cmd": cmd, **fields}

    def both_streams(self) -> str:
        # In the foreground: a session's background job (`cmd &`) survives a stop, as in a terminal.
        return f"{self.flood} | tee /dev/stderr"

    def run(self, run_id: str) -> Any:
        return self.server.app.state.sessions.run_by_id(run_id)

    def present(self, run_id: str) -> bool:
        return self.run(run_id) is not None

    def after_stop(self) -> None:
        # The session still answers, with its state, and nothing of the stopped command is left.
        answer = self.execute("echo $KEPT; ps -o comm | grep -c '^yes'")
        assert answer.status_code == 200, answer.text
        assert answer.json()["stdout"] == "yes\n0\n"

    def after_shutdown(self) -> None:
        assert not containers_with_label(f"{SESSION_LABEL}={self.server.executor.label}")


class SwarmTarget(Target):
    """A service of the Swarm executor, on the cluster of .ci/cluster."""

    flood = SWARM_FLOOD
    timeout = 12.0  # creating the service and its network takes a few seconds before the stall
    limit = 200_000  # below the 64 queued lines of 4 kB

    def __init__(self, server: Any, image: str, cluster: Any) -> None:
        super().__init__(server, image)
        self.cluster = cluster

    def present(self, run_id: str) -> bool:
        return "dockyter-" + run_id in self.cluster.services((self.server.settings.server_name,))

    def after_shutdown(self) -> None:
        assert not self.cluster.services((self.server.settings.server_name,))


KINDS = ["engine", "session", pytest.param("swarm", marks=pytest.mark.swarm)]


@dataclass
class Kind:
    """``kind(**settings)`` starts a server and returns the :class:`Target` of the test's kind."""

    cls: type[Target]
    start: Callable[..., Target]

    def __call__(self, **settings: Any) -> Target:
        return self.start(**settings)


@pytest.fixture
def kind(request: pytest.FixtureRequest, dockyter_server: Any, test_image: str) -> Kind:
    if request.param == "swarm":
        cluster = request.getfixturevalue("swarm_cluster")
        swarm_server = request.getfixturevalue("swarm_server")
        swarm_image = request.getfixturevalue("swarm_image")
        return Kind(SwarmTarget, lambda **settings: SwarmTarget(swarm_server(**settings), swarm_image, cluster))
    if request.param == "session":
        return Kind(SessionTarget, lambda **settings: SessionTarget(dockyter_server(**settings), test_image))
    return Kind(Target, lambda **settings: Target(dockyter_server(**settings), test_image))


def stalled(target: Target, body: dict[str, Any]) -> tuple[StalledClient, str]:
    """Start ``body`` as a stream, read up to the first output, then stop reading until the
    server stops producing (its queue, the pipes and the command are all backed up).
    Returns the client and the run's id."""
    server = target.server
    client = StalledClient(server.url, server.token, body, target.path)
    run_id = client.read_until("start")["id"]
    client.read_until("stdout")
    run = target.run(run_id)
    assert run is not None
    # Backed up: no more output read from the command for a while.
    seen: list[int] = []

    def backed_up() -> bool:
        seen.append(run.bytes_out)
        return len(seen) > 5 and seen[-1] == seen[-6] and run.bytes_out > 0

    assert wait_until(backed_up, timeout=30, interval=0.2), "the flood never backed up"
    assert target.present(run_id)
    return client, run_id


def gone_within(target: Target, run_id: str, since: float) -> None:
    """What the run started is gone within GONE_WITHIN seconds of ``since``."""
    assert wait_until(lambda: not target.present(run_id), timeout=GONE_WITHIN + 10, interval=0.1)
    took = time.monotonic() - since
    assert took < GONE_WITHIN, f"the run {run_id} took {took:.1f} s to go"


@pytest.mark.parametrize(
    ("kind", "oci_runtime"),
    [
        pytest.param("engine", "runc", id="engine-runc"),
        pytest.param("engine", "runsc", id="engine-runsc"),
        pytest.param("session", "", id="session"),
        pytest.param("swarm", "", marks=pytest.mark.swarm, id="swarm"),
    ],
    indirect=True,
)
def test_cancel_while_the_client_stops_reading(kind):
    target = kind(max_output_bytes=BIG)
    client, run_id = stalled(target, target.body(target.both_streams()))
    server = target.server
    try:
        asked = time.monotonic()
        answer = httpx.post(f"{server.url}/executions/{run_id}/cancel", headers=server.headers(), timeout=60)
        assert answer.status_code == 200
        gone_within(target, run_id, asked)
        # The client comes back: what was queued before the stop, then the exit event.
        final = client.read_until("exit")
        assert (final["code"], final["reason"]) == (130, "cancelled")
    finally:
        client.close()
    assert wait_until(lambda: target.run(run_id) is None)
    target.after_stop()


@pytest.mark.parametrize("kind", KINDS, indirect=True)
def test_timeout_while_the_client_stops_reading(kind):
    target = kind(max_output_bytes=BIG)
    started = time.monotonic()
    client, run_id = stalled(target, target.body(target.flood, timeout=target.timeout))
    try:
        assert time.monotonic() - started < target.timeout, "the stall came after the time limit: nothing tested"
        # The time limit counts from the run's start, a moment after `started`.
        gone_within(target, run_id, started + target.timeout)
        final = client.read_until("exit")
        assert (final["code"], final["reason"]) == (124, "timeout")
    finally:
        client.close()
    target.after_stop()


@pytest.mark.parametrize("kind", KINDS, indirect=True)
def test_output_limit_while_the_client_stops_reading(kind):
    # The cap is hit while the client stalls.
    limit = kind.cls.limit
    target = kind(max_output_bytes=limit)
    server = target.server
    client = StalledClient(server.url, server.token, target.body(target.flood), target.path)
    try:
        run_id = client.read_until("start")["id"]
        reached = wait_until(lambda: (run := target.run(run_id)) is None or run.reason, timeout=30)
        assert reached, "the output cap was never reached"
        gone_within(target, run_id, time.monotonic())
        final = client.read_until("exit")
        assert (final["code"], final["reason"]) == (137, "output_limit")
        delivered = sum(len(e["data"].encode()) for e in client.events if e["event"] == "stdout")
        assert delivered == limit  # exactly the cap, even though the client was not reading
    finally:
        client.close()
    target.after_stop()


@pytest.mark.parametrize("kind", KINDS, indirect=True)
def test_shutdown_while_the_client_stops_reading(kind):
    # Longer than GONE_WITHIN: the run must be stopped when shutdown begins, not when connections are closed.
    target = kind(max_output_bytes=BIG, shutdown_timeout=GONE_WITHIN + 1)
    client, run_id = stalled(target, target.body(target.flood))
    stopper = threading.Thread(target=target.server.stop)
    try:
        asked = time.monotonic()
        stopper.start()
        gone_within(target, run_id, asked)
        stopper.join(60)
        assert not stopper.is_alive()
        target.after_shutdown()
    finally:
        client.close()
        stopper.join(60)
