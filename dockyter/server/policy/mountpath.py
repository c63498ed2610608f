"""Turning a bind-mount source, as a request wrote it, into the one real path the engine mounts.

The engine runs as root and follows symbolic links; the server may not see what root sees.
So the server never lets the engine resolve anything: it walks the path itself, component by
component from ``/``, with ``lstat`` (which never follows a link), and hands the engine the
real path it found. Every component must exist and be a directory (the last one a directory
or a regular file); a symbolic link is refused unless it lies on the way to an allowed root as
the operator configured it (:func:`trusted_links`, resolved once at start-up). A component
the server cannot inspect (permission denied, a loop, a name too long, a NUL byte) is refused
too: a path the server cannot check is a path it does not mount.

Nothing here creates, changes or follows anything on the host.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping

PATH_MAX = 4096


class PathRefused(ValueError):
    """The path cannot be a mount source; the message says why, in a few words."""


def resolve_source(raw: str, trusted: Mapping[str, str]) -> str:
    """The real absolute path ``raw`` names, checked without following untrusted links.

    ``..`` steps to the parent of the real directory reached so far, as the kernel would once
    links are excluded, so the answer is exactly what ``realpath`` would give as root.
    Raises :class:`PathRefused`.
    """
    if not raw.startswith("/"):
        raise PathRefused("a bind mount source must be an absolute path")
    if "\0" in raw:
        raise PathRefused("the path contains a NUL byte")
    if len(raw.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        raise PathRefused(f"the path is longer than the system's limit ({PATH_MAX - 1} bytes)")
    names = [name for name in raw.split("/") if name not in ("", ".")]
    current = "/"
    for index, name in enumerate(names):
        if name == "..":
            current = posixpath.dirname(current)  # the parent of a real directory: no link involved
            continue
        candidate = posixpath.join(current, name)
        info = _lstat(candidate)
        if stat.S_ISLNK(info.st_mode):
            if candidate not in trusted:
                raise PathRefused(f"{candidate} is a symbolic link (only real paths are mounted)")
            current = trusted[candidate]
            continue
        current = candidate
        if not stat.S_ISDIR(info.st_mode) and index < len(names) - 1:
            raise PathRefused(f"{candidate} is not a directory")
    info = _lstat(current)  # after "..", or a trusted link: check what it is now
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        raise PathRefused(f"{current} is neither a directory nor a regular file")
    return current


def trusted_links(roots: Iterable[str]) -> dict[str, str]:
    """Links on the way to each configured root, mapped to where they point now (start-up).

    An operator may configure ``/data`` when it is a link to ``/mnt/disk1/data``, or a root
    below ``/var/run`` (a link to ``/run``): those links are the operator's, not a request's.
    """
    trusted: dict[str, str] = {}
    for root in roots:
        current = "/"
        for name in (part for part in root.split("/") if part not in ("", ".", "..")):
            candidate = posixpath.join(current, name)
            try:
                if os.path.islink(candidate):
                    trusted[candidate] = os.path.realpath(candidate)
                    current = trusted[candidate]
                    continue
            except (OSError, ValueError):
                break
            current = candidate
    return trusted


def _lstat(path: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        raise PathRefused(f"{path} does not exist (the server never creates a mount source)") from None
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        if error.errno == errno.EACCES:
            reason = "permission denied to the server"
        raise PathRefused(f"{path} cannot be checked: {reason.lower()}") from None
    except ValueError as error:  # a NUL byte, or a name the OS cannot take
        raise PathRefused(f"the path cannot be checked: {error}") from None
