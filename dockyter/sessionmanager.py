"""The kernel's sessions by name: start, run a cell, stop, restart, list, and stop idle ones.

A session is a container that outlives its cells, started by the active backend
(``Backend.open_session``), which hands back a :class:`~dockyter.backends.base.SessionHandle`:
locally a :class:`~dockyter.backends.docker.sessionshell.SessionShell`, through the API a
session on ``dockyter-server``. This module knows no backend: it names, lists and times out
handles, and asks each for what only it knows (whether it lives, why it died, its memory).
A listing never waits for a memory figure (``docker stats`` samples for a second or two): it
shows the last one measured, and measures again in the background for the next listing.
Settings (``stop_grace``, ``session_idle_timeout``) are read from the ``Dockyter`` configurable
when used.
"""

from __future__ import annotations

import atexit
import difflib
import re
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from .backends.base import Backend, RunRequest, RunResult, SessionHandle
from .errors import BadSessionRequest, SessionDead, SessionUnknown
from .output import OutputSink
from .wire.dockerargs import RunArgs

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# docker run options that would take the session's shell away from us.
REFUSED_OPTIONS = {
    "--detach": "a session's container is always detached from the cell",
    "--tty": "a session has no terminal (stdout and stderr stay apart)",
    "--attach": "a session attaches to its container itself",
    "--name": "Dockyter names session containers (the session's name is on its label)",
}
REAP_EVERY = 30.0  # seconds between idle checks, at most
COLUMNS = ("name", "image", "state", "age", "idle", "memory", "container")  # of a listing's rows
NOT_MEASURED = "…"  # the memory column of a running session not measured yet (it is being measured)


class SessionSettings(Protocol):
    """What the sessions read of the ``Dockyter`` configurable, at each use."""

    @property
    def stop_grace(self) -> float: ...
    @property
    def session_idle_timeout(self) -> float: ...


@dataclass
class Session:
    """One named session: its arguments, its live shell (if any), and when it was used."""

    name: str
    args: RunArgs
    shell: SessionHandle | None = None
    started: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    ended: str | None = None  # why it is no longer running (None: running)
    busy: threading.Lock = field(default_factory=threading.Lock)
    memory: str | None = None  # what its container used when last measured ("-": it cannot say)
    doubt: str | None = None  # why its backend is unsure it still exists (the server said 404 at its last use)


