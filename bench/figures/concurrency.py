"""Figure 7: 32 executions of ``sleep 2`` sent to ``dockyter-server`` at once, against the same
32 ``docker run`` started directly in parallel.

Each side starts one thread per execution, releases them together (a barrier) and measures
the wall time until the last one is done. The Dockyter side uses the API backend exactly as a
kernel does (one ``APIBackend`` per thread, so each has its own HTTP connection, as separate
kernels would); the server's ``max_concurrent`` is raised to 64, and its per-token share turned off
(``max_concurrent_per_token = 0``: one token runs them all), so that none is refused.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable

from dockyter.backends.base import RunRequest
from dockyter.backends.registry import backend_class
from dockyter.output import OutputSink
from dockyter.wire.dockerargs import parse_run_args

from ..context import Context
from ..ipy import new_shell
from ..report import Check, FigureResult
from ..runtime import bare_argv, bench_container_name, relabel, run_bare
from ..stats import Variant, alternate, median, median_ratio, summary
from .util import magics, shown, use_api

NUMBER = 7
TITLE = "32 × `sleep 2` at once through dockyter-server"


def all_at_once(count: int, job: Callable[[], None]) -> float:
    """Seconds from releasing ``count`` threads running ``job`` together until the last is done."""
    barrier = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            job()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, name=f"bench-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} of {count} executions failed, the first: {errors[0]}")
    return seconds


def _run(argv: list[str]) -> None:
    run_bare(argv)


def measure(ctx: Context) -> FigureResult:
    count = ctx.pick(32, 6)
    pause = ctx.pick(2, 1)
    command = f"sleep {pause}"
    result = FigureResult(NUMBER, f"{count} × `{command}` at once through dockyter-server")
    shell = new_shell()
    with ctx.server(max_concurrent=64, max_concurrent_per_token=0) as server:
        use_api(shell, server)
        settings = magics(shell)  # the Dockyter traits (api_url, token, timeouts) the backends read
        api_class = backend_class("api")
        request = RunRequest(args=parse_run_args(ctx.image), command=command, shell=tuple(settings.shell))

        def through_server() -> None:
            backend = api_class(settings)
            try:
                outcome = backend.run(request, OutputSink(show=False))
            finally:
                backend.close()
            if outcome.exit_code != 0:
                raise RuntimeError(f"exit status {outcome.exit_code}: {outcome.message}")

        bare = bare_argv(ctx.image, command)
        control = server.run_argv(ctx.image, command)
        variants: dict[str, Variant] = {
            "dockyter": lambda: all_at_once(count, through_server),
            "bare": lambda: all_at_once(count, lambda: _run(bare)),
        }
        if control is not None:
            variants["same argv"] = lambda: all_at_once(count, lambda: _run(relabel(control, bench_container_name())))
        rounds = ctx.pick(3, 1)
        samples = alternate(variants, rounds, warmup=0, progress=ctx.progress, on_retry=ctx.noting(result.notes))
        result.sides = {
            "dockyter": f"{count} threads, each APIBackend.run -> POST {server.url}/execute (NDJSON) -> "
            + (shown(control) if control else "the server's docker run"),
            "bare": f"{count} threads, each {shlex.join(bare)}",
        }
        if control is not None:
            result.sides["same argv"] = f"{count} threads, each " + shlex.join(relabel(control, "<fresh name>"))
    result.checks.append(
        Check(
            "wall time ratio vs the same docker runs started directly (as typed)",
            median_ratio(samples["dockyter"], samples["bare"]),
            "x",
            "<=",
            1.3,
            f"{count} × `{command}`; dockyter {median(samples['dockyter']):.2f} s, bare {median(samples['bare']):.2f} s "
            f"(medians of {rounds}); the floor is {pause} s",
        )
    )
    if control is not None:
        result.checks.append(
            Check(
                "wall time ratio vs the server's own argv started directly",
                median_ratio(samples["dockyter"], samples["same argv"]),
                "x",
                "<=",
                1.3,
                f"same argv {median(samples['same argv']):.2f} s (median)",
            )
        )
    result.notes.append(
        "the server runs with max_concurrent = 64 and max_concurrent_per_token = 0 (their defaults, 4 and 2, "
        "would answer 429 to the rest of one token's executions)"
    )
    result.metrics = {name: summary(values, 3) for name, values in samples.items()}
    result.metrics["executions"] = count
    result.samples = {name: [round(v, 3) for v in values] for name, values in samples.items()}
    return result
