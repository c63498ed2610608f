"""What an operator may write in the policy settings, checked once when the settings are made.

The vocabulary both :mod:`.settings` (which refuses a bad entry at start-up) and :mod:`.policy`
(which applies the entries to requests) share: the options no operator can allow, the
canonical spelling of ``allowed_flags`` and the parsed form of ``allowed_mounts``. It imports
neither of them, so they need not import each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...wire.dockerargs import ALIASES, BOOL_FLAGS, SHORT_FLAGS, VALUE_FLAGS
from .hostview import normalise

# Options refused however they are written and whatever an operator allows, with the reason.
NEVER_ALLOWED: dict[str, str] = {
    "--privileged": "it gives the container full access to the host",
    "--cap-add": "it gives back capabilities the server drops",
    "--device": "it gives the container a host device",
    "--device-cgroup-rule": "it gives the container access to host devices",
    "--security-opt": "it can switch off the container's confinement",
    "--volumes-from": "it mounts the volumes of another container",
    "--use-api-socket": "it gives the container the engine's API socket",
    "--cgroup-parent": "it moves the container out of the server's resource limits",
    "--publish": "it opens a port on the server's host",
    "--publish-all": "it opens ports on the server's host",
    "--env-file": "it reads a file on the server",
    "--label-file": "it reads a file on the server",
    "--cidfile": "it writes a file on the server",
    "--name": "the server names its containers itself",
    "--detach": "the server follows every container to its end",
    "--restart": "the server removes every container when it ends",
    "--log-driver": "the server sets the container's logging itself",
    "--log-opt": "the server sets the container's logging itself",
    "--runtime": "the server chooses the container's runtime",
}


@dataclass(frozen=True)
class AllowedMount:
    """A host directory an operator lets requests bind-mount."""

    path: str  # absolute and normalised
    writable: bool  # True: also writable, but only as a whole; False: read-only, it or any real path below


def check_flag_names(names: list[str]) -> list[str]:
    """Canonical long names for ``allowed_flags`` (``env``, ``-e`` and ``--env`` all work).

    Raises ValueError for an unknown option or one in :data:`NEVER_ALLOWED`.
    """
    canonical = []
    for name in names:
        if re.fullmatch(r"-[A-Za-z]", name):
            long = SHORT_FLAGS.get(name[1])
        else:
            long = "--" + name.lstrip("-")
            long = ALIASES.get(long, long)
        if long is None or long not in VALUE_FLAGS | BOOL_FLAGS:
            raise ValueError(f"allowed_flags: {name!r} is not a docker run option")
        if long in NEVER_ALLOWED:
            raise ValueError(f"allowed_flags: {long} can never be allowed: {NEVER_ALLOWED[long]}")
        canonical.append(long)
    return canonical


def parse_allowed_mounts(entries: list[str]) -> list[AllowedMount]:
    """``PATH``, ``PATH:ro`` or ``PATH:rw`` entries; raises ValueError for a bad one."""
    mounts = []
    for entry in entries:
        path, colon, mode = entry.rpartition(":")
        if not colon or mode not in ("ro", "rw"):
            path, mode = entry, "ro"
        if not path.startswith("/"):
            raise ValueError(f"allowed_mounts: {entry!r} must be an absolute path, optionally followed by :ro or :rw")
        mounts.append(AllowedMount(normalise(path), writable=mode == "rw"))
    return mounts
