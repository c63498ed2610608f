"""Figure 9: a ``%%docker`` cell through ``dockyter-server`` under gVisor (``runsc``), against
the same cell through a server on runc, in the same run.

Two servers differ only in their ``runtime`` setting; one shell sends the same cell to each in
alternating rounds (switching ``api_url`` and ``api_token`` outside the clock). The servers'
own command lines, started directly, measure what the runtime alone costs the engine.
Needs the engine to know ``runsc`` (``bash .ci/provision`` registers it as root).
"""

from __future__ import annotations

import shlex

from ..context import Context
from ..ipy import new_shell, run_cell, timed_cell
from ..report import Check, FigureResult
from ..runtime import bench_container_name, docker, relabel, run_bare
from ..server import BenchServer
from ..stats import Variant, alternate, median, median_interval, paired_ratios, summary
from .util import magics, shown, use_api

NUMBER = 9
TITLE = "`%%docker` cell through dockyter-server under gVisor (runsc) vs runc"
TARGET = 2.0  # gVisor's sandbox may at most double the time of a short cell


def measure(ctx: Context) -> FigureResult:
    runtimes = docker("info", "--format", "{{json .Runtimes}}").stdout
    if '"runsc"' not in runtimes:
        raise RuntimeError("the engine has no runsc runtime (bash .ci/provision, as root, registers gVisor's runsc)")
    result = FigureResult(NUMBER, TITLE)
    shell = new_shell()
    cell = f"%%docker {ctx.image}\ntrue"
    with ctx.server(runtime="runsc") as gvisor, ctx.server(runtime="runc") as runc:
        use_api(shell, runc)
        settings = magics(shell)

        def through(server: BenchServer) -> Variant:
            def run() -> float:
                settings.api_url, settings.api_token = server.url, server.token  # outside the clock
                return timed_cell(shell, cell)

            return run

        for server in (gvisor, runc):  # first connections
            settings.api_url, settings.api_token = server.url, server.token
            run_cell(shell, cell)
        argv = {name: server.run_argv(ctx.image, "true") for name, server in (("runsc", gvisor), ("runc", runc))}
        variants: dict[str, Variant] = {"runsc cell": through(gvisor), "runc cell": through(runc)}
        for name, line in argv.items():
            if line is not None:
                variants[f"{name} argv"] = _direct(line)
        rounds = ctx.pick(20, 3)
        samples = alternate(variants, rounds, warmup=1, progress=ctx.progress, on_retry=ctx.noting(result.notes))

    ratios = paired_ratios(samples["runsc cell"], samples["runc cell"])
    low, high = median_interval(ratios)
    result.checks.append(
        Check(
            "time ratio of the cell, runsc server vs runc server",
            median(ratios),
            "x",
            "<=",
            TARGET,
            f"median of {rounds} paired ratios, 95% interval {low:.3f}-{high:.3f}; runsc "
            f"{median(samples['runsc cell']) * 1000:.0f} ms, runc {median(samples['runc cell']) * 1000:.0f} ms (medians)",
        )
    )
    if "runsc argv" in samples and "runc argv" in samples:
        engine = paired_ratios(samples["runsc argv"], samples["runc argv"])
        low, high = median_interval(engine)
        result.checks.append(
            Check(
                "time ratio of the server's `docker run` started directly, runsc vs runc",
                median(engine),
                "x",
                "<=",
                TARGET,
                f"95% interval {low:.3f}-{high:.3f}; runsc {median(samples['runsc argv']) * 1000:.0f} ms, "
                f"runc {median(samples['runc argv']) * 1000:.0f} ms (medians): the runtime alone, no server",
            )
        )
    result.sides = {
        "runsc cell": f"InteractiveShell.run_cell({cell!r}) -> POST {gvisor.url}/execute -> "
        + (shown(argv["runsc"]) if argv["runsc"] else "the server's docker run"),
        "runc cell": f"the same cell -> POST {runc.url}/execute -> "
        + (shown(argv["runc"]) if argv["runc"] else "the server's docker run"),
    }
    for name, line in argv.items():
        if line is not None:
            result.sides[f"{name} argv"] = shlex.join(relabel(line, "<fresh name>"))
    result.notes.append(
        "both servers keep their default hardening; runsc is registered with --network=none "
        "(its runtimeArgs in /etc/docker/daemon.json) and its default platform"
    )
    result.metrics.update({name: summary(values) for name, values in samples.items()})
    result.samples.update({name: [round(v, 5) for v in values] for name, values in samples.items()})
    return result


def _direct(argv: list[str]) -> Variant:
    return lambda: run_bare(relabel(argv, bench_container_name()))
