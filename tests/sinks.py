"""Output sinks for tests that look at when output arrived, not just what it was."""

from __future__ import annotations

import time

from dockyter.output import OutputSink, Stream


class TimedSink(OutputSink):
    """Captures output and when each chunk arrived."""

    def __init__(self) -> None:
        super().__init__(show=False, capture=True)
        self.arrivals: list[tuple[float, str]] = []

    def write(self, stream: Stream, text: str) -> None:
        if text:
            self.arrivals.append((time.monotonic(), text))
        super().write(stream, text)
