"""The FastAPI application: the HTTP contract of docs/api.md over the policy and the executor.

:func:`create_app` makes each part once (the policy, the executor the ``executor`` setting
names and, on one engine, its sessions) and puts it in the application's state
(:mod:`.appstate`), where the routes read it: :mod:`.routes` (``/health``, ``/execute``,
``/executions``) and :mod:`.sessionroutes` (``/sessions``, included only when the server has
sessions). Around them: the request-size cap (:mod:`.middleware`), and one handler per kind of
error (:mod:`.errorhandlers`), one of them for every error of the server's own. The lifespan
starts the executor and the sessions (clean-up of what an earlier run left, their reapers) and
stops them, then waits for the clean-up of runs whose clients went away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ... import __version__
from ..policy.requestpolicy import Policy
from ..settings.fields import Settings
from . import routes, sessionroutes
from .appstate import Cleanups, app_state_of
from .errorhandlers import install_error_handlers
from .executors import create_executor
from .middleware import BodyLimit

CLEANUP_WAIT = 30.0  # seconds the shutdown waits for the clean-up of runs whose clients went away


def create_app(settings: Settings) -> FastAPI:
    """The application for ``settings``; its executor is ``app.state.executor``.

    Asks the engine which runtime its containers will run under; raises
    :class:`~dockyter.server.engine.runtimes.RuntimeUnavailable` when it lacks the configured one.
    """
    policy = Policy(settings)
    executor, sessions = create_executor(settings)
    app = FastAPI(
        title="dockyter-server",
        version=__version__,
        description="Runs notebook commands in fresh containers. The contract is docs/api.md of Dockyter.",
        lifespan=_lifespan,
        # /openapi.json documents the API; no interactive pages (they load scripts from a CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.tokens = settings.token_table()
    app.state.policy = policy
    app.state.executor = executor
    app.state.sessions = sessions
    app.state.cleanups = Cleanups()
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    install_error_handlers(app)
    app.include_router(routes.router)
    if sessions is not None:
        app.include_router(sessionroutes.router)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = app_state_of(app)
    await state.executor.startup()
    if state.sessions is not None:
        await state.sessions.startup()
    try:
        yield
    finally:
        if state.sessions is not None:
            await state.sessions.shutdown()
        await state.executor.shutdown()
        await state.cleanups.wait(CLEANUP_WAIT)
