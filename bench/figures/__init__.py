"""The figures: eight of issue 7, two of sessions (issue 12), one module each; every module has ``NUMBER``, ``TITLE`` and
``measure(ctx) -> FigureResult``."""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = {
    1: "cell_docker",
    2: "bang_docker",
    3: "cell_api",
    4: "latency",
    5: "output_docker",
    6: "output_api",
    7: "concurrency",
    8: "load",
    9: "session_docker",
    10: "session_api",
}


def module(number: int) -> ModuleType:
    return importlib.import_module(f"bench.figures.{MODULES[number]}")


def title(number: int) -> str:
    """The figure's title, or its module name if the module cannot be imported here."""
    try:
        return str(module(number).TITLE)
    except Exception:  # noqa: BLE001 - the worker will report the real error
        return MODULES[number]
