"""What a file of ``$DOCKYTER_OUT`` is, and how it travels in the API's NDJSON stream.

Both ends agree on the media types (:func:`media_type`: the name's extension, confirmed by the
first bytes for raster images) and on two events (docs/api.md), sent after the run's output and
before its ``exit``:

* ``{"event": "file", "name", "media_type", "size", "data"}``: a file read whole, ``data`` in
  base64; or, instead of ``data``, ``"problem"``: one line saying why it was not sent;
* ``{"event": "files_omitted", "count", "message"}``: entries beyond the limits, counted only.

A client treats every field as hostile: :func:`file_from_event` checks types, re-escapes the
name, and refuses data larger than the client's own limits before decoding it.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from typing import Any

from .outfolder import Collected, FileLimits, FoundFile, printable, size_text

# By extension (lower case). Anything else is application/octet-stream: shown as one line.
EXTENSIONS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".json": "application/json",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
}
OTHER = "application/octet-stream"
# The first bytes each raster format must start with: a name is not enough to call bytes an image.
SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}


def media_type(name: str, data: bytes | None) -> str:
    """The media type of the file ``name`` holding ``data`` (None: not read, judged by its name)."""
    kind = EXTENSIONS.get(posixpath.splitext(name.lower())[1], OTHER)
    signatures = SIGNATURES.get(kind)
    if signatures and data is not None and not data.startswith(signatures):
        return OTHER
    return kind


def file_event(found: FoundFile) -> dict[str, Any]:
    """The ``file`` event for one entry of a folder."""
    event: dict[str, Any] = {
        "event": "file",
        "name": found.name,
        "media_type": media_type(found.name, found.data),
        "size": found.size,
    }
    if found.data is not None:
        event["data"] = base64.b64encode(found.data).decode("ascii")
    else:
        event["problem"] = found.problem or "not read"
    return event


def omitted_event(collected: Collected) -> dict[str, Any] | None:
    """The ``files_omitted`` event for what a folder held beyond the limits, if anything."""
    if not collected.omitted and collected.omitted_note is None:
        return None
    return {"event": "files_omitted", "count": collected.omitted, "message": collected.omitted_note or ""}


def encoded_length(size: int) -> int:
    """How many base64 characters ``size`` bytes take."""
    return 4 * ((size + 2) // 3)


class FileEvents:
    """A client's collection of the ``file`` and ``files_omitted`` events of one run, within its own limits."""

    def __init__(self, limits: FileLimits) -> None:
        self.limits = limits
        self.collected = Collected()
        self._total = 0

    def take(self, event: dict[str, Any]) -> None:
        """One event of either kind; what does not fit the schema or the limits becomes a problem entry."""
        if event.get("event") == "files_omitted":
            self._take_omitted(event)
            return
        if len(self.collected.files) >= self.limits.max_files:
            self.collected.omitted += 1
            self.collected.omitted_note = (
                f"{self.collected.omitted:,} more not read (max_files = {self.limits.max_files:,})"
            )
            return
        name = event.get("name")
        if not isinstance(name, str) or not name:
            self._problem("(a file without a name)", 0, "the server sent a file event without a name: ignored")
            return
        name = printable(name)
        size = event.get("size")
        size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0
        data = event.get("data")
        if not isinstance(data, str):
            problem = event.get("problem")
            self._problem(name, size, printable(problem) if isinstance(problem, str) and problem else "not sent")
            return
        self._take_data(name, data)

    def _take_data(self, name: str, data: str) -> None:
        limit = max(min(self.limits.max_file_bytes, self.limits.max_total_bytes - self._total), 0)
        over = f"over this kernel's limits ({size_text(limit)} left): not kept"
        if len(data) > encoded_length(limit):  # checked before decoding anything
            self._problem(name, len(data) * 3 // 4, over)
            return
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            self._problem(name, 0, "the server sent data that is not base64: not kept")
            return
        if len(raw) > limit:
            self._problem(name, len(raw), over)
            return
        self._total += len(raw)
        self.collected.files.append(FoundFile(name, len(raw), data=raw))

    def _take_omitted(self, event: dict[str, Any]) -> None:
        count = event.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            self.collected.omitted += count
        message = event.get("message")
        if isinstance(message, str) and message:
            self.collected.omitted_note = printable(message)[:500]

    def _problem(self, name: str, size: int, problem: str) -> None:
        self.collected.files.append(FoundFile(name, size, problem=problem[:500]))
