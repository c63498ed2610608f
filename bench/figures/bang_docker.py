"""Figure 2: ``!true`` with redirection on (``%docker IMAGE``), against the bare runtime."""

from __future__ import annotations

from ..context import Context
from ..ipy import new_shell, run_cell, timed_cell
from ..report import FigureResult
from .startup import startup_figure, watched
from .util import docker_backend_argv

NUMBER = 2
TITLE = "`!true` with `%docker` redirection"


def measure(ctx: Context) -> FigureResult:
    shell = new_shell()
    run_cell(shell, f"%docker {ctx.image}")
    own: list[float] = []
    return startup_figure(
        ctx,
        FigureResult(NUMBER, TITLE),
        command="true",
        dockyter=watched(lambda: timed_cell(shell, "!true"), own),
        dockyter_side=f"%docker {ctx.image}; InteractiveShell.run_cell('!true') -> "
        + docker_backend_argv(shell, ctx.image, "true", shown=True),
        control_argv=docker_backend_argv(shell, ctx.image, "true"),
        target=1.05,
        own=own,
    )
