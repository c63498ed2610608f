"""One command in a server session: :class:`SessionRun`, consumed like an Execution.

The command goes to the session's bash as one line (:mod:`dockyter.wire.sessionprotocol`); its output
comes back through the session's readers (:meth:`SessionRun.feed`) until both frames of its
token arrive. Stopping it (cancel, timeout, output cap, a client that goes away) walks the
ladder SIGINT, then SIGKILL of its processes, and leaves the session running. The queue, the
output cap and what a stop does to the output are :class:`~dockyter.server.runs.runlife.Run`'s: once a stop is
asked for, the session's readers drop the command's output (they still see the frames that
end the ladder's steps), so a client that stopped reading cannot hold the session.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from ...wire.contract import EXIT_INTERRUPTED, EXIT_KILLED, IncrementalText
from ...wire.sessionprotocol import cell_line, new_token, sync_line
from ..runs.runlife import EXIT_CODES, Event, Run
from ..settings.fields import Settings

STOP_GRACE = 2.0  # seconds between SIGINT and SIGKILL of a stopped command
SETTLE = 3.0  # seconds each later step of the stop ladder waits for the shell


class CommandSession(Protocol):
    """What a command needs of the session it runs in (:class:`~.sessioncontainer.ServerSession`)."""

    who: str
    settings: Settings
    ended: str | None  # why the session ended, once it did
    ended_event: asyncio.Event
    exit_status: int | None  # its shell's, once it ended

    def expect(self, token: str) -> None: ...
    async def write(self, line: bytes) -> None: ...
    async def signal(self, step: str) -> None: ...
    async def remove(self, why: str) -> None: ...
    def finish(self, run: SessionRun) -> None: ...


class SessionRun(Run):
    """One command in a session; consumed like an Execution (``next_event`` until exit/error)."""

    def __init__(self, session: CommandSession, cmd: str, timeout: float, merge_stderr: bool) -> None:
        super().__init__(cmd, timeout, merge_stderr, session.who, session.settings.max_output_bytes)
        self.session = session
        self.token = new_token()
        self._seen: dict[str, int | None] = {}
        self._answered = asyncio.Event()  # both frames of self.token arrived
        self._decoders = {"stdout": IncrementalText(), "stderr": IncrementalText()}

    def stopped(self) -> str:
        return "the command was stopped; the session keeps its state"

    def _release(self) -> None:
        self.session.finish(self)

    # -- fed by the session's readers -------------------------------------------------------------

    async def feed(self, stream: str, output: bytes, frames: list[tuple[str, int | None]]) -> None:
        """Output and frames one of the session's pipes brought (output dropped once stopped)."""
        if output:
            await self._forward(stream, self._decoders[stream], output)
        for token, status in frames:
            if token == self.token:
                self._seen[stream] = status
                if len(self._seen) == 2:
                    self._answered.set()

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
        await self._guarded(self._command(), self._flush)

    async def _command(self) -> Event:
        outcome = await self._ask(cell_line(self.cmd, self.token, self.merge_stderr), self.timeout)
        if outcome == "late":
            self._time_is_up()
        if outcome in ("late", "stop"):
            outcome = await self._stop_command()
        return self._final(outcome)

    async def _flush(self) -> None:
        """What the decoders still hold (an incomplete character) goes out before the end."""
        for stream, decoder in self._decoders.items():
            with contextlib.suppress(Exception):
                await self._emit(stream, decoder.flush())

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
