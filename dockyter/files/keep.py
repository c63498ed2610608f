"""Keeping a run's files in the kernel: ``--files VAR`` (name -> bytes) and ``--save-files DIR``.

Names come from a container, or from a server: each is checked before it becomes a path. A
name is relative, ``/`` between its parts, and no part is empty, ``.`` or ``..``; nothing is
written through a symbolic link (``O_NOFOLLOW``), so a saved file lands in ``DIR`` or not at all.
"""

from __future__ import annotations

import os

from ..wire.outfolder import Collected


def as_dict(collected: Collected) -> dict[str, bytes]:
    """The files read whole, by name."""
    return {found.name: found.data for found in collected.files if found.data is not None}


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be saved below a folder, or None when it can."""
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        return "its name is not a plain relative path"
    if "\0" in name:
        return "its name holds a NUL character"
    return None


def save(collected: Collected, folder: str) -> tuple[list[str], list[str]]:
    """Write every file read whole below ``folder`` (created if needed); the names saved, and one line per failure."""
    saved: list[str] = []
    problems: list[str] = []
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        return saved, [f"--save-files {folder}: cannot create the folder: {error.strerror}"]
    for found in collected.files:
        if found.data is None:
            continue
        problem = name_problem(found.name)
        if problem is None:
            problem = _write(folder, found.name, found.data)
        if problem:
            problems.append(f"{found.name}: not saved: {problem}")
        else:
            saved.append(found.name)
    return saved, problems


def _write(folder: str, name: str, data: bytes) -> str | None:
    path = os.path.join(folder, *name.split("/"))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as error:
        return error.strerror or str(error)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    return None
