"""Figure 9: a warm session (``%%docker --session``) against a fresh container and a bare ``docker exec``.

Four checks, each against the bare runtime in the same run (alternating rounds, medians):

* a session cell running ``true`` against a fresh ``%%docker IMAGE`` cell running ``true``;
* the same session cell against ``docker exec CONTAINER bash -c true`` into a running container
  (what a user would type to reuse one), started outside the clock;
* 200 MB printed in a session (to a discarding ``sys.stdout``) against the same command through
  that bare ``docker exec ... > /dev/null``: time ratio;
* the kernel's resident memory over 1,000 session cells (each printing a line), after 100 warm-up
  cells: growth in MB.
"""

from __future__ import annotations

import gc
import shlex
import subprocess

from ..context import Context
from ..ipy import CellFailed, DiscardingStream, new_shell, run_cell, timed_cell
from ..memory import status_kb
from ..report import Check, FigureResult
from ..runtime import BENCH_LABEL, BLOCK_BYTES, bench_container_name, output_command, run_bare, run_id
from ..stats import alternate, median, median_interval, paired_ratios, summary

NUMBER = 10
TITLE = "A warm session: `%%docker --session` against a fresh container and `docker exec`"


def measure(ctx: Context) -> FigureResult:
    result = FigureResult(NUMBER, TITLE)
    shell = new_shell()
    started = timed_cell(shell, f"%docker_session start bench {ctx.image}")
    result.metrics["session_start_s"] = round(started, 3)
    target = bench_container_name()
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", target, "--label", f"{BENCH_LABEL}={run_id()}",
         "--log-driver", "none", ctx.image, "sleep", "3600"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        _latency(ctx, result, shell, target)
        _output(ctx, result, shell, target)
        _memory(ctx, result, shell)
    finally:
        subprocess.run(["docker", "rm", "-f", target], capture_output=True, check=False)
        run_cell(shell, "%docker_session stop --all")
    return result


def _latency(ctx: Context, result: FigureResult, shell: object, target: str) -> None:
    session_cell = "%%docker --session bench\ntrue"
    fresh_cell = f"%%docker {ctx.image}\ntrue"
    exec_argv = ["docker", "exec", target, "bash", "-c", "true"]
    rounds = ctx.pick(30, 3)
    samples = alternate(
        {
            "session": lambda: timed_cell(shell, session_cell),
            "fresh %%docker": lambda: timed_cell(shell, fresh_cell),
            "bare docker exec": lambda: run_bare(exec_argv),
        },
        rounds,
        warmup=ctx.pick(2, 1),
        progress=ctx.progress,
        on_retry=ctx.noting(result.notes),
    )
    session = samples["session"]
    for name, goal, what in (
        ("fresh %%docker", 0.10, "time ratio vs a fresh-container `%%docker` cell"),
        ("bare docker exec", 1.2, "time ratio vs a bare `docker exec` of the same command"),
    ):
        ratios = paired_ratios(session, samples[name])
        low, high = median_interval(ratios)
        result.checks.append(
            Check(
                what,
                median(ratios),
                "x",
                "<=",
                goal,
                f"median of {rounds} paired ratios, 95% interval {low:.4f}-{high:.4f}; session "
                f"{median(session) * 1000:.2f} ms, {name} {median(samples[name]) * 1000:.0f} ms (medians)",
            )
        )
    result.sides.update(
        {
            "session": f"InteractiveShell.run_cell({session_cell!r}) after %docker_session start bench {ctx.image}",
            "fresh %%docker": f"InteractiveShell.run_cell({fresh_cell!r})",
            "bare docker exec": shlex.join(exec_argv) + " (into a running `docker run -d ... sleep 3600`)",
        }
    )
    result.metrics.update({f"latency {name}": summary(values) for name, values in samples.items()})
    result.samples.update({f"latency {name}": [round(v, 5) for v in values] for name, values in samples.items()})


def _output(ctx: Context, result: FigureResult, shell: object, target: str) -> None:
    blocks = ctx.pick(200, 10)
    size = blocks * BLOCK_BYTES
    command = output_command(blocks)
    cell = f"%%docker --session bench\n{command}"
    exec_argv = ["docker", "exec", target, "bash", "-c", command]

    def session() -> float:
        sink = DiscardingStream()
        seconds = timed_cell(shell, cell, sink)
        if sink.chars != size:
            raise CellFailed(f"the sink received {sink.chars} characters, not {size}")
        return seconds

    rounds = ctx.pick(5, 2)
    samples = alternate(
        {"session": session, "bare docker exec": lambda: run_bare(exec_argv, stdout=subprocess.DEVNULL)},
        rounds,
        warmup=1,
        progress=ctx.progress,
        after=lambda: getattr(shell.history_manager, "outputs", {}).clear(),  # type: ignore[attr-defined]
        on_retry=ctx.noting(result.notes),
    )
    ratio = median(paired_ratios(samples["session"], samples["bare docker exec"]))
    rate = {name: size / 1e6 / median(values) for name, values in samples.items()}
    result.checks.append(
        Check(
            f"time ratio, {size / 1e6:.0f} MB printed in a session vs bare `docker exec ... > /dev/null`",
            ratio,
            "x",
            "<=",
            1.10,
            f"session {rate['session']:.0f} MB/s, bare docker exec {rate['bare docker exec']:.0f} MB/s (medians)",
        )
    )
    result.sides["output bare docker exec"] = shlex.join(exec_argv) + " > /dev/null"
    result.samples.update({f"output {name}": [round(v, 4) for v in values] for name, values in samples.items()})


def _memory(ctx: Context, result: FigureResult, shell: object) -> None:
    cells = ctx.pick(1000, 50)
    cell = "%%docker --session bench\necho one line of output"
    for _ in range(ctx.pick(100, 10)):
        run_cell(shell, cell)
    gc.collect()
    before = status_kb("self", "VmRSS")
    for _ in range(cells):
        run_cell(shell, cell)
    gc.collect()
    after = status_kb("self", "VmRSS")
    growth = (after - before) / 1024
    result.checks.append(
        Check(
            f"kernel resident memory growth over {cells} session cells",
            growth,
            "MB",
            "<=",
            5.0,
            f"VmRSS {before / 1024:.1f} MB after the warm-up cells, {after / 1024:.1f} MB after {cells} more",
        )
    )
