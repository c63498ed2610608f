"""What a session's background processes print while no command runs: :class:`BackgroundOutput`.

A job started with ``cmd &`` keeps writing to the session's pipes after its command has ended.
Between commands the session's readers hand that output here, and it costs the server a
bounded amount whatever the job does:

* **Time.** While idle, each pipe is read at most once every :data:`IDLE_READ_INTERVAL`
  seconds, :data:`~dockyter.wire.contract.READ_SIZE` bytes at most. A job printing less than that
  (256 KiB a second per stream: progress lines, logs) never waits; a flood such as ``yes &``
  fills the pipes and then waits in ``write`` for the next read, as a program writing to a
  terminal nobody reads would, instead of keeping the server (and the CLI, and the engine)
  busy copying it. A command wakes the readers at once: it is read at full speed.
* **Memory.** Only the last :data:`IDLE_KEEP` bytes are kept; what is dropped is counted.

The next command's output starts with what was kept, after one line on stderr saying how much
was dropped, if anything was.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

IDLE_KEEP = 65536  # bytes of background output kept between commands
IDLE_READ_INTERVAL = 0.25  # seconds between two reads of one pipe while no command runs


class BackgroundOutput:
    """The bounded tail of one session's background output, and the pace its pipes are read at."""

    def __init__(self) -> None:
        self._kept: deque[tuple[str, bytes]] = deque()
        self._size = 0
        self._dropped = 0
        self._command = asyncio.Event()  # set while a command runs: no pause then

    def keep(self, stream: str, data: bytes) -> None:
        """Keep ``data`` (read from ``stream`` while idle); the oldest goes beyond IDLE_KEEP bytes."""
        self._kept.append((stream, data))
        self._size += len(data)
        while self._size > IDLE_KEEP:
            oldest_stream, oldest = self._kept.popleft()
            cut = self._size - IDLE_KEEP
            if cut < len(oldest):  # keep exactly the last IDLE_KEEP bytes
                self._kept.appendleft((oldest_stream, oldest[cut:]))
            else:
                cut = len(oldest)
            self._size -= cut
            self._dropped += cut

    def take(self) -> list[tuple[str, bytes]]:
        """What to show at the start of the next command (and forget): a note on what was dropped, the tail."""
        shown = list(self._kept)
        if self._dropped:
            note = (
                f"[dockyter-server: {self._dropped} bytes of background output were dropped while the session "
                f"was idle; the last {self._size} follow]\n"
            )
            shown.insert(0, ("stderr", note.encode()))
        self._kept.clear()
        self._size = self._dropped = 0
        return shown

    def command_running(self, running: bool) -> None:
        """A command starts (the readers go at full speed, from now) or ends (they pace themselves again)."""
        if running:
            self._command.set()
        else:
            self._command.clear()

    async def pause(self) -> None:
        """Between two reads while idle: IDLE_READ_INTERVAL seconds, or until a command starts."""
        if not self._command.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._command.wait(), IDLE_READ_INTERVAL)
