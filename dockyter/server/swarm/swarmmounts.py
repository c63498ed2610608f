"""Bind mounts on a Swarm: the policy checks a path where the server runs, the task mounts it on its node.

Every check of a bind source (under an allowed root, no symbolic link, no socket, nothing
created) looks at the server's own file system. A service's task mounts the same path on
whichever node it lands on, so the checks mean something only when that path is the same
storage everywhere: a shared file system (NFS, CephFS, ...) mounted at the same place on
every node and on the server. Nothing here can verify that from the manager, so the server
says it once, at start-up, for the operator to act on.
"""

from __future__ import annotations

import logging

from ..settings.fields import Settings

log = logging.getLogger("dockyter.server")


def warn_about_node_paths(settings: Settings) -> bool:
    """Log the start-up warning when a Swarm server allows bind mounts; True when it did."""
    if settings.executor != "swarm" or not settings.allowed_mounts:
        return False
    roots = ", ".join(rule.path for rule in settings.mount_rules())
    nodes = (
        "every node matching " + " and ".join(settings.mount_constraints)
        if settings.mount_constraints
        else "every node"
    )
    log.warning(
        "executor swarm with allowed_mounts (%s): bind mounts are checked on this server's file system "
        "but mounted on whichever node runs the task, so these paths must be identical shared storage "
        "at the same place on %s and on this server (docs/scaling.md)",
        roots,
        nodes,
    )
    return True
