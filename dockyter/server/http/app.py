"""The FastAPI application: the HTTP contract of docs/api.md over the policy and the executor.

``POST /execute`` goes: size cap (middleware) -> token -> body schema, with the text checks
of every field (models.py) -> policy -> admission (concurrency cap) -> container. Then either
a plain JSON reply, while watching for the client to go away, or an NDJSON stream with
heartbeats. Whichever way the
client leaves, the container is killed and removed: the stream's ``finally`` and the JSON
reply's disconnect watcher both hand the execution to a detached clean-up task, which a
cancelled request cannot interrupt.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from ... import __version__
from ...wire.contract import NDJSON
from ...wire.dockerargs import DockerArgsError
from ..engine.engineexecutor import Executor, ExecutorError, TooBusy
from ..policy.requestpolicy import Policy, PolicyError
from ..sessions.sessionregistry import SessionRegistry
from ..settings import Settings
from .auth import authenticator, token_status
from .executors import RunningExecution, create_executor
from .middleware import BodyLimit
from .models import (
    TEXT_REFUSED,
    CancelReply,
    ErrorDetail,
    ExecuteReply,
    ExecuteRequest,
    ExecutionList,
    Health,
    StreamEvent,
)
from .sessionroutes import add_session_routes

log = logging.getLogger("dockyter.server")

FEATURES = ["stream", "cancel", "exit_code", "timeout", "sessions"]

# Runs clean-up work in a task of its own (see create_app's ``detach``).
Detach = Callable[[Coroutine[Any, Any, None]], None]

_ERRORS = {
    400: "args cannot be understood, or a text field holds what no process can receive",
    401: "no token, or a token this server does not accept",
    403: "the policy refuses the request; detail names the argument",
    404: "no such execution or session for this token",
    409: "the session is already running a command",
    413: "the request body (or the command line it makes) is too large",
    422: "the body is not the JSON described here",
    429: "too many executions are running, on the server or for this token: retry after Retry-After seconds",
    503: "the container engine cannot be reached, or the server is shutting down",
}


_EVENT_SCHEMA = StreamEvent.model_json_schema(ref_template="#/components/schemas/{model}")


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorDetail, "description": _ERRORS[status]} for status in statuses}


def create_app(settings: Settings) -> FastAPI:
    """The application for ``settings``; its executor is ``app.state.executor``.

    Asks the engine which runtime its containers will run under; raises
    :class:`~dockyter.server.engine.runtimes.RuntimeUnavailable` when it lacks the configured one.
    """
    policy = Policy(settings)
    executor = create_executor(settings)
    # Sessions are containers of one engine: a server that runs executions on a Swarm has none.
    sessions = SessionRegistry(settings, executor) if isinstance(executor, Executor) else None
    authenticate = authenticator(settings)
    tokens = settings.token_table()
    cleanups: set[asyncio.Task[None]] = set()

    def detach(work: Coroutine[Any, Any, None]) -> None:
        """Run clean-up work in its own task, so that a cancelled request cannot stop it half-way."""
        task = asyncio.get_running_loop().create_task(work)
        cleanups.add(task)
        task.add_done_callback(cleanups.discard)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await executor.startup()
        if sessions is not None:
            await sessions.startup()
        try:
            yield
        finally:
            if sessions is not None:
                await sessions.shutdown()
            await executor.shutdown()
            if cleanups:
                await asyncio.wait(set(cleanups), timeout=30)

    app = FastAPI(
        title="dockyter-server",
        version=__version__,
        description="Runs notebook commands in fresh containers. The contract is docs/api.md of Dockyter.",
        lifespan=lifespan,
        # /openapi.json documents the API; no interactive pages (they load scripts from a CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.executor = executor
    app.state.policy = policy
    app.state.sessions = sessions
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    _install_error_handlers(app)

    @app.get("/health", response_model=Health, response_model_exclude_none=True)
    async def health(request: Request) -> dict[str, Any]:
        """Any 2xx means available. Never needs a token, but says whether the one sent is accepted."""
        features = FEATURES if sessions is not None else [name for name in FEATURES if name != "sessions"]
        answer: dict[str, Any] = {"status": "ok", "version": __version__, "features": features}
        status = token_status(request, tokens) if settings.auth else None
        if status is not None:
            answer["token"] = status
        if status == "accepted" or not settings.auth:
            # How users' code is confined is for the people allowed to run some.
            answer["runtime"] = executor.runtime
        return answer

    @app.post(
        "/execute",
        response_model=ExecuteReply,
        responses={
            200: {
                "description": "The plain JSON reply, or with `Accept: application/x-ndjson` a stream of JSON lines.",
                "content": {NDJSON: {"schema": _EVENT_SCHEMA}},
            },
            **_responses(400, 401, 403, 413, 422, 429, 503),
        },
    )
    async def execute(body: ExecuteRequest, request: Request, who: str = Depends(authenticate)) -> Response:
        """Run ``cmd`` with ``args`` in a fresh container: JSON reply, or NDJSON stream when asked for."""
        try:
            plan = policy.check(body.args, body.shell)
        except DockerArgsError as error:
            raise HTTPException(400, f"args: {error}") from None
        except PolicyError as error:
            raise HTTPException(403, str(error)) from None
        timeout = min(body.timeout or settings.max_timeout, settings.max_timeout)
        try:
            execution = await executor.start(plan, body.cmd, timeout, body.merge_stderr, who)
        except TooBusy as error:
            raise HTTPException(429, str(error), headers={"Retry-After": str(settings.retry_after)}) from None
        except ExecutorError as error:
            raise HTTPException(error.status, str(error)) from None
        if _wants_stream(request.headers.get("accept", "")):
            return EventStream(execution, settings.heartbeat_interval, detach)
        return await _reply_when_done(execution, request, detach)

    @app.post(
        "/executions/{execution_id}/cancel",
        response_model=CancelReply,
        responses={404: {"model": ErrorDetail, "description": "no such execution is running"}, **_responses(401)},
    )
    async def cancel(execution_id: str, who: str = Depends(authenticate)) -> dict[str, Any]:
        """Stop a running execution: its container is killed and removed before this answers."""
        execution = executor.get(execution_id) or (sessions.run_by_id(execution_id) if sessions else None)
        # Another token's execution is not found either: ids are not for sharing.
        if execution is None or execution.who != who:
            # On a cluster, another replica of this server may be running it.
            if execution is None and await executor.cancel_elsewhere(execution_id, who):
                return {"id": execution_id, "cancelled": True}
            raise HTTPException(404, f"no running execution {execution_id!r}")
        await execution.cancel()
        return {"id": execution_id, "cancelled": True}

    @app.get("/executions", response_model=ExecutionList, responses=_responses(401))
    async def executions(who: str = Depends(authenticate)) -> dict[str, Any]:
        """The caller's running executions; with the Swarm executor, those of every replica."""
        return {"executions": await executor.list_executions(who)}

    async def answer(execution: Any, request: Request) -> Response:
        if _wants_stream(request.headers.get("accept", "")):
            return EventStream(execution, settings.heartbeat_interval, detach)
        return await _reply_when_done(execution, request, detach)

    if sessions is not None:
        add_session_routes(app, settings, policy, sessions, authenticate, answer, _responses)
    return app


