"""Reading what a container left in its output folder (``$DOCKYTER_OUT``), treating every byte as hostile.

The folder is a host directory that a container could write into while it ran, as any user,
root included (which may create device nodes); in a session, a background job may still be
writing into it while it is read. So the reader:

* walks it through directory file descriptors, each opened with ``O_NOFOLLOW``: a directory
  replaced by a symbolic link after it was listed is refused, never followed, and nothing
  outside the folder is ever reached;
* opens each entry with ``O_PATH`` (no device is ever opened, no FIFO ever blocks), checks
  with ``fstat`` that this very inode is a regular file, and only then reopens it for reading
  through ``/proc/self/fd``;
* reads at most the file's limit plus one byte, whatever size it claims (a sparse file of a
  terabyte costs nothing), and stops listing after :data:`MAX_ENTRIES` entries;
* names every entry with :func:`printable`, so that no control character, escape sequence or
  bidirectional override of a name ever reaches a screen.

What it does not read is one :class:`FoundFile` with a ``problem`` each, up to ``max_files``
entries; everything after that is one count. Standard library only: the kernel's docker
backend and ``dockyter-server`` both read folders with it.
"""

from __future__ import annotations

import itertools
import os
import stat
from dataclasses import dataclass, field

# The folder's path inside every container, and the variable that names it there.
FOLDER_VARIABLE = "DOCKYTER_OUT"
CONTAINER_FOLDER = "/dockyter/out"

MAX_ENTRIES = 100_000  # entries listed at most; a folder with more is said to have "more than" this
MAX_DEPTH = 32  # directories deeper than this are not entered
# Characters never shown as they are in a name: C0 and C1 controls, DEL, the line and paragraph
# separators, and the marks that reorder text (a name could otherwise hide its real extension).
_HIDDEN = {*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x200E, 0x200F, 0x061C}
_HIDDEN |= {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF}
# How a regular file is first opened: O_PATH (Linux) opens no device and blocks on no FIFO, should
# one be swapped in after the lstat; elsewhere a plain non-blocking open, which such a swap could
# reach (only a session's background job can still write while the folder is read).
_HAS_O_PATH = hasattr(os, "O_PATH")
_LOOK = os.O_PATH if _HAS_O_PATH else os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY


@dataclass(frozen=True)
class FileLimits:
    """How much of a folder is read: per file, how many entries, and all files together."""

    max_file_bytes: int
    max_files: int
    max_total_bytes: int

    def lowered(self, max_file_bytes: int | None, max_files: int | None, max_total_bytes: int | None) -> FileLimits:
        """These limits, each lowered to the value given (a request may only lower a server's)."""

        def low(mine: int, asked: int | None) -> int:
            return mine if asked is None or asked < 0 else min(mine, asked)

        return FileLimits(
            low(self.max_file_bytes, max_file_bytes),
            low(self.max_files, max_files),
            low(self.max_total_bytes, max_total_bytes),
        )


# The limits a kernel and dockyter-server start with (Dockyter.max_file_bytes, max_files,
# max_files_bytes; the server's settings of the same names). A client with these sends none.
DEFAULT_LIMITS = FileLimits(max_file_bytes=10_000_000, max_files=100, max_total_bytes=50_000_000)


@dataclass(frozen=True)
class FoundFile:
    """One entry of the folder: a file read whole (``data``), or why it was not (``problem``)."""

    name: str  # relative to the folder, "/" between directories, printable (see printable())
    size: int  # bytes, as the file system says (for a problem entry: 0 when meaningless)
    data: bytes | None = None
    problem: str | None = None


@dataclass
class Collected:
    """What a folder held: its entries in name order, and how many more were not looked at."""

    files: list[FoundFile] = field(default_factory=list)
    omitted: int = 0  # entries beyond max_files, counted but not read
    omitted_note: str | None = None  # one line about them (or about a listing cut short)

    @property
    def empty(self) -> bool:
        return not self.files and not self.omitted and self.omitted_note is None

    def read(self) -> list[FoundFile]:
        """The files that were read whole."""
        return [found for found in self.files if found.data is not None]


def printable(name: str) -> str:
    """``name`` with every byte that is not valid UTF-8 as ``\\xHH`` and every hidden character as ``\\xHH``/``\\uHHHH``.

    File names are bytes; Python hands undecodable ones over as surrogates. Backslashes are
    kept: the result is for eyes, and a name that already looks escaped stays readable.
    """
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if text.isprintable() and not any(ord(char) in _HIDDEN for char in text):
        return text
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code not in _HIDDEN and char.isprintable():
        return char
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def size_text(size: int) -> str:
    """``512 bytes``, ``12.3 KB``, ``4.1 MB``, ``2.0 GB``: sizes as a person reads them (powers of 1000)."""
    if size < 1000:
        return f"{size} byte" + ("" if size == 1 else "s")
    units = ("KB", "MB", "GB", "TB")
    value, index = size / 1000, 0
    while value >= 999.95 and index < len(units) - 1:
        value, index = value / 1000, index + 1
    return f"{value:.1f} {units[index]}"


