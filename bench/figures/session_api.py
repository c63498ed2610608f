"""Figure 10: a warm session through ``dockyter-server`` against a fresh API cell; memory over 1,000 cells.

* a session cell running ``true`` (``%%docker --session`` on the api backend: ``POST
  /sessions/{id}/execute``, NDJSON) against a fresh ``%%docker IMAGE`` cell through the same
  server (``POST /execute``: a container per cell), alternating rounds, paired ratios;
* the server's and the kernel's resident memory over 1,000 session cells after 100 warm-up cells;
* the server process's CPU time while the session is idle with ``yes &`` printing in the
  background, as a share of one core, beside the same idle time with nothing printing;
* a listing of the session with its memory (``%docker_session``: ``GET /sessions/{id}``, whose
  ``memory_bytes`` the server reads in the background) against ``docker stats --no-stream`` of
  the session's container, which a listing that read the figure itself would wait for.
"""

from __future__ import annotations

import gc
import os
import subprocess
import time

from dockyter.sessionmanager import COLUMNS

from ..context import Context
from ..ipy import new_shell, run_cell, timed_cell
from ..memory import status_kb
from ..report import Check, FigureResult
from ..stats import alternate, median, median_interval, paired_ratios, summary, timed
from .util import use_api

NUMBER = 11
TITLE = "A warm session through dockyter-server against a fresh API cell"


def measure(ctx: Context) -> FigureResult:
    result = FigureResult(NUMBER, TITLE)
    shell = new_shell()
    with ctx.server() as server:
        use_api(shell, server)
        result.metrics["session_start_s"] = round(timed_cell(shell, f"%docker_session start bench {ctx.image}"), 3)
        try:
            session_cell = "%%docker --session bench\ntrue"
            fresh_cell = f"%%docker {ctx.image}\ntrue"
            rounds = ctx.pick(30, 3)
            samples = alternate(
                {
                    "session": lambda: timed_cell(shell, session_cell),
                    "fresh API cell": lambda: timed_cell(shell, fresh_cell),
                },
                rounds,
                warmup=ctx.pick(2, 1),
                progress=ctx.progress,
                on_retry=ctx.noting(result.notes),
            )
            ratios = paired_ratios(samples["session"], samples["fresh API cell"])
            low, high = median_interval(ratios)
            result.checks.append(
                Check(
                    "time ratio vs a fresh-container `%%docker` cell through the same server",
                    median(ratios),
                    "x",
                    "<=",
                    0.15,
                    f"median of {rounds} paired ratios, 95% interval {low:.4f}-{high:.4f}; session "
                    f"{median(samples['session']) * 1000:.1f} ms, fresh {median(samples['fresh API cell']) * 1000:.0f} ms",
                )
            )
            result.metrics.update({name: summary(values) for name, values in samples.items()})
            result.samples.update({name: [round(v, 5) for v in values] for name, values in samples.items()})
            result.sides = {
                "session": f"InteractiveShell.run_cell({session_cell!r}) -> POST {server.url}/sessions/ID/execute (NDJSON)",
                "fresh API cell": f"InteractiveShell.run_cell({fresh_cell!r}) -> POST {server.url}/execute (NDJSON)",
            }
            _memory(ctx, result, shell, server.pid)
            _background(ctx, result, shell, server.pid)
            _listing(ctx, result, shell)
        finally:
            run_cell(shell, "%docker_session stop --all")
    return result


def _memory(ctx: Context, result: FigureResult, shell: object, server_pid: int) -> None:
    cells = ctx.pick(1000, 50)
    cell = "%%docker --session bench\necho one line of output"
    for _ in range(ctx.pick(100, 10)):
        run_cell(shell, cell)
    gc.collect()
    before = {"server": status_kb(server_pid, "VmRSS"), "kernel": status_kb("self", "VmRSS")}
    for _ in range(cells):
        run_cell(shell, cell)
    gc.collect()
    after = {"server": status_kb(server_pid, "VmRSS"), "kernel": status_kb("self", "VmRSS")}
    for who in ("server", "kernel"):
        result.checks.append(
            Check(
                f"{who} resident memory growth over {cells} session cells",
                (after[who] - before[who]) / 1024,
                "MB",
                "<=",
                5.0,
                f"VmRSS {before[who] / 1024:.1f} MB after the warm-up cells, {after[who] / 1024:.1f} MB after {cells} more",
            )
        )


def _background(ctx: Context, result: FigureResult, shell: object, server_pid: int) -> None:
    seconds = ctx.pick(10.0, 3.0)
    quiet = _cpu_share(server_pid, seconds)
    run_cell(shell, "%%docker --session bench\nyes &")
    time.sleep(0.5)  # the cell's own end is behind us: the session is idle
    flooded = _cpu_share(server_pid, seconds)
    run_cell(shell, "%%docker --session bench\nkill %1; wait 2>/dev/null; true")
    result.checks.append(
        Check(
            "server CPU while an idle session runs `yes &`",
            flooded * 100,
            "% of a core",
            "<=",
            3.0,
            f"over {seconds:g} s of /proc/PID/stat; {quiet * 100:.2f}% over the same time idle without output",
        )
    )


def _cpu_share(pid: int, seconds: float) -> float:
    """The share of one core process ``pid`` uses over the next ``seconds`` (user + system, /proc/PID/stat)."""

    def used() -> float:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before, started = used(), time.monotonic()
    time.sleep(seconds)
    return (used() - before) / (time.monotonic() - started)


def _listing(ctx: Context, result: FigureResult, shell: object) -> None:
    sessions = shell._dockyter.sessions  # type: ignore[attr-defined]
    [row] = sessions.rows()
    container = row[COLUMNS.index("container")]

    def listing() -> None:
        [shown] = sessions.rows()
        if shown[COLUMNS.index("memory")] == "-":  # the server's figure, read in the background
            raise RuntimeError("the listing shows no memory figure for the session")

    def stats() -> None:
        subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container], capture_output=True, check=True
        )

    rounds = ctx.pick(20, 3)
    samples = alternate(
        {"listing": lambda: timed(listing), "docker stats": lambda: timed(stats)}, rounds, progress=ctx.progress
    )
    ratios = paired_ratios(samples["listing"], samples["docker stats"])
    low, high = median_interval(ratios)
    result.checks.append(
        Check(
            "`%docker_session` listing with the memory figure, time ratio vs `docker stats --no-stream` of its container",
            median(ratios),
            "x",
            "<=",
            0.5,
            f"median of {rounds} paired ratios, 95% interval {low:.4f}-{high:.4f}; listing "
            f"{median(samples['listing']) * 1000:.1f} ms, docker stats {median(samples['docker stats']) * 1000:.0f} ms",
        )
    )
    result.metrics.update({f"{name} (memory)": summary(values) for name, values in samples.items()})
