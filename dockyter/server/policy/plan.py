"""What the policy approved: a :class:`Plan`, all that the executors and the sessions take from a request.

The policy (:mod:`.requestpolicy`) makes it; the engine executor, the Swarm executor and the
sessions run it, and the check of what the engine made (:mod:`~dockyter.server.engine.expected`)
compares each container with it. They import this module only, never the policy's machinery.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...wire.dockerargs import RunArgs


@dataclass(frozen=True)
class PlannedMount:
    """One ``--volume`` or ``--mount`` as the policy read and approved it.

    Kept as the policy's own reading, never read back from the option's text: what the engine
    makes of that text is compared with it before the container starts (:mod:`~dockyter.server.engine.containercheck`).
    """

    kind: str  # "bind", "volume" or "tmpfs"
    source: str  # bind: the real host path checked; volume: its name, "" when anonymous; tmpfs: ""
    target: str  # as the request wrote it
    readonly: bool


@dataclass(frozen=True)
class Plan:
    """A request the policy accepted: what the executor runs."""

    # The request's options, each as the engine gets it: ``written`` is the one token the policy
    # spelled (bind mounts as `--mount=` of the checked real path); then the image.
    args: RunArgs
    shell: tuple[str, ...]
    has_network: bool  # the request chose its own --network (the server then adds none)
    mounts: tuple[PlannedMount, ...] = ()  # every --volume and --mount of args, in order (not --tmpfs)
