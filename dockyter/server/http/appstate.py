"""What the routes read from the application (``app.state``), typed: :class:`AppState`.

:func:`~.app.create_app` makes each part once and puts it there; a route reaches it through
:func:`app_state`, never through a closure over ``create_app``'s locals. One of the parts is
:class:`Cleanups`: the clean-up work of runs whose client went away, which the application's
shutdown waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol, cast

from fastapi import FastAPI, Request

from ..policy.requestpolicy import Policy
from ..sessions.sessionregistry import SessionRegistry
from ..settings.fields import Settings
from .executors import ExecutorLike
from .hubidentity import HubIdentity


class Cleanups:
    """Clean-up work in tasks of its own: a cancelled request cannot stop it half-way."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def detach(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self, timeout: float) -> None:
        """Until every detached clean-up is done, at most ``timeout`` seconds."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


class AppState(Protocol):
    settings: Settings
    tokens: dict[str, str]  # token name -> token, as settings.token_table() made it once
    hub: HubIdentity | None  # the JupyterHub that names the other callers (auth jupyterhub), else None
    policy: Policy
    executor: ExecutorLike
    sessions: SessionRegistry | None  # None: this server has no sessions (executor "swarm")
    cleanups: Cleanups  # clean-up work a cancelled request must not interrupt


def app_state(request: Request) -> AppState:
    """The parts of the application that answers ``request``."""
    return app_state_of(request.app)


def app_state_of(app: FastAPI) -> AppState:
    """The parts of ``app``."""
    return cast(AppState, app.state)
