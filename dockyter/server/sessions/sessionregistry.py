"""Sessions on ``dockyter-server``: long-lived containers that keep their state between commands.

The same protocol as a kernel's sessions (:mod:`dockyter.wire.sessionprotocol`): the container's main
process is an interactive bash reading one line per command from our pipe. Each session
belongs to the token that created it (or the hub user, with auth jupyterhub; such a session ends
when the hub no longer accepts the token that opened it). A command in a session is a :class:`SessionRun`, which
streams and ends exactly like an :class:`~dockyter.server.engine.engineexecutor.Execution`, so ``/execute``'s
NDJSON stream and JSON reply serve both. Stopping a run (cancel, timeout, output cap, a client
that goes away) stops that command, not the session: SIGINT, then SIGKILL of its processes.

Session containers carry the server's limits (memory, CPUs, pids, capabilities, network),
``io.dockyter.managed``, the server's owner label, and :data:`SERVER_SESSION_LABEL`
(``server_name:instance``) rather than the executions' ``io.dockyter.server``, so the
executor's sweep never takes them for orphans; this module removes them instead: on delete,
after ``session_idle_timeout`` or ``session_max_lifetime``, at shutdown, and at start-up when
an earlier instance of the same ``server_name`` crashed and left them.

One command is :mod:`.sessionrun`, one container and its shell :mod:`.sessioncontainer`; this
module is the registry that creates, finds, reaps and removes them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..engine.engineexecutor import EngineExecutor
from ..policy.plan import Plan
from ..runs.slots import stop_and_wait
from ..runs.upkeep import Upkeep
from ..servererrors import SessionError, TooBusy
from ..settings.fields import Settings
from .sessioncontainer import SERVER_SESSION_LABEL, ServerSession
from .sessionmemory import SessionMemory
from .sessionrun import SessionRun

log = logging.getLogger("dockyter.server")

REAP_EVERY = 15.0
MIN_TOKEN_CHECK = 1.0  # seconds between two checks of the sessions' tokens, at least
REVOKED = "the hub no longer accepts the token that opened it (its server stopped, or the token was revoked)"

# Whether the token that opened a session still works: True, False, or None when no one can say now.
TokenCheck = Callable[[], Awaitable[bool | None]]
STOP_WAIT = 10.0  # seconds for the stop ladders of the running commands at shutdown


class SessionRegistry(Upkeep):
    """Every session of one server instance, by id, each usable only by the token that made it."""

    sweeper_name = "dockyter session reaper"
    cleanup_event = "session_startup_cleanup"
    sweep_event = None  # each session it ends logs its session_end
    sweep_failed = "session reaper failed"

    def __init__(self, settings: Settings, executor: EngineExecutor) -> None:
        super().__init__(settings.server_name, executor.label)  # the executor's instance
        self.settings = settings
        self.executor = executor
        self.owner = executor.owner
        self.sessions: dict[str, ServerSession] = {}
        # Whether the token that opened each session still works; None: a token of the server's own.
        self.token_checks: dict[str, TokenCheck | None] = {}
        self.closing = False
        # What each session's container uses, read in the background (a listing never waits for it).
        self.memory = SessionMemory(executor.control, executor.check.socket)

    async def create(
        self, plan: Plan, who: str, name: str, per_token: int | None = None, token_check: TokenCheck | None = None
    ) -> ServerSession:
        """Start a session of ``who``. ``per_token`` replaces max_sessions_per_token (what a hub user's groups
        say; None keeps it); ``token_check`` says whether the token that opened it still works: when it says
        no, the session ends (a hub user's token, revoked by the hub or gone with its server)."""
        if self.closing or self.executor.closing:
            raise SessionError("the server is shutting down")
        if not self.settings.max_sessions:
            raise SessionError("sessions are turned off on this server (max_sessions = 0)")
        mine = [s for s in self.sessions.values() if s.who == who]
        limit = self.settings.max_sessions_per_token if per_token is None else per_token
        if limit and len(mine) >= limit:
            raise TooBusy(
                f"this token already has {limit} sessions (max_sessions_per_token): delete one first",
                self.settings.retry_after,
            )
        if len(self.sessions) >= self.settings.max_sessions:
            raise TooBusy(
                f"all {self.settings.max_sessions} session slots of this server are taken: retry later",
                self.settings.retry_after,
            )
        session = ServerSession(self, plan, who, name)
        self.token_checks[session.id] = token_check
        self.sessions[session.id] = session
        try:
            await session.start()
        except BaseException:
            self.forget(session)
            raise
        log.info(json.dumps({"event": "session_start", "id": session.id, "who": who, "image": plan.args.image}))
        self.memory.refresh_soon([session.container])
        return session

    def get(self, session_id: str, who: str) -> ServerSession | None:
        session = self.sessions.get(session_id)
        return session if session is not None and session.who == who else None

    def mine(self, who: str) -> list[ServerSession]:
        return [session for session in self.sessions.values() if session.who == who]

    def run_by_id(self, run_id: str) -> SessionRun | None:
        for session in self.sessions.values():
            if session.current is not None and session.current.id == run_id:
                return session.current
        return None

    def forget(self, session: ServerSession) -> None:
        self.sessions.pop(session.id, None)
        self.token_checks.pop(session.id, None)
        self.memory.forget(session.container)

    def describe(self, sessions: list[ServerSession]) -> list[dict[str, Any]]:
        """What a listing shows of ``sessions``: each one's own description, and its memory when known.

        The figures it shows are read in the background; older ones are asked for again here.
        """
        self.memory.refresh_soon([session.container for session in sessions if session.ended is None])
        described = []
        for session in sessions:
            used = self.memory.figure(session.container) if session.ended is None else None
            described.append({**session.describe(), **({"memory_bytes": used} if used is not None else {})})
        return described

    async def stop_commands(self, message: str) -> None:
        """Stop the command running in each session (reason ``cancelled``) and wait for them.

        The start of a shutdown: their streams end at once; the sessions go in :meth:`shutdown`.
        """
        self.closing = True
        runs = [session.current for session in self.sessions.values() if session.current is not None]
        await stop_and_wait(runs, message, STOP_WAIT)

    async def delete(self, session: ServerSession, why: str = "deleted") -> None:
        run = session.current
        if run is not None:
            run.stop("cancelled", "cancelled: the session was deleted")
        await session.remove(why)
        if run is not None:
            await run.wait()
        log.info(
            json.dumps(
                {
                    "event": "session_end",
                    "id": session.id,
                    "container": session.container,
                    "who": session.who,
                    "why": why,
                }
            )
        )

    # -- upkeep (runs/upkeep.py) --------------------------------------------------------------------

    def sweep_every(self) -> float:
        """Often enough for the idle and lifetime limits (a quarter of the shorter), at most REAP_EVERY s; with
        hub users' sessions, often enough that a revoked token's session ends within hub_cache_seconds."""
        limits = [x for x in (self.settings.session_idle_timeout, self.settings.session_max_lifetime) if x]
        every = [REAP_EVERY, *(limit / 4 for limit in limits)]
        if self.settings.hub_identity:
            every.append(max(self.settings.hub_cache_seconds / 2, MIN_TOKEN_CHECK))
        return min(every)

    async def remove_leftovers(self) -> list[str] | None:
        """Remove the session containers earlier instances of this ``server_name`` left; None when the engine cannot be asked."""
        listing = await self.executor.containers(SERVER_SESSION_LABEL, SERVER_SESSION_LABEL)
        if listing is None:
            return None
        return await self.executor.remove(name for name, label in listing if self.earlier(label))

    async def sweep(self) -> list[str]:
        """End sessions idle longer than ``session_idle_timeout`` or older than ``session_max_lifetime``.

        Each ends with its own ``session_end`` log line, which says why.
        """
        now = time.monotonic()
        idle_limit = self.settings.session_idle_timeout
        life_limit = self.settings.session_max_lifetime
        ended = []
        for session in list(self.sessions.values()):
            if life_limit and now - session.created >= life_limit:
                await self.delete(session, f"it reached session_max_lifetime ({life_limit:g} s)")
                ended.append(session.id)
            elif idle_limit and session.current is None and now - session.last_used >= idle_limit:
                await self.delete(session, f"it was idle for session_idle_timeout ({idle_limit:g} s)")
                ended.append(session.id)
        ended += await self._end_revoked()
        # Keep the memory figures of the others at most a sweep old, whether or not anyone lists them.
        self.memory.refresh_soon([session.container for session in self.sessions.values() if session.ended is None])
        return ended

    async def _end_revoked(self) -> list[str]:
        """End the sessions whose opening token no longer works (the hub says so; when it cannot say, none)."""
        checked = [
            (session, check) for session in list(self.sessions.values()) if (check := self.token_checks.get(session.id))
        ]
        answers = await asyncio.gather(*(check() for _, check in checked))
        ended = []
        for (session, _), valid in zip(checked, answers, strict=True):
            if valid is False and session.id in self.sessions:
                await self.delete(session, REVOKED)
                ended.append(session.id)
        return ended

    async def stop_runs(self) -> None:
        """Delete every session (and the command running in it)."""
        self.closing = True
        await self.memory.stop()
        sessions = list(self.sessions.values())
        if sessions:
            await asyncio.wait(
                [asyncio.ensure_future(self.delete(s, "the server is shutting down")) for s in sessions], timeout=30
            )

    async def remove_own(self) -> None:
        """Every session container of this instance, whatever became of its session."""
        answer = await self.executor.control("ps", "-aq", "--filter", f"label={SERVER_SESSION_LABEL}={self.label}")
        if answer is not None and answer.stdout.split():
            await self.executor.remove(answer.stdout.split())
