"""Figure 4: how long a line a container prints takes to reach the cell.

Method (no clock inside the container is needed): the host writes ``ping N`` into a FIFO that
is bind-mounted into the container, whose shell echoes each line it reads to its stdout at
once (``while read -r l; do echo "$l"; done < fifo``). The clock starts when the host writes
the line and stops when the line arrives:

* ``dockyter`` (docker or API backend): when the cell's ``sys.stdout.write`` receives it, in a
  real IPython shell running ``%%docker``;
* ``bare``: when ``os.read`` on the stdout pipe of a ``docker run`` started directly returns it.

Echoing takes the container microseconds, so each delay is "container prints -> line arrives",
through the same engine path (containerd shim -> dockerd -> docker CLI). The next ping is sent
only after the previous one arrived, after a short random pause. The first ping of each
container is dropped (it also measures the attach stream settling).
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import shlex
import subprocess
import threading
import time
from pathlib import Path

from ..context import Context
from ..ipy import LineClock, new_shell, run_cell
from ..report import Check, FigureResult
from ..runtime import bare_argv
from ..stats import alternate, median, summary
from .util import docker_backend_argv, use_api

NUMBER = 4
TITLE = "delay from a container printing a line to the cell"
ECHO = 'while IFS= read -r line; do echo "$line"; done < /bench/fifo'
OPEN_TIMEOUT = 60.0  # seconds for the container to start and open the FIFO
LINE_TIMEOUT = 10.0


class Pinger:
    """Writes ``ping N`` lines into the FIFO and notes when each was written."""

    def __init__(self, fifo: Path, count: int, clock: LineClock) -> None:
        self.fifo = fifo
        self.count = count
        self.clock = clock
        self.sent: list[float] = []
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="bench-pinger", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _open(self) -> int:
        deadline = time.monotonic() + OPEN_TIMEOUT
        while True:
            try:  # non-blocking: fails with ENXIO until the container opens its end
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                if error.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
                continue
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            return fd

    def _run(self) -> None:
        try:
            fd = self._open()
        except OSError as error:
            self.error = f"the container never opened the FIFO: {error}"
            return
        try:
            for number in range(self.count):
                time.sleep(random.uniform(0.01, 0.03))
                self.sent.append(time.perf_counter())
                os.write(fd, f"ping {number}\n".encode())
                if not self.clock.wait_for(number + 1, LINE_TIMEOUT):
                    self.error = f"ping {number} did not arrive within {LINE_TIMEOUT:g} s"
                    return
        finally:
            os.close(fd)  # end of file: the container's loop ends

    def delays_ms(self) -> list[float]:
        if self.error:
            raise RuntimeError(self.error)
        arrivals = self.clock.arrivals
        for number, (_, line) in enumerate(arrivals[: self.count]):
            if line != f"ping {number}":
                raise RuntimeError(f"line {number} arrived as {line!r}")
        return [(arrivals[n][0] - self.sent[n]) * 1000 for n in range(1, self.count)]


def measure(ctx: Context) -> FigureResult:
    result = FigureResult(NUMBER, TITLE)
    folder = ctx.workdir / "latency"
    folder.mkdir()
    folder.chmod(0o777)
    fifo = folder / "fifo"
    os.mkfifo(fifo, 0o666)
    fifo.chmod(0o666)
    mount = f"{folder}:/bench:ro"  # the container only reads the FIFO
    pings = ctx.pick(21, 6)
    delays: dict[str, list[float]] = {"bare": [], "docker backend": [], "API backend": []}

    shell = new_shell()
    args = f"-v {mount} {ctx.image}"
    cell = f"%%docker {args}\n{ECHO}"
    bare = bare_argv(ctx.image, ECHO, ["-v", mount])

    def via_cell(backend: str, name: str) -> float:
        run_cell(shell, f"%docker_backend {backend}")  # one shell: its backend is switched per round
        clock = LineClock()
        pinger = Pinger(fifo, pings, clock)
        pinger.start()
        run_cell(shell, cell, stdout=clock)
        pinger.thread.join(LINE_TIMEOUT)
        delays[name] += pinger.delays_ms()
        return median(delays[name])

    def via_bare() -> float:
        clock = LineClock()
        pinger = Pinger(fifo, pings, clock)
        process = subprocess.Popen(bare, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        pinger.start()
        assert process.stdout is not None
        fd = process.stdout.fileno()
        while data := os.read(fd, 65536):
            clock.feed(data.decode(), time.perf_counter())
        process.wait()
        pinger.thread.join(LINE_TIMEOUT)
        delays["bare"] += pinger.delays_ms()
        return median(delays["bare"])

    with ctx.server(allowed_mounts=[str(folder)]) as server:
        use_api(shell, server)
        alternate(
            {
                "bare": via_bare,
                "docker backend": lambda: via_cell("docker", "docker backend"),
                "API backend": lambda: via_cell(f"api {server.url}", "API backend"),
            },
            ctx.pick(5, 1),
            warmup=1,
            progress=ctx.progress,
            unit=" ms (median so far)",
            on_retry=ctx.noting(result.notes),
        )
        result.sides = {
            "bare": f"{shlex.join(bare)}, its stdout read with os.read",
            "docker backend": f"%%docker -v {mount} {ctx.image} -> "
            + docker_backend_argv(shell, args, ECHO, shown=True),
            "API backend": f"the same cell after %docker_backend api {server.url}",
        }
    for name in delays:  # the warm-up round counted too: drop it
        delays[name] = delays[name][pings - 1 :]
    bare_ms = median(delays["bare"])
    for name in ("docker backend", "API backend"):
        value = median(delays[name])
        result.checks.append(
            Check(
                f"median delay, {name}",
                value,
                "ms",
                "<=",
                50.0,
                f"bare docker run: {bare_ms:.1f} ms, so Dockyter adds {value - bare_ms:+.1f} ms "
                f"(x{value / bare_ms:.2f}); over {len(delays[name])} lines",
            )
        )
    result.metrics = {name: summary(values, 3) for name, values in delays.items()}
    result.samples = {name: [round(v, 3) for v in values] for name, values in delays.items()}
    return result
