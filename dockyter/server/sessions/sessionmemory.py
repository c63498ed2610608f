"""What each session's container uses in memory, for ``GET /sessions``: :class:`SessionMemory`.

A listing must never wait for the engine: ``docker stats`` samples for a second or two, and a
kernel lists its sessions with a short deadline. So the registry keeps one figure per session
container, with the time it was read, and answers with the figure it has. The figures are read
in the background, one refresh at a time:

* once a session has started (its first listing already has one);
* at each sweep of the registry (at most :data:`~.sessionregistry.REAP_EVERY` seconds apart),
  so that no figure is much older than that;
* when a listing finds one older than :data:`FRESH` seconds: it answers with the older figure,
  and the next listing has the new one.

Read through the Engine API when ``docker_command`` plainly names a unix socket (one request per
container, ``one-shot``: no sampling), else with one ``docker stats --no-stream`` for all of them.
The figure is what ``docker stats`` shows: the cgroup's memory usage less its inactive file
cache, in bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from typing import Any

from ..engine.control import Ask
from ..engine.engineapi import EngineAPIError, get_json

FRESH = 5.0  # seconds a figure is answered with before a listing asks for a newer one
STATS_TIMEOUT = 10.0  # seconds for the engine's stats of every session container at once

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMGTP]?)(i?)B\s*")
_POWERS = {"": 0, "k": 1, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}


def memory_of(stats: dict[str, Any]) -> int | None:
    """Bytes in use from the Engine API's stats of a container, as ``docker stats`` computes them."""
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if not isinstance(usage, int) or isinstance(usage, bool):
        return None
    counters = memory.get("stats") or {}
    # cgroup v1 counts the inactive file cache as total_inactive_file, v2 as inactive_file.
    for counter in ("total_inactive_file", "inactive_file"):
        cache = counters.get(counter)
        if isinstance(cache, int) and cache < usage:
            return usage - cache
    return usage


def size_in_bytes(text: str) -> int | None:
    """``12.5MiB`` (docker) or ``12.5MB`` (podman) as bytes; None when it is not a size."""
    found = _SIZE.fullmatch(text)
    if found is None:
        return None
    number, power, binary = found.groups()
    factor: int = (1024 if binary else 1000) ** _POWERS[power]
    return round(float(number) * factor)


class SessionMemory:
    """The memory figures of one registry's session containers, refreshed in the background."""

    def __init__(self, control: Ask, socket: str | None) -> None:
        self.control = control
        self.socket = socket  # None: through the CLI
        self._figures: dict[str, tuple[int, float]] = {}  # container -> (bytes, when it was read)
        self._refreshing: asyncio.Task[None] | None = None
        self._pending: set[str] = set()  # containers whose figure is asked for, not read yet

    def figure(self, container: str) -> int | None:
        """The last figure read for ``container`` (bytes), or None when none was yet."""
        known = self._figures.get(container)
        return known[0] if known is not None else None

    def refresh_soon(self, containers: Sequence[str], older_than: float = FRESH) -> None:
        """Read the figures of ``containers`` older than ``older_than`` seconds, in the background.

        One refresh runs at a time; what is asked for meanwhile is read right after it.
        """
        now = time.monotonic()
        for name in containers:
            known = self._figures.get(name)
            if known is None or now - known[1] >= older_than:
                self._pending.add(name)
        if self._pending and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self._refresh_pending(), name="dockyter session memory")

    async def _refresh_pending(self) -> None:
        while self._pending:
            names = sorted(self._pending)
            self._pending.clear()
            await self.refresh(names)

    async def refresh(self, containers: Sequence[str]) -> None:
        """Read the figures of ``containers`` now; one the engine cannot give keeps its older figure."""
        read = await (self._through_api(containers) if self.socket is not None else self._through_cli(containers))
        now = time.monotonic()
        for name, used in read.items():
            self._figures[name] = (used, now)

    def forget(self, container: str) -> None:
        """The container is gone: its figure too."""
        self._figures.pop(container, None)
        self._pending.discard(container)

    async def stop(self) -> None:
        """Stop a refresh under way (at shutdown)."""
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refreshing

    async def _through_api(self, containers: Sequence[str]) -> dict[str, int]:
        assert self.socket is not None
        socket = self.socket

        async def one(name: str) -> int | None:
            try:
                stats = await get_json(socket, f"/containers/{name}/stats?stream=false&one-shot=true")
            except EngineAPIError:
                return None
            return memory_of(stats) if isinstance(stats, dict) else None

        figures = await asyncio.gather(*(one(name) for name in containers))
        return {name: used for name, used in zip(containers, figures, strict=True) if used is not None}

    async def _through_cli(self, containers: Sequence[str]) -> dict[str, int]:
        answer = await self.control(
            "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", *containers, timeout=STATS_TIMEOUT
        )
        figures: dict[str, int] = {}
        for line in answer.stdout.splitlines() if answer is not None else []:
            name, _, usage = line.partition("\t")
            used = size_in_bytes(usage.partition("/")[0])
            if name in containers and used is not None:
                figures[name] = used
        return figures
