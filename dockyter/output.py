"""Where container output goes: live to the cell, decoded incrementally, optionally captured.

Backends hand raw bytes (docker CLI pipes) or text (HTTP events) to a :class:`OutputSink`.
Nothing is accumulated unless the user asked to capture it, so memory stays flat however
much a command prints.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection
from typing import Literal, TextIO

from .liveoutput import LiveOutput
from .wire.contract import IncrementalText

Stream = Literal["stdout", "stderr"]


# Characters of one run's output that IPython's output history may keep. IPython 9 copies
# everything a cell writes to sys.stdout/stderr into shell.history_manager.outputs for the
# kernel's lifetime (InteractiveShell._tee); past this, we write around that copy.
HISTORY_LIMIT = 1 << 20
# How IPython's per-cell capture names the ``write`` it puts on a stream instance (IPython 9).
# tests/test_output_history.py fails when a release no longer matches it.
TEE_QUALNAME = "InteractiveShell._tee.<locals>.write"


def untracked_write(stream: TextIO) -> Callable[[str], object]:
    """``stream.write`` without IPython's per-cell capture, when that capture is in place.

    ``_tee`` sets ``write`` on the stream *instance* for the duration of a cell; the stream's
    class keeps its own ``write``, which is what reaches the cell. So the class's ``write``,
    bound to the stream, skips only the history copy. Any other ``write`` (no capture, or one
    this code does not recognise) is used as it is: correct output, IPython keeping its copy.
    """
    patched = vars(stream).get("write") if hasattr(stream, "__dict__") else None
    if getattr(patched, "__qualname__", None) != TEE_QUALNAME:
        return stream.write
    return type(stream).write.__get__(stream)  # type: ignore[no-any-return]


class OutputSink:
    """Receives output chunks as they are produced.

    ``show`` writes each chunk to the current ``sys.stdout`` / ``sys.stderr`` (looked up at
    write time, so ipykernel's and capture_output's streams are honoured), the first at once and
    the rest in batches, at most ``limit`` bytes (:mod:`dockyter.liveoutput`). ``capture`` keeps
    the text of each stream, whole. ``hide`` names streams not shown even with ``show``
    (``%%docker --out VAR`` captures stdout instead).
    """

    def __init__(
        self, *, show: bool = True, capture: bool = False, hide: Collection[Stream] = (), limit: int | None = None
    ) -> None:
        self.show = show
        self.hide = frozenset(hide)
        self.capture = capture
        self._captured: dict[Stream, list[str]] = {"stdout": [], "stderr": []}
        self._decoders: dict[Stream, IncrementalText] = {
            "stdout": IncrementalText(),
            "stderr": IncrementalText(),
        }
        self.stderr_tail = ""  # the last few KB of stderr, to explain failures
        self._shown = 0  # characters written so far, for HISTORY_LIMIT
        self.live = LiveOutput(limit)

    def write(self, stream: Stream, text: str) -> None:
        if not text:
            return
        if stream == "stderr":
            self.stderr_tail = (self.stderr_tail + text)[-4096:]
        if self.capture:
            self._captured[stream].append(text)
        if self.show and stream not in self.hide:
            self.live.show(sys.stdout if stream == "stdout" else sys.stderr, text, self._write_to)

    def _write_to(self, target: TextIO, text: str) -> None:
        write = target.write if self._shown < HISTORY_LIMIT else untracked_write(target)
        self._shown += len(text)
        write(text)

    def tick(self) -> None:
        """Flush what waits in a batch once it is due (the backends call this as they wait)."""
        self.live.tick()

    def due_in(self) -> float | None:
        """Seconds until a batch must be flushed (None: nothing waits): the longest a backend may wait."""
        return self.live.due_in()

    def write_bytes(self, stream: Stream, data: bytes) -> None:
        self.write(stream, self._decoders[stream].decode(data))

    def close(self) -> None:
        """End of output: emit any incomplete character left in the decoders."""
        for stream, decoder in self._decoders.items():
            self.write(stream, decoder.flush())
        self.live.close(capturing=self.capture)

    def text(self, stream: Stream) -> str:
        return "".join(self._captured[stream])


class ProgressLine:
    """One ``Dockyter:`` line on stderr that rewrites itself in place, then ends as a summary.

    Each update starts with a carriage return, which both a terminal and Jupyter's output
    area treat as "back to the start of the line"; updates closer together than ``interval``
    are skipped so a fast pull does not flood the notebook with messages.
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._written_at: float | None = None
        self._width = 0  # length of the text now on the line, to blank it out in a terminal

    def update(self, text: str) -> None:
        now = time.monotonic()
        if self._written_at is not None and now - self._written_at < self.interval:
            return
        self._written_at = now
        self._write(text, end="")

    @property
    def shown(self) -> bool:
        """Whether the line is on the screen (an update was written and not finished)."""
        return self._written_at is not None

    def finish(self, text: str) -> None:
        """Replace the line with ``text`` and end it."""
        self._write(text, end="\n")
        self._written_at, self._width = None, 0

    def _write(self, text: str, end: str) -> None:
        line = f"Dockyter: {text}"
        padding = " " * max(self._width - len(line), 0)
        self._width = len(line)
        sys.stderr.write(f"\r{line}{padding}{end}")
        sys.stderr.flush()
