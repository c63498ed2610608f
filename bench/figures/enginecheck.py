"""Figure 14: what checking the engine's work costs, for an execution and a session start.

Since issue 19 the server no longer starts what it asked for blindly: it creates the container,
reads it back and compares it with the approved plan (``dockyter/server/engine/enginecheck.py``), and
only then starts it. Measured here, in alternating rounds against the bare runtime in the same
run, with the server's own code and settings (its defaults: network none, limits, dropped
capabilities...):

* an execution running ``true``: today's path before the check (the server's argv run as one
  ``docker run``), against ``docker create`` + the check (the Engine API on the socket) +
  ``docker start --attach``, and the same with the check reading through ``docker inspect``;
* a session start, up to its bash answering a first line: the server's session argv as one
  ``docker run -i``, against ``docker create -i`` + the check + ``docker start --attach
  --interactive``;
* when the cluster of ``.ci/cluster`` is up, a Swarm execution of ``true`` up to its task's end:
  the Swarm executor's service created with one replica (today's path), against the service
  created with none, its spec read back and compared, then updated to one replica.

Each against the bare runtime in the same run (``docker run --rm IMAGE ...``, or a plain
``docker service create``); the check's own cost is the ratio of the checked path to today's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ..context import Context
from ..report import Check, FigureResult
from ..runtime import BENCH_LABEL, bare_argv, bench_container_name, relabel, run_bare, run_id
from ..stats import Variant, alternate, median, median_interval, paired_ratios, summary

NUMBER = 14
TITLE = "The check of what the engine made: create, read back, compare, start, against docker run"
TARGET = 1.10  # beyond about 10%, docs/performance.md says so (prestarted containers can carry it)


def measure(ctx: Context) -> FigureResult:
    from dockyter.server.engine.enginecheck import EngineCheck
    from dockyter.server.engine.engineexecutor import EngineExecutor
    from dockyter.server.engine.execution import Execution
    from dockyter.server.engine.runtimes import resolve_runtime
    from dockyter.server.policy.requestpolicy import Policy
    from dockyter.server.sessions.sessioncontainer import ServerSession
    from dockyter.server.sessions.sessionregistry import SessionRegistry
    from dockyter.server.settings.fields import Settings

    result = FigureResult(NUMBER, TITLE)
    settings = Settings(auth=False, server_name=f"{ctx.server_prefix}-check")
    executor = EngineExecutor(
        settings, resolve_runtime(settings.runtime, settings.docker_command, settings.engine_environment())
    )
    if executor.check.socket is None:
        raise RuntimeError("docker_command names no plain unix socket here: the check reads through the CLI only")
    through_cli = EngineCheck(settings.docker_command, executor.control)
    through_cli.socket = None
    plan = Policy(settings).check(ctx.image, None)
    registry = SessionRegistry(settings, executor)
    docker = settings.docker_command

    def execution_checked(check: EngineCheck) -> Variant:
        def run() -> float:
            execution = Execution(executor, plan, "true", settings.max_timeout, False, "bench")
            started = time.perf_counter()
            _create_and_check(
                execution.argv(), execution.name, lambda: check.refusal(execution.name, execution.expected(), "bench")
            )
            run_bare([*docker, "start", "--attach", execution.name])
            return time.perf_counter() - started

        return run

    def today() -> float:
        argv = Execution(executor, plan, "true", settings.max_timeout, False, "bench").argv()
        return run_bare(relabel(_as_run(argv, len(docker)), bench_container_name()))

    def session_checked() -> float:
        session = ServerSession(registry, plan, "bench", "bench")
        started = time.perf_counter()
        _create_and_check(
            session.argv(),
            session.container,
            lambda: executor.check.refusal(session.container, session.expected(), "bench"),
        )
        return _until_the_shell_answers([*docker, "start", "--attach", "--interactive", session.container], started)

    def session_today() -> float:
        argv = ServerSession(registry, plan, "bench", "bench").argv()
        return _until_the_shell_answers(
            relabel(_as_run(argv, len(docker)), bench_container_name()), time.perf_counter()
        )

    bare_session = ["docker", "run", "-i", "--rm", "--label", f"{BENCH_LABEL}={run_id()}", ctx.image]
    variants: dict[str, Variant] = {
        "bare": lambda: run_bare(bare_argv(ctx.image, "true")),
        "docker run (today)": today,
        "create, check, start": execution_checked(executor.check),
        "create, check with docker inspect, start": execution_checked(through_cli),
        "bare session": lambda: _until_the_shell_answers(
            [*bare_session, "bash", "--login", "--noediting", "-i"], time.perf_counter()
        ),
        "session, docker run -i (today)": session_today,
        "session, create, check, start": session_checked,
    }
    rounds = ctx.pick(20, 3)
    samples = alternate(variants, rounds, warmup=1, progress=ctx.progress, on_retry=ctx.noting(result.notes))
    swarm = _swarm_variants(ctx, result)
    swarm_rounds = ctx.pick(10, 2)
    if swarm:
        samples.update(
            alternate(swarm, swarm_rounds, warmup=1, progress=ctx.progress, on_retry=ctx.noting(result.notes))
        )

    def ratio(name: str, side: str, base: str, target: float, why: str) -> None:
        ratios = paired_ratios(samples[side], samples[base])
        low, high = median_interval(ratios)
        result.checks.append(
            Check(
                name, median(ratios), "x", "<=", target,
                f"median of {len(ratios)} paired ratios, 95% interval {low:.3f}-{high:.3f}; {side} "
                f"{median(samples[side]) * 1000:.0f} ms, {base} {median(samples[base]) * 1000:.0f} ms (medians){why}",
            )
        )  # fmt: skip

    ratio("execution, today's docker run vs bare docker run", "docker run (today)", "bare", 1.5, "")
    ratio("execution, create + check + start vs bare docker run", "create, check, start", "bare", 1.65, "")
    ratio("the check's cost for an execution: create + check + start vs today's docker run",
          "create, check, start", "docker run (today)", TARGET, "")  # fmt: skip
    ratio("reading back through docker inspect vs through the socket",
          "create, check with docker inspect, start", "create, check, start", 1.5, "")  # fmt: skip
    ratio(
        "session start, today's docker run -i vs bare docker run -i",
        "session, docker run -i (today)",
        "bare session",
        1.5,
        "",
    )
    ratio("the check's cost for a session start: create + check + start vs today's docker run -i",
          "session, create, check, start", "session, docker run -i (today)", TARGET, "")  # fmt: skip
    if swarm:
        ratio(
            "Swarm, today's service (one replica) vs a bare service", "Swarm service (today)", "bare service", 1.5, ""
        )
        ratio("the check's cost on the Swarm: held service + spec check + release vs today's service",
              "Swarm service, held, checked, released", "Swarm service (today)", TARGET, "")  # fmt: skip
    example = Execution(executor, plan, "true", settings.max_timeout, False, "bench")
    result.sides = {
        "bare": " ".join(bare_argv(ctx.image, "true")),
        "docker run (today)": " ".join(_as_run(example.argv(), len(docker))),
        "create, check, start": " ".join(example.argv()) + " ; GET /containers/NAME/json and /images/ID/json on "
        f"{executor.check.socket} (the image once), compared with the plan ; docker start --attach NAME",
        "create, check with docker inspect, start": "the same, reading with docker container inspect / image inspect",
        "bare session": " ".join([*bare_session, "bash", "--login", "--noediting", "-i"]) + " ; echo ready",
        "session, create, check, start": "docker create -i ... ; the check ; docker start --attach --interactive NAME ; echo ready",
    }
    result.notes.append("an execution is timed to its end; a session start until its bash has answered `echo ready`")
    result.metrics.update({name: summary(values) for name, values in samples.items()})
    result.samples.update({name: [round(v, 5) for v in values] for name, values in samples.items()})
    return result


def _swarm_variants(ctx: Context, result: FigureResult) -> dict[str, Variant] | None:
    """The Swarm part, when the cluster of ``.ci/cluster`` is up (else a note says it was left out)."""
    from dockyter.server.policy.requestpolicy import Policy
    from dockyter.server.settings.fields import Settings
    from dockyter.server.swarm.servicecheck import differences
    from dockyter.server.swarm.swarmexecution import SwarmExecution
    from dockyter.server.swarm.swarmexecutor import SwarmExecutor

    socket = "/run/dockyter-cluster/manager/docker.sock"
    script = Path(__file__).resolve().parents[2] / ".ci" / "cluster"
    registry = subprocess.run(["bash", str(script), "env"], capture_output=True, text=True, check=False).stdout
    address = next(
        (line.split("=", 1)[1] for line in registry.splitlines() if line.startswith("DOCKYTER_CLUSTER_REGISTRY=")), ""
    )
    if not os.path.exists(socket) or not address:
        result.notes.append("the cluster of .ci/cluster was not up: the Swarm part was left out")
        return None
    docker = ["docker", "-H", f"unix://{socket}"]
    image = f"{address}/dockyter-test/bash:1"
    # No network (the nodes run with --bridge none): the overlay's attach time is figure 12's, not the check's.
    settings = Settings(
        auth=False,
        executor="swarm",
        docker_command=docker,
        network="",
        server_name=f"{ctx.server_prefix}-swarm",
        allowed_registries=[address],  # the cluster's own registry, named
    )
    executor = SwarmExecutor(settings)
    plan = Policy(settings).check(image, None)

    def service(argv: list[str], check: SwarmExecution | None) -> float:
        name = argv[argv.index("--name") + 1]
        started = time.perf_counter()
        try:
            subprocess.run(argv, capture_output=True, check=True)
            if check is not None:
                held = asyncio.run(executor.check.read(name))
                found = differences(asyncio.run(executor.check.expected(check)), held["Spec"])
                if found:
                    raise RuntimeError(f"the check refused the bench's own service: {found}")
                released = asyncio.run(executor.check.release(held))
                if released is None or released.returncode != 0:
                    raise RuntimeError(f"the service could not be released: {released}")
            _until_the_task_ends(socket, name)
            return time.perf_counter() - started
        finally:
            subprocess.run([*docker, "service", "rm", name], capture_output=True, check=False)

    def today() -> float:
        argv = SwarmExecution(executor, plan, "true", settings.max_timeout, False, "bench").service_argv()
        replicas = argv.index("--replicas") + 1
        return service([*argv[:replicas], "1", *argv[replicas + 1 :]], None)

    def checked() -> float:
        execution = SwarmExecution(executor, plan, "true", settings.max_timeout, False, "bench")
        return service(execution.service_argv(), execution)

    def bare() -> float:
        name = f"{ctx.server_prefix}-bare-{os.urandom(4).hex()}"
        argv = [*docker, "service", "create", "--detach", "--quiet", "--name", name, "--restart-condition", "none"]
        return service([*argv, "--label", f"io.dockyter.bench={ctx.server_prefix}", image, "true"], None)

    return {"bare service": bare, "Swarm service (today)": today, "Swarm service, held, checked, released": checked}


def _until_the_task_ends(socket: str, service: str) -> None:
    from dockyter.server.engine.engineapi import get_json

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        tasks = asyncio.run(get_json(socket, "/tasks", {"service": [service]}))
        states = {str((task.get("Status") or {}).get("State")) for task in tasks}
        if states & {"complete", "failed", "rejected"}:
            if "complete" not in states:
                raise RuntimeError(f"the task of {service} ended as {states}: {json.dumps(tasks)[-300:]}")
            return
        time.sleep(0.02)
    raise RuntimeError(f"the task of {service} did not end in 120 s")


def _as_run(argv: Sequence[str], prefix: int) -> list[str]:
    """The server's ``docker create`` argv as the one ``docker run`` it replaced."""
    assert argv[prefix] == "create"
    return [*argv[:prefix], "run", *argv[prefix + 1 :]]


def _create_and_check(argv: Sequence[str], name: str, check: Callable[[], Coroutine[Any, Any, object]]) -> None:
    created = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if created.returncode != 0:
        raise RuntimeError(f"docker create failed: {created.stderr.decode(errors='replace')[-300:]}")
    refusal = asyncio.run(check())
    if refusal is not None:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)
        raise RuntimeError(f"the check refused the bench's own container: {refusal}")


def _until_the_shell_answers(argv: Sequence[str], started: float) -> float:
    """Seconds from ``started`` until the session's bash (started by ``argv``) answers a line; then ends it."""
    process = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(b"echo ready\n")
        process.stdin.flush()
        line = process.stdout.readline()
        seconds = time.perf_counter() - started
        if line != b"ready\n":
            raise RuntimeError(f"the session's shell did not answer: {line!r}")
        return seconds
    finally:
        process.stdin.close()  # end of input: bash exits, and --rm removes the container
        process.wait(60)
