"""How Dockyter names and labels the containers it starts, so it can find them again.

Every container carries :data:`MANAGED_LABEL`. Containers started from a kernel also
carry :data:`OWNER_LABEL` (host, pid and start time of the owning process), which lets
``%docker_cleanup`` remove the ones whose kernel died without touching anything else.
Containers started by ``dockyter-server`` also carry :data:`SERVER_LABEL`
(``server_name:instance``), by which a restarted server finds what a crashed one left; their
owner is the server process, so a kernel's cleanup never mistakes them for orphans while it lives.
"""

from __future__ import annotations

import os
import secrets
import socket

MANAGED_LABEL = "io.dockyter.managed"
OWNER_LABEL = "io.dockyter.owner"
SERVER_LABEL = "io.dockyter.server"
NAME_PREFIX = "dockyter-"


def new_container_name() -> str:
    """A fresh, unique container name such as ``dockyter-5f3a9c0e12ab``."""
    return NAME_PREFIX + secrets.token_hex(6)


def process_start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), or None if unknown.

    Together with the pid it identifies a process even after the pid is reused.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name (field 2) may contain spaces; fields after ')' are safe to split.
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19].decode() if len(fields) > 19 else None


def owner_id(pid: int | None = None) -> str:
    """``host:pid:starttime`` for ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{process_start_time(pid) or '?'}"


def owner_is_gone(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer exists.

    Owners on other hosts are never judged gone: we cannot see their processes.
    """
    try:
        host, pid_text, started = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    current = process_start_time(pid)
    if current is None:
        return not os.path.exists(f"/proc/{pid}") and not _pid_alive(pid)
    return started != "?" and current != started


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
