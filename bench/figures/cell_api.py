"""Figure 3: ``%%docker`` through ``dockyter-server`` (API backend, streaming), against the bare runtime."""

from __future__ import annotations

from ..context import Context
from ..ipy import new_shell, run_cell, timed_cell
from ..report import FigureResult
from .startup import startup_figure
from .util import shown, use_api

NUMBER = 3
TITLE = "`%%docker` cell through dockyter-server (API backend)"


def measure(ctx: Context) -> FigureResult:
    shell = new_shell()
    with ctx.server() as server:
        use_api(shell, server)
        cell = f"%%docker {ctx.image}\ntrue"
        run_cell(shell, cell)  # first connection
        control = server.run_argv(ctx.image, "true")
        own: list[float] = []

        def dockyter() -> float:
            """The cell, and its time outside the server's own record of the execution's duration."""
            seen = len(server.executions())
            seconds = timed_cell(shell, cell)
            records = server.executions()[seen:]
            if len(records) == 1 and isinstance(records[0].get("duration"), (int, float)):
                own.append(seconds - records[0]["duration"])
            return seconds

        result = startup_figure(
            ctx,
            FigureResult(NUMBER, TITLE),
            command="true",
            dockyter=dockyter,
            dockyter_side=f"InteractiveShell.run_cell({cell!r}) -> POST {server.url}/execute (NDJSON stream) -> "
            + (shown(control) if control else "the server's docker run"),
            control_argv=control,
            target=1.15,
            own=own,
            own_label="cell time - the server's logged execution duration",
        )
        result.notes.append(
            "the server runs with its default hardening (--network none, --memory, --cpus, --pids-limit, "
            "--cap-drop ALL, no-new-privileges, --pull missing); the same-argv control runs exactly that "
            "command line directly, so its ratio isolates the server and client"
        )
    return result
