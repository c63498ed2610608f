"""When did each ``docker run`` that Dockyter started begin and end? (Linux pidfds.)

Dockyter's own cost on a cell is everything outside the life of the container CLI it starts:
parsing, building the request, IPython's cell machinery, reading pipes after the CLI exited,
clean-up. ``cell time - CLI life`` measures exactly that, and unlike a ratio of two noisy
container starts it does not drown in the engine's noise (the engine's time is subtracted
out, run by run).

While a :class:`SpawnWatch` is active, every ``subprocess.Popen`` of a ``docker run`` notes
the time just before it is created; a thread waiting on a pidfd notes the moment it exits.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass
class Spawn:
    argv: list[str]
    started: float  # perf_counter just before Popen
    exited: float | None = None  # perf_counter when the process ended (pidfd readable)

    @property
    def life(self) -> float:
        if self.exited is None:
            raise RuntimeError(f"{self.argv[:3]} has not exited")
        return self.exited - self.started


@dataclass
class SpawnWatch:
    """``with SpawnWatch() as watch: run_cell(...)`` then ``watch.runs``: the ``docker run``s it saw."""

    runs: list[Spawn] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _original: Any = None

    def __enter__(self) -> Self:
        original = self._original = subprocess.Popen.__init__
        watch = self

        def init(popen: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
            argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
            started = time.perf_counter()
            original(popen, args, *rest, **kwargs)
            if "run" in argv[1:3]:
                watch._follow(Spawn(argv, started), popen.pid)

        subprocess.Popen.__init__ = init  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.Popen.__init__ = self._original  # type: ignore[method-assign]
        for thread in self._threads:
            thread.join(30)

    def _follow(self, spawn: Spawn, pid: int) -> None:
        self.runs.append(spawn)
        fd = os.pidfd_open(pid)

        def wait() -> None:
            try:
                select.select([fd], [], [])
                spawn.exited = time.perf_counter()
            finally:
                os.close(fd)

        thread = threading.Thread(target=wait, name="bench-spawnwatch", daemon=True)
        thread.start()
        self._threads.append(thread)

    def life(self) -> float:
        """Seconds the one ``docker run`` seen lived (an error if there was not exactly one); after the ``with``."""
        if len(self.runs) != 1:
            raise RuntimeError(f"expected one docker run, saw {len(self.runs)}")
        return self.runs[0].life
