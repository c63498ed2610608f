"""The execution slots of one executor: admitting a run, finding it, and stopping them all.

Both executors (the engine's and the Swarm's) admit an execution the same way: refused while
the server shuts down (503), when its token already runs ``max_concurrent_per_token`` (429, so
that one user cannot take every slot; a hub user's groups may say another number) or when ``max_concurrent`` already run (429); registered
before it starts, so that a sweep never takes what it is starting for an orphan; forgotten when
it cannot start, and by the run itself once it is over.

Commands in sessions take no slot here: each session runs one command at a time, and a token
has at most ``max_sessions_per_token`` sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ..servererrors import ShuttingDown, TooBusy

if TYPE_CHECKING:
    from ..settings.fields import Settings


class Stoppable(Protocol):
    """A run that can be stopped and waited for (an execution, a session's command)."""

    def stop(self, reason: str, message: str) -> None: ...
    async def wait(self) -> None: ...


class SlotRun(Stoppable, Protocol):
    """What the slots need of a run."""

    id: str
    who: str  # the name of the token that started it

    async def start(self) -> None: ...


RunT = TypeVar("RunT", bound=SlotRun)


def per_token_limit(settings: Settings) -> int:
    """``max_concurrent_per_token``; 0 (none) without authentication, where every request is one user's."""
    return settings.max_concurrent_per_token if settings.authenticates else 0


class ExecutionSlots(Generic[RunT]):
    """The running executions of one executor instance: at most ``max_concurrent`` of them, and
    at most ``max_per_token`` of one token (0: no limit of its own)."""

    def __init__(self, max_concurrent: int, stop_wait: float, max_per_token: int = 0, retry_after: int = 5) -> None:
        self.max_concurrent = max_concurrent
        self.max_per_token = max_per_token
        self.retry_after = retry_after  # seconds a refused client is told to wait (429's Retry-After)
        self.stop_wait = stop_wait  # how long stop_all waits for the runs to end
        self.running: dict[str, RunT] = {}
        self.closing = False

    async def admit(self, execution: RunT, per_token: int | None = None) -> RunT:
        """Register and start ``execution``; raises :class:`~dockyter.server.servererrors.ServerError` subclasses.

        ``per_token`` replaces ``max_per_token`` for this one (what its caller's hub groups say); None keeps it.
        """
        if self.closing:
            raise ShuttingDown("the server is shutting down")
        limit = self.max_per_token if per_token is None else per_token
        if limit and sum(run.who == execution.who for run in self.running.values()) >= limit:
            raise TooBusy(
                f"this token already runs {limit} execution{'s' if limit > 1 else ''} "
                "(max_concurrent_per_token): retry when one has ended",
                self.retry_after,
            )
        if len(self.running) >= self.max_concurrent:
            raise TooBusy(
                f"all {self.max_concurrent} execution slots of this server are taken: retry later", self.retry_after
            )
        self.running[execution.id] = execution
        try:
            await execution.start()
        except BaseException:
            self.forget(execution)
            raise
        return execution

    def get(self, execution_id: str) -> RunT | None:
        return self.running.get(execution_id)

    def forget(self, execution: RunT) -> None:
        self.running.pop(execution.id, None)

    async def stop_all(self, message: str) -> None:
        """Take no new runs; stop every running one (each ends with reason ``cancelled``) and wait for them."""
        self.closing = True
        await stop_and_wait(list(self.running.values()), message, self.stop_wait)


async def stop_and_wait(runs: Sequence[Stoppable], message: str, timeout: float) -> None:
    """Stop each of ``runs`` (reason ``cancelled``, with ``message``) and wait up to ``timeout`` s for them all."""
    for run in runs:
        run.stop("cancelled", message)
    if runs:
        await asyncio.wait([asyncio.ensure_future(run.wait()) for run in runs], timeout=timeout)
