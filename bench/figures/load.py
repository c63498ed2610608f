"""Figure 8: ``%load_ext dockyter`` in a fresh IPython, and what ``import dockyter`` imports.

Each sample is a fresh ``ipython -c`` process (its own IPython directory, so no user profile
or startup file runs, and an empty dockyter.toml) that measures ``time.perf_counter`` around
``%load_ext dockyter`` and reports which heavy modules were imported. A fresh ``python -c
'import dockyter'`` checks that the package import alone pulls in neither requests nor FastAPI.

Bytecode: an installed package imports from cached bytecode (pip compiles it; Python caches
it on first import). Some environments (this project's CI among them) set
``PYTHONDONTWRITEBYTECODE=1``, so every import compiles the sources again. The headline is
measured with a bytecode cache (``PYTHONPYCACHEPREFIX`` in the scratch folder, filled by a
first run, so the repository is not touched); the same load without any cache is reported
beside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..context import Context
from ..report import Check, FigureResult
from ..stats import median, summary

NUMBER = 8
TITLE = "`%load_ext dockyter` in a fresh IPython"
HEAVY = ("requests", "urllib3", "fastapi", "starlette", "uvicorn", "pydantic", "httpx")
MARK = "BENCH-RESULT "

LOAD = f"""
import json, sys, time
heavy = {HEAVY!r}
before = set(sys.modules)
start = time.perf_counter()
get_ipython().run_line_magic("load_ext", "dockyter")
seconds = time.perf_counter() - start
print({MARK!r} + json.dumps({{"seconds": seconds, "heavy": [m for m in heavy if m in sys.modules],
      "new_modules": len(set(sys.modules) - before)}}))
"""

IMPORT = f"""
import json, sys
import dockyter
print({MARK!r} + json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
"""


def _ipython() -> list[str]:
    script = Path(sys.executable).with_name("ipython")
    return [str(script)] if script.exists() else [sys.executable, "-m", "IPython"]


def _answer(argv: list[str], env: dict[str, str], cwd: Path) -> object:
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=120, stdin=subprocess.DEVNULL, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    raise RuntimeError(f"{argv[0]} said nothing usable (exit {done.returncode}): {(done.stdout + done.stderr)[-800:]}")


def measure(ctx: Context) -> FigureResult:
    result = FigureResult(NUMBER, TITLE)
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    base["IPYTHONDIR"] = str(ctx.workdir / "ipython-dir")
    cached = {**base, "PYTHONPYCACHEPREFIX": str(ctx.workdir / "bytecode")}
    uncached = {**base, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(ctx.workdir / "no-bytecode")}
    argv = [*_ipython(), "--no-banner", "--HistoryManager.enabled=False", "-c", LOAD]
    _answer(argv, cached, ctx.workdir)  # creates the profile and the bytecode cache; warms the page cache
    samples = ctx.pick(15, 3)
    runs, cold = [], []
    for _ in range(samples):  # alternating, like everything else
        runs.append(_answer(argv, cached, ctx.workdir))
        cold.append(_answer(argv, uncached, ctx.workdir))
    load_ms = [run["seconds"] * 1000 for run in runs]  # type: ignore[index]
    cold_ms = [run["seconds"] * 1000 for run in cold]  # type: ignore[index]
    heavy_after_load = sorted({name for run in runs for name in run["heavy"]})  # type: ignore[index]
    heavy_on_import = _answer([sys.executable, "-c", IMPORT], cached, ctx.workdir)
    assert isinstance(heavy_on_import, list)
    result.checks.append(
        Check(
            "median time of `%load_ext dockyter`",
            median(load_ms),
            "ms",
            "<=",
            100.0,
            f"over {len(load_ms)} fresh ipython processes, bytecode cached; min {min(load_ms):.0f} ms, max "
            f"{max(load_ms):.0f} ms. Without any bytecode cache (every import compiled): median {median(cold_ms):.0f} ms",
        )
    )
    result.checks.append(
        Check(
            "modules of the requests/FastAPI stacks imported by `import dockyter`",
            float(len(heavy_on_import)),
            "modules",
            "<=",
            0.0,
            f"imported: {', '.join(heavy_on_import) or 'none'}; after %load_ext (docker backend): "
            f"{', '.join(heavy_after_load) or 'none'}",
        )
    )
    result.sides = {
        "dockyter": "ipython --no-banner --HistoryManager.enabled=False -c '<time.perf_counter() around %load_ext dockyter>' "
        "(fresh IPYTHONDIR, empty dockyter.toml, bytecode cache in PYTHONPYCACHEPREFIX)",
        "import check": f"python -c 'import dockyter' then look for {', '.join(HEAVY)} in sys.modules",
    }
    result.metrics = {
        "load_ms": summary(load_ms, 2),
        "load_ms_no_bytecode_cache": summary(cold_ms, 2),
        "heavy_on_import": heavy_on_import,
        "heavy_after_load": heavy_after_load,
    }
    result.samples = {
        "load_ms": [round(v, 2) for v in load_ms],
        "load_ms_no_bytecode_cache": [round(v, 2) for v in cold_ms],
    }
    return result
