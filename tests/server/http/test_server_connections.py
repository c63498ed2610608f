"""Half-sent requests cannot hold the server: connections are capped and requests must arrive in time.

The report: 1,100 connections that each sent half a request's headers, from a client without
a token, stayed open forever; under systemd's open-file limit, ``/health`` and ``/execute``
then timed out for everyone. Here the real ``dockyter-server`` runs as its own process with a
low open-file limit (set in the child before it starts), the test sends it 1,100 half-sent
requests, and then ``/health`` must answer within a bound, a real execution must run, and
every half-sent request must be closed by the server within ``header_timeout``.

What the bounds must not touch is checked too, on a server in the test process: a stream
that lasts longer than both timeouts, a client that sends its request slowly but in time,
kept-alive connections.
"""

from __future__ import annotations

import json
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import skip_or_fail
from helpers import docker, wait_until

pytestmark = pytest.mark.docker

HALF_SENT = 1100  # the report's count
FLOOD_LIMIT = 256  # the server's open files: fewer than the flood's connections
HEADER_TIMEOUT = 3.0
HEALTH_BOUND = 5.0  # seconds /health may take while the flood holds its connections
CLOSE_SLACK = 3.0  # seconds past header_timeout for the last half-sent request to be closed
HALF_REQUEST = b"GET /health HTTP/1.1\r\nHost: dockyter\r\nX-Slow: "


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path
    name: str

    def events(self) -> list[dict]:
        """The server's own events (a JSON object in its log line's message)."""
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]
        messages = [line.get("message", "") for line in lines if line.get("logger") == "dockyter.server"]
        return [json.loads(message) for message in messages if message.startswith("{")]

    def open_files(self) -> tuple[int, int]:
        limits = Path(f"/proc/{self.process.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        soft, hard = line.split()[3:5]
        return int(soft), int(hard)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def server_process(tmp_path) -> Iterator[callable]:
    """Factory: the real dockyter-server in a child process whose open-file limits are (soft, hard)."""
    started: list[ServerProcess] = []

    def start(soft: int, hard: int, *flags: str) -> ServerProcess:
        port, name = _free_port(), "test-" + uuid.uuid4().hex[:8]
        log = tmp_path / f"{name}.log"
        argv = [sys.executable, "-m", "dockyter.server", "--no-auth", "--port", str(port), "--pull", "never"]
        process = subprocess.Popen(
            [*argv, "--server-name", name, *flags],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
        )
        running = ServerProcess(process, f"http://127.0.0.1:{port}", port, log, name)
        started.append(running)
        assert wait_until(lambda: _healthy(running.url), timeout=30), log.read_text()
        return running

    yield start
    for running in started:
        running.process.terminate()
        try:
            running.process.wait(30)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()


def _enough_files_here(count: int) -> None:
    """This test process holds ``count`` sockets at once: raise its own soft limit if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 200:
        if hard < count + 200:
            skip_or_fail(f"the test needs {count + 200} open files and the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _half_send(url: str, count: int) -> list[socket.socket]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sockets = []
    for _ in range(count):
        client = socket.create_connection((host, int(port)), timeout=30)
        try:
            client.sendall(HALF_REQUEST)
        except OSError:
            pass  # already closed by the server to make room: it counts as closed
        sockets.append(client)
    return sockets


def _wait_all_closed(sockets: list[socket.socket], within: float) -> tuple[int, int]:
    """Wait at most ``within`` seconds for the server to close every socket; (how many got a 408, how many are open).

    A socket the server closed earlier counts as closed, however late this looks.
    """
    selector = selectors.DefaultSelector()
    for client in sockets:
        client.setblocking(False)
        selector.register(client, selectors.EVENT_READ)
    answered = 0
    deadline = time.monotonic() + within
    while selector.get_map():
        ready = selector.select(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
        for key, _ in ready:
            while True:
                try:
                    data = key.fileobj.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                except BlockingIOError:
                    break
                answered += data.startswith(b"HTTP/1.1 408 ")
                if not data:
                    selector.unregister(key.fileobj)
                    break
        if not ready and time.monotonic() >= deadline:
            break
    left = len(selector.get_map())
    selector.close()
    return answered, left


def test_half_sent_requests_do_not_shut_out_anyone(server_process, test_image):
    _enough_files_here(HALF_SENT)
    server = server_process(FLOOD_LIMIT, FLOOD_LIMIT, "--header-timeout", str(HEADER_TIMEOUT))
    sockets = _half_send(server.url, HALF_SENT)
    sent = time.monotonic()  # each one's header_timeout runs from its own connection, all before this
    try:
        health = httpx.get(server.url + "/health", timeout=HEALTH_BOUND)
        assert health.status_code == 200 and time.monotonic() - sent < HEALTH_BOUND
        reply = httpx.post(server.url + "/execute", json={"cmd": "echo ran", "args": test_image}, timeout=60)
        assert reply.status_code == 200 and reply.json()["stdout"] == "ran\n", reply.text
        answered, left = _wait_all_closed(sockets, sent + HEADER_TIMEOUT + CLOSE_SLACK - time.monotonic())
        assert left == 0, f"{left} half-sent requests still open {time.monotonic() - sent:.1f} s after the flood"
        assert answered > 0  # those that outlived their header_timeout were told why
    finally:
        for client in sockets:
            client.close()
    assert _healthy(server.url)
    events = server.events()
    assert _first(events, "open_files") == {"event": "open_files", "soft": FLOOD_LIMIT, "hard": FLOOD_LIMIT}
    lowered = _first(events, "max_connections")
    assert lowered["wanted"] == 512 and 8 <= lowered["allowed"] < FLOOD_LIMIT, lowered
    assert not docker("ps", "-aq", "--filter", f"label=io.dockyter.server={server.name}").stdout.strip()


def _first(events: list[dict], kind: str) -> dict:
    return next(event for event in events if event.get("event") == kind)


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(server_process):
    server = server_process(256, 4096)
    assert server.open_files() == (4096, 4096)
    logged = _first(server.events(), "open_files")
    assert (logged["soft"], logged["hard"]) == (4096, 4096)
    assert not [line for line in server.events() if line.get("event") == "max_connections"]  # 512 fit


# -- what the bounds leave alone, and what they cut -------------------------------------------------


@pytest.fixture
def quick(dockyter_server):
    """A server whose clients have one second to send a request's headers, and one for its body."""
    return dockyter_server(header_timeout=1.0, body_timeout=1.0)


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _read_until_closed(client: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it did (seconds from now)."""
    began = time.monotonic()
    client.settimeout(within)
    received = b""
    while True:
        try:
            data = client.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            return received, time.monotonic() - began
        received += data


def _read_response(client: socket.socket) -> bytes:
    """One whole response with a content-length, leaving the connection open."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += client.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += client.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_stream_may_last_longer_than_both_timeouts(quick, test_image):
    with quick.stream({"cmd": "sleep 2.5; echo done", "args": test_image}) as events:
        seen = list(events)
    assert seen[-1]["event"] == "exit" and seen[-1]["code"] == 0, seen[-3:]
    assert "".join(event["data"] for event in seen if event["event"] == "stdout") == "done\n"


def test_a_slow_client_in_time_is_served_and_a_late_one_is_cut(quick):
    client = _raw(quick.url)
    for piece in (b"GET /health HTTP/1.1\r\n", b"Host: dockyter\r\n", b"Connection: close\r\n", b"\r\n"):
        client.sendall(piece)
        time.sleep(0.2)  # 0.6 s in all: within the second
    answer, _ = _read_until_closed(client, 10)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    client.close()
    late = _raw(quick.url)
    late.sendall(b"GET /health HTTP/1.1\r\nHost: dockyter\r\n")
    answer, after = _read_until_closed(late, 10)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and 0.8 < after < 3, (answer, after)
    late.close()


def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_request(quick):
    client = _raw(quick.url)
    client.sendall(b"GET /health HTTP/1.1\r\nHost: dockyter\r\n\r\n")
    first = _read_response(client)
    assert first.startswith(b"HTTP/1.1 200 "), first
    client.sendall(b"GET /health HTTP/1.1\r\nHost: dockyter\r\n")  # half of the next one
    answer, after = _read_until_closed(client, 10)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert after < 3
    client.close()


def test_a_body_that_does_not_come_is_cut(quick):
    client = _raw(quick.url)
    client.sendall(
        b"POST /execute HTTP/1.1\r\nHost: dockyter\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"cmd": '
    )
    answer, after = _read_until_closed(client, 10)
    assert after < 3, after
    assert b"200 OK" not in answer
    client.close()
    assert httpx.get(quick.url + "/health", timeout=5).status_code == 200


def test_a_new_connection_takes_the_place_of_a_half_sent_one_and_busy_ones_are_kept(dockyter_server, test_image):
    server = dockyter_server(max_connections=4, max_concurrent=4, max_concurrent_per_token=4)
    half = [_raw(server.url) for _ in range(4)]
    for client in half:
        client.sendall(HALF_REQUEST)
    time.sleep(0.3)
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200  # the oldest half-sent one made room
    answer, _ = _read_until_closed(half[0], 5)
    assert answer == b""
    for client in half:
        client.close()
    # Four requests being answered: nothing to replace, so a fifth connection is turned away.
    replies: list[httpx.Response] = []
    body = {"cmd": "sleep 3; echo done", "args": test_image}
    threads = [threading.Thread(target=lambda: replies.append(server.execute(body))) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: len(server.executor.running) == 4, timeout=30)
    turned_away = httpx.get(server.url + "/health", timeout=5)
    assert turned_away.status_code == 503 and turned_away.headers["retry-after"] == "1"
    assert turned_away.json() == {"detail": "the server has as many connections as it can hold: retry later"}
    for thread in threads:
        thread.join(60)
    assert [reply.json()["stdout"] for reply in replies] == ["done\n"] * 4
    assert wait_until(lambda: _healthy(server.url), timeout=10)
