"""The session endpoints of the HTTP contract (docs/api.md, "Sessions"); additive to /execute.

``POST /sessions`` (checked by the same policy as ``/execute``), ``GET /sessions``,
``GET /sessions/{id}``, ``DELETE /sessions/{id}`` and ``POST /sessions/{id}/execute``, which
answers exactly as ``/execute`` does (NDJSON stream or JSON reply) and is cancelled with the
same ``POST /executions/{id}/cancel``. A session is visible only to the token that created it:
to any other it does not exist (404).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ...wire.dockerargs import DockerArgsError
from ..engine.engineexecutor import ExecutorError
from ..policy.requestpolicy import Policy, PolicyError
from ..sessions.sessionregistry import ServerSession, SessionRegistry
from ..settings import Settings
from .models import Args, Command, Text


class SessionCreate(BaseModel):
    """``POST /sessions``: the docker options and image, as ``/execute``'s ``args``."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"args": "python:3.12", "name": "analysis"}]}
    )

    args: Args = Field(description="docker run options ending with the image, checked by the server's policy.")
    name: Text = Field(default="", max_length=63, description="The client's name for the session, shown in listings.")


class SessionExecute(BaseModel):
    """``POST /sessions/{id}/execute``: ``/execute``'s fields without ``args`` (the session has them)."""

    model_config = ConfigDict(extra="ignore")

    cmd: Command = Field(description="The command; it runs in the session's shell, which keeps its state.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds the command may last (the session stays).")
    merge_stderr: bool = Field(default=False, description="Send stderr into stdout, in order.")


class SessionInfo(BaseModel):
    id: str
    name: str
    image: str
    state: str = Field(description="running, busy (a command runs) or ended.")
    age_seconds: float
    idle_seconds: float
    container: str


class SessionList(BaseModel):
    sessions: list[SessionInfo]


class SessionDeleted(BaseModel):
    id: str
    deleted: bool


def add_session_routes(
    app: FastAPI,
    settings: Settings,
    policy: Policy,
    registry: SessionRegistry,
    authenticate: Callable[..., Any],
    answer: Callable[[Any, Request], Awaitable[Response]],
    responses: Callable[..., dict[int | str, dict[str, Any]]],
) -> None:
    """Adds the session endpoints; ``answer(run, request)`` replies as ``/execute`` does."""

    def find(session_id: str, who: str) -> ServerSession:
        session = registry.get(session_id, who)
        if session is None:  # another token's session is not found either
            raise HTTPException(404, f"no session {session_id!r}: it never existed, ended, or belongs to another token")
        return session

    @app.post(
        "/sessions", status_code=201, response_model=SessionInfo, responses=responses(400, 401, 403, 413, 422, 429, 503)
    )
    async def create_session(body: SessionCreate, who: str = Depends(authenticate)) -> dict[str, Any]:
        """Start a session: a container that keeps its state from one command to the next."""
        if not any(shell and shell[0] == "bash" for shell in policy.shells):
            raise HTTPException(403, "sessions need bash, which this server's allowed_shells do not allow")
        try:
            plan = policy.check(body.args, None)
        except DockerArgsError as error:
            raise HTTPException(400, f"args: {error}") from None
        except PolicyError as error:
            raise HTTPException(403, str(error)) from None
        try:
            session = await registry.create(plan, who, body.name)
        except ExecutorError as error:
            headers = {"Retry-After": str(settings.retry_after)} if error.status == 429 else None
            raise HTTPException(error.status, str(error), headers=headers) from None
        return session.describe()

    @app.get("/sessions", response_model=SessionList, responses=responses(401))
    async def list_sessions(who: str = Depends(authenticate)) -> dict[str, Any]:
        """This token's sessions."""
        return {"sessions": [session.describe() for session in registry.mine(who)]}

    @app.get("/sessions/{session_id}", response_model=SessionInfo, responses=responses(401, 404))
    async def get_session(session_id: str, who: str = Depends(authenticate)) -> dict[str, Any]:
        return find(session_id, who).describe()

    @app.delete("/sessions/{session_id}", response_model=SessionDeleted, responses=responses(401, 404))
    async def delete_session(session_id: str, who: str = Depends(authenticate)) -> dict[str, Any]:
        """Stop the session (and a command running in it); its container is removed before this answers."""
        await registry.delete(find(session_id, who))
        return {"id": session_id, "deleted": True}

    @app.post("/sessions/{session_id}/execute", responses=responses(400, 401, 404, 409, 413, 422, 503))
    async def execute_in_session(
        session_id: str, body: SessionExecute, request: Request, who: str = Depends(authenticate)
    ) -> Response:
        """Run ``cmd`` in the session: answered exactly as ``/execute`` (JSON, or NDJSON when asked for)."""
        session = find(session_id, who)
        timeout = min(body.timeout or settings.max_timeout, settings.max_timeout)
        try:
            run = await session.run(body.cmd, timeout, body.merge_stderr)
        except ExecutorError as error:
            raise HTTPException(error.status, str(error)) from None
        return await answer(run, request)
