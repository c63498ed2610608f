"""Figure 15: a fresh container in milliseconds, prestarted before it is needed (issue 22).

Against the bare runtime in the same run (alternating rounds, paired ratios, medians):

* **latency**: ``!true`` after ``%docker IMAGE`` and a ``%%docker IMAGE`` cell running ``true``,
  each through a prestarted container (the pool is waited for outside the clock before each
  measurement, and after it, so that no start overlaps another variant), against a bare
  ``docker run --rm IMAGE bash -lc true`` and a bare ``docker exec CONTAINER bash -lc true``
  into a running container;
* **twenty ``!true`` in a row**, nothing waited for between them (each takes the container the
  previous one's refill is starting), against twenty bare ``docker run`` one after the other;
* **an idle prestarted container**: its memory (its cgroup's, as ``docker stats`` counts it) and
  CPU over ten idle seconds, and what it holds on the host meanwhile: the ``docker run -i``
  process that keeps its stdin, and the engine's shim (every running container has one), by
  proportional set size (``Pss`` of ``/proc/PID/smaps_rollup``);
* **an API cell** (``%%docker IMAGE`` running ``true`` through ``dockyter-server``) in a container
  the server prestarted, against the same cell through an identical server that makes a container
  for each execution (``prestart = 0``: today's API cell); and, when the engine has gVisor's
  ``runsc``, the same pair under ``runtime = "runsc"``, and the prestarted runsc cell against the
  prestarted runc cell: what is left of gVisor's start cost once it is paid ahead of time. Each
  prestarting server is asked (``/health``) until its container is ready, outside the clock.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from ..context import Context
from ..ipy import CellFailed, new_shell, run_cell, timed_cell
from ..report import Check, FigureResult
from ..runtime import BENCH_LABEL, bare_argv, bench_container_name, docker, run_bare, run_id
from ..server import BenchServer
from ..stats import alternate, median, median_interval, paired_ratios, summary
from .util import magics, use_api

NUMBER = 15
TITLE = "A fresh container in milliseconds: prestarted containers"
IDLE_SECONDS = 10.0


def measure(ctx: Context) -> FigureResult:
    result = FigureResult(NUMBER, TITLE)
    shell = new_shell(prestart=1)  # the default setting
    run_cell(shell, f"%docker {ctx.image}")
    target = bench_container_name()
    docker(
        "run", "-d", "--rm", "--name", target, "--label", f"{BENCH_LABEL}={run_id()}",
        "--log-driver", "none", ctx.image, "sleep", "3600",
    )  # fmt: skip
    try:
        _latency(ctx, result, shell, target)
        _in_a_row(ctx, result, shell)
        _idle(ctx, result, shell)
    finally:
        docker("rm", "-f", target)
        run_cell(shell, "%docker_off")
    _api(ctx, result, shell)
    return result


def pool(shell: Any) -> Any:
    """The docker backend's prestarted containers (:class:`~dockyter.backends.docker.prestart.PrestartPool`)."""
    return magics(shell).active_backend.prestarted


