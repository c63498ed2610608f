"""What the server tells a client it ran, and how a run's folder is mounted: the receipt and ``$DOCKYTER_OUT``.

The ``receipt`` event (docs/api.md) comes from what the check of the engine's container read
back (:mod:`.enginecheck`): the image ID the engine resolved and that image's repository
digests, so the digest is the one the container was made from, not a second look-up of a tag
that may have moved. Its ``argv`` is the policy's reading of the request (each option as the
server spelled it, the image, the shell), not the server's own additions nor the command.

A run's folder is the server's own (:mod:`~dockyter.server.runs.outfolders`), mounted with
``--mount`` written by the server's own rules (:mod:`~dockyter.server.policy.mountspec`) and
compared by the check like every approved mount (:func:`folder_mount`).
"""

from __future__ import annotations

from typing import Any

from ...wire.images import choose_digest
from ...wire.outfolder import CONTAINER_FOLDER, FOLDER_VARIABLE
from ..policy.mountspec import mount_value
from ..policy.plan import Plan, PlannedMount


def receipt_event(
    plan: Plan, made: tuple[str, dict[str, Any]] | None, runtime: str, node: str | None
) -> dict[str, Any]:
    """The ``receipt`` event of a run of ``plan``, from what its container was ``made`` of (image ID, image)."""
    image_id, image = made if made is not None else ("", {})
    digests = [entry for entry in image.get("RepoDigests") or () if isinstance(entry, str)]
    return {
        "event": "receipt",
        "image": plan.args.image,
        "digest": choose_digest(plan.args.image, image_id or None, digests),
        "image_id": image_id or None,
        "argv": [*(token for option in plan.args.options for token in option.written), plan.args.image, *plan.shell],
        "runtime": runtime or None,
        "node": node,
    }


def folder_options(folder: str, target: str = CONTAINER_FOLDER) -> list[str]:
    """``docker create`` options that mount ``folder`` at ``target``: the mount alone (a session's
    commands each get their own variable on their line)."""
    return [f"--mount={mount_value({'type': 'bind', 'source': folder, 'target': target})}"]


def folder_variable(value: str = CONTAINER_FOLDER) -> dict[str, str]:
    """The variable that names the folder in the container."""
    return {FOLDER_VARIABLE: value}


def folder_mount(folder: str, target: str = CONTAINER_FOLDER) -> PlannedMount:
    """The folder's mount as the check expects it: a writable bind of the server's own path."""
    return PlannedMount("bind", folder, target, False)
