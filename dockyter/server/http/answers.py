"""The two ways of answering a run: an NDJSON stream with heartbeats, or one plain JSON reply.

``/execute`` and ``/sessions/{id}/execute`` both answer through :func:`answer`, chosen by the
request's ``Accept`` header. Whichever way the client leaves, the run is stopped and what it
started removed: the stream's ``finally`` and the JSON reply's disconnect watcher both hand the
run to the application's :class:`~.appstate.Cleanups`, which runs that work in a task of its own,
so that a cancelled request cannot interrupt it, and which the application's shutdown waits for.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ...wire.contract import NDJSON
from ..servererrors import EngineDisagrees, EngineUnavailable, ServerError
from .appstate import Cleanups, app_state
from .executors import RunningExecution


async def answer(run: RunningExecution, request: Request) -> Response:
    """The run's events as NDJSON when the request asks for them, else its plain JSON reply once it is over."""
    state = app_state(request)
    if wants_stream(request.headers.get("accept", "")):
        return EventStream(run, state.settings.heartbeat_interval, state.cleanups)
    return await _reply_when_done(run, request, state.cleanups)


class EventStream(StreamingResponse):
    """The NDJSON stream of one run; however it ends, what the run started goes with it."""

    def __init__(self, run: RunningExecution, heartbeat: float, cleanups: Cleanups) -> None:
        super().__init__(
            _lines(run, heartbeat),
            media_type=NDJSON,
            # No caching, and no buffering by a reverse proxy (nginx honours X-Accel-Buffering).
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.run = run
        self.cleanups = cleanups

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Runs even when the stream never started; for a finished run it only empties the
            # queue, whose output and final event nobody will read now.
            self.cleanups.detach(self.run.abandon())


async def _lines(run: RunningExecution, heartbeat: float) -> AsyncIterator[bytes]:
    yield _line({"event": "start", "id": run.id})
    while True:
        event = await run.next_event(timeout=heartbeat)
        if event is None:
            yield _line({"event": "heartbeat"})
            continue
        yield _line(event)
        if event["event"] in ("exit", "error"):
            return


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")


async def _reply_when_done(run: RunningExecution, request: Request, cleanups: Cleanups) -> Response:
    """Collect the whole output; if the client leaves first, stop the run at once."""
    collector = asyncio.ensure_future(_collect(run))
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({collector, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not collector.done():
            return Response(status_code=499)  # nobody is listening; the finally stops the run
        return JSONResponse(collector.result())
    finally:
        watcher.cancel()
        if not collector.done():
            collector.cancel()
            cleanups.detach(run.abandon())


async def _collect(run: RunningExecution) -> dict[str, Any]:
    out: list[str] = []
    err: list[str] = []
    while True:
        event = await run.next_event()
        assert event is not None
        kind = event["event"]
        if kind == "stdout":
            out.append(event["data"])
        elif kind == "stderr":
            err.append(event["data"])
        elif kind == "exit":
            return {
                "stdout": "".join(out),
                "stderr": "".join(err),
                "exit_code": event["code"],
                "execution_id": run.id,
                "reason": event["reason"],
                "message": event["message"],
            }
        elif kind == "error":
            # What a stream says in its error event, a plain reply says with the matching status.
            if run.refused:
                raise EngineDisagrees(event["message"])
            if run.engine_down:
                raise EngineUnavailable(event["message"])
            raise ServerError(event["message"])


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def wants_stream(accept: str) -> bool:
    """Whether the Accept header asks for NDJSON (with a non-zero quality)."""
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() == NDJSON:
            quality = next((p.partition("=")[2] for p in params if p.lower().startswith("q=")), "1")
            try:
                return float(quality) > 0
            except ValueError:
                return True
    return False
