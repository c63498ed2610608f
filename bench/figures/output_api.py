"""Figure 6: 200 MB of output through ``%%docker`` with the API backend and ``dockyter-server``."""

from __future__ import annotations

from ..context import Context
from ..ipy import new_shell
from ..report import FigureResult
from ..runtime import output_command
from .bigoutput import output_figure
from .util import shown, use_api

NUMBER = 6
TITLE = "200 MB of output through dockyter-server (API backend)"


def measure(ctx: Context) -> FigureResult:
    shell = new_shell()
    command = output_command(ctx.pick(200, 10))
    with ctx.server(max_output_bytes=10**12) as server:
        use_api(shell, server)
        control = server.run_argv(ctx.image, command)
        result = FigureResult(NUMBER, TITLE.replace("200 MB", f"{ctx.pick(200, 10)} MB"))
        result.sides["dockyter"] = (
            f"%%docker {ctx.image} (cell prints the output) via POST {server.url}/execute (NDJSON), "
            f"sys.stdout discarding -> " + (shown(control) if control else "the server's docker run")
        )
        result.notes.append(
            "the server runs as its own process (python -m dockyter.server) with max_output_bytes raised to 10^12"
        )
        return output_figure(ctx, result, shell, control_argv=control, target=0.5, server_pid=server.pid)