def collect(path: str, limits: FileLimits) -> Collected:
    """Read the folder at ``path`` within ``limits``; a folder that is gone or unreadable is one problem."""
    try:
        root = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        return Collected([FoundFile(".", 0, problem=f"the folder cannot be read: {error.strerror}")])
    reader = _Reader(limits)
    try:
        reader.walk(root, "", 0)
    finally:
        os.close(root)
    return reader.result()


class _Reader:
    """One walk of one folder, within its limits."""

    def __init__(self, limits: FileLimits) -> None:
        self.limits = limits
        self.found: list[FoundFile] = []
        self.listed = 0  # entries seen
        self.total = 0  # bytes read so far
        self.cut_short = False  # MAX_ENTRIES reached

    def result(self) -> Collected:
        omitted = max(self.listed - len(self.found), 0)
        note = None
        if self.cut_short:
            note = f"more than {MAX_ENTRIES:,} entries: only the first {MAX_ENTRIES:,} were counted"
        elif omitted:
            note = f"{omitted:,} more entr{'y' if omitted == 1 else 'ies'} not read (max_files = {self.limits.max_files:,})"
        return Collected(self.found, omitted, note)

    def walk(self, directory: int, prefix: str, depth: int) -> None:
        for name in self._names(directory):
            if self.cut_short:
                return
            self.listed += 1
            if self.listed > MAX_ENTRIES:
                self.cut_short = True
                self.listed = MAX_ENTRIES
                return
            shown = prefix + printable(name)
            reporting = len(self.found) < self.limits.max_files
            entry = self._entry(directory, name, shown, depth, reporting)
            if entry is not None and reporting:
                self.found.append(entry)

    def _names(self, directory: int) -> list[str]:
        """The directory's names in order; at most what is left of MAX_ENTRIES (and one more, to know)."""
        try:
            with os.scandir(directory) as entries:
                names = [entry.name for entry in itertools.islice(entries, MAX_ENTRIES - self.listed + 1)]
        except OSError:
            return []
        return sorted(names)

    def _entry(self, directory: int, name: str, shown: str, depth: int, reporting: bool) -> FoundFile | None:
        """Read or describe one entry; None for a directory (walked instead) or when only counting."""
        try:
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        except OSError as error:
            return FoundFile(shown, 0, problem=f"cannot be looked at: {error.strerror}") if reporting else None
        if stat.S_ISDIR(info.st_mode):
            self.listed -= 1  # a directory is not an entry of its own; what it holds is
            self._enter(directory, name, shown, depth, info)
            return None
        if not reporting:
            return None
        if not stat.S_ISREG(info.st_mode):
            return FoundFile(shown, 0, problem=f"{_kind(info.st_mode)}: not read")
        try:
            handle = os.open(name, _LOOK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
        except OSError as error:
            return FoundFile(shown, info.st_size, problem=f"cannot be opened: {error.strerror}")
        try:
            now = os.fstat(handle)
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                return FoundFile(shown, 0, problem="was replaced while it was read: not read")
            return self._read(handle, shown, now.st_size)
        finally:
            os.close(handle)

    def _enter(self, directory: int, name: str, shown: str, depth: int, seen: os.stat_result) -> None:
        if depth + 1 >= MAX_DEPTH:
            self.listed += 1
            if len(self.found) < self.limits.max_files:
                self.found.append(
                    FoundFile(shown + "/", 0, problem=f"a directory deeper than {MAX_DEPTH}: not entered")
                )
            return
        try:
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
        except OSError:
            return  # replaced between the two opens, or not readable: nothing of it is shown
        try:
            now = os.fstat(inner)
            if (now.st_dev, now.st_ino) == (seen.st_dev, seen.st_ino):
                self.walk(inner, shown + "/", depth + 1)
        finally:
            os.close(inner)

    def _read(self, handle: int, shown: str, size: int) -> FoundFile:
        limits = self.limits
        if size > limits.max_file_bytes:
            return FoundFile(
                shown,
                size,
                problem=f"{size_text(size)}, over max_file_bytes ({size_text(limits.max_file_bytes)}): not read",
            )
        room = limits.max_total_bytes - self.total
        if size > room:
            return FoundFile(
                shown,
                size,
                problem=f"{size_text(size)}, over what is left of max_files_bytes ({size_text(max(room, 0))}): not read",
            )
        try:
            data = _read_at_most(handle, min(limits.max_file_bytes, room) + 1)
        except OSError as error:
            return FoundFile(shown, size, problem=f"cannot be read: {error.strerror}")
        if len(data) > min(limits.max_file_bytes, room):  # it grew while being read
            return FoundFile(shown, len(data), problem="grew while it was read, past its limit: not read")
        self.total += len(data)
        return FoundFile(shown, len(data), data=data)


def _read_at_most(handle: int, count: int) -> bytes:
    """Up to ``count`` bytes of the regular file behind the descriptor ``handle`` (``O_PATH`` on Linux)."""
    if not _HAS_O_PATH:  # handle is open for reading already, and was checked regular
        fd = os.dup(handle)
    else:
        # The O_PATH descriptor's own inode, checked regular, reopened: no name is looked up again.
        fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        chunks, left = [], count
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    return "not a regular file"
