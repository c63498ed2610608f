"""Start-up clean-up, a periodic sweep, and shutdown: :class:`Upkeep`, one lifecycle for three keepers.

The engine executor (containers), the Swarm executor (services, networks, configs) and the
session registry (session containers) each own what they start, and prove it with a label
``server_name:instance``. Each is kept the same way:

* :meth:`Upkeep.startup` removes what an earlier instance of the same ``server_name`` left
  (a crash, a SIGKILL), then starts the sweep. When the engine cannot be asked yet (it starts
  after the server, say), the sweep tries that clean-up again before its first sweep;
* the sweep runs every :meth:`~Upkeep.sweep_every` seconds and removes what this instance owns
  but no run does any more (or whatever the subclass reaps: idle sessions). It is a safety net:
  a failed sweep is logged and the next one comes, it never takes the server down;
* :meth:`Upkeep.shutdown` stops the sweep and the runs (:meth:`~Upkeep.stop_runs`), then
  removes whatever of this instance is left (:meth:`~Upkeep.remove_own`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from abc import ABC, abstractmethod

log = logging.getLogger("dockyter.server")


def instance_label(server_name: str) -> tuple[str, str]:
    """A fresh instance id and its label ``server_name:instance`` (the io.dockyter.server label's value)."""
    instance = secrets.token_hex(6)
    return instance, f"{server_name}:{instance}"


class Upkeep(ABC):
    """What one server instance starts and removes, kept clean from start-up to shutdown."""

    sweeper_name = "dockyter reaper"  # the sweep's asyncio task
    sweep_failed = "sweep failed"  # what the log says, with the traceback, when a sweep fails
    cleanup_event = "startup_cleanup"  # the log event of what the start-up clean-up removed
    sweep_event: str | None = "sweep"  # the log event of what a sweep removed (None: the sweep logs its own)

    def __init__(self, server_name: str, label: str) -> None:
        self.server_name = server_name
        self.label = label  # server_name:instance
        self._sweeper: asyncio.Task[None] | None = None
        self._leftovers_checked = False  # whether the start-up clean-up could ask the engine yet

    def earlier(self, label: str) -> bool:
        """Whether ``label`` (``server_name:instance``) names an earlier instance of this ``server_name``."""
        prefix = self.server_name + ":"
        return label.startswith(prefix) and label != self.label and ":" not in label[len(prefix) :]

    # -- what a keeper says -----------------------------------------------------------------------

    @abstractmethod
    async def remove_leftovers(self) -> list[str] | None:
        """Remove what earlier instances of this ``server_name`` left; the names, None when the engine cannot be asked."""

    @abstractmethod
    async def sweep(self) -> list[str]:
        """One sweep; the names of what it removed."""

    @abstractmethod
    def sweep_every(self) -> float:
        """Seconds between two sweeps."""

    @abstractmethod
    async def stop_runs(self) -> None:
        """The start of the shutdown: stop what runs, and wait for it."""

    @abstractmethod
    async def remove_own(self) -> None:
        """The end of the shutdown, the sweep stopped: remove whatever of this instance is left."""

    # -- the lifecycle ----------------------------------------------------------------------------

    async def startup(self) -> list[str]:
        """Remove what an earlier instance left; start the periodic sweep."""
        removed = await self._clean_up_after_earlier()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name=self.sweeper_name)
        return removed

    async def shutdown(self) -> None:
        """Stop the sweep (so that it races nothing below) and the runs, then remove everything of this instance."""
        await self.stop_sweeping()
        await self.stop_runs()
        await self.remove_own()

    async def stop_sweeping(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _clean_up_after_earlier(self) -> list[str]:
        removed = await self.remove_leftovers()
        self._leftovers_checked = removed is not None
        if removed:
            log.warning(json.dumps({"event": self.cleanup_event, "removed": removed}))
        return removed or []

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every())
            try:
                if not self._leftovers_checked:
                    await self._clean_up_after_earlier()
                removed = await self.sweep()
            except Exception:  # the sweep is a safety net: it must never take the server down
                log.exception(self.sweep_failed)
                continue
            if removed and self.sweep_event is not None:
                log.warning(json.dumps({"event": self.sweep_event, "removed": removed}))