def wait_ready(shell: Any, timeout: float = 120.0) -> None:
    """Until every line's containers are ready (none starting), outside any clock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = pool(shell).counts()
        if counts and all(ready and not starting for _, ready, starting in counts):
            return
        time.sleep(0.02)
    raise CellFailed(f"no prestarted container became ready within {timeout:g} s: {pool(shell).counts()}")


def prestarted(shell: Any, cell: str) -> float:
    """Seconds of ``cell``, run once a prestarted container waits for it; fails if it ran cold."""
    wait_ready(shell)
    served = pool(shell).served
    seconds = timed_cell(shell, cell)
    if pool(shell).served != served + 1:
        raise CellFailed(f"{cell!r} ran cold")
    return seconds


def _latency(ctx: Context, result: FigureResult, shell: Any, target: str) -> None:
    cell = f"%%docker {ctx.image}\ntrue"
    run_argv = bare_argv(ctx.image, "true")
    exec_argv = ["docker", "exec", target, "bash", "-lc", "true"]
    rounds = ctx.pick(30, 3)
    samples = alternate(
        {
            "prestarted !true": lambda: prestarted(shell, "!true"),
            "prestarted %%docker": lambda: prestarted(shell, cell),
            "bare docker exec": lambda: run_bare(exec_argv),
            "bare docker run": lambda: run_bare(run_argv),
        },
        rounds,
        warmup=ctx.pick(2, 1),
        progress=ctx.progress,
        after=lambda: wait_ready(shell),  # a refill never overlaps the next measurement
        on_retry=ctx.noting(result.notes),
    )
    for ours in ("prestarted !true", "prestarted %%docker"):
        for bare, goal in (("bare docker run", 0.15), ("bare docker exec", 1.5)):
            ratios = paired_ratios(samples[ours], samples[bare])
            low, high = median_interval(ratios)
            result.checks.append(
                Check(
                    f"{ours}: time ratio vs a {bare.removeprefix('bare ')} of the same command",
                    median(ratios),
                    "x",
                    "<=",
                    goal,
                    f"median of {rounds} paired ratios, 95% interval {low:.3f}-{high:.3f}; {ours} "
                    f"{median(samples[ours]) * 1000:.1f} ms, {bare} {median(samples[bare]) * 1000:.0f} ms (medians)",
                )
            )
    result.sides.update(
        {
            "prestarted !true": f"%docker {ctx.image}; InteractiveShell.run_cell('!true'), a container ready",
            "prestarted %%docker": f"InteractiveShell.run_cell({cell!r}), a container ready",
            "bare docker exec": shlex.join(exec_argv) + " (into a running `docker run -d ... sleep 3600`)",
            "bare docker run": shlex.join(run_argv),
        }
    )
    result.metrics.update({f"latency {name}": summary(values) for name, values in samples.items()})
    result.samples.update({f"latency {name}": [round(v, 5) for v in values] for name, values in samples.items()})


def _in_a_row(ctx: Context, result: FigureResult, shell: Any) -> None:
    count = ctx.pick(20, 5)
    run_argv = bare_argv(ctx.image, "true")
    warm: list[int] = []

    def dockyter() -> float:
        wait_ready(shell)
        served = pool(shell).served
        start = time.perf_counter()
        for _ in range(count):
            run_cell(shell, "!true")
        seconds = time.perf_counter() - start
        warm.append(pool(shell).served - served)
        return seconds

    def bare() -> float:
        return sum(run_bare(run_argv) for _ in range(count))

    rounds = ctx.pick(3, 1)
    samples = alternate(
        {f"{count} x !true": dockyter, f"{count} x bare docker run": bare},
        rounds,
        warmup=0,
        progress=ctx.progress,
        after=lambda: wait_ready(shell),
        on_retry=ctx.noting(result.notes),
    )
    ours, theirs = samples[f"{count} x !true"], samples[f"{count} x bare docker run"]
    result.checks.append(
        Check(
            f"{count} `!true` in a row: time ratio vs {count} bare `docker run` one after the other",
            median(paired_ratios(ours, theirs)),
            "x",
            "<=",
            1.0,
            f"{median(ours):.2f} s against {median(theirs):.2f} s (medians of {rounds}); commands that found "
            f"a prestarted container (ready or starting): {', '.join(f'{n}/{count}' for n in warm)}",
        )
    )
    result.samples.update({f"in a row {name}": [round(v, 3) for v in values] for name, values in samples.items()})


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _cgroup_cpu_ns(container_id: str) -> int | None:
    """The container's CPU time so far, from its cgroup (v1, then v2); None if neither is found."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text())
    v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat")
    if v2.exists():
        usage = dict(line.split() for line in v2.read_text().splitlines())
        return int(usage["usage_usec"]) * 1000
    return None


def _shim_pid(container_id: str) -> int | None:
    listing = subprocess.run(["pgrep", "-f", f"containerd-shim.* -id {container_id}"], capture_output=True, text=True)
    pids = [int(pid) for pid in listing.stdout.split() if Path(f"/proc/{pid}/smaps_rollup").exists()]
    return pids[0] if pids else None


def _idle(ctx: Context, result: FigureResult, shell: Any) -> None:
    wait_ready(shell)
    [container] = [c for containers in pool(shell)._waiting.values() for c in containers][:1]
    container_id = docker("inspect", "--format", "{{.Id}}", container.name).stdout.strip()
    cli = container.process.pid
    shim = _shim_pid(container_id)
    time.sleep(2)  # settled
    cpu_before = _cgroup_cpu_ns(container_id)
    ticks_before = _ticks(cli) + (_ticks(shim) if shim else 0)
    time.sleep(ctx.pick(IDLE_SECONDS, 3.0))
    cpu_after = _cgroup_cpu_ns(container_id)
    ticks_after = _ticks(cli) + (_ticks(shim) if shim else 0)
    seconds = ctx.pick(IDLE_SECONDS, 3.0)
    stats = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", container.name).stdout
    used = stats.split("/")[0].strip()
    number, unit = float(used.rstrip("KMGiB")), used.lstrip("0123456789.")
    mb = number * {"B": 1 / 1048576, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}.get(unit, float("nan"))
    cli_mb, shim_mb = _pss_kb(cli) / 1024, (_pss_kb(shim) / 1024 if shim else float("nan"))
    result.checks.append(
        Check(
            "memory of an idle prestarted container (its cgroup, as `docker stats` counts it)",
            mb,
            "MB",
            "<=",
            5.0,
            f"docker stats: {used}; the waiting sh and the init",
        )
    )
    result.checks.append(
        Check(
            "memory an idle prestarted container holds on the host too: its `docker run -i` process and the "
            "engine's shim (Pss)",
            mb + cli_mb + shim_mb,
            "MB",
            "<=",
            5.0,
            f"container {mb:.2f} MB + docker CLI {cli_mb:.1f} MB + containerd shim {shim_mb:.1f} MB "
            "(a shim runs for any running container)",
        )
    )
    if cpu_before is not None and cpu_after is not None:
        share = (cpu_after - cpu_before) / 1e9 / seconds * 100
        result.checks.append(
            Check(
                f"CPU of an idle prestarted container over {seconds:g} s",
                share,
                "% of a core",
                "<=",
                0.1,
                f"its cgroup's CPU time; its docker CLI and shim used {ticks_after - ticks_before} clock "
                "ticks meanwhile (one tick: 10 ms)",
            )
        )
    result.metrics["idle"] = {
        "container_mb": round(mb, 3),
        "cli_pss_mb": round(cli_mb, 2),
        "shim_pss_mb": round(shim_mb, 2),
    }


