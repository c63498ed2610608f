"""The errors Dockyter raises, each shown in a notebook as one clear line, and its other lines.

IPython renders an exception that has ``_render_traceback_`` with that method instead of
a Python traceback; every error here uses it, so a user sees what went wrong and what to
do, never a stack of Dockyter's internals. Domain modules raise these; only the magics turn
:class:`BadUsage` into IPython's ``UsageError``. :func:`say` writes the warnings and hints,
and :func:`explain_exit` says what an exit status that usually means the runtime failed means.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence

from .wire.contract import EXIT_CANNOT_RUN, EXIT_KILLED, EXIT_NOT_FOUND, EXIT_USAGE

RED = "\x1b[31m"
RESET = "\x1b[0m"


def _always() -> bool:
    return True


# Whether our error lines may be red: the extension ties this to the shell's colour setting
# (`ipython --colors=nocolor`, %colors nocolor), which this package cannot read itself.
in_colour: Callable[[], bool] = _always


def use_colour(decides: Callable[[], bool] | None) -> None:
    """Let ``decides`` say, at each error, whether it may be red (None: always)."""
    global in_colour
    in_colour = decides or _always


def one_line(message: str) -> list[str]:
    """The traceback IPython shows for our errors: a single line, red where colours are on."""
    return [f"{RED}{message}{RESET}" if in_colour() else message]


class DockyterError(Exception):
    """Something a user can fix: the message says what and how."""

    exit_code = EXIT_CANNOT_RUN  # what `_exit_code` says when this stops a run (docker's "could not run it")

    def _render_traceback_(self) -> list[str]:
        return one_line(f"Dockyter: {self}")


class RuntimeNotFound(DockyterError):
    """The container runtime command (``docker``, ``podman``...) is not installed."""

    exit_code = EXIT_NOT_FOUND  # as a shell says "command not found"


class BadUsage(DockyterError):
    """A magic line, a profile name or a setting that cannot be used; the magics show it as a UsageError."""

    exit_code = EXIT_USAGE


class BadSessionRequest(BadUsage):
    """A session name or request that cannot be used (no such session, a name taken, a refused option)."""


class BackendError(DockyterError):
    """The backend could not run the request at all (no daemon, HTTP error, ...)."""


class SessionDead(DockyterError):
    """A session's shell or container is gone (``%docker_session restart`` brings a fresh one)."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SessionUnknown(DockyterError):
    """The server does not know a session it started for us (``404``): it may have ended it, or the
    request carried another token or reached another server. Not a reason to believe it gone."""


class ContainerExitError(DockyterError, subprocess.CalledProcessError):
    """The command in the container exited with a non-zero status.

    A :class:`subprocess.CalledProcessError`, like the one IPython's ``%%bash`` raises,
    so ``except CalledProcessError`` and ``.returncode`` work as users expect.
    """

    def __init__(self, returncode: int, cmd: str, hint: str | None = None) -> None:
        subprocess.CalledProcessError.__init__(self, returncode, cmd)
        self.hint = hint

    def __str__(self) -> str:
        text = f"the command exited with status {self.returncode}"
        return f"{text} ({self.hint})" if self.hint else text


class ContainerNotStarted(ContainerExitError):
    """Nothing ran: the runtime could not start the container (status 125), for ``reason``."""

    def __init__(self, returncode: int, cmd: str, reason: str, hint: str | None = None) -> None:
        super().__init__(returncode, cmd, hint)
        self.reason = reason

    def __str__(self) -> str:
        text = f"the container did not start: {self.reason}"
        return f"{text} ({self.hint})" if self.hint else text


class Interrupted(KeyboardInterrupt):
    """The user interrupted a run; the container has been stopped and removed."""

    def _render_traceback_(self) -> list[str]:
        return one_line(f"Dockyter: {self}")


def say(message: object) -> None:
    """One line from Dockyter on stderr (shown red in a notebook)."""
    sys.stderr.write(f"Dockyter: {message}\n")
    sys.stderr.flush()


