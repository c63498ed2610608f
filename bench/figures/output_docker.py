"""Figure 5: 200 MB of output through ``%%docker`` (docker backend) to a discarding sink."""

from __future__ import annotations

from ..context import Context
from ..ipy import new_shell
from ..report import FigureResult
from ..runtime import output_command
from .bigoutput import output_figure
from .util import docker_backend_argv

NUMBER = 5
TITLE = "200 MB of output through `%%docker`"


def measure(ctx: Context) -> FigureResult:
    shell = new_shell()
    command = output_command(ctx.pick(200, 10))
    result = FigureResult(NUMBER, TITLE.replace("200 MB", f"{ctx.pick(200, 10)} MB"))
    result.sides["dockyter"] = (
        f"%%docker {ctx.image} (cell prints the output), sys.stdout discarding -> "
        + docker_backend_argv(shell, ctx.image, command, shown=True)
    )
    # within 1.10x the time of the same argv writing to /dev/null
    target = round(1 / 1.10, 3)
    return output_figure(ctx, result, shell, control_argv=docker_backend_argv(shell, ctx.image, command), target=target)
