"""Figure 1: ``%%docker IMAGE`` running ``true`` in a real IPython shell, against the bare runtime."""

from __future__ import annotations

from ..context import Context
from ..ipy import new_shell, timed_cell
from ..report import FigureResult
from .startup import startup_figure, watched
from .util import docker_backend_argv

NUMBER = 1
TITLE = "`%%docker` cell running `true`"


def measure(ctx: Context) -> FigureResult:
    shell = new_shell()
    cell = f"%%docker {ctx.image}\ntrue"
    own: list[float] = []
    return startup_figure(
        ctx,
        FigureResult(NUMBER, TITLE),
        command="true",
        dockyter=watched(lambda: timed_cell(shell, cell), own),
        dockyter_side=f"InteractiveShell.run_cell({cell!r}) -> "
        + docker_backend_argv(shell, ctx.image, "true", shown=True),
        control_argv=docker_backend_argv(shell, ctx.image, "true"),
        target=1.05,
        own=own,
    )