def _ready_on(server: BenchServer) -> int:
    """How many of the bench token's containers ``server`` says are ready (its ``/health``)."""
    request = urllib.request.Request(server.url + "/health", headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int((json.load(answer).get("prestarted") or {}).get("ready", 0))


def _wait_ready_on(server: BenchServer, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while _ready_on(server) < 1:
        if time.monotonic() > deadline:
            raise CellFailed(f"the server at {server.url} had no prestarted container ready within {timeout:g} s")
        time.sleep(0.05)


def _api(ctx: Context, result: FigureResult, shell: Any) -> None:
    runsc = '"runsc"' in docker("info", "--format", "{{json .Runtimes}}").stdout
    runtimes = ["runc", "runsc"] if runsc else ["runc"]
    if not runsc:
        result.notes.append("the engine has no runsc runtime: the gVisor part was not measured")
    cell = f"%%docker {ctx.image}\ntrue"
    servers = {
        (runtime, prestart): ctx.server(runtime=runtime, prestart=prestart)
        for runtime in runtimes
        for prestart in (1, 0)
    }
    try:
        for server in servers.values():
            server.start()
        use_api(shell, servers[("runc", 0)])
        settings = magics(shell)

        def through(server: BenchServer, prestarted: bool) -> Any:
            def run() -> float:
                settings.api_url, settings.api_token = server.url, server.token  # outside the clock
                if prestarted:
                    _wait_ready_on(server)
                return timed_cell(shell, cell)

            return run

        for server in servers.values():  # first connections; each prestarting server fills its line
            settings.api_url, settings.api_token = server.url, server.token
            run_cell(shell, cell)
        variants = {
            f"{runtime} {'prestarted' if prestart else 'made per request'}": through(server, bool(prestart))
            for (runtime, prestart), server in servers.items()
        }

        def all_ready() -> None:
            for (_, prestart), server in servers.items():
                if prestart:
                    _wait_ready_on(server)

        rounds = ctx.pick(20, 3)
        samples = alternate(
            variants, rounds, warmup=1, progress=ctx.progress, after=all_ready, on_retry=ctx.noting(result.notes)
        )
    finally:
        for server in servers.values():
            server.stop()
    for runtime in runtimes:
        ours, theirs = f"{runtime} prestarted", f"{runtime} made per request"
        ratios = paired_ratios(samples[ours], samples[theirs])
        low, high = median_interval(ratios)
        result.checks.append(
            Check(
                f"API cell, {ours}: time ratio vs {theirs}",
                median(ratios),
                "x",
                "<=",
                0.25,
                f"median of {rounds} paired ratios, 95% interval {low:.3f}-{high:.3f}; "
                f"{median(samples[ours]) * 1000:.0f} ms against {median(samples[theirs]) * 1000:.0f} ms (medians)",
            )
        )
    if runsc:
        # gVisor's extra cost per cell (runsc minus runc, round by round): what is left of it once
        # its sandbox starts ahead of time, against what it is when each cell starts one.
        left = [a - b for a, b in zip(samples["runsc prestarted"], samples["runc prestarted"], strict=True)]
        today = [
            a - b for a, b in zip(samples["runsc made per request"], samples["runc made per request"], strict=True)
        ]
        slower = median(paired_ratios(samples["runsc prestarted"], samples["runc prestarted"]))
        result.checks.append(
            Check(
                "API cell: gVisor's extra time per cell (runsc minus runc) prestarted, as a share of it today",
                median(left) / median(today),
                "x",
                "<=",
                0.25,
                f"{median(left) * 1000:.0f} ms against {median(today) * 1000:.0f} ms (medians of the per-round "
                f"differences); a prestarted runsc cell takes {slower:.2f}x a prestarted runc cell (the command "
                "itself runs under gVisor: its system calls cost more)",
            )
        )
    result.sides.update(
        {f"api {name}": f"InteractiveShell.run_cell({cell!r}) through a server, {name}" for name in variants}
    )
    result.samples.update({f"api {name}": [round(v, 4) for v in values] for name, values in samples.items()})
