"""Shorthands for the notebook's own folder and the notebook user's own files.

``here``: bind-mount the kernel's working directory (the notebook's folder, usually) at the
same path in the container and start there, so paths mean the same inside and out.
``as_me``: run as the kernel's own uid:gid, so files written into a mount belong to the user
who runs the notebook, not to root. Rootless podman needs ``--userns keep-id`` besides: its
containers' uids are the user's subordinate ones, and only keep-id maps the user's own uid to itself.

They become plain docker options placed before the user's own, so an explicit ``-w`` or
``--user`` on the line still wins (docker takes the last). Through the API backend they are
sent like any other option, and the server's policy decides whether the mount is allowed.
"""

from __future__ import annotations

import os

from .wire.dockerargs import DockerOption, RunArgs


def with_shorthands(
    args: RunArgs, *, here: bool, as_me: bool, cwd: str | None = None, userns: str | None = None
) -> RunArgs:
    """``args`` with the options ``here`` and ``as_me`` stand for, in front.

    ``userns``: the ``--userns`` the engine needs for ``as_me`` (the backend says; None for none).
    """
    extra: list[DockerOption] = []
    if here:
        folder = cwd or os.getcwd()
        extra.append(DockerOption("--volume", f"{folder}:{folder}", ("--volume", f"{folder}:{folder}")))
        extra.append(DockerOption("--workdir", folder, ("--workdir", folder)))
    if as_me:
        if userns:
            extra.append(DockerOption("--userns", userns, ("--userns", userns)))
        user = f"{os.getuid()}:{os.getgid()}"
        extra.append(DockerOption("--user", user, ("--user", user)))
    return RunArgs((*extra, *args.options), args.image) if extra else args
