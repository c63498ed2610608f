"""What every figure is given: the mode, the image, a scratch folder, and a way to start servers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .server import BenchServer

T = TypeVar("T")


@dataclass
class Context:
    quick: bool  # few rounds, small sizes: proves the figure runs, numbers are indicative only
    image: str  # an image with bash and busybox
    workdir: Path  # scratch space of this figure (FIFOs, server configs and logs)
    server_prefix: str  # every server of this run is named "<prefix>-N": cleanup finds their containers
    label: str = ""  # shown in progress lines, e.g. "fig 3"
    _servers: int = field(default=0, repr=False)
    _started: float = field(default_factory=time.monotonic, repr=False)

    def pick(self, full: T, quick: T) -> T:
        """``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full

    def progress(self, message: str) -> None:
        elapsed = time.monotonic() - self._started
        print(f"  [{self.label} +{elapsed:5.1f}s] {message}", file=sys.stderr, flush=True)

    def noting(self, notes: list[str]) -> Callable[[str], None]:
        """A callback that prints ``message`` and keeps it in ``notes`` (a figure's notes)."""

        def note(message: str) -> None:
            self.progress(message)
            notes.append(message)

        return note

    def server(self, **overrides: Any) -> BenchServer:
        """A new (not yet started) ``dockyter-server``; use it as a context manager."""
        self._servers += 1
        return BenchServer(self.workdir, overrides, name=f"{self.server_prefix}-{self._servers}")
