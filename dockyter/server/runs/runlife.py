"""What every run of the server shares: its output queue, its stop, and the end of its stream.

A run is one command whose events a consumer (an NDJSON stream or a plain JSON reply) reads
with :meth:`Run.next_event` until an ``exit`` or ``error`` event: a container of the engine
executor (:mod:`~dockyter.server.engine.execution`), a service on a Swarm (:mod:`~dockyter.server.swarm.swarmexecution`), a command in a session
(:mod:`~dockyter.server.sessions.sessionrun`). Each subclass says how it starts and how it kills; this class decides
what happens to the output on its way:

- At most ``QUEUE_EVENTS`` output events wait for a slow consumer; the producer then waits
  for room, so a slow client slows the command down, it never makes the server buffer more.
- Output counts against the output cap; the chunk that crosses it is cut so that exactly the
  cap is delivered, and the run is stopped with reason ``output_limit``.
- Once a stop is asked for (cancel, disconnect, timeout, output cap, shutdown), output is
  dropped and a producer waiting for room is released: the producers keep reading their pipes
  and discard what they read, so that a client that stopped reading (without closing) cannot
  hold up the kill. Output counted under the cap before the cap stopped the run is still
  delivered, so that "exactly the cap" holds when two streams cross it together.
- The final event is queued past the bound: a consumer that resumes reading gets it; only
  :meth:`Run.abandon` (the consumer is gone) drops it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...wire.contract import EXIT_INTERRUPTED, EXIT_KILLED, EXIT_TIMEOUT, IncrementalText

# The exit code reported for each way the server itself ends a run.
EXIT_CODES = {"timeout": EXIT_TIMEOUT, "cancelled": EXIT_INTERRUPTED, "output_limit": EXIT_KILLED}
QUEUE_EVENTS = 64  # output chunks waiting for a slow client; beyond that the command waits for it

Event = dict[str, Any]

log = logging.getLogger("dockyter.server")


class Run:
    """One run's events, stop and end. Consume it with :meth:`next_event` until ``exit`` or ``error``.

    A subclass starts its work in ``_task``, usually through :meth:`_guarded` (which ends with
    :meth:`_finish` once what the run started is removed); it feeds output through
    :meth:`_forward`, names what a stop does in :meth:`stopped` and frees its slot in
    :meth:`_release`.
    """

    def __init__(self, cmd: str, timeout: float, merge_stderr: bool, who: str, max_output_bytes: int) -> None:
        self.id = secrets.token_hex(8)
        self.cmd = cmd
        self.timeout = timeout
        self.merge_stderr = merge_stderr
        self.who = who
        self.max_output_bytes = max_output_bytes
        self.bytes_out = 0
        self.reason: str | None = None  # why the server stopped it, once it did
        self.message: str | None = None
        self.finished = False
        self.engine_down = False  # it ended because the engine (or the Swarm manager) could not be reached
        self.refused = False  # what the engine made differs from the plan: removed unstarted (after a pull)
        # Unbounded as a queue: _emit bounds the output in it, so the final event always fits.
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._room = asyncio.Event()  # set when the consumer takes an event, or output is dropped
        self._stop = asyncio.Event()
        self._dropping = False  # a stop was asked for: read output and discard it
        self._consumer_gone = False  # nobody will read any more: queue nothing, not even the end
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._gone = asyncio.Event()  # set once what the run started is removed and its slot freed
        self._announced = False  # the final event is queued already (:meth:`_announce`)

    # -- what differs -----------------------------------------------------------------------------

    def stopped(self) -> str:
        """How the stop messages end: what a stop did to what the run started."""
        return "the command was stopped"

    def _release(self) -> None:
        """Free the run's slot (its executor or session forgets it); nothing by default."""

    def _log(self, final: Event | None) -> None:
        """Log the run's end; nothing by default."""

    def _log_record(self, final: Event | None, **where: Any) -> None:
        """The one ``execution`` log record of a run; ``where`` names what ran it (container, service...)."""
        record = {
            "event": "execution",
            "id": self.id,
            **where,
            "who": self.who,
            "exit_code": final.get("code") if final else None,
            "reason": self.reason or ("error" if final and final["event"] == "error" else None),
            "duration": round(time.monotonic() - self._started, 3),
            "bytes_out": self.bytes_out,
        }
        log.info(json.dumps(record), extra={"execution": record})

    # -- for the consumer -------------------------------------------------------------------------

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when ``timeout`` seconds pass without one."""
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        self._room.set()
        return event

    def stop(self, reason: str, message: str) -> None:
        """Ask for the run to be stopped; the first reason given is kept.

        From now on output is dropped, and a producer waiting for room in the queue is released.
        """
        if self.reason is None and not self.finished:
            self.reason, self.message = reason, message
        self._dropping = True
        self._room.set()
        self._stop.set()

    async def cancel(self) -> None:
        """Stop the run because its client asked to, and wait until it is over."""
        self.stop("cancelled", f"cancelled: {self.stopped()}")
        await self.wait()

    async def abandon(self) -> None:
        """The consumer is gone (client disconnected): stop, drop the output, wait for the end."""
        self.stop("disconnected", "the client went away")
        self._consumer_gone = True
        while not self._queue.empty():
            self._queue.get_nowait()
        await self.wait()

    async def wait(self) -> None:
        """Until the run is over and what it started removed (not until a slow reader has read it all)."""
        if self._task is not None:
            await self._gone.wait()

    # -- for the subclass -------------------------------------------------------------------------

    def _time_is_up(self) -> None:
        self.stop("timeout", f"timed out after {self.timeout:g} s: {self.stopped()}")

    async def _forward(self, stream: str, decoder: IncrementalText, data: bytes) -> None:
        """Count ``data`` against the output cap and queue it; crossing the cap stops the run."""
        if self._dropping:
            return  # the producer keeps reading so that nothing upstream blocks on us
        room = self.max_output_bytes - self.bytes_out
        if len(data) > room:
            # Checked even when room is 0: an earlier chunk may have ended exactly on the cap,
            # and then this byte over it is the one that must stop the run.
            self.bytes_out += room
            # Exactly the cap is delivered, even to a consumer that is not reading now.
            self._queue_output(stream, decoder.decode(data[:room]) + decoder.flush())
            self.stop("output_limit", f"the output exceeded {self.max_output_bytes} bytes: {self.stopped()}")
            return
        self.bytes_out += len(data)
        await self._emit(stream, decoder.decode(data))

    async def _emit(self, stream: str, text: str) -> None:
        """Queue output, waiting while the queue holds QUEUE_EVENTS events (unless it is dropped)."""
        while self._queue.qsize() >= QUEUE_EVENTS and not self._dropping:
            self._room.clear()
            await self._room.wait()
        # Output counted under the cap before the cap stopped the run is still part of "exactly the cap".
        if not self._dropping or self.reason == "output_limit":
            self._queue_output(stream, text)

    def _queue_output(self, stream: str, text: str) -> None:
        if text and not self._consumer_gone:
            self._queue.put_nowait({"event": stream, "data": text})

    def _put(self, event: Event) -> None:
        """Queue an event that is not output (past the bound: there are few of them)."""
        if not self._consumer_gone:
            self._queue.put_nowait(event)

    async def _guarded(self, work: Awaitable[Event], clean_up: Callable[[], Awaitable[None]]) -> None:
        """Await ``work`` (the final event); whatever happens then, ``clean_up`` and :meth:`_finish`.

        A bug in ``work`` ends the run with an ``error`` event instead of leaving what it
        started behind, and so does the server's own cancellation of the run's task.
        """
        final: Event | None = None
        try:
            final = await work
        except asyncio.CancelledError:
            final = {"event": "error", "message": "the server stopped this execution"}
            raise
        except Exception as error:  # never leave a container or a service behind because of a bug
            log.exception("execution %s failed", self.id)
            final = {"event": "error", "message": f"the server failed while running the command: {error}"}
        finally:
            try:
                await clean_up()
            finally:
                self._finish(final)

    def _announce(self, final: Event) -> None:
        """Queue the final event now, before what the run started is removed: its end is known
        already (a prestarted container's frames), and the removal is no one's wait. Output read
        after it is dropped: nothing follows the final event."""
        self._announced = True
        self._dropping = True
        self._room.set()
        self._put(final)

    def _finish(self, final: Event | None) -> None:
        """The run is over and what it started removed: free its slot, log it, queue its final event."""
        self.finished = True
        self._release()
        self._gone.set()
        self._log(final)
        if final is not None and not self._announced:
            # Past the output bound: a consumer that stopped reading gets it when it resumes.
            self._put(final)