# -- the two ways of answering -----------------------------------------------------------------


class EventStream(StreamingResponse):
    """The NDJSON stream of one execution; however it ends, the container goes with it."""

    def __init__(self, execution: RunningExecution, heartbeat: float, detach: Detach) -> None:
        super().__init__(
            _lines(execution, heartbeat),
            media_type=NDJSON,
            # No caching, and no buffering by a reverse proxy (nginx honours X-Accel-Buffering).
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.execution = execution
        self.detach = detach

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Runs even when the stream never started; for a finished run it only empties the
            # queue, whose output and final event nobody will read now.
            self.detach(self.execution.abandon())


async def _lines(execution: RunningExecution, heartbeat: float) -> AsyncIterator[bytes]:
    yield _line({"event": "start", "id": execution.id})
    while True:
        event = await execution.next_event(timeout=heartbeat)
        if event is None:
            yield _line({"event": "heartbeat"})
            continue
        yield _line(event)
        if event["event"] in ("exit", "error"):
            return


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")


async def _reply_when_done(execution: RunningExecution, request: Request, detach: Detach) -> Response:
    """Collect the whole output; if the client leaves first, stop the container at once."""
    collector = asyncio.ensure_future(_collect(execution))
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({collector, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not collector.done():
            return Response(status_code=499)  # nobody is listening; the finally stops the container
        return JSONResponse(collector.result())
    finally:
        watcher.cancel()
        if not collector.done():
            collector.cancel()
            detach(execution.abandon())


async def _collect(execution: RunningExecution) -> dict[str, Any]:
    out: list[str] = []
    err: list[str] = []
    while True:
        event = await execution.next_event()
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
                "execution_id": execution.id,
                "reason": event["reason"],
                "message": event["message"],
            }
        elif kind == "error":
            status = 403 if execution.refused else 503 if execution.engine_down else 500
            raise HTTPException(status, event["message"])


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


# -- small checks ---------------------------------------------------------------------------


def _wants_stream(accept: str) -> bool:
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


def _install_error_handlers(app: FastAPI) -> None:
    """Every error answer is ``{"detail": "one line"}``."""

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = list(error.errors())
        if errors and all(problem.get("type") == TEXT_REFUSED for problem in errors):
            # Well-formed JSON whose text no process may receive: a 400, as for args that cannot be understood.
            return JSONResponse({"detail": _text_refusal(errors[0])}, status_code=400)
        return JSONResponse({"detail": _one_line(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, str) else json.dumps(error.detail)
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal server error: {type(error).__name__}"}, status_code=500)


def _text_refusal(error: Any) -> str:
    """``name contains U+000A (line feed): ...``: the field (``shell[1]`` for an item) and the problem."""
    field = ""
    for part in error.get("loc", ()):
        if part == "body":
            continue
        field += f"[{part}]" if isinstance(part, int) else ("." if field else "") + str(part)
    return f"{field or 'body'} {error.get('msg', 'is not accepted')}"


def _one_line(errors: Any) -> str:
    """``cmd: Field required (and 1 more problem)`` from pydantic's list of errors."""
    errors = list(errors)
    if not errors:
        return "the request body is not valid"
    first = errors[0]
    if first.get("type") == "json_invalid":
        text = "the body is not valid JSON"
    elif tuple(first.get("loc", ())) == ("body",):
        text = 'the body must be a JSON object like {"cmd": "...", "args": "IMAGE"}, sent as application/json'
    else:
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
        text = f"{where}: {first.get('msg', 'invalid')}"
    more = len(errors) - 1
    if more:
        text += f" (and {more} more problem{'s' if more > 1 else ''})"
    return text.replace("\n", " ")
