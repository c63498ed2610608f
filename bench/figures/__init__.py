"""The figures, one module each (1-8 from issue 7, 9 the sandboxed runtime of issue 10, 10-11 sessions
of issue 12, 12 the Swarm executor of issue 14, 13 half-sent requests and 14 the check of what the engine
made, both of issue 19; 15 prestarted containers of issue 22; 18 a chatty cell's messages and a session
listing, of issue 23; 19 a cell on podman, of issue 25; 20 the files of ``$DOCKYTER_OUT``, of issue 24); every
module has ``NUMBER``, ``TITLE`` and ``measure(ctx) -> FigureResult``."""

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
    9: "sandbox",
    10: "session_docker",
    11: "session_api",
    12: "swarm",
    13: "slowloris",
    14: "enginecheck",
    15: "prestart",
    18: "chatty",
    19: "cell_podman",
    20: "files",
}


def module(number: int) -> ModuleType:
    return importlib.import_module(f"bench.figures.{MODULES[number]}")


def title(number: int) -> str:
    """The figure's title, or its module name if the module cannot be imported here."""
    try:
        return str(module(number).TITLE)
    except Exception:  # noqa: BLE001 - the worker will report the real error
        return MODULES[number]
