"""The errors Dockyter raises, each shown in a notebook as one clear line.

IPython renders an exception that has ``_render_traceback_`` with that method instead of
a Python traceback; every error here uses it, so a user sees what went wrong and what to
do, never a stack of Dockyter's internals.
"""

from __future__ import annotations

import subprocess

RED = "\x1b[31m"
RESET = "\x1b[0m"


def one_line(message: str) -> list[str]:
    """The traceback IPython shows for our errors: a single red line."""
    return [f"{RED}{message}{RESET}"]


class DockyterError(Exception):
    """Something a user can fix: the message says what and how."""

    exit_code = 125  # what `_exit_code` says when this stops a run (docker's "could not run it")

    def _render_traceback_(self) -> list[str]:
        return one_line(f"Dockyter: {self}")


class RuntimeNotFound(DockyterError):
    """The container runtime command (``docker``, ``podman``...) is not installed."""

    exit_code = 127  # as a shell says "command not found"


class BackendError(DockyterError):
    """The backend could not run the request at all (no daemon, HTTP error, ...)."""


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


class Interrupted(KeyboardInterrupt):
    """The user interrupted a run; the container has been stopped and removed."""

    def _render_traceback_(self) -> list[str]:
        return one_line(f"Dockyter: {self}")
