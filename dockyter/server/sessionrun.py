"""One command in a server session: :class:`SessionRun`, consumed like an Execution.

The command goes to the session's bash as one line (:mod:`dockyter.sessionwire`); its output
comes back through the session's readers (:meth:`SessionRun.feed`) until both frames of its
token arrive. Stopping it (cancel, timeout, output cap, a client that goes away) walks the
ladder SIGINT, then SIGKILL of its processes, and leaves the session running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

from ..contract import EXIT_INTERRUPTED, EXIT_KILLED, EXIT_TIMEOUT, IncrementalText
from ..sessionwire import cell_line, new_token, sync_line

if TYPE_CHECKING:
    from .sessioncontainer import ServerSession

log = logging.getLogger("dockyter.server")

EXIT_CODES = {"timeout": EXIT_TIMEOUT, "cancelled": EXIT_INTERRUPTED, "output_limit": EXIT_KILLED}
QUEUE_EVENTS = 64
STOP_GRACE = 2.0  # seconds between SIGINT and SIGKILL of a stopped command
SETTLE = 3.0  # seconds each later step of the stop ladder waits for the shell

Event = dict[str, Any]


class SessionRun:
    """One command in a session; consumed like an Execution (``next_event`` until exit/error)."""

    def __init__(self, session: ServerSession, cmd: str, timeout: float, merge_stderr: bool) -> None:
        self.session = session
        self.who = session.who
        self.id = secrets.token_hex(8)
        self.cmd = cmd
        self.timeout = timeout
        self.merge_stderr = merge_stderr
        self.engine_down = False
        self.finished = False
        self.reason: str | None = None
        self.message: str | None = None
        self.bytes_out = 0
        self.token = new_token()
        self._seen: dict[str, int | None] = {}
        self._answered = asyncio.Event()  # both frames of self.token arrived
        self._stop = asyncio.Event()
        self._discard = False
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUE_EVENTS)
        self._decoders = {"stdout": IncrementalText(), "stderr": IncrementalText()}
        self._gone = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- for the consumer (as Execution) ----------------------------------------------------------

    async def next_event(self, timeout: float | None = None) -> Event | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def stop(self, reason: str, message: str) -> None:
        if self.reason is None and not self.finished:
            self.reason, self.message = reason, message
        self._stop.set()

    async def cancel(self) -> None:
        self.stop("cancelled", "cancelled: the command was stopped; the session keeps its state")
        await self.wait()

    async def abandon(self) -> None:
        """The client went away: stop the command (not the session) and drop its output."""
        self.stop("disconnected", "the client went away")
        self._discard = True
        while not self._queue.empty():
            self._queue.get_nowait()
        await self.wait()

    async def wait(self) -> None:
        if self._task is not None:
            await self._gone.wait()

    # -- fed by the session's readers -------------------------------------------------------------

    async def feed(self, stream: str, output: bytes, frames: list[tuple[str, int | None]]) -> None:
        if output:
            limit = self.session.settings.max_output_bytes
            room = limit - self.bytes_out
            if len(output) > room:
                self.stop("output_limit", f"the output exceeded {limit} bytes: the command was stopped")
                output = output[: max(room, 0)]
            self.bytes_out += len(output)
            await self._emit(stream, self._decoders[stream].decode(output))
        for token, status in frames:
            if token == self.token:
                self._seen[stream] = status
                if len(self._seen) == 2:
                    self._answered.set()

    async def _emit(self, stream: str, text: str) -> None:
        if text and not self._discard:
            await self._queue.put({"event": stream, "data": text})

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"dockyter session run {self.id}")

    async def _ask(self, line: bytes, wait: float | None) -> str:
        """Send ``line``; 'answered', 'stop', 'ended' or 'late' (``wait`` passed)."""
        self._answered.clear()
        self._seen = {}
        self.session.expect(self.token)
        await self.session.write(line)
        waits = {
            asyncio.ensure_future(self._answered.wait()): "answered",
            asyncio.ensure_future(self.session.ended_event.wait()): "ended",
        }
        if not self._stop.is_set():
            waits[asyncio.ensure_future(self._stop.wait())] = "stop"
        try:
            done, _ = await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in waits:
                future.cancel()
        if not done:
            return "late"
        outcomes = {waits[future] for future in done}
        for outcome in ("answered", "ended", "stop"):
            if outcome in outcomes:
                return outcome
        return "late"

    async def _run(self) -> None:
        final: Event | None = None
        try:
            outcome = await self._ask(cell_line(self.cmd, self.token, self.merge_stderr), self.timeout)
            if outcome == "late":
                self.stop(
                    "timeout",
                    f"timed out after {self.timeout:g} s: the command was stopped; the session keeps its state",
                )
            if outcome in ("late", "stop"):
                outcome = await self._stop_command()
            final = self._final(outcome)
        except asyncio.CancelledError:
            final = {"event": "error", "message": "the server stopped this command"}
            raise
        except Exception as error:  # noqa: BLE001 - never leave a run hanging because of a bug here
            log.exception("session run %s failed", self.id)
            final = {"event": "error", "message": f"the server failed while running the command: {error}"}
        finally:
            for stream, decoder in self._decoders.items():
                with contextlib.suppress(Exception):
                    await self._emit(stream, decoder.flush())
            self.finished = True
            self.session.finish(self)
            self._gone.set()
            if final is not None and not self._discard:
                await self._queue.put(final)

    async def _stop_command(self) -> str:
        for step, wait in (("INT", STOP_GRACE), ("foreground", SETTLE), ("all", SETTLE)):
            await self.session.signal(step)
            self.token = new_token()
            outcome = await self._ask(sync_line(self.token), wait)
            if outcome in ("answered", "ended"):
                return outcome
        await self.session.remove("its shell did not answer after its commands were killed")
        return "ended"

    def _final(self, outcome: str) -> Event:
        if outcome == "ended":
            return {
                "event": "exit",
                "code": self.session.exit_status if self.session.exit_status is not None else EXIT_KILLED,
                "reason": "session_ended",
                "message": f"the session ended: {self.session.ended}",
            }
        if self.reason in EXIT_CODES:
            return {"event": "exit", "code": EXIT_CODES[self.reason], "reason": self.reason, "message": self.message}
        if self.reason is not None:  # disconnected: nobody reads it
            return {"event": "exit", "code": EXIT_INTERRUPTED, "reason": "cancelled", "message": self.message}
        status = self._seen.get("stdout")
        return {"event": "exit", "code": status if status is not None else 0, "reason": None, "message": None}
