"""The session endpoints of the HTTP contract (docs/api.md, "Sessions"); additive to /execute.

``POST /sessions`` (checked by the same policy as ``/execute``), ``GET /sessions``,
``GET /sessions/{id}``, ``DELETE /sessions/{id}`` and ``POST /sessions/{id}/execute``, which
answers exactly as ``/execute`` does (:mod:`.answers`: NDJSON stream or JSON reply) and is
cancelled with the same ``POST /executions/{id}/cancel``. A session is visible only to the
token that created it: to any other it does not exist (404). The application includes this
router only when it has sessions (executor ``engine``); the routes read the registry and the
rest from the application's state (:mod:`.appstate`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..servererrors import NotFound, PolicyError
from ..sessions.sessioncontainer import ServerSession
from ..sessions.sessionregistry import SessionRegistry
from .answers import answer
from .appstate import app_state
from .auth import CallerOf
from .models import SessionCreate, SessionDeleted, SessionExecute, SessionInfo, SessionList, error_responses

router = APIRouter()


def _registry(request: Request) -> SessionRegistry:
    sessions = app_state(request).sessions
    assert sessions is not None, "the session routes are included only when the server has sessions"
    return sessions


def _find(request: Request, session_id: str, who: str) -> ServerSession:
    session = _registry(request).get(session_id, who)
    if session is None:  # another token's session is not found either
        raise NotFound(f"no session {session_id!r}: it never existed, ended, or belongs to another token")
    return session


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionInfo,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 403, 413, 422, 429, 503),
)
async def create_session(body: SessionCreate, request: Request, by: CallerOf) -> dict[str, Any]:
    """Start a session: a container that keeps its state from one command to the next."""
    policy = app_state(request).policy.for_grant(by.grant)
    if by.grant.sessions is False:
        raise PolicyError(f"your groups ({', '.join(by.groups)}) have no sessions on this server")
    if not any(shell and shell[0] == "bash" for shell in policy.shells):
        raise PolicyError("sessions need bash, which this server's allowed_shells do not allow")
    plan = policy.check(body.args, None)
    registry = _registry(request)
    session = await registry.create(plan, by.who, body.name, by.grant.max_sessions_per_token, by.token_check)
    return registry.describe([session])[0]


@router.get(
    "/sessions", response_model=SessionList, response_model_exclude_none=True, responses=error_responses(401, 403, 503)
)
async def list_sessions(request: Request, by: CallerOf) -> dict[str, Any]:
    """This token's sessions."""
    registry = _registry(request)
    return {"sessions": registry.describe(registry.mine(by.who))}


@router.get(
    "/sessions/{session_id}",
    response_model=SessionInfo,
    response_model_exclude_none=True,
    responses=error_responses(401, 403, 404, 503),
)
async def get_session(session_id: str, request: Request, by: CallerOf) -> dict[str, Any]:
    """One session of this token; ``memory_bytes`` when the server has read it (in the background)."""
    return _registry(request).describe([_find(request, session_id, by.who)])[0]


@router.delete("/sessions/{session_id}", response_model=SessionDeleted, responses=error_responses(401, 403, 404, 503))
async def delete_session(session_id: str, request: Request, by: CallerOf) -> dict[str, Any]:
    """Stop the session (and a command running in it); its container is removed before this answers."""
    await _registry(request).delete(_find(request, session_id, by.who))
    return {"id": session_id, "deleted": True}


@router.post("/sessions/{session_id}/execute", responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503))
async def execute_in_session(session_id: str, body: SessionExecute, request: Request, by: CallerOf) -> Response:
    """Run ``cmd`` in the session: answered exactly as ``/execute`` (JSON, or NDJSON when asked for)."""
    session = _find(request, session_id, by.who)
    longest = by.grant.max_timeout or app_state(request).settings.max_timeout
    timeout = min(body.timeout or longest, longest)
    run = await session.run(body.cmd, timeout, body.merge_stderr)
    return await answer(run, request)
