"""A real HTTP server on 127.0.0.1 that answers with scripted replies, for the API client's tests.

Why it exists: the client must behave well when a server misbehaves, and no honest server
misbehaves on demand: a stream cut before its exit event, a 200 body that is not JSON, a 429
with Retry-After, heartbeats at a chosen pace, a server that falls silent, a redirect. Mocking
``requests`` would test our assumptions about ``requests`` rather than what crosses the wire;
this is a real socket server (``http.server`` in a thread) that the client speaks real HTTP to.
It also records what it received (method, path, headers, JSON body) and whether the client
hung up on a stream, so tests can check the requests, the cancel calls and the disconnects.

A reply is a :class:`Reply` (or a function of the :class:`Received` request returning one):
a status, headers and a body given as parts: ``bytes`` are sent as one HTTP chunk each, a
``float`` pauses that many seconds, :data:`CUT` drops the connection without ending the body.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CUT = object()  # a body part: close the connection here, without the final chunk

Part = bytes | float | object


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    parts: list[Part] = field(default_factory=list)
    delay: float = 0.0  # seconds before the status line, as a server that answers only at the end


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the JSON body, or None


Route = Reply | Callable[[Received], Reply]


def event(kind: str, **fields: Any) -> bytes:
    """One NDJSON line: ``event("stdout", data="hi\\n")``."""
    return json.dumps({"event": kind, **fields}).encode() + b"\n"


def stream(*parts: Part, status: int = 200) -> Reply:
    """An NDJSON streamed reply made of ``parts`` (event lines, pauses, CUT)."""
    return Reply(status, {"Content-Type": "application/x-ndjson"}, list(parts))


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **headers}, [json.dumps(body).encode()])


def heartbeats(every: float, count: int) -> list[Part]:
    """``count`` heartbeat events, ``every`` seconds apart."""
    parts: list[Part] = []
    for _ in range(count):
        parts += [every, event("heartbeat")]
    return parts


class ScriptedServer:
    """``routes[(method, path)] = Reply or function``; anything else gets FastAPI's 404."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        """``tls``: (certificate, key) PEM files to serve https:// instead of http://."""
        self.routes: dict[tuple[str, str], Route] = {}
        self.received: list[Received] = []
        self.disconnects: list[str] = []  # paths whose streamed reply the client hung up on
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-server", daemon=True
        )
        self._thread.start()

    def requests_to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # chunked replies, as a streaming server sends them

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
            pass

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            received = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            server.received.append(received)
            route = server.routes.get((self.command, self.path))
            if route is None:
                reply = json_reply({"detail": "Not Found"}, 404)
            else:
                reply = route(received) if callable(route) else route
            try:
                self._send(reply)
            except (BrokenPipeError, ConnectionResetError):
                server.disconnects.append(self.path)
                self.close_connection = True

        def _send(self, reply: Reply) -> None:
            time.sleep(reply.delay)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for part in reply.parts:
                if part is CUT:
                    self.close_connection = True
                    return
                if isinstance(part, (int, float)):
                    time.sleep(part)
                    continue
                assert isinstance(part, bytes)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler
