"""What a run shows in the cell, as it comes: batched into few messages, and capped.

A command that prints without pause (``while true; do echo spam; done``) would otherwise send
the notebook a message per read, thousands a second, and megabytes a browser tab has to draw.

* **Batching.** The first write of a run is flushed at once (nothing delays the first byte);
  later ones are flushed at most every :data:`BATCH` seconds, so what arrives in between goes
  out together. The backends' loops call :meth:`LiveOutput.tick` (and wait no longer than
  :meth:`LiveOutput.due_in`), so a pending write never waits longer than that. Writes to the
  other stream flush the first, so stdout and stderr keep their order.
* **The cap.** ``Dockyter.max_output`` bytes are shown per run; past that, output is counted,
  not shown, and one line at the end says how much was hidden and how to keep it all (``--out``
  captures everything, whatever the cap).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

BATCH = 0.05  # seconds between two flushes of a run's output, at most one in between
# How a text reaches its stream: the sink's own writer (which steps around IPython's history copy).
WriteTo = Callable[[TextIO, str], object]


def size(count: int) -> str:
    """A byte count as people read it: ``512 bytes``, ``1.2 MB``."""
    if count < 1000:
        return f"{count} bytes"
    value = count / 1000
    for unit in ("kB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


class LiveOutput:
    """The cell's side of one run's output: ``show`` writes, flushes in batches and keeps within ``limit``."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit or None  # bytes shown at most (None or 0: all)
        self.shown = 0  # bytes shown so far
        self.hidden = 0  # bytes not shown, past the limit
        self._flushed_at: float | None = None  # None: nothing flushed yet, the next write flushes at once
        self._pending: TextIO | None = None  # a stream written to and not flushed yet
        self._mid_line: TextIO | None = None  # the stream last written to, if its line is not ended
        self._said = False

    # -- showing ---------------------------------------------------------------------------------

    def show(self, target: TextIO, text: str, write: WriteTo) -> None:
        """Show ``text`` on ``target`` (``sys.stdout`` or ``sys.stderr``, through ``write``), within the limit."""
        text = self._within_limit(text)
        if not text:
            return
        if self._pending is not None and self._pending is not target:
            self._flush()  # the other stream's output first: their order is kept
        write(target, text)
        self._pending = target
        self._mid_line = None if text.endswith("\n") else target
        if self._flushed_at is None or time.monotonic() - self._flushed_at >= BATCH:
            self._flush()

    def _within_limit(self, text: str) -> str:
        if self.limit is None:
            return text
        data = text if text.isascii() else None
        count = len(text) if data is not None else len(text.encode())
        room = self.limit - self.shown
        if count <= room:
            self.shown += count
            return text
        self.shown = self.limit  # nothing more is shown
        part = text.encode()[: max(room, 0)].decode(errors="ignore")  # whole characters only
        if "\n" in part:
            part = part[: part.rindex("\n") + 1]  # and whole lines, where there are lines
        self.hidden += count - len(part.encode())
        return part

    # -- flushing ----------------------------------------------------------------------------------

    def due_in(self) -> float | None:
        """Seconds until what is pending must be flushed; None when nothing is."""
        if self._pending is None or self._flushed_at is None:
            return None
        return max(0.0, BATCH - (time.monotonic() - self._flushed_at))

    def tick(self) -> None:
        """Flush what is pending once it has waited :data:`BATCH` seconds."""
        due = self.due_in()
        if due is not None and due <= 0:
            self._flush()

    def _flush(self) -> None:
        if self._pending is not None:
            self._pending.flush()
            self._pending = None
        self._flushed_at = time.monotonic()

    def close(self, capturing: bool) -> None:
        """End of the run: flush, and say once how much the limit hid (``capturing``: --out keeps it)."""
        if self.hidden and not self._said and self._mid_line is not None:
            self._mid_line.write("\n")  # the line on its own, where both streams share a terminal
        self._flush()
        if self.hidden and not self._said:
            self._said = True
            keep = "" if capturing else "; %%docker --out VAR (and --err VAR) keeps all of it"
            limit = f"Dockyter.max_output shows the first {size(self.limit or 0)} of a cell"
            sys.stderr.write(f"Dockyter: {size(self.hidden)} more output not shown ({limit}){keep}\n")
            sys.stderr.flush()
