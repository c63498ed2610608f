"""Dockyter as a user meets it: a real IPython ``InteractiveShell`` with the extension loaded,
and the streams a cell's output is written to (discarded, or timed as it arrives)."""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class DiscardingStream(io.TextIOBase):
    """A ``sys.stdout`` that throws the text away, counting characters (a sink as fast as can be)."""

    def __init__(self) -> None:
        self.chars = 0
        self.writes = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.chars += len(text)
        self.writes += 1
        return len(text)

    def flush(self) -> None:
        pass


class LineClock(io.TextIOBase):
    """A ``sys.stdout`` that notes when each complete line arrives (``time.perf_counter``).

    ``wait_for(count)`` blocks another thread until ``count`` lines have arrived.
    """

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self._partial = ""
        self._changed = threading.Condition()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        now = time.perf_counter()
        self.feed(text, now)
        return len(text)

    def feed(self, text: str, now: float) -> None:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        if lines:
            with self._changed:
                self.arrivals.extend((now, line) for line in lines)
                self._changed.notify_all()

    def flush(self) -> None:
        pass

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.arrivals) >= count, timeout)


def new_shell(prestart: int = 0) -> Any:
    """The process's ``InteractiveShell`` with Dockyter loaded, once its load-time cleanup is done.

    ``prestart``: ``Dockyter.prestart``. Off unless asked for: the other figures measure a cold
    container per run, as they always did; figure 15 measures the prestarted ones.
    """
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    with streams(DiscardingStream(), DiscardingStream()):
        shell.run_line_magic("load_ext", "dockyter")
        shell.run_line_magic("config", f"Dockyter.prestart = {prestart}")
        # The output figures show 200 MB through a cell: all of it, as before the cap existed.
        shell.run_line_magic("config", "Dockyter.max_output = 0")
    for thread in threading.enumerate():  # the orphan sweep runs `docker ps` in the background
        if thread.name.startswith("dockyter") and thread is not threading.current_thread():
            thread.join(30)
    return shell


@contextmanager
def streams(stdout: TextIO, stderr: TextIO | None = None) -> Iterator[None]:
    """Point ``sys.stdout`` (and ``sys.stderr``) at the given streams for the duration."""
    saved = sys.stdout, sys.stderr
    sys.stdout = stdout
    if stderr is not None:
        sys.stderr = stderr
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


class CellFailed(RuntimeError):
    """A benchmark cell raised: the numbers would mean nothing."""


def run_cell(shell: Any, cell: str, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
    """Run ``cell`` as a user would, its output going to ``stdout``/``stderr``; raise if it failed."""
    err = stderr if stderr is not None else io.StringIO()
    with streams(stdout if stdout is not None else DiscardingStream(), err):
        result = shell.run_cell(cell, store_history=False)
    error = result.error_before_exec or result.error_in_exec
    if error is not None:
        said = err.getvalue()[-500:] if isinstance(err, io.StringIO) else ""
        raise CellFailed(f"cell {cell.splitlines()[0]!r} failed: {type(error).__name__}: {error} {said}".strip())
    exit_code = shell.user_ns.get("_exit_code", 0)
    if exit_code not in (0, None):
        raise CellFailed(f"cell {cell.splitlines()[0]!r} exited with status {exit_code}")


def timed_cell(shell: Any, cell: str, stdout: TextIO | None = None) -> float:
    """Seconds ``run_cell`` takes, from the user's point of view (the whole ``shell.run_cell``)."""
    sink = stdout if stdout is not None else DiscardingStream()
    start = time.perf_counter()
    run_cell(shell, cell, sink)
    return time.perf_counter() - start
