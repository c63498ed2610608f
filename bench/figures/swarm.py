"""Figure 12: dockyter-server with the Swarm executor, on the three-node cluster of ``.ci/cluster``.

Two comparisons, each made of alternating rounds in one run:

* latency: one ``true`` through a server with ``executor = "swarm"``, against the same
  request through a server with the engine executor, and against a bare ``docker run``;
* spread: 32 ``sleep 2`` sent at once to the Swarm executor with the three nodes active,
  against the same with the two workers drained (one node does everything), and against
  the same 32 through the engine executor on the main engine. All 32 carry one token, so
  they share its network; one more variant sends each with a token of its own (32
  networks), and one runs with ``swarm_isolation = "nodes"`` (no network; the loopback
  check runs first in each task), which also has its latency measured.

The cluster is brought up when it is not (root only) and taken down again afterwards.
"""

from __future__ import annotations

import itertools
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from dockyter.server.swarm.loopbackcheck import build as build_loopback_check

from ..context import Context
from ..report import Check, FigureResult
from ..runtime import bare_argv, run_bare
from ..stats import alternate, median, median_ratio, summary
from .concurrency import all_at_once

NUMBER = 12
TITLE = "the Swarm executor on three nodes"
CLUSTER = Path(__file__).resolve().parent.parent.parent / ".ci" / "cluster"
WORKERS = ("dyt-worker1", "dyt-worker2")


def _cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(CLUSTER), *args], capture_output=True, text=True, timeout=600)


def _runner(server: object, image: str, command: str, tokens: list[str] | None = None) -> Callable[[], None]:
    """One execution through ``server``: ``POST /execute`` for the plain JSON reply.

    With ``tokens``, each call takes the next of them (round robin), else the server's own.
    """
    turns = itertools.cycle(tokens or [server.token])  # type: ignore[attr-defined]
    lock = threading.Lock()

    def run() -> None:
        with lock:
            token = next(turns)
        reply = httpx.post(
            f"{server.url}/execute",  # type: ignore[attr-defined]
            json={"cmd": command, "args": image},
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        )
        body = reply.json()
        if reply.status_code != 200 or body.get("exit_code") != 0:
            raise RuntimeError(f"{reply.status_code}: {body}")

    return run


def _timed(action: Callable[[], None]) -> Callable[[], float]:
    import time

    def variant() -> float:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start

    return variant


