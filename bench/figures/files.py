"""Figure 20: what ``$DOCKYTER_OUT`` costs, with the docker backend, in a real IPython shell.

Every run gets a folder now (made, bind-mounted, read back, removed) and a receipt (the image's
digest asked of the engine's socket while the container starts). Three checks, alternating rounds:

* a ``true`` cell with files on (the default) against the same cell with ``Dockyter.files``
  off: time ratio (a cell that writes nothing must cost nothing measurable);
* Dockyter's own time (cell time - the life of the ``docker run`` it started, bench/spawnwatch.py)
  with files on minus with files off: milliseconds, engine noise subtracted out run by run;
* a cell that leaves 20 PNG images of 50 KB and a CSV of 5,000 rows: Dockyter's own time for it,
  reading, rendering and displaying included (to a shell without a frontend, which prints each
  output's text form).
"""

from __future__ import annotations

from ..context import Context
from ..ipy import new_shell, timed_cell
from ..report import Check, FigureResult
from ..stats import alternate, median, median_interval, paired_ratios, summary
from .startup import watched
from .util import magics

NUMBER = 20
TITLE = "`$DOCKYTER_OUT`: a cell without files, and one that leaves 21"

# 50 KB "PNG" files: the signature, then random filler (only the first bytes are checked).
WRITE_FILES = """
printf '\\211PNG\\r\\n\\032\\n' > /tmp/head.png && head -c 50000 /dev/urandom >> /tmp/head.png
for i in $(seq -w 20); do cp /tmp/head.png "$DOCKYTER_OUT/plot-$i.png"; done
{ echo n,square; i=0; while [ $i -lt 5000 ]; do echo "$i,$((i * i))"; i=$((i + 1)); done; } > "$DOCKYTER_OUT/table.csv"
"""


def measure(ctx: Context) -> FigureResult:
    result = FigureResult(NUMBER, TITLE)
    shell = new_shell()
    core = magics(shell)
    empty = f"%%docker {ctx.image}\ntrue"
    own_on: list[float] = []
    own_off: list[float] = []

    def with_files(on: bool, own: list[float]) -> float:
        core.files = on
        return watched(lambda: timed_cell(shell, empty), own)()

    rounds = ctx.pick(30, 3)
    samples = alternate(
        {"files on": lambda: with_files(True, own_on), "files off": lambda: with_files(False, own_off)},
        rounds,
        warmup=ctx.pick(2, 1),
        progress=ctx.progress,
        on_retry=ctx.noting(result.notes),
    )
    core.files = True
    own_on, own_off = own_on[-rounds:], own_off[-rounds:]
    ratios = paired_ratios(samples["files on"], samples["files off"])
    low, high = median_interval(ratios)
    result.checks.append(
        Check(
            "time ratio of a `true` cell, files on vs files off",
            median(ratios),
            "x",
            "<=",
            1.05,
            f"median of {rounds} paired ratios, 95% interval {low:.3f}-{high:.3f}; on "
            f"{median(samples['files on']) * 1000:.0f} ms, off {median(samples['files off']) * 1000:.0f} ms",
        )
    )
    on_ms, off_ms = [v * 1000 for v in own_on], [v * 1000 for v in own_off]
    result.checks.append(
        Check(
            "Dockyter's own time per `true` cell, files on minus files off",
            median(on_ms) - median(off_ms),
            "ms",
            "<=",
            5.0,
            f"own time (cell - docker CLI life): on median {median(on_ms):.1f} ms, off {median(off_ms):.1f} ms",
        )
    )

    writing = f"%%docker {ctx.image}\n{WRITE_FILES}"
    own_files: list[float] = []
    cell_times = [watched(lambda: timed_cell(shell, writing), own_files)() for _ in range(ctx.pick(10, 2))]
    files_ms = [v * 1000 for v in own_files]
    result.checks.append(
        Check(
            "Dockyter's own time for a cell leaving 20 PNGs of 50 KB and a 5,000-row CSV",
            median(files_ms),
            "ms",
            "<=",
            150.0,
            f"median of {len(files_ms)} (min {min(files_ms):.1f}, max {max(files_ms):.1f}); the whole cell "
            f"{median(cell_times) * 1000:.0f} ms",
        )
    )
    result.sides = {
        "files on": f"InteractiveShell.run_cell({empty!r}) with Dockyter.files = True",
        "files off": "the same with Dockyter.files = False",
        "files written": f"InteractiveShell.run_cell(%%docker {ctx.image} + 20 PNG and a CSV into $DOCKYTER_OUT)",
    }
    result.metrics.update(
        {
            "own_ms_files_on": summary(on_ms, 2),
            "own_ms_files_off": summary(off_ms, 2),
            "own_ms_files_written": summary(files_ms, 2),
            **{name: summary(values) for name, values in samples.items()},
        }
    )
    result.samples.update({name: [round(v, 5) for v in values] for name, values in samples.items()})
    return result
