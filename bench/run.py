"""Measure what Dockyter costs on top of the container runtime; write the results table.

    .venv/bin/python bench/run.py              every figure, full size (about 10-15 minutes)
    .venv/bin/python bench/run.py --quick      every figure, small and few (about 2 minutes; a smoke test)
    .venv/bin/python bench/run.py --figures 1,5

On a fresh machine: ``bash .ci/provision && .venv/bin/python bench/run.py``.

Every figure is measured as a ratio against the bare runtime in the same run, in alternating
rounds, each figure in a fresh worker process. Results go to ``bench/results/latest.md`` and
``latest.json`` (``--output DIR`` elsewhere). docs/performance.md explains each method.
Nothing is left running: every container the benchmark or Dockyter starts is removed, and
any that Dockyter failed to remove is reported as a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `dockyter` importable
    sys.path.insert(0, str(ROOT))

from bench import runtime
from bench.figures import MODULES, title
from bench.report import FigureResult, write

FULL_TIMEOUT = 1800.0  # seconds one figure may take in full mode
QUICK_TIMEOUT = 300.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds, small sizes: checks that every figure runs")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results", help="folder for latest.md / latest.json"
    )
    parser.add_argument(
        "--figures", default=",".join(map(str, MODULES)), help="comma-separated figure numbers (default: all)"
    )
    parser.add_argument(
        "--image",
        default=os.environ.get("DOCKYTER_TEST_IMAGE") or runtime.DEFAULT_IMAGE,
        help="an image with bash and busybox",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a target is missed (default: only when a figure fails)"
    )
    options = parser.parse_args(argv)
    try:
        options.figures = [int(n) for n in options.figures.split(",") if n.strip()]
    except ValueError:
        parser.error("--figures takes numbers, e.g. 1,5")
    unknown = [n for n in options.figures if n not in MODULES]
    if unknown:
        parser.error(f"no figure {unknown[0]}; figures are {', '.join(map(str, MODULES))}")
    return options


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Worker:
    """One figure measured in its own process."""

    def __init__(self, number: int, options: argparse.Namespace, scratch: Path, prefix: str) -> None:
        from dockyter.wire.contract import owner_id

        self.number = number
        self.result_path = scratch / f"figure-{number}.json"
        self.log_path = scratch / f"figure-{number}.log"
        self.server_prefix = f"{prefix}-f{number}"
        argv = [
            sys.executable, str(ROOT / "bench" / "worker.py"),
            "--figure", str(number), "--result", str(self.result_path), "--image", options.image,
            "--workdir", str(scratch / f"figure-{number}"), "--server-prefix", self.server_prefix,
        ]  # fmt: skip
        if options.quick:
            argv.append("--quick")
        with open(self.log_path, "wb") as log:
            # stderr (progress lines, tracebacks) to ours; stdout (anything IPython prints) to the log
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, cwd=ROOT, start_new_session=True
            )
        self.owner = owner_id(self.process.pid)  # the owner label of the containers its Dockyter starts

    def stop(self) -> None:
        """SIGTERM (the worker unwinds: its servers stop, its containers go), SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def result(self, timeout: float) -> FigureResult:
        name = title(self.number)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return FigureResult(self.number, name, error=f"did not finish within {timeout:g} s")
        try:
            return FigureResult.from_dict(json.loads(self.result_path.read_text()))
        except (OSError, ValueError) as error:
            return FigureResult(
                self.number, name, error=f"the worker exited with {self.process.returncode} and no result ({error})"
            )


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "dockyter"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (head.stdout.strip() or "unknown") + (" + uncommitted changes in dockyter/" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    problem = runtime.engine_problem(options.image)
    if problem:
        say(f"bench: cannot run: {problem}")
        return 2
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    os.environ[runtime.RUN_VARIABLE] = run_id  # the bench label's value, here and in the workers
    prefix = f"bench-{secrets.token_hex(3)}"
    scratch = Path(tempfile.mkdtemp(prefix="dockyter-bench-"))
    timeout = QUICK_TIMEOUT if options.quick else FULL_TIMEOUT
    started = time.monotonic()
    run: dict[str, object] = {
        "started": run_id,
        "quick": options.quick,
        "image": options.image,
        "commit": git_commit(),
        "machine": {**runtime.machine(), "load average at start": runtime.load_average()},
    }
    say(f"bench: {'quick' if options.quick else 'full'} run {run_id}, figures {options.figures}; scratch {scratch}")
    figures: list[FigureResult] = []
    owners: list[str] = []
    leftovers: list[str] = []
    worker: Worker | None = None
    try:
        for number in options.figures:
            say(f"bench: figure {number}: {title(number)}")
            worker = Worker(number, options, scratch, prefix)
            owners.append(worker.owner)
            figure = worker.result(timeout)
            worker = None
            left = runtime.settle_and_collect(owners, [prefix])
            if left:
                runtime.remove(left)
                leftovers += left
                figure.notes.append(f"containers left behind, now removed: {', '.join(left)}")
            figures.append(figure)
            say(f"bench: figure {number} done in {figure.seconds:.0f} s: " + _verdict(figure))
    except KeyboardInterrupt:
        say("bench: interrupted; removing what was started")
        if worker is not None:
            worker.stop()
        runtime.remove(runtime.ours(owners, [prefix]))
        return 130
    finally:
        runtime.remove(runtime.ours(owners, [prefix]))
    machine = run["machine"]
    assert isinstance(machine, dict)
    machine["load average at end"] = runtime.load_average()
    run["seconds"] = round(time.monotonic() - started, 1)
    run["leftover_containers"] = leftovers
    md_path, json_path = write(options.output, run, figures)
    say(f"bench: wrote {md_path} and {json_path}")
    if any(f.error for f in figures):
        say(f"bench: logs and server logs of the failed figures are kept in {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    print(md_path.read_text().split("\n## Details")[0])
    failed = any(f.error for f in figures) or bool(leftovers)
    missed = not all(f.met for f in figures)
    return 1 if failed or (options.strict and missed) else 0


def _verdict(figure: FigureResult) -> str:
    if figure.error:
        return f"NOT MEASURED ({figure.error})"
    return "; ".join(
        f"{c.name} = {c.value:.3g}{'' if c.unit == 'x' else ' ' + c.unit} ({'ok' if c.met else 'MISSED'})"
        for c in figure.checks
    )


if __name__ == "__main__":
    sys.exit(main())
