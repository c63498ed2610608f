"""The shape shared by figures 1-3: one short command, Dockyter against the bare runtime.

Three variants run in alternating rounds:

* ``dockyter`` -- the command as a user runs it in IPython (``%%docker``, ``!``, API backend);
* ``bare`` -- ``docker run --rm IMAGE bash -lc CMD``, what a user would type, started directly;
* ``same argv`` -- the exact ``docker run`` command line Dockyter (or the server) runs, started
  directly: the difference between it and ``dockyter`` is Dockyter's own cost; the difference
  between it and ``bare`` is what the extra flags (``--init``, ``--log-driver none``, labels,
  the server's limits) cost the engine.

A container start varies by tens of percent from one run to the next on a busy machine, so a
ratio of two starts is noisy however many rounds are taken. Where Dockyter starts the CLI in
this process (docker backend), its own cost is also measured directly: cell time minus the
life of the ``docker run`` process it started (:mod:`bench.spawnwatch`), run by run. That is
Dockyter's whole overhead, engine noise subtracted out.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence

from ..context import Context
from ..report import Check, FigureResult
from ..runtime import bare_argv, bench_container_name, relabel, run_bare
from ..spawnwatch import SpawnWatch
from ..stats import Variant, alternate, median, median_interval, paired_ratios, summary


def watched(cell_run: Callable[[], float], own: list[float]) -> Variant:
    """``cell_run`` (returns seconds), also noting in ``own`` the seconds spent outside the ``docker run`` it started."""

    def run() -> float:
        with SpawnWatch() as watch:
            seconds = cell_run()
        own.append(seconds - watch.life())
        return seconds

    return run


def startup_figure(
    ctx: Context,
    result: FigureResult,
    *,
    command: str,
    dockyter: Variant,
    dockyter_side: str,
    control_argv: Sequence[str] | None,
    target: float,
    own: list[float] | None = None,
    own_label: str = "cell time - docker CLI life",
    cli: str = "docker",
) -> FigureResult:
    """Measure and fill ``result`` with the checks, samples and sides of a startup comparison.

    ``own``: filled by ``dockyter`` with Dockyter's own seconds for each run (see :func:`watched`).
    ``cli``: the container CLI of the bare run (``podman`` for figure 19).
    """
    own = own if own is not None else []
    bare = bare_argv(ctx.image, command, cli=cli)
    variants: dict[str, Variant] = {"dockyter": dockyter, "bare": lambda: run_bare(bare)}
    if control_argv is not None:
        variants["same argv"] = lambda: run_bare(relabel(control_argv, bench_container_name()))
    rounds = ctx.pick(30, 3)
    warmup = ctx.pick(2, 1)
    samples = alternate(variants, rounds, warmup=warmup, progress=ctx.progress, on_retry=ctx.noting(result.notes))
    own = own[-rounds:] if own else []  # the warm-up rounds' values are dropped, as alternate drops their times

    result.sides = {"dockyter": dockyter_side, "bare": shlex.join(bare)}
    ratios = paired_ratios(samples["dockyter"], samples["bare"])
    low, high = median_interval(ratios)
    result.checks.append(
        Check(
            f"time ratio vs bare `{cli} run` as typed",
            median(ratios),
            "x",
            "<=",
            target,
            f"median of {rounds} paired ratios, 95% interval {low:.3f}-{high:.3f}; dockyter "
            f"{median(samples['dockyter']) * 1000:.0f} ms, bare {median(samples['bare']) * 1000:.0f} ms (medians)",
        )
    )
    if control_argv is not None:
        result.sides["same argv"] = shlex.join(relabel(control_argv, "<fresh name>"))
        same = samples["same argv"]
        ratios_same = paired_ratios(samples["dockyter"], same)
        low, high = median_interval(ratios_same)
        flags = median(paired_ratios(same, samples["bare"]))
        result.checks.append(
            Check(
                f"time ratio vs the same `{cli} run` argv started directly",
                median(ratios_same),
                "x",
                "<=",
                target,
                f"95% interval {low:.3f}-{high:.3f}; the extra flags alone: same argv / bare = x{flags:.3f}",
            )
        )
        result.metrics["flags_ratio"] = round(flags, 4)
    else:
        result.notes.append("the exact argv could not be built, so there is no same-argv control")
    if own:
        own_ms = [value * 1000 for value in own]
        bare_ms = median(samples["bare"]) * 1000
        result.checks.append(
            Check(
                f"ratio implied by Dockyter's own time ({own_label}) over bare",
                1 + median(own_ms) / bare_ms,
                "x",
                "<=",
                target,
                f"Dockyter's own time per run: median {median(own_ms):.1f} ms (min {min(own_ms):.1f}, max "
                f"{max(own_ms):.1f}) against {bare_ms:.0f} ms for a bare run",
            )
        )
        result.metrics["own_ms"] = summary(own_ms, 2)
        result.samples["own_ms"] = [round(v, 3) for v in own_ms]
    result.metrics.update({name: summary(values) for name, values in samples.items()})
    result.samples.update({name: [round(v, 5) for v in values] for name, values in samples.items()})
    return result
