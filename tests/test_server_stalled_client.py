"""A client that stops reading a stream (and never closes it) cannot hold a container.

The client is a raw socket with a small receive buffer: it sends the request asking for
NDJSON, reads the first events, then neither reads nor closes. The container prints without
pause, so the server's queue fills and, before the fix, the readers blocked on it, the CLI
could not drain the attach stream and `docker kill` / `rm` waited on their timeouts (41-60 s).
Now, once a stop is asked for, output is dropped and the container is gone within 5 s
(checked with `docker ps -a`); a client that reads later still gets the final exit event.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from helpers import wait_until
from server_fixtures import under_each_runtime

pytestmark = pytest.mark.docker

GONE_WITHIN = 5.0  # seconds from the stop to the container's removal: the specified bound
FLOOD = "yes 0123456789abcdefghijklmnopqrstuvwxyz"  # prints as fast as the pipes take it
BIG = 1 << 40  # an output cap that a flood stalled by its client never reaches


class StalledClient:
    """An NDJSON client on a raw socket that can stop reading at any point, and resume."""

    def __init__(self, url: str, token: str | None, body: dict[str, Any]) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.socket = socket.socket()
        # A small window: the server's writes back up as soon as this client stops reading.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.settimeout(60)
        self.socket.connect((host, int(port)))
        payload = json.dumps(body).encode()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.socket.sendall(
            f"POST /execute HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: application/x-ndjson\r\n"
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


def stalled(server: Any, body: dict[str, Any]) -> tuple[StalledClient, str]:
    """Start ``body`` as a stream, read up to the first output, then stop reading until the
    server stops producing (its queue, the pipes and the container are all backed up).
    Returns the client and the container's name."""
    client = StalledClient(server.url, server.token, body)
    execution_id = client.read_until("start")["id"]
    client.read_until("stdout")
    execution = server.executor.get(execution_id)
    assert execution is not None
    # Backed up: no more output read from the container for a while.
    seen: list[int] = []

    def backed_up() -> bool:
        seen.append(execution.bytes_out)
        return len(seen) > 5 and seen[-1] == seen[-6] and execution.bytes_out > 0

    assert wait_until(backed_up, timeout=30, interval=0.2), "the flood never backed up"
    name = "dockyter-" + execution_id
    assert name in server.containers()
    return client, name


def gone_within(server: Any, name: str, since: float) -> None:
    """The container is gone from `docker ps -a` within GONE_WITHIN seconds of ``since``."""
    assert wait_until(lambda: name not in server.containers(), timeout=GONE_WITHIN + 10, interval=0.1)
    assert time.monotonic() - since < GONE_WITHIN, f"{name} took {time.monotonic() - since:.1f} s to go"


@under_each_runtime
def test_cancel_while_the_client_stops_reading(dockyter_server, test_image):
    server = dockyter_server(max_output_bytes=BIG)
    # Both streams flood: both readers end up waiting for room in the queue.
    client, name = stalled(server, {"cmd": f"{FLOOD} >&2 & {FLOOD}", "args": test_image})
    try:
        asked = time.monotonic()
        answer = httpx.post(f"{server.url}/executions/{name[9:]}/cancel", headers=server.headers(), timeout=60)
        assert answer.status_code == 200
        gone_within(server, name, asked)
        # The client comes back: what was queued before the stop, then the exit event.
        final = client.read_until("exit")
        assert (final["code"], final["reason"]) == (130, "cancelled")
    finally:
        client.close()
    assert wait_until(lambda: not server.executor.running)


def test_timeout_while_the_client_stops_reading(dockyter_server, test_image):
    server = dockyter_server(max_output_bytes=BIG)
    timeout = 8.0
    started = time.monotonic()
    client, name = stalled(server, {"cmd": FLOOD, "args": test_image, "timeout": timeout})
    try:
        assert time.monotonic() - started < timeout, "the stall came after the time limit: nothing tested"
        # The time limit counts from the CLI's start, a moment after `started`.
        gone_within(server, name, started + timeout)
        final = client.read_until("exit")
        assert (final["code"], final["reason"]) == (124, "timeout")
    finally:
        client.close()


def test_output_limit_while_the_client_stops_reading(dockyter_server, test_image):
    # Below what the queue and the socket buffers hold: the cap is hit while the client stalls.
    limit = 1 << 20
    server = dockyter_server(max_output_bytes=limit)
    client = StalledClient(server.url, server.token, {"cmd": FLOOD, "args": test_image})
    try:
        name = "dockyter-" + client.read_until("start")["id"]
        reached = wait_until(lambda: server.executor.get(name[9:]) is None or server.executor.get(name[9:]).reason)
        assert reached, "the output cap was never reached"
        gone_within(server, name, time.monotonic())
        final = client.read_until("exit")
        assert (final["code"], final["reason"]) == (137, "output_limit")
        delivered = sum(len(e["data"].encode()) for e in client.events if e["event"] == "stdout")
        assert delivered == limit  # exactly the cap, even though the client was not reading
    finally:
        client.close()


def test_shutdown_while_the_client_stops_reading(dockyter_server, test_image):
    server = dockyter_server(max_output_bytes=BIG, shutdown_timeout=2)
    client, name = stalled(server, {"cmd": FLOOD, "args": test_image})
    stopper = threading.Thread(target=server.stop)
    try:
        asked = time.monotonic()
        stopper.start()
        gone_within(server, name, asked)
        stopper.join(60)
        assert not stopper.is_alive()
    finally:
        client.close()
        stopper.join(60)
