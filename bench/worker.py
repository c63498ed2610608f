"""Measure ONE figure in this (fresh) process and write its result as JSON.

``run.py`` starts one worker per figure, so that memory peaks, IPython's singleton shell and
the extension's state never carry from one figure to the next. Not meant to be run by hand,
but it can be: ``python bench/worker.py --figure 1 --result /tmp/f1.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `dockyter` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.context import Context
from bench.figures import module
from bench.report import FigureResult
from bench.runtime import DEFAULT_IMAGE


def isolate(workdir: Path) -> None:
    """Keep the user's own Dockyter configuration out: an empty dockyter.toml, no token, our folder."""
    empty = workdir / "dockyter.toml"
    empty.write_text("")
    os.environ["DOCKYTER_CONFIG"] = str(empty)
    os.environ.pop("DOCKYTER_API_TOKEN", None)
    os.chdir(workdir)


def measure(number: int, ctx: Context) -> FigureResult:
    figure = module(number)
    start = time.monotonic()
    try:
        result: FigureResult = figure.measure(ctx)
    except Exception as error:  # noqa: BLE001 - a figure that fails is reported, not fatal
        result = FigureResult(number, figure.TITLE, error=f"{type(error).__name__}: {error}")
        traceback.print_exc()
    result.seconds = round(time.monotonic() - start, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--figure", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--server-prefix", default="bench-manual")
    options = parser.parse_args(argv)
    # run.py stops a worker with SIGTERM: unwind, so servers stop and containers are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="dockyter-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    isolate(workdir)
    ctx = Context(
        quick=options.quick,
        image=options.image,
        workdir=workdir,
        server_prefix=options.server_prefix,
        label=f"fig {options.figure}",
    )
    result = measure(options.figure, ctx)
    options.result.write_text(json.dumps(result.as_dict(), indent=2, default=str))
    if options.workdir is None and result.error is None:
        shutil.rmtree(workdir, ignore_errors=True)  # our own scratch; kept when something failed
    return 0


if __name__ == "__main__":
    sys.exit(main())
