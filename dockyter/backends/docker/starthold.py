"""The runtime's own complaint when a container does not start, held back so it is said once.

When ``docker run`` cannot start a container (a name already taken, a bad volume mode,
``--pull never`` without the image, an unknown flag), the CLI writes its reason on stderr, often
followed by its usage text, and exits with status 125. Dockyter says that reason in its one red
line (``the container did not start: ...``), so the raw text must not reach the cell as well.

Stderr that *starts* the way such a complaint starts (:func:`~dockyter.errors.runtime_complaint`),
before anything else was shown, is held for at most :data:`HOLD` seconds: a CLI that could not
start the container exits at once, and the held text is then dropped, its reason kept for the
red line. If instead the container turns out to be running (other output arrives, or the time is
up), the held text was its own and is shown, late by at most ``HOLD``. Nothing else is ever delayed. A
command of the container that itself prints ``Error: ...`` and exits with 125 at once keeps its text.
"""

from __future__ import annotations

import time

from ...errors import not_started_reason, runtime_complaint
from ...output import OutputSink, Stream

HOLD = 0.5  # seconds a possible complaint is held before it is shown as the container's own output


class StartHold:
    """An output sink's front for one ``docker run``: holds a first stderr that may be the CLI's complaint."""

    def __init__(self, sink: OutputSink) -> None:
        self.sink = sink
        self._first = True  # nothing written yet: a complaint may still come
        self._held = b""
        self._since = 0.0

    def write_bytes(self, stream: Stream, data: bytes) -> None:
        if self._first and stream == "stderr" and (self._held or runtime_complaint(data.decode(errors="replace"))):
            self._since = self._since if self._held else time.monotonic()
            self._held += data
            return
        self.release()  # other output: the container runs, and whatever was held is its own
        self.sink.write_bytes(stream, data)

    def tick(self) -> None:
        """Show what is held once it has waited :data:`HOLD` seconds, and let the sink flush a batch
        that is due (called as the run is pumped)."""
        if self._held and time.monotonic() - self._since >= HOLD:
            self.release()
        self.sink.tick()

    def release(self) -> None:
        """Show what is held, and hold nothing more."""
        self._first = False
        held, self._held = self._held, b""
        if held:
            self.sink.write_bytes("stderr", held)

    def conclude(self, exit_code: int) -> str | None:
        """At the end of the run: the runtime's reason when the container did not start (what was
        held is then not shown); otherwise None, and what was held is shown."""
        held = self._held.decode(errors="replace")
        reason = not_started_reason(exit_code, held) if self._held else None
        if reason is None or not runtime_complaint(held, surely=True):
            self.release()
        else:
            self._held = b""
            self._first = False
        return reason
