"""The routes of the original contract and its extensions: ``/health``, ``/execute``, ``/executions``.

``POST /execute`` goes: size cap (middleware) -> token (:func:`~.auth.caller`) -> body schema,
with the text checks of every field (:mod:`.models`) -> policy -> admission (concurrency cap)
-> the run, answered as NDJSON or as one JSON reply (:mod:`.answers`). Every refusal on the way
is a :class:`~dockyter.server.servererrors.ServerError` that the application's one handler
answers. The routes read what they use from the application's state (:mod:`.appstate`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ... import __version__
from ...wire.contract import NDJSON
from ..servererrors import NotFound
from .answers import answer
from .appstate import app_state
from .auth import ANONYMOUS, Caller, CallerOf, health_of_token
from .models import (
    CancelReply,
    ErrorDetail,
    ExecuteReply,
    ExecuteRequest,
    ExecutionList,
    Health,
    StreamEvent,
    error_responses,
)

FEATURES = ["stream", "cancel", "exit_code", "timeout", "sessions"]

_EVENT_SCHEMA = StreamEvent.model_json_schema(ref_template="#/components/schemas/{model}")

router = APIRouter()


@router.get("/health", response_model=Health, response_model_exclude_none=True)
async def health(request: Request) -> dict[str, Any]:
    """Any 2xx means available. Never needs a token, but says whether the one sent is accepted."""
    state = app_state(request)
    settings = state.settings
    features = FEATURES if state.sessions is not None else [name for name in FEATURES if name != "sessions"]
    reply: dict[str, Any] = {"status": "ok", "version": __version__, "features": features}
    found: Caller | None = Caller(ANONYMOUS, ANONYMOUS)
    if settings.authenticates:
        about_token, found = await health_of_token(request)
        reply.update(about_token)
    if found is not None:
        # How users' code is confined is for the people allowed to run some.
        reply["runtime"] = state.executor.runtime
        prestarted = state.executor.prestarted(found.who)
        if prestarted is not None:
            reply["prestarted"] = prestarted
    return reply


@router.post(
    "/execute",
    response_model=ExecuteReply,
    responses={
        200: {
            "description": "The plain JSON reply, or with `Accept: application/x-ndjson` a stream of JSON lines.",
            "content": {NDJSON: {"schema": _EVENT_SCHEMA}},
        },
        **error_responses(400, 401, 403, 413, 422, 429, 503),
    },
)
async def execute(body: ExecuteRequest, request: Request, by: CallerOf) -> Response:
    """Run ``cmd`` with ``args`` in a fresh container: JSON reply, or NDJSON stream when asked for."""
    state = app_state(request)
    plan = state.policy.for_grant(by.grant).check(body.args, body.shell)
    longest = by.grant.max_timeout or state.settings.max_timeout
    timeout = min(body.timeout or longest, longest)
    execution = await state.executor.start(
        plan, body.cmd, timeout, body.merge_stderr, by.who, by.grant.max_concurrent_per_token
    )
    return await answer(execution, request)


@router.post(
    "/executions/{execution_id}/cancel",
    response_model=CancelReply,
    responses={
        404: {"model": ErrorDetail, "description": "no such execution is running"},
        **error_responses(401, 403, 503),
    },
)
async def cancel(execution_id: str, request: Request, by: CallerOf) -> dict[str, Any]:
    """Stop a running execution: its container is killed and removed before this answers."""
    state = app_state(request)
    who = by.who
    execution = state.executor.get(execution_id) or (
        state.sessions.run_by_id(execution_id) if state.sessions is not None else None
    )
    # Another token's execution is not found either: ids are not for sharing.
    if execution is None or execution.who != who:
        # On a cluster, another replica of this server may be running it.
        if execution is None and await state.executor.cancel_elsewhere(execution_id, who):
            return {"id": execution_id, "cancelled": True}
        raise NotFound(f"no running execution {execution_id!r}")
    await execution.cancel()
    return {"id": execution_id, "cancelled": True}


@router.get("/executions", response_model=ExecutionList, responses=error_responses(401, 403, 503))
async def executions(request: Request, by: CallerOf) -> dict[str, Any]:
    """The caller's running executions; with the Swarm executor, those of every replica."""
    return {"executions": await app_state(request).executor.list_executions(by.who)}