class SessionManager:
    """The sessions of one kernel; ``settings`` is the ``Dockyter`` configurable.

    ``backend()`` gives the backend that starts new sessions (the active one when they start);
    a session keeps the handle it got. At interpreter exit (a kernel shutting down) every
    session is stopped; a kernel that is killed leaves them to the clean-up of dead kernels.
    """

    def __init__(self, settings: SessionSettings, backend: Callable[[], Backend]) -> None:
        self.settings = settings
        self.backend = backend
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._measuring: threading.Thread | None = None
        self._closing = threading.Event()
        closer = weakref.WeakMethod(self.close)
        self._at_exit = lambda: (method := closer()) is not None and method()
        atexit.register(self._at_exit)

    # -- names ------------------------------------------------------------------------------

    def get(self, name: str) -> Session:
        """The session ``name``, or a one-line error naming the closest one."""
        session = self.sessions.get(name)
        if session is not None:
            return session
        known = sorted(self.sessions)
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            hint = f"; did you mean {close[0]!r}?"
        elif known:
            hint = f"; sessions: {', '.join(known)}"
        else:
            hint = "; start one with %docker_session start NAME IMAGE"
        raise BadSessionRequest(f"no session named {name!r}{hint}")

    @staticmethod
    def check_name(name: str) -> None:
        if not NAME.fullmatch(name):
            raise BadSessionRequest(
                f"invalid session name {name!r}: use letters, digits, '_', '.' or '-' (at most 63), starting with a letter or digit"
            )

    # -- starting and stopping ----------------------------------------------------------------

    def start(self, name: str, args: RunArgs) -> Session:
        """Start session ``name`` from ``args``; a taken name is an error (stop or restart it)."""
        self.check_name(name)
        for option, why in REFUSED_OPTIONS.items():
            if args.has(option) or args.values(option):
                raise BadSessionRequest(f"{option} cannot be used for a session: {why}")
        existing = self.sessions.get(name)
        if existing is not None and existing.ended is None:
            raise BadSessionRequest(
                f"a session named {name!r} is already running ({existing.args.image}): "
                f"use it, or %docker_session stop {name} first, or pick another name"
            )
        session = Session(name, args)
        self._launch(session)
        with self._lock:
            self.sessions[name] = session
        self._start_reaper()
        self._measure_in_background([session])  # so that a first listing has its figure
        return session

    def _launch(self, session: Session) -> None:
        try:
            handle = self.backend().open_session(session.name, session.args)
        except SessionDead as error:
            raise SessionDead(f"session {session.name!r} could not start: {error}", error.exit_code) from None
        session.shell = handle
        session.started = time.time()
        session.last_used = time.monotonic()
        session.ended = None
        session.memory = session.doubt = None

    def stop(self, name: str) -> str | None:
        """Stop session ``name`` and forget it; None when its container is gone, else why that is not
        sure (its server did not know it, or did not answer)."""
        session = self.get(name)
        with session.busy:
            unsure = self._remove(session, "stopped")
        with self._lock:
            self.sessions.pop(name, None)
        return unsure

    def stop_all(self) -> dict[str, str | None]:
        """Stop every session: each name, with what :meth:`stop` said."""
        return {name: self.stop(name) for name in sorted(self.sessions)}

    def restart(self, name: str) -> tuple[Session, str | None]:
        """A fresh container from the same arguments (files and shell state start over); with what
        removing the old one said (as :meth:`stop`)."""
        session = self.get(name)
        with session.busy:
            unsure = self._remove(session, "restarting")
            self._launch(session)
        return session, unsure

    def _remove(self, session: Session, why: str) -> str | None:
        unsure = session.shell.remove() if session.shell is not None else None
        if session.ended is None:
            session.ended = why
        return unsure

    def close(self) -> None:
        """Stop every session (unload, kernel shutdown)."""
        atexit.unregister(self._at_exit)
        self._closing.set()
        for session in list(self.sessions.values()):
            self._remove(session, "stopped")
        self.sessions.clear()

    # -- running --------------------------------------------------------------------------------

    def run(self, name: str, request: RunRequest, sink: OutputSink) -> RunResult:
        """Run ``request.command`` in session ``name``; SessionDead (one line) when it is or goes dead."""
        session = self.get(name)
        if session.ended is not None or session.shell is None:
            sink.close()
            raise SessionDead(self._dead_message(session), 125)
        with session.busy:
            if self._stopped_meanwhile(session):  # by the idle timeout, while we waited for it
                sink.close()
                raise SessionDead(self._dead_message(session), 125)
            try:
                result = session.shell.run(request, sink, self.settings.stop_grace)
            except SessionDead as error:
                session.ended = str(error)
                raise SessionDead(self._dead_message(session), error.exit_code) from None
            except SessionUnknown as error:  # the server answered 404: said, not believed
                session.doubt = str(error)
                raise SessionUnknown(
                    f"session {name!r}: {error}; %docker_session restart {name} starts a new one, "
                    f"%docker_session stop {name} deletes it if the server still has it"
                ) from None
            finally:
                session.last_used = time.monotonic()
            session.doubt = None
            return result

    @staticmethod
    def _stopped_meanwhile(session: Session) -> bool:
        return session.ended is not None

    @staticmethod
    def _dead_message(session: Session) -> str:
        return (
            f"session {session.name!r} is dead: {session.ended}; %docker_session restart {session.name} starts it again"
        )

    # -- idle sessions ----------------------------------------------------------------------------

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap_loop, name="dockyter-session-idle", daemon=True)
            self._reaper.start()

    def _reap_loop(self) -> None:
        while not self._closing.is_set() and self.sessions:
            limit = float(self.settings.session_idle_timeout)
            self._closing.wait(min(REAP_EVERY, limit / 4) if limit > 0 else REAP_EVERY)
            try:
                self.reap_idle()
            except Exception:  # noqa: BLE001 - a background chore must never disturb the kernel
                pass

    def reap_idle(self) -> list[str]:
        """Stop the running sessions idle longer than ``Dockyter.session_idle_timeout``."""
        limit = float(self.settings.session_idle_timeout)
        if limit <= 0:
            return []
        reaped = []
        for session in list(self.sessions.values()):
            idle = time.monotonic() - session.last_used
            if session.ended is None and idle >= limit and session.busy.acquire(blocking=False):
                try:
                    self._remove(session, f"stopped after {idle:.0f} s idle (Dockyter.session_idle_timeout)")
                    reaped.append(session.name)
                finally:
                    session.busy.release()
        return reaped

    # -- listing ----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The sessions' names, sorted (what completion offers)."""
        return sorted(self.sessions)

    def rows(self) -> list[tuple[str, ...]]:
        """One row of :data:`COLUMNS` per session, at once: memory as last measured (:data:`NOT_MEASURED`
        before the first figure, "-" when its handle cannot say), measured again in the background."""
        sessions = sorted(self.sessions.values(), key=lambda s: s.name)
        for session in sessions:
            if session.ended is None and session.shell is not None and not session.shell.alive:
                session.ended = session.shell.death_reason()
        self._measure_in_background([s for s in sessions if s.ended is None])
        rows: list[tuple[str, ...]] = []
        for session in sessions:
            container = session.shell.container if session.shell else ""
            state = "running" if session.ended is None else f"dead: {session.ended}"
            if session.ended is None and session.doubt is not None:
                state = f"unknown: {session.doubt}"
            if session.busy.locked() and session.ended is None:
                state = "running (busy)"
            rows.append(
                (
                    session.name,
                    session.args.image,
                    state,
                    _duration(time.time() - session.started),
                    _duration(time.monotonic() - session.last_used),
                    (session.memory or NOT_MEASURED) if session.ended is None else "-",
                    container,
                )
            )
        return rows

    def _measure_in_background(self, sessions: list[Session]) -> None:
        """Ask each session's handle for its memory, all at once, in a thread of its own (one at a time)."""
        with self._lock:
            if not sessions or (self._measuring is not None and self._measuring.is_alive()):
                return
            self._measuring = threading.Thread(
                target=self._measure, args=(sessions,), name="dockyter-session-memory", daemon=True
            )
            self._measuring.start()

    @staticmethod
    def _measure(sessions: list[Session]) -> None:
        def measure(session: Session) -> None:
            shell = session.shell
            try:
                figure = shell.memory() if shell is not None else None
            except Exception:  # noqa: BLE001 - a background chore must never disturb the kernel
                figure = None
            if session.shell is shell:  # not restarted meanwhile
                session.memory = figure or "-"

        # each handle may take a moment (docker stats samples for about a second): ask all at once
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="dockyter-session-memory") as pool:
            list(pool.map(measure, sessions))


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
