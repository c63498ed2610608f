"""Figure 13: a cell through ``dockyter-server`` while 1,100 half-sent requests hold connections to it.

Two servers with the same default settings run side by side. Before each cell on the
``flooded`` one, 1,100 connections are opened to it, each sending half a request's headers and
nothing more (untimed; they stay open until the cell has run). The same cell on the ``quiet``
server, in alternating rounds, is the control: the ratio is what a flood of half-sent requests
from clients without a token costs everyone else. Before connections were capped and requests
given a deadline (``max_connections``, ``header_timeout``), the flooded cell never ran.
"""

from __future__ import annotations

import resource
import socket

from ..context import Context
from ..ipy import new_shell, run_cell, timed_cell
from ..report import Check, FigureResult
from ..stats import alternate, median, median_interval, paired_ratios, summary

NUMBER = 13
TITLE = "A cell through dockyter-server while 1,100 half-sent requests are held"

HALF_SENT = 1100
HALF_REQUEST = b"GET /health HTTP/1.1\r\nHost: dockyter\r\nX-Slow: "


def measure(ctx: Context) -> FigureResult:
    result = FigureResult(NUMBER, TITLE)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < HALF_SENT + 200:  # this process holds the flood's sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    flooded_shell, quiet_shell = new_shell(), new_shell()
    with ctx.server() as flooded, ctx.server() as quiet:
        for shell, server in ((flooded_shell, flooded), (quiet_shell, quiet)):
            run_cell(shell, f"%config Dockyter.api_token = {server.token!r}")
            run_cell(shell, f"%docker_backend api {server.url}")
        cell = f"%%docker {ctx.image}\ntrue"
        held: list[socket.socket] = []

        def under_flood() -> float:
            held.extend(_half_send(flooded.port, HALF_SENT))
            try:
                return timed_cell(flooded_shell, cell)
            finally:
                for client in held:
                    client.close()
                held.clear()

        rounds = ctx.pick(20, 3)
        samples = alternate(
            {"flooded": under_flood, "quiet": lambda: timed_cell(quiet_shell, cell)},
            rounds,
            warmup=ctx.pick(2, 1),
            progress=ctx.progress,
            on_retry=ctx.noting(result.notes),
        )
    ratios = paired_ratios(samples["flooded"], samples["quiet"])
    low, high = median_interval(ratios)
    result.checks.append(
        Check(
            "time ratio of the cell, with 1,100 half-sent requests held vs none",
            median(ratios),
            "x",
            "<=",
            1.25,
            f"median of {rounds} paired ratios, 95% interval {low:.3f}-{high:.3f}; flooded "
            f"{median(samples['flooded']) * 1000:.0f} ms, quiet {median(samples['quiet']) * 1000:.0f} ms (medians)",
        )
    )
    result.sides = {
        "flooded": f"{HALF_SENT} connections each sending {HALF_REQUEST!r}, then run_cell({cell!r})",
        "quiet": f"run_cell({cell!r}) through a second server with the same settings",
    }
    result.notes.append(
        "both servers keep the defaults: max_connections 512 (a new connection closes the oldest half-sent one), "
        "header_timeout 10 s"
    )
    result.metrics.update({name: summary(values) for name, values in samples.items()})
    result.samples.update({name: [round(v, 5) for v in values] for name, values in samples.items()})
    return result


def _half_send(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send half a request each; those the server already closed are kept too."""
    sockets = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            client.sendall(HALF_REQUEST)
        except OSError:
            pass  # closed by the server to make room for a newer one
        sockets.append(client)
    return sockets
