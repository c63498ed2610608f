"""Resident memory of a process and its peak over an interval (Linux ``/proc``).

Writing ``5`` to ``/proc/PID/clear_refs`` resets the peak (``VmHWM``) to the current resident
size, so "peak during the interval minus resident size before it" is exactly the growth the
interval caused, whatever the process did earlier. Where that reset is not permitted, the peak
is the process's lifetime peak, which can only overstate growth if an earlier peak was higher;
:attr:`PeakWindow.reset` says which it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Self

MB = 1024 * 1024


def status_kb(pid: int | str, key: str) -> int:
    """A ``kB`` value (``VmRSS``, ``VmHWM``) from ``/proc/PID/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")


def reset_peak(pid: int | str) -> bool:
    """Reset ``VmHWM`` of ``pid`` to its current resident size; False if not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class PeakWindow:
    """``with PeakWindow(pid) as window: ...`` then ``window.growth_mb``."""

    pid: int | str = "self"
    before_kb: int = 0
    peak_kb: int = 0
    reset: bool = False

    def __enter__(self) -> Self:
        self.before_kb = status_kb(self.pid, "VmRSS")
        self.reset = reset_peak(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_kb = status_kb(self.pid, "VmHWM")

    @property
    def growth_mb(self) -> float:
        return max(self.peak_kb - self.before_kb, 0) / 1024

    def describe(self) -> str:
        how = "peak reset at the start" if self.reset else "lifetime peak (reset not permitted)"
        return f"resident {self.before_kb / 1024:.1f} MB before, peak {self.peak_kb / 1024:.1f} MB during ({how})"
