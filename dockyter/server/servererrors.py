"""Why an execution could not be started, each with the HTTP status the server answers with.

Both executors (the engine's and the swarm's) and the session registry raise these; the app
turns them into one reply. :func:`check_argv_size` refuses a command line the kernel would
not let one process receive, before anything is started.
"""

from __future__ import annotations

MAX_ARGUMENT = 131072 - 1  # Linux MAX_ARG_STRLEN, less the terminating NUL
MAX_ARGV = 1024 * 1024  # a safe share of ARG_MAX for the whole command line


class ExecutorError(Exception):
    """The execution could not be started; ``status`` is the HTTP status to answer with."""

    status = 503


class EngineUnavailable(ExecutorError):
    """The container CLI is missing or cannot reach its engine (503)."""


class TooBusy(ExecutorError):
    """``max_concurrent`` executions are already running (429)."""

    status = 429


class CommandTooLong(ExecutorError):
    """The command line would exceed what the kernel lets one process receive (413)."""

    status = 413


class EngineDisagrees(ExecutorError):
    """The engine made something else than the policy approved; the container was removed unstarted (403)."""

    status = 403


class ShuttingDown(ExecutorError):
    """The server is stopping and takes no new executions (503)."""


def check_argv_size(argv: list[str]) -> None:
    """Raise :class:`CommandTooLong` when the kernel would refuse ``argv`` (E2BIG)."""
    sizes = [len(arg.encode("utf-8", "surrogateescape")) for arg in argv]
    if max(sizes) > MAX_ARGUMENT:
        raise CommandTooLong(
            f"one argument (cmd or args) is longer than {MAX_ARGUMENT} bytes, the most a process accepts"
        )
    if sum(sizes) + len(sizes) > MAX_ARGV:
        raise CommandTooLong(f"the command line would be longer than {MAX_ARGV} bytes")
