"""The request and reply bodies of the HTTP contract (docs/api.md), as published in /openapi.json.

Every text field of a request body is one of three types, :data:`Command`, :data:`Args` and
:data:`Text`, which check it (:mod:`~dockyter.server.policy.textcheck`) before anything else reads it. A refusal is a
validation error of type :data:`TEXT_REFUSED`, which the application answers with 400 and
its one line, where other validation errors are 422.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from ..policy.textcheck import args_problem, command_problem, text_problem

Reason = Literal["timeout", "output_limit", "cancelled", "session_ended"]

TEXT_REFUSED = "text_refused"  # the validation error type of a refused text field


def _checked(problem_of: Callable[[str], str | None]) -> BeforeValidator:
    """A validator that refuses a string for ``problem_of``'s reason, before any other check reads it."""

    def check(value: Any) -> Any:
        if isinstance(value, str):
            problem = problem_of(value)
            if problem:
                raise PydanticCustomError(TEXT_REFUSED, "{problem}", {"problem": problem})
        return value

    return BeforeValidator(check)


# The command: a script for the shell in the container, which may hold any text a process can receive.
Command = Annotated[str, _checked(command_problem)]
# docker run options and an image: no control character in any argument.
Args = Annotated[str, _checked(args_problem)]
# Any other text: no control character.
Text = Annotated[str, _checked(text_problem)]


class ExecuteRequest(BaseModel):
    """``POST /execute``: the original ``cmd`` and ``args``, plus optional negotiated fields."""

    # Servers ignore fields they do not know, so clients may always send the optional ones.
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"cmd": "echo hello", "args": "-e GREETING=hi ubuntu:24.04"}]},
    )

    cmd: Command = Field(description="The cell or `!` command; it reaches a shell only inside the container.")
    args: Args = Field(description="docker run options ending with the image, split like a POSIX shell would.")
    timeout: float | None = Field(
        default=None, gt=0, description="Seconds the run may last; the server may lower it, never raise it."
    )
    shell: list[Text] | None = Field(
        default=None, min_length=1, description='How cmd is run in the container (default ["bash", "-lc"]).'
    )
    merge_stderr: bool = Field(default=False, description="Send stderr into stdout, in order.")


class ExecuteReply(BaseModel):
    """The plain JSON reply: ``stdout`` and ``stderr`` are the original contract, the rest extends it."""

    stdout: str
    stderr: str
    exit_code: int = Field(description="The command's exit status (124 timeout, 130 cancelled, 137 output limit).")
    execution_id: str
    reason: Reason | None = Field(description="Why the server stopped the run, if it did.")
    message: str | None = Field(description="What the server has to say about how the run ended.")


class StreamEvent(BaseModel):
    """One line of the NDJSON stream (``Accept: application/x-ndjson``)."""

    event: Literal["start", "stdout", "stderr", "heartbeat", "exit", "error"]
    id: str | None = Field(default=None, description="start: the execution id, for cancellation.")
    data: str | None = Field(default=None, description="stdout/stderr: output as it is produced.")
    code: int | None = Field(default=None, description="exit: the exit status.")
    reason: Reason | None = Field(default=None, description="exit: why the server stopped the run, if it did.")
    message: str | None = Field(default=None, description="exit/error: what the server has to say.")


class Health(BaseModel):
    """``GET /health``: available, which version, which extensions, and whether the token is accepted."""

    status: Literal["ok"]
    version: str
    features: list[str]
    token: Literal["accepted", "rejected", "unknown"] | None = Field(
        default=None,
        description="Only when the request carried an Authorization header; unknown while the JupyterHub that "
        "would name its owner cannot be asked (auth jupyterhub).",
    )
    user: str | None = Field(
        default=None,
        description="With an accepted token: whose it is (the token's name, or the JupyterHub user's name).",
    )
    groups: list[str] | None = Field(
        default=None,
        description="With an accepted token: the JupyterHub groups whose [groups.NAME] tables applied.",
    )
    problem: str | None = Field(default=None, description="With token unknown: why, in one line.")
    runtime: str | None = Field(
        default=None,
        description="Only with an accepted token (or without authentication): the OCI runtime "
        "the containers run under, such as runc or runsc.",
    )
    prestarted: dict[str, int] | None = Field(
        default=None,
        description="Only with an accepted token, when the server prestarts containers: the token's "
        "containers that are `ready` and `starting` (docs/server.md, Prestarted containers).",
    )


class CancelReply(BaseModel):
    """``POST /executions/{id}/cancel``: the execution was stopped and its container removed."""

    id: str
    cancelled: bool


class ExecutionInfo(BaseModel):
    """One running execution, as ``GET /executions`` lists it."""

    id: str = Field(description="The execution id, as in the start event; cancel it by this id.")
    image: str
    node: str | None = Field(default=None, description="The cluster node it runs on, when known (Swarm executor).")


class ExecutionList(BaseModel):
    """``GET /executions``: the caller's running executions (on every replica, for the Swarm executor)."""

    executions: list[ExecutionInfo]


class ErrorDetail(BaseModel):
    """Every error answer: one line saying what is wrong."""

    detail: str


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
    """One session, as ``POST /sessions``, ``GET /sessions`` and ``GET /sessions/{id}`` describe it."""

    id: str
    name: str
    image: str
    state: str = Field(description="running, busy (a command runs) or ended.")
    age_seconds: float
    idle_seconds: float
    container: str
    memory_bytes: int | None = Field(
        default=None,
        description="Bytes of memory its container uses, as docker stats shows it (page cache left out), read "
        "at most about 15 s before; absent until the server has read it.",
    )


class SessionList(BaseModel):
    sessions: list[SessionInfo]


class SessionDeleted(BaseModel):
    id: str
    deleted: bool


# What each error status of the contract means, as /openapi.json documents it.
ERROR_STATUSES = {
    400: "args cannot be understood, or a text field holds what no process can receive",
    401: "no token, or a token this server does not accept",
    403: "the policy refuses the request (detail names the argument), or a JupyterHub token may not access this service",
    404: "no such execution or session for this token",
    409: "the session is already running a command",
    413: "the request body (or the command line it makes) is too large",
    422: "the body is not the JSON described here",
    429: "too many executions are running, on the server or for this token: retry after Retry-After seconds",
    503: "the container engine cannot be reached, the server is shutting down, or the JupyterHub that names "
    "callers (auth jupyterhub) cannot say whose the token is",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that may answer ``statuses``: each an :class:`ErrorDetail`."""
    return {status: {"model": ErrorDetail, "description": ERROR_STATUSES[status]} for status in statuses}