REFUSED = "the container runtime refused to start the container: see its message above"
# How container CLIs begin the line that says why they could not start a container.
CLI_PREFIXES = ("docker: ", "Error response from daemon: ", "Error: ")
# How the CLI's flag parser (cobra) begins its complaint about the command line itself; its
# usage text follows ("Usage:  docker run [OPTIONS] IMAGE ...", "Run 'docker run --help' ...").
FLAG_ERRORS = ("unknown flag: ", "unknown shorthand flag: ", "flag needs an argument: ", "invalid argument ")
ENGINE_DOWN = "Cannot connect to the Docker daemon"


def runtime_complaint(text: str, *, surely: bool = False) -> bool:
    """Whether ``text`` starts the way a container CLI says it could not start a container.

    ``surely``: and could not be a program's own words: "Error: " alone is how podman begins,
    and many programs too, unless the CLI's pointer to its usage (``run --help``) follows.
    """
    text = text.lstrip()
    if not text.startswith((*CLI_PREFIXES, *FLAG_ERRORS, ENGINE_DOWN)):
        return False
    return not surely or not text.startswith("Error: ") or "run --help" in text


def not_started_reason(code: int, stderr_tail: str) -> str | None:
    """The runtime's own reason when exit status 125 means the container never started, else None.

    Status 125 is docker's (and podman's) "could not run the container"; a command in the
    container may exit 125 too, so the CLI's own error line must be there as well.
    """
    if code != EXIT_CANNOT_RUN:
        return None
    for line in reversed(stderr_tail.splitlines()):
        line = line.strip()
        if line.startswith(FLAG_ERRORS):
            return line.rstrip(".")
        if line.startswith(CLI_PREFIXES) or ENGINE_DOWN in line:
            for prefix in CLI_PREFIXES:
                line = line.removeprefix(prefix)
            return line.rstrip(".") or None
    return None


def exit_error(
    code: int, reason: str | None, message: str | None, stderr_tail: str, shell: Sequence[str], command: str
) -> ContainerExitError:
    """The error that says how a non-zero run ended: the container did not start, or the command failed.

    ``reason`` and ``message`` are the run's (``"not_started"`` with why, when the backend knows).
    """
    if reason == "not_started" and message:
        why: str | None = message
        tail = message
    else:
        why = None if message else not_started_reason(code, stderr_tail)
        tail = stderr_tail
    if why is not None:
        hint = explain_exit(code, tail, shell)
        return ContainerNotStarted(code, command, why, None if hint == REFUSED else hint)
    return ContainerExitError(code, command, message or explain_exit(code, stderr_tail, shell))


def explain_exit(code: int, stderr_tail: str, shell: Sequence[str]) -> str | None:
    """A hint for an exit ``code`` given the end of stderr, or None when the code speaks for itself."""
    tail = stderr_tail.lower()
    if "cannot connect to the docker daemon" in tail or "is the docker daemon running" in tail:
        return "no container engine answers: start the Docker daemon, or check DOCKER_HOST"
    if "permission denied" in tail and "docker.sock" in tail:
        return (
            "permission denied on the Docker socket: add your user to the 'docker' group, "
            "or set Dockyter.docker_command = ['sudo', 'docker']"
        )
    if (
        "unable to find image" in tail
        or "cannot pull" in tail
        or "pull access denied" in tail
        or "manifest unknown" in tail
    ):
        return "the image is not available locally and could not be pulled: check its name, or build or pull it first"
    if code == EXIT_CANNOT_RUN and not_started_reason(code, stderr_tail) is not None:
        return REFUSED
    if code == 126:
        return "the command in the container could not be executed (permission denied or not executable)"
    if code == 127:
        # docker's runtime names the shell it did not find; podman's init (catatonit) says only
        # "failed to exec pid1", and the program it starts is the shell.
        missing = "executable file not found" in tail or "no such file" in tail
        if shell and missing and (shell[0] in tail or "failed to exec pid1" in tail):
            return f"the image has no {shell[0]!r}: for images without bash, set %config Dockyter.shell = ['sh', '-c']"
        return "command not found in the container"
    if code == EXIT_KILLED:
        return "the container was killed (SIGKILL), often because it ran out of memory"
    return None
