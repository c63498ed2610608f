"""Problems found while Dockyter loads, said where the user will see them.

Inside a cell (``%load_ext dockyter``) each is said at once, one line on stderr. When a kernel
loads the extension at start-up (``c.InteractiveShellApp.extensions`` in ``ipython_config.py``,
as a JupyterHub site profile does), nothing written then reaches a notebook: each problem goes
to the kernel's log, and waits for the first cell that uses Dockyter, where it is said once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from traitlets.log import get_logger

from .errors import say


def in_a_request(shell: Any) -> bool:
    """Whether output written now reaches the user: a kernel answering a request, or a terminal."""
    if shell is None or not hasattr(shell, "parent_header"):
        return True  # a terminal IPython (or no shell): stderr is the screen
    return bool(shell.parent_header)  # ipykernel: empty while no request is being answered


class Announcer:
    """Says loading problems now, or logs them and keeps them for the first cell that uses Dockyter."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.pending: list[str] = []

    def problems(self, problems: Iterable[object]) -> None:
        for problem in problems:
            if in_a_request(self.shell):
                say(problem)
            else:
                get_logger().warning("Dockyter: %s", problem)
                self.pending.append(str(problem))

    def flush(self) -> None:
        """Say what is pending (once); call where a cell starts using Dockyter."""
        pending, self.pending = self.pending, []
        for problem in pending:
            say(problem)
