"""The Swarm executor's networks: one internal overlay network per token, shared by its runs.

Swarm has no ``--network none`` for services, so an execution that must have no network gets
an ``--internal`` overlay network (no gateway: it reaches nothing outside). A network per
execution would cost each task a network of its own to set up on its node; instead each owner
(token name) of a server instance has one, which all its running executions share:

* :meth:`SwarmNetworks.acquire` hands out the owner's network, creating it when the owner has
  none, and counts its users; two owners never get the same network;
* :meth:`SwarmNetworks.release` uncounts one; at zero the network is removed, by a reaper that
  retries until the last task's container has left it (the node takes seconds);
* an acquire that comes while a removal is pending cancels it and reuses the network, and one
  that comes after the removal creates a new network. The reaper's ``network rm`` and that
  decision hold the same lock, so a network is never handed out while it is being removed.

One owner's concurrent tasks may reach each other on their network: they run as the same
principal (whoever holds the token can read all their output anyway), so that is no breach.

A network carries the labels of a service (managed, server instance, owner, token name) and a
deadline, after which any replica may remove it; an owner's network takes new executions only
while their own deadlines fall before it, and is then replaced by a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass

from ...wire.contract import NAME_PREFIX
from ..engine.control import Ask, Control

log = logging.getLogger("dockyter.server")


NETWORK_LIFETIME = 3600.0  # seconds an owner's network takes new executions beyond the first one's deadline
REMOVE_RETRY = 1.0  # seconds between two tries at removing the pending networks
REMOVE_PATIENCE = 60.0  # seconds of retries before a network is left to the sweep


@dataclass
class _Current:
    """The network an owner's next execution joins."""

    name: str
    deadline: float  # unix time, as its deadline label says


class SwarmNetworks:
    """The overlay networks of one server instance: per owner, counted, removed when unused."""

    def __init__(self, control: Ask, labels: dict[str, str], who_label: str, deadline_label: str) -> None:
        self.control = control
        self._labels = labels  # managed, server instance, owner: on every network
        self._who_label = who_label
        self._deadline_label = deadline_label
        self._current: dict[str, _Current] = {}  # owner -> the network new executions join
        self._users: dict[str, int] = {}  # network -> executions using it (or creating it)
        self._owner_locks: dict[str, asyncio.Lock] = {}  # one create at a time per owner
        self._removing = asyncio.Lock()  # held by the reaper's `network rm` and by a reuse decision
        self._pending: dict[str, float] = {}  # network -> when to give up removing it
        self.ids: dict[str, str] = {}  # network -> its id, as `network create` printed it
        self._reaper: asyncio.Task[None] | None = None

    def in_use(self, name: str) -> bool:
        """Whether an execution uses (or is about to use) network ``name``."""
        return self._users.get(name, 0) > 0

    async def acquire(self, owner: str, until: float) -> tuple[str | None, Control | None]:
        """The network for an execution of ``owner`` that ends by ``until`` (unix time).

        ``(name, None)``, or ``(None, answer)`` with the failed ``network create``'s answer
        (None when the manager did not answer).
        """
        lock = self._owner_locks.setdefault(owner, asyncio.Lock())
        async with lock:
            current = self._current.get(owner)
            if current is not None and until <= current.deadline:
                async with self._removing:
                    # In use, or removal pending (cancelled here): reuse it. Else it is gone.
                    if self.in_use(current.name) or self._pending.pop(current.name, None) is not None:
                        self._users[current.name] = self._users.get(current.name, 0) + 1
                        return current.name, None
            name = f"{NAME_PREFIX}net-{secrets.token_hex(8)}"
            deadline = until + NETWORK_LIFETIME
            self._users[name] = 1  # before it exists, so that the sweep leaves it alone
            labels = {**self._labels, self._who_label: owner, self._deadline_label: str(int(deadline))}
            flags = [token for key, value in labels.items() for token in ("--label", f"{key}={value}")]
            try:
                answer = await self.control("network", "create", "--driver", "overlay", "--internal", *flags, name)
            except BaseException:
                self._users.pop(name, None)
                self.remove(name)  # it may have been created all the same
                raise
            if answer is None or answer.returncode != 0:
                self._users.pop(name, None)
                return None, answer
            self.ids[name] = answer.stdout.strip()
            self._current[owner] = _Current(name, deadline)
            return name, None

    def release(self, name: str) -> None:
        """One execution no longer uses network ``name``; the last one's release removes it."""
        users = self._users.get(name, 0) - 1
        if users > 0:
            self._users[name] = users
            return
        self._users.pop(name, None)
        self.remove(name)

    def remove(self, name: str, *, even_in_use: bool = False) -> None:
        """Remove ``name`` once no container is attached to it, unless an acquire takes it back first.

        Pending networks are removed together, one ``docker network rm`` for all of them a
        second: with dozens of executions ending at once, starting CLI processes is what costs.
        ``even_in_use`` (at shutdown) forgets its users: a run whose removal is slower than the
        shutdown's wait for it must not keep its network alive.
        """
        if even_in_use:
            self._users.pop(name, None)
        elif self.in_use(name):
            return
        self._pending.setdefault(name, time.monotonic() + REMOVE_PATIENCE)
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._remove_pending(), name="dockyter network reaper")

    async def wait_removed(self, timeout: float = REMOVE_PATIENCE) -> None:
        """Wait until the pending removals are done or given up (at shutdown)."""
        give_up = time.monotonic() + timeout
        # A release during the wait may start a new reaper once the last one ended: wait for it too.
        while self._reaper is not None and not self._reaper.done() and time.monotonic() < give_up:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reaper), give_up - time.monotonic())

    async def _remove_pending(self) -> None:
        while self._pending:
            async with self._removing:
                names = list(self._pending)
                answer = await self.control("network", "rm", *names)
                if answer is not None:
                    # Removed ones are printed; one already gone is as good.
                    done = set(answer.stdout.split())
                    done |= {name for name in names if f"network {name} not found" in answer.stderr}
                    for name in done:
                        self._pending.pop(name, None)
                        self._forget(name)
            for name, give_up in list(self._pending.items()):
                if time.monotonic() > give_up:
                    self._pending.pop(name)
                    log.warning(json.dumps({"event": "network_left", "network": name}))  # the sweep tries again
            if self._pending:
                await asyncio.sleep(REMOVE_RETRY)

    def _forget(self, name: str) -> None:
        """Drop a removed network from the owners' current ones."""
        self.ids.pop(name, None)
        for owner, current in list(self._current.items()):
            if current.name == name:
                del self._current[owner]