def measure(ctx: Context) -> FigureResult:
    result = FigureResult(NUMBER, TITLE)
    brought_up = _cluster("status").returncode != 0
    if brought_up:
        up = _cluster("up")
        if up.returncode != 0:
            raise RuntimeError(f"bash .ci/cluster up failed: {up.stderr.strip()[-300:]}")
    env = dict(line.split("=", 1) for line in _cluster("env").stdout.splitlines() if "=" in line)
    docker_command = ["docker", "-H", env["DOCKYTER_CLUSTER_HOST"]]
    manager = docker_command
    # The cluster's registry holds the local test image, whatever image the other figures use.
    swarm_image = f"{env['DOCKYTER_CLUSTER_REGISTRY']}/dockyter-test/bash:1"
    scratch = tempfile.TemporaryDirectory(prefix="dockyter-bench-")
    try:
        loopback_check = str(build_loopback_check(Path(scratch.name) / "loopback-only"))
        count = ctx.pick(32, 6)
        pause = ctx.pick(2, 1)
        swarm_settings = {
            "executor": "swarm", "docker_command": docker_command, "pull": "never", "max_concurrent": 64,
            "max_concurrent_per_token": 0,  # one token runs them all
            # The nodes pull from the cluster's registry, on a private network: named, so allowed.
            "allowed_registries": ["docker.io", env["DOCKYTER_CLUSTER_REGISTRY"]],
        }  # fmt: skip
        # One token per execution: each gets a network of its own, the worst case of sharing.
        tokens = ["user-" + secrets.token_urlsafe(24) for _ in range(count)]
        users = [f"user{n}:{token}" for n, token in enumerate(tokens)]
        checked = {"swarm_isolation": "nodes", "loopback_check": loopback_check}
        with ctx.server(**swarm_settings) as swarm, ctx.server(**swarm_settings, **checked) as fast, \
                ctx.server(**swarm_settings, tokens=users) as crowd, \
                ctx.server(pull="never", max_concurrent=64, max_concurrent_per_token=0) as engine:  # fmt: skip
            # -- latency -------------------------------------------------------------------------
            bare = bare_argv(ctx.image, "true")
            latency = alternate(
                {
                    "swarm": _timed(_runner(swarm, swarm_image, "true")),
                    "swarm, nodes isolation": _timed(_runner(fast, swarm_image, "true")),
                    "engine": _timed(_runner(engine, ctx.image, "true")),
                    "bare": _timed(lambda: run_bare(bare)),
                },
                ctx.pick(10, 2),
                progress=ctx.progress,
                on_retry=ctx.noting(result.notes),
            )
            # -- spread ----------------------------------------------------------------------------
            job = _runner(swarm, swarm_image, f"sleep {pause}")

            def one_node() -> float:
                for worker in WORKERS:
                    subprocess.run(
                        [*manager, "node", "update", "--availability", "drain", worker], capture_output=True, check=True
                    )
                try:
                    return all_at_once(count, job)
                finally:
                    for worker in WORKERS:
                        subprocess.run(
                            [*manager, "node", "update", "--availability", "active", worker], capture_output=True
                        )

            on_engine = _runner(engine, ctx.image, f"sleep {pause}")
            fast_job = _runner(fast, swarm_image, f"sleep {pause}")
            crowd_job = _runner(crowd, swarm_image, f"sleep {pause}", tokens)
            spread = alternate(
                {
                    "three nodes": lambda: all_at_once(count, job),
                    "one node": one_node,
                    "engine executor": lambda: all_at_once(count, on_engine),
                    "three nodes, nodes isolation": lambda: all_at_once(count, fast_job),
                    "three nodes, a token each": lambda: all_at_once(count, crowd_job),
                },
                ctx.pick(3, 1),
                warmup=0,
                progress=ctx.progress,
                on_retry=ctx.noting(result.notes),
            )
    finally:
        scratch.cleanup()
        if brought_up:
            _cluster("down")
    result.checks += [
        Check(
            "latency ratio: `true` through the Swarm executor vs the engine executor",
            median_ratio(latency["swarm"], latency["engine"]),
            "x",
            "<=",
            5.0,
            f"medians: swarm {median(latency['swarm']):.2f} s, engine executor {median(latency['engine']):.2f} s, "
            f"bare docker run {median(latency['bare']):.2f} s",
        ),
        Check(
            "latency ratio: `true` through the Swarm executor vs bare docker run",
            median_ratio(latency["swarm"], latency["bare"]),
            "x",
            "<=",
            5.0,
            "the token's overlay network is most of it: a task on it takes its node about a second longer "
            "than one on no network (docs/scaling.md)",
        ),
        Check(
            f"wall time ratio: {count} × `sleep {pause}` on three nodes vs one node",
            median_ratio(spread["three nodes"], spread["one node"]),
            "x",
            "<=",
            1.0,
            f"medians: three nodes {median(spread['three nodes']):.2f} s, one node {median(spread['one node']):.2f} s; "
            f"the floor is {pause} s",
        ),
        Check(
            f"wall time ratio: {count} × `sleep {pause}` on three Swarm nodes vs the engine executor on one engine",
            median_ratio(spread["three nodes"], spread["engine executor"]),
            "x",
            "<=",
            1.3,
            f"medians: three nodes {median(spread['three nodes']):.2f} s, "
            f"engine executor {median(spread['engine executor']):.2f} s; all {count} share their token's network",
        ),
        Check(
            f"wall time ratio: {count} × `sleep {pause}` on three Swarm nodes, a token each, vs the engine executor",
            median_ratio(spread["three nodes, a token each"], spread["engine executor"]),
            "x",
            "<=",
            1.3,
            f"median {median(spread['three nodes, a token each']):.2f} s: {count} tokens, so {count} networks, "
            "one per execution: many users at once, each task attached to an overlay of its own",
        ),
        Check(
            f"wall time ratio: {count} × `sleep {pause}` on three nodes with swarm_isolation = nodes "
            "vs the engine executor",
            median_ratio(spread["three nodes, nodes isolation"], spread["engine executor"]),
            "x",
            "<=",
            1.3,
            f"median {median(spread['three nodes, nodes isolation']):.2f} s: no overlay network at all; the nodes' "
            "--bridge none keeps the tasks off any network, and the loopback check in each task refuses the cell "
            "on a node that does not (docs/scaling.md)",
        ),
        Check(
            "latency ratio: `true` through the Swarm executor with swarm_isolation = nodes vs the engine executor",
            median_ratio(latency["swarm, nodes isolation"], latency["engine"]),
            "x",
            "<=",
            5.0,
            f"median {median(latency['swarm, nodes isolation']):.2f} s: no overlay to attach, a config to mount",
        ),
    ]
    result.sides = {
        "swarm": f"POST {swarm.url}/execute -> docker service create ... {swarm_image} (executor = swarm)",
        "engine": f"POST {engine.url}/execute -> docker run ... {ctx.image} (executor = engine)",
        "bare": " ".join(bare),
        "three nodes": f"{count} threads at once through the Swarm executor, manager and two workers active",
        "one node": f"the same with {' and '.join(WORKERS)} drained",
        "engine executor": f"{count} threads at once through the engine executor on the main engine",
        "swarm, nodes isolation": "the same through a Swarm executor with swarm_isolation = nodes",
        "three nodes, nodes isolation": f"{count} threads at once through a Swarm executor with swarm_isolation = nodes",
        "three nodes, a token each": f"{count} threads at once through a Swarm executor, each with its own token",
    }
    result.notes.append(
        "the three nodes are dockerd instances on this one two-core machine (.ci/cluster), so three nodes "
        "spread the engines' bookkeeping, not CPU: the ratio shows what spreading buys, not a real cluster's speed-up"
    )
    result.metrics = {name: summary(values, 3) for name, values in {**latency, **spread}.items()}
    result.samples = {name: [round(v, 3) for v in values] for name, values in {**latency, **spread}.items()}
    return result
