"""Every error a request can meet, each with the HTTP answer it becomes: one root, :class:`ServerError`.

Whatever part of the server finds the problem (the policy, an executor, the sessions, auth)
raises one of these, and one handler registered on the application
(:func:`~dockyter.server.http.errorhandlers.install_error_handlers`) turns it into
``{"detail": "<the message>"}`` with the error's ``status`` and ``headers``: a 429 carries its
``Retry-After``, a 401 its ``WWW-Authenticate``. Nothing else maps errors to answers.

What is not a request's problem stays out of this tree: a bad setting (``SettingsError``) or a
missing runtime (``RuntimeUnavailable``) ends the start-up with one line, and the helpers' own
errors (a refused mount source, an unreadable engine socket, a Swarm translation) are turned
into one of these where they are caught. :func:`check_argv_size` refuses a command line the
kernel would not let one process receive, before anything is started.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

MAX_ARGUMENT = 131072 - 1  # Linux MAX_ARG_STRLEN, less the terminating NUL
MAX_ARGV = 1024 * 1024  # a safe share of ARG_MAX for the whole command line


class ServerError(Exception):
    """A request cannot be served as asked: the answer's ``status``, ``headers`` and one-line message."""

    status: ClassVar[int] = 500

    def __init__(self, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = dict(headers or {})


class ArgsUnreadable(ServerError):
    """``args`` cannot be understood as ``docker run`` would read them (400)."""

    status = 400


class SessionError(ServerError):
    """A session cannot be created or used as asked (400)."""

    status = 400


class Unauthenticated(ServerError):
    """No token, or one the server does not accept (401, with the ``WWW-Authenticate`` challenge)."""

    status = 401


class PolicyError(ServerError):
    """The policy refuses the request (403); the message names the offending argument."""

    status = 403


class NoServiceAccess(ServerError):
    """A JupyterHub token whose scopes do not grant access to this service (403)."""

    status = 403


class EngineDisagrees(ServerError):
    """The engine made something else than the policy approved; removed unstarted (403)."""

    status = 403


class NotOnSwarm(ServerError):
    """The request asks for something a Swarm service cannot do (403, like a policy refusal)."""

    status = 403


class NotFound(ServerError):
    """No such execution or session for this token (404): another token's is not found either."""

    status = 404


class SessionBusy(ServerError):
    """The session is already running a command (409)."""

    status = 409


class CommandTooLong(ServerError):
    """The command line would exceed what the kernel lets one process receive (413)."""

    status = 413


class TooBusy(ServerError):
    """Too many runs already, on the server or for this token (429); ``Retry-After`` says when to try again."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"Retry-After": str(retry_after)})


class EngineUnavailable(ServerError):
    """The container CLI is missing or cannot reach its engine (503)."""

    status = 503


class HubUnavailable(ServerError):
    """The JupyterHub that names this server's callers cannot say whose a token is (503)."""

    status = 503


class ShuttingDown(ServerError):
    """The server is stopping and takes no new runs (503)."""

    status = 503


def check_argv_size(argv: list[str]) -> None:
    """Raise :class:`CommandTooLong` when the kernel would refuse ``argv`` (E2BIG)."""
    sizes = [len(arg.encode("utf-8", "surrogateescape")) for arg in argv]
    if max(sizes) > MAX_ARGUMENT:
        raise CommandTooLong(
            f"one argument (cmd or args) is longer than {MAX_ARGUMENT} bytes, the most a process accepts"
        )
    if sum(sizes) + len(sizes) > MAX_ARGV:
        raise CommandTooLong(f"the command line would be longer than {MAX_ARGV} bytes")
