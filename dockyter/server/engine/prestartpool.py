"""The server's prestarted containers, by token and approved plan, within the operator's budget.

A request is checked by the policy exactly as before; its :class:`~dockyter.server.policy.plan.Plan`
then gives the exact ``docker create`` argv its execution would have (:func:`.execution.execution_argv`,
its name and command left out). A prestarted container made from that very argv for that very
token (:class:`PrestartKey`), from the image the request's image names *now*, whose bind sources
are still the same files and folders, may serve it (:meth:`Prestarts.take`); anything else runs
as before. So a request the policy now answers differently (refused, or planned otherwise: a
mount that resolves elsewhere, another setting) never reaches a container made for the old
answer. A container is never shared between tokens.

After an execution of a plan (its first, or one served by a prestarted container), the line is
filled again (:meth:`Prestarts.refill`), within the budget: ``prestart`` containers per line,
``prestart_per_token`` of one token, ``prestart_max`` in all, and their memory limits together at
most ``prestart_memory``. Room is made by removing the container of the line used longest ago:
of the same token when it is at its own limit, else of the token that holds the most. A
container unused for ``prestart_idle`` seconds is removed by the executor's sweep. A line that
failed to prestart (no ``sh`` in the image, an entrypoint that ignores its command, a container
that differs from its plan) is not tried again for a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ...wire.waiter import cold_reason
from ..policy.plan import Plan
from .execution import Execution, execution_argv, execution_labels
from .expected import size_in_bytes
from .prestarted import PrestartedContainer, PrestartHost

log = logging.getLogger("dockyter.server")

STARTING_WAIT = 10.0  # seconds a request waits for a container of its line that is still starting
RETRY_AFTER = 60.0  # seconds before a line that failed to prestart is tried again


@dataclass(frozen=True)
class PrestartKey:
    """Whose and for what: the token, and the ``docker create`` argv of the plan (no name, no command)."""

    who: str
    argv: tuple[str, ...]


class Prestarts:
    """The prestarted containers of one engine executor."""

    def __init__(self, host: PrestartHost) -> None:
        self.host = host
        self.settings = host.settings
        self._lines: dict[PrestartKey, list[PrestartedContainer]] = {}
        self._used_at: dict[PrestartKey, float] = {}
        self._failed: dict[PrestartKey, tuple[float, str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.served = 0  # executions that ran in a prestarted container
        self.closing = False

    def key(self, plan: Plan, who: str) -> PrestartKey | None:
        """The line of ``plan`` for token ``who``; None when it is never prestarted."""
        if self.settings.prestart <= 0 or self.closing or cold_reason(plan.args) is not None:
            return None
        argv = execution_argv(self.settings, plan, "NAME", execution_labels(self.host), command="")
        return PrestartKey(who, tuple(argv))

    # -- taking -------------------------------------------------------------------------------------

    async def take(self, key: PrestartKey, plan: Plan) -> PrestartedContainer | None:
        """A container of ``key`` that may serve ``plan`` now, out of the pool; None: run as before."""
        if not self._lines.get(key):
            return None
        self._used_at[key] = time.monotonic()
        image_id = await self.host.check.image_id(plan.args.image)
        deadline = time.monotonic() + STARTING_WAIT
        while True:
            for container in [c for c in self._lines.get(key, []) if c.ready.is_set()]:
                self._discard(key, container)
                if container.unusable(image_id) is None:
                    self.served += 1
                    return container
                self._detach(container.let_go())
            starting = [c for c in self._lines.get(key, []) if not c.ready.is_set()]
            remaining = deadline - time.monotonic()
            if not starting or remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(starting[0].ready.wait(), remaining)

    def give_back(self, key: PrestartKey, container: PrestartedContainer) -> None:
        """A container taken for a request that was not admitted (429, 503): it waits again."""
        if self.closing:
            self._detach(container.let_go())
        else:
            self._lines.setdefault(key, []).insert(0, container)

    # -- filling ------------------------------------------------------------------------------------

    def refill(self, key: PrestartKey, plan: Plan, who: str) -> None:
        """Start containers for ``key`` in the background, up to ``prestart``, within the budget."""
        if self.closing or self.settings.prestart <= 0:
            return
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[0] < RETRY_AFTER:
            return
        self._used_at[key] = time.monotonic()
        containers = self._lines.setdefault(key, [])
        while len(containers) < self.settings.prestart:
            container = PrestartedContainer(self.host, plan, who)
            if not self._make_room(key, container):
                break
            containers.append(container)
            self._detach(self._start(key, container))
        if not containers:
            del self._lines[key]

    def refill_after(self, execution: Execution, key: PrestartKey) -> None:
        """Once ``execution`` (a cold one) is over, fill its line: a plan used once may well come again."""

        async def later() -> None:
            await execution.wait()
            if not (execution.refused or execution.engine_down):
                self.refill(key, execution.plan, execution.who)

        self._detach(later())

    async def _start(self, key: PrestartKey, container: PrestartedContainer) -> None:
        await container.start()
        if container.failure is None:
            return
        self._discard(key, container)
        if not container.failure.startswith("let go"):
            self._failed[key] = (time.monotonic(), container.failure)
            record = {"event": "prestart_failed", "who": container.who, "image": container.plan.args.image}
            log.warning(json.dumps({**record, "reason": container.failure}))

    def _make_room(self, key: PrestartKey, container: PrestartedContainer) -> bool:
        """Whether ``container`` fits the budget, once others are removed if need be."""
        settings = self.settings
        budget = size_in_bytes(settings.prestart_memory) or 0
        memory = container.memory
        if budget and not memory:
            return False  # no limit to count (or one the server cannot read)
        while True:
            everyone = [c for containers in self._lines.values() for c in containers]
            mine = [c for c in everyone if c.who == key.who]
            over_mine = bool(settings.prestart_per_token) and len(mine) >= settings.prestart_per_token
            over_all = len(everyone) >= settings.prestart_max or (
                budget > 0 and sum(c.memory or 0 for c in everyone) + (memory or 0) > budget
            )
            if not (over_mine or over_all):
                return True
            victim = self._victim(key, key.who if over_mine else self._fullest_token())
            if victim is None:
                return False
            self._detach(victim.let_go())

    def _fullest_token(self) -> str | None:
        counts: dict[str, int] = {}
        for line, containers in self._lines.items():
            counts[line.who] = counts.get(line.who, 0) + len(containers)
        return max(counts, key=lambda who: counts[who]) if counts else None

    def _victim(self, key: PrestartKey, who: str | None) -> PrestartedContainer | None:
        """Out of the pool: a container of ``who``'s line used longest ago, never of ``key`` itself."""
        lines = [line for line, containers in self._lines.items() if line.who == who and line != key and containers]
        if not lines:
            return None
        oldest = min(lines, key=lambda line: self._used_at.get(line, 0.0))
        container = self._lines[oldest][0]
        self._discard(oldest, container)
        return container

    def _discard(self, key: PrestartKey, container: PrestartedContainer) -> None:
        containers = self._lines.get(key, [])
        if container in containers:
            containers.remove(container)
        if not containers:
            self._lines.pop(key, None)

    def _detach(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- upkeep -------------------------------------------------------------------------------------

    def names(self) -> set[str]:
        """Every container the pool holds, starting or ready: the sweep leaves them alone."""
        return {container.name for containers in self._lines.values() for container in containers}

    async def expire(self) -> list[str]:
        """Remove the containers unused for ``prestart_idle`` seconds, and those that ended; their names."""
        idle = self.settings.prestart_idle
        now = time.monotonic()
        gone = []
        for key, containers in list(self._lines.items()):
            for container in list(containers):
                if container.ready_at is None:
                    continue
                ended = container.process is None or container.process.returncode is not None
                if ended or (idle > 0 and now - container.ready_at > idle):
                    self._discard(key, container)
                    gone.append(container)
        for container in gone:
            await container.let_go()
        return [container.name for container in gone]

    def counts(self, who: str) -> dict[str, int]:
        """``ready`` and ``starting`` containers of token ``who``."""
        containers = [c for line, cs in self._lines.items() if line.who == who for c in cs]
        ready = sum(c.ready_at is not None for c in containers)
        return {"ready": ready, "starting": len(containers) - ready}

    async def close(self) -> None:
        """Take no more; remove every container, those starting too, and wait for it."""
        self.closing = True
        containers = [c for cs in self._lines.values() for c in cs]
        self._lines.clear()
        await asyncio.gather(*(container.let_go() for container in containers), return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30)
