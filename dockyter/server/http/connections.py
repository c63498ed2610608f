"""How many connections the server holds, and how long a client may take to send a request.

uvicorn keeps a connection for as long as its client takes to send a request: 1,100 clients
that each send half a request line hold 1,100 connections forever, and under the open-file
limit systemd gives a service (1024) nobody else gets in, ``/health`` included. So the server
speaks HTTP through :class:`GuardedH11Protocol`, uvicorn's h11 protocol with two bounds, and
no token is needed to be bounded by them:

* **a deadline for receiving each request**: ``header_timeout`` seconds for its line and
  headers, counted from the connection's start or from the end of the previous response, then
  ``body_timeout`` seconds for its body. A connection past its deadline is closed (after a
  ``408`` when part of a request line came). Responses are not bounded here: a long NDJSON
  stream, or a client that reads it slowly, is the run's business (its timeout, its queue);
* **at most ``max_connections`` at once** (:class:`ConnectionGuard`): a connection beyond it
  takes the place of the oldest one still sending its request, so a flood of half-sent
  requests never shuts out a client that sends a whole one; when every connection is busy with
  a request, the new one is answered ``503`` and closed.

The limit must fit in the process's open files: :func:`raise_open_file_limit` raises the soft
limit to the hard one at start-up, and :func:`budget` lowers ``max_connections`` (and the
listening backlog, which bounds how many connections one turn of the event loop accepts) to
what is left once the executions' and sessions' processes are counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("dockyter.server")

RESERVED_FILES = 64  # the listening socket, the event loop, log files, the CLI's short commands
FILES_PER_RUN = 8  # pipes and process handles of one execution's or session's CLI
MOST_BACKLOG = 128  # connections the kernel queues, and one turn of the event loop accepts
LEAST_CONNECTIONS = 8
UNLIMITED_FILES = 1 << 20  # what an unlimited soft limit counts as


def _answer(status: str, detail: str, *extra: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, for a client the application never sees."""
    body = json.dumps({"detail": detail}).encode()
    head = [f"HTTP/1.1 {status}", "content-type: application/json", f"content-length: {len(body)}", *extra]
    return ("\r\n".join([*head, "connection: close", "", ""])).encode() + body


TOO_SLOW = _answer("408 Request Timeout", "the request was not received in time")
TOO_MANY = _answer(
    "503 Service Unavailable", "the server has as many connections as it can hold: retry later", "retry-after: 1"
)


@dataclass(frozen=True)
class Budget:
    """What the open files allow: connections at once, and the listening backlog."""

    connections: int
    backlog: int


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one; the limits (soft, hard) then, as logged."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as error:  # an unlimited hard limit cannot be a soft one everywhere
            log.warning(json.dumps({"event": "open_files", "raised": False, "soft": soft, "error": str(error)}))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    log.info(json.dumps({"event": "open_files", "soft": soft, "hard": hard}))
    return soft, hard


def budget(max_connections: int, runs: int) -> Budget:
    """``max_connections`` and a backlog that fit the soft open-file limit with ``runs`` CLIs running."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = UNLIMITED_FILES
    backlog = max(LEAST_CONNECTIONS, min(MOST_BACKLOG, soft // 8))
    # Each accepted connection holds a file until it is closed: up to two backlogs of them may
    # be accepted before the guard has closed the ones they replace.
    room = soft - RESERVED_FILES - FILES_PER_RUN * runs - 2 * backlog
    connections = min(max_connections, max(LEAST_CONNECTIONS, room))
    if connections < max_connections:
        log.warning(
            json.dumps(
                {"event": "max_connections", "wanted": max_connections, "allowed": connections, "open_files": soft}
            )
        )
    return Budget(connections, backlog)


class ConnectionGuard:
    """The server's open connections, and which of them are still sending a request (oldest first)."""

    def __init__(self, limit: int, header_timeout: float, body_timeout: float) -> None:
        self.limit = limit
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.open: set[GuardedH11Protocol] = set()
        self.sending: dict[GuardedH11Protocol, None] = {}  # in the order they began their request

    def admit(self, connection: GuardedH11Protocol) -> bool:
        """Count a new connection; make room by closing the oldest still sending. False: no room."""
        self.open.add(connection)
        if len(self.open) <= self.limit:
            return True
        oldest = next((other for other in self.sending if other is not connection), None)
        if oldest is None:
            return False
        oldest.drop(replaced=True)
        return True

    def waits_for_request(self, connection: GuardedH11Protocol) -> None:
        self.sending.pop(connection, None)
        self.sending[connection] = None  # now the newest

    def busy(self, connection: GuardedH11Protocol) -> None:
        self.sending.pop(connection, None)

    def forget(self, connection: GuardedH11Protocol) -> None:
        self.sending.pop(connection, None)
        self.open.discard(connection)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for receiving each request and a cap on connections."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = ""  # what the client is sending: "headers", "body", or "" (nothing awaited)
        self._deadline: asyncio.TimerHandle | None = None
        self._started = False  # bytes of the awaited request came

    @classmethod
    def guarded_by(cls, guard: ConnectionGuard) -> type[GuardedH11Protocol]:
        """This protocol for one server: uvicorn makes each connection's protocol from the class."""
        return type(cls.__name__, (cls,), {"guard": guard})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(self):
            transport.write(TOO_MANY)
            self.drop()
            return
        self._watch()

    def data_received(self, data: bytes) -> None:
        if self._phase == "headers" and data:
            self._started = True
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()  # a kept-alive connection now waits for its next request

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.guard.forget(self)
        super().connection_lost(exc)

    def drop(self, replaced: bool = False) -> None:
        """Close the connection now (the guard's decision), whatever it was doing."""
        self._cancel()
        self.guard.forget(self)
        if replaced:
            log.debug("connection closed to make room for a new one")
        self.transport.close()

    def _watch(self) -> None:
        """Arm, move or drop the deadline for what the connection now waits for."""
        state = self.conn.their_state
        phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else ""
        if phase == self._phase or self.transport.is_closing():
            return
        self._cancel()
        self._phase = phase
        if not phase:
            self.guard.busy(self)
            return
        if phase == "headers":
            self._started = False
        timeout = self.guard.header_timeout if phase == "headers" else self.guard.body_timeout
        self._deadline = self.loop.call_later(timeout, self._expired)
        self.guard.waits_for_request(self)

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._phase == "headers" and self._started:
            self.transport.write(TOO_SLOW)  # a part of a request came: say why it goes unanswered
        self.drop()

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
