"""Figure 18: what a chatty cell sends the notebook, and how soon a session listing comes.

Both in a real Jupyter kernel (ipykernel through jupyter_client), counted on its iopub channel,
each against the bare runtime in the same kernel and run:

* a cell that prints as fast as it can for a few seconds (``while ...; do echo spam; done``, the
  runaway loop of issue 23): ``%%docker IMAGE`` against ``%%bash`` running the same loop in a bare
  ``docker run`` (IPython's own script magic, which flushes each line): the ratio of the stream
  messages a second each sent the notebook (``Dockyter.max_output = 0`` here: the batching alone
  is measured; the cap is a fixed bound of its own);
* ``%docker_session`` listing three sessions against a session cell running ``true``: the ratio of
  the two round trips (request to idle), alternating rounds. The listing used to wait for
  ``docker stats`` (a second or two); it shows the last memory figure and measures in the background.
"""

from __future__ import annotations

import os
import queue
import shlex
import time
from pathlib import Path
from typing import Any

from ..context import Context
from ..report import Check, FigureResult
from ..runtime import bare_argv
from ..stats import alternate, median, median_interval, paired_ratios, summary

NUMBER = 18
TITLE = "A chatty cell's messages to the notebook, and a session listing's round trip"
SESSIONS = ("one", "two", "three")
ROOT = Path(__file__).resolve().parents[2]  # the kernel imports the dockyter of this checkout


class Kernel:
    """A real kernel with Dockyter loaded; ``run`` counts what one cell sends on iopub."""

    def __init__(self, workdir: str) -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        environment = {**os.environ, "HOME": workdir, "DOCKYTER_CONFIG": "", "PYTHONPATH": str(ROOT)}
        self.manager.start_kernel(cwd=workdir, env=environment)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 600) -> list[dict[str, Any]]:
        """The stream messages of one cell, which must not fail."""
        msg_id = self.client.execute(code, stop_on_error=False)
        streams: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.client.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty as error:
                raise RuntimeError(f"no answer to {code[:40]!r} within {timeout} s") from error
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "error":
                raise RuntimeError(f"{code[:40]!r} failed: {message['content'].get('evalue')}")
            if kind == "stream":
                streams.append(message["content"])
            if kind == "status" and message["content"]["execution_state"] == "idle":
                return streams

    def timed(self, code: str) -> float:
        started = time.perf_counter()
        self.run(code)
        return time.perf_counter() - started

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)


def measure(ctx: Context) -> FigureResult:
    result = FigureResult(NUMBER, TITLE)
    kernel = Kernel(str(ctx.workdir))
    try:
        kernel.run("%load_ext dockyter")
        kernel.run("%config Dockyter.max_output = 0")
        _messages(ctx, result, kernel)
        _listing(ctx, result, kernel)
    finally:
        try:
            kernel.run("%docker_session stop --all")
        finally:
            kernel.stop()
    return result


def _messages(ctx: Context, result: FigureResult, kernel: Kernel) -> None:
    seconds = ctx.pick(3, 2)
    loop = f"end=$((SECONDS + {seconds})); while [ $SECONDS -lt $end ]; do echo spam; done"
    dockyter_cell = f"%%docker {ctx.image}\n{loop}"
    bare_cell = "%%bash\n" + shlex.join(bare_argv(ctx.image, loop))
    rates: dict[str, list[float]] = {"%%docker": [], "%%bash + docker run": []}
    sizes: dict[str, list[float]] = {"%%docker": [], "%%bash + docker run": []}
    for _ in range(ctx.pick(3, 1)):
        for name, cell in (("%%docker", dockyter_cell), ("%%bash + docker run", bare_cell)):
            streams = kernel.run(cell)
            printed = "".join(stream["text"] for stream in streams if stream["name"] == "stdout")
            if not printed or set(printed.split("\n")) != {"spam", ""}:
                raise RuntimeError(f"{name} printed something else than spam lines")
            rates[name].append(len(streams) / seconds)
            sizes[name].append(len(printed) / 1e6)
    ratio = median(rates["%%docker"]) / median(rates["%%bash + docker run"])
    result.checks.append(
        Check(
            f"stream messages a second from a {seconds} s runaway loop, ratio vs `%%bash` running `docker run`",
            ratio,
            "x",
            "<=",
            0.25,
            f"%%docker {median(rates['%%docker']):.0f} messages/s ({median(sizes['%%docker']):.2f} MB), "
            f"%%bash {median(rates['%%bash + docker run']):.0f} messages/s ({median(sizes['%%bash + docker run']):.2f} MB)"
            " (medians)",
        )
    )
    result.sides.update({"messages %%docker": dockyter_cell, "messages bare": bare_cell})
    result.samples.update({f"messages/s {name}": values for name, values in rates.items()})


def _listing(ctx: Context, result: FigureResult, kernel: Kernel) -> None:
    for name in SESSIONS:
        kernel.run(f"%docker_session start {name} {ctx.image}")
    listing, cell = "%docker_session", "%%docker --session one\ntrue"
    rounds = ctx.pick(20, 3)
    samples = alternate(
        {"listing": lambda: kernel.timed(listing), "session cell": lambda: kernel.timed(cell)},
        rounds,
        warmup=1,
        progress=ctx.progress,
        on_retry=ctx.noting(result.notes),
    )
    ratios = paired_ratios(samples["listing"], samples["session cell"])
    low, high = median_interval(ratios)
    result.checks.append(
        Check(
            f"`%docker_session` listing {len(SESSIONS)} sessions, round trip ratio vs a session cell running `true`",
            median(ratios),
            "x",
            "<=",
            5.0,
            f"median of {rounds} paired ratios, 95% interval {low:.2f}-{high:.2f}; listing "
            f"{median(samples['listing']) * 1000:.1f} ms, session cell {median(samples['session cell']) * 1000:.1f} ms",
        )
    )
    result.sides.update({"listing": listing, "session cell": cell})
    result.metrics.update({f"round trip {name}": summary(values) for name, values in samples.items()})
