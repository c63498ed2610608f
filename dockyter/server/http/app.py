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

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ... import __version__
from ..policy.requestpolicy import Policy
from ..servererrors import HubUnavailable
from ..settings.fields import Settings
from . import routes, sessionroutes
from .appstate import Cleanups, app_state_of
from .errorhandlers import install_error_handlers
from .executors import create_executor
from .hubidentity import HubIdentity
from .middleware import BodyLimit

log = logging.getLogger("dockyter.server")

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
    app.state.hub = hub_identity(settings)
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


def hub_identity(settings: Settings) -> HubIdentity | None:
    """The hub that names the callers whose token is none of the server's own (auth jupyterhub), else None."""
    if not settings.hub_identity:
        return None
    return HubIdentity(
        settings.hub_api_url,
        settings.hub_service,
        cache_seconds=settings.hub_cache_seconds,
        timeout=settings.hub_timeout,
        api_token=settings.hub_api_token,
    )


def hub_startup_problem(app: FastAPI) -> str | None:
    """With auth jupyterhub, before serving: ask the hub about the service's own token and log what the
    hub and the groups' tables give. The one line that must stop the start-up, or None.

    A hub that cannot be reached now is a warning, not a reason to stay down: it may start after this
    server, and its users' requests are answered 503 meanwhile.
    """
    state = app_state_of(app)
    hub = state.hub
    if hub is None:
        return None
    try:
        problem = hub.service_problem()
    except HubUnavailable as error:
        log.warning(json.dumps({"event": "hub_unavailable", "problem": str(error)}))
    else:
        if problem:
            return problem
    groups = {name: grant.describe() for name, grant in state.settings.groups.items()}
    log.info(
        json.dumps(
            {
                "event": "jupyterhub",
                "hub_api_url": hub.api_url,
                "service": hub.service,
                "cache_seconds": hub.cache_seconds,
                "groups": groups,
            }
        )
    )
    return None


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
