"""The shape shared by figures 5 and 6: 200 MB of output through ``%%docker`` to a sink that
discards it, against the bare runtime writing to ``/dev/null``.

The container prints ``blocks`` copies of a 1 MB block of ASCII text with ``cat`` (fast: big
writes), so the container itself is never the bottleneck. Three variants alternate:

* ``dockyter`` -- the cell in a real IPython shell; ``sys.stdout`` is a stream that counts and
  discards what it is given, and the count is checked;
* ``bare`` -- ``docker run --rm IMAGE bash -lc CMD > /dev/null``, as a user would type it
  (so with the engine's default json-file logging, which writes every byte to disk too);
* ``same argv`` -- Dockyter's (or the server's) exact ``docker run`` argv, ``> /dev/null``.

Each time includes starting and removing the container, on every side. Throughput ratio =
bare seconds / dockyter seconds, per round, median. Memory: the growth of the peak resident
size (``VmHWM``, reset before the runs) over the resident size before, of the process that
runs the cell, and of the server's process.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
from collections.abc import Sequence
from typing import Any

from ..context import Context
from ..ipy import CellFailed, DiscardingStream, run_cell, streams, timed_cell
from ..memory import PeakWindow
from ..report import Check, FigureResult
from ..runtime import (
    BLOCK_BYTES,
    bare_argv,
    bench_container_name,
    output_command,
    relabel,
    run_bare,
)
from ..stats import Variant, alternate, median, median_ratio, summary

MEMORY_TARGET_MB = 50.0


def _forget_outputs(shell: Any) -> None:
    """Drop what IPython 9 keeps of every cell's printed output (``history_manager.outputs``),
    so that each measured cell starts from the same memory (outside the clock)."""
    outputs = getattr(shell.history_manager, "outputs", None)
    if outputs is not None:
        outputs.clear()


def output_figure(
    ctx: Context,
    result: FigureResult,
    shell: Any,
    *,
    control_argv: Sequence[str] | None,
    target: float,
    server_pid: int | None = None,
) -> FigureResult:
    blocks = ctx.pick(200, 10)
    size = blocks * BLOCK_BYTES
    command = output_command(blocks)
    cell = f"%%docker {ctx.image}\n{command}"
    run_cell(shell, f"%%docker {ctx.image}\n{output_command(1)}")  # warm-up: imports, connection, buffers

    def dockyter() -> float:
        sink = DiscardingStream()
        seconds = timed_cell(shell, cell, sink)
        if sink.chars != size:
            raise CellFailed(f"the sink received {sink.chars} characters, not {size}")
        return seconds

    bare = bare_argv(ctx.image, command)
    variants: dict[str, Variant] = {"dockyter": dockyter, "bare": lambda: run_bare(bare, stdout=subprocess.DEVNULL)}
    if control_argv is not None:
        variants["same argv"] = lambda: run_bare(
            relabel(control_argv, bench_container_name()), stdout=subprocess.DEVNULL
        )
    # Memory of the process running the cell, for ONE cell, before any other big run (memory a
    # run frees stays in the process and would hide the next run's growth): Dockyter alone first
    # (run_cell_magic skips run_cell's capture of the cell's output), then as a user runs it.
    # The server's peak is watched over every run, from before the first big one.
    rounds = ctx.pick(5, 2)
    server_window = PeakWindow(server_pid) if server_pid else None
    with server_window or contextlib.nullcontext():
        with PeakWindow() as alone, streams(DiscardingStream(), DiscardingStream()):
            shell.run_cell_magic("docker", ctx.image, command)
        with PeakWindow() as client:
            run_cell(shell, cell)
        _forget_outputs(shell)
        samples = alternate(
            variants,
            rounds,
            warmup=0,
            progress=ctx.progress,
            after=lambda: _forget_outputs(shell),
            on_retry=ctx.noting(result.notes),
        )

    def rate(seconds: float) -> float:
        return size / 1e6 / seconds

    ratio = median_ratio(samples["bare"], samples["dockyter"])
    result.checks.append(
        Check(
            "throughput ratio vs bare `docker run ... > /dev/null` as typed",
            ratio,
            "x",
            ">=",
            target,
            f"{size / 1e6:.0f} MB; dockyter {rate(median(samples['dockyter'])):.0f} MB/s, "
            f"bare {rate(median(samples['bare'])):.0f} MB/s (medians, container start included)",
        )
    )
    if control_argv is not None:
        same = samples["same argv"]
        result.checks.append(
            Check(
                "throughput ratio vs the same argv `> /dev/null`",
                median_ratio(same, samples["dockyter"]),
                "x",
                ">=",
                target,
                f"same argv {rate(median(same)):.0f} MB/s; this isolates Dockyter's own cost "
                "(the bare command also pays for the engine's json-file log)",
            )
        )
        result.sides["same argv"] = shlex.join(relabel(control_argv, "<fresh name>")) + " > /dev/null"
    who = "kernel" if server_pid is None else "client (kernel)"
    result.checks.append(
        Check(
            f"peak memory growth of the {who} process, one cell via run_cell",
            client.growth_mb,
            "MB",
            "<=",
            MEMORY_TARGET_MB,
            client.describe() + "; includes what IPython itself keeps of the cell's output",
        )
    )
    result.checks.append(
        Check(
            f"peak memory growth of the {who} process, Dockyter alone (run_cell_magic)",
            alone.growth_mb,
            "MB",
            "<=",
            MEMORY_TARGET_MB,
            alone.describe() + "; the same cell without IPython 9's per-cell output history (InteractiveShell._tee)",
        )
    )
    if server_window is not None:
        result.checks.append(
            Check(
                "peak memory growth of the server process",
                server_window.growth_mb,
                "MB",
                "<=",
                MEMORY_TARGET_MB,
                server_window.describe(),
            )
        )
    result.sides["bare"] = shlex.join(bare) + " > /dev/null"
    result.sides.setdefault("dockyter", f"InteractiveShell.run_cell({cell!r}), sys.stdout discarding")
    result.metrics.update({name: summary(values) for name, values in samples.items()})
    result.metrics["bytes"] = size
    result.metrics["throughput_MBps"] = {name: round(rate(median(values)), 1) for name, values in samples.items()}
    result.samples = {name: [round(v, 4) for v in values] for name, values in samples.items()}
    return result
