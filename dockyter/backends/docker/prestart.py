"""The kernel's prestarted containers: started before they are needed, each used for one command.

Containers are kept per :class:`PrestartLine`: the exact argv a cold run of the line would have
(the container's name and the command left out) and the values of what the CLI reads from its
own environment at that moment. A take checks, each time, that the image the line's tag names
now is the one the container was made from, that every bind-mounted source is still the same
file or folder, and that the container still runs: anything else is let go, and the command
runs cold. ``Dockyter.prestart`` containers are kept per line (0: none), at most
``Dockyter.prestart_limit`` in all (the line used longest ago gives way), each let go after
``Dockyter.prestart_idle`` seconds unused. A line is filled again when one of its containers is
taken, or after it ran cold once; a line whose container could not be prestarted (no ``sh`` in
the image, an entrypoint that does not run its command) is not tried again for a minute.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...wire.waiter import bind_sources, cold_reason, environment_of, passed_through
from ..base import SIGNAL_CHECK, RunRequest
from ..settings import DockerSettings
from .imageids import ImageIds
from .waiting import LET_GO, NOT_HERE, WaitingContainer

# Seconds a take waits for a container of its line that is still starting (it is then further
# along than a cold run would be), before the command runs cold after all.
STARTING_WAIT = 10.0
RETRY_AFTER = 60.0  # seconds before a line that failed to prestart is tried again
JANITOR_PERIOD = 1.0  # seconds between checks for idle and ended containers
CLOSE_WAIT = 15.0  # seconds closing the pool (an unload) waits at most for its containers to be gone


@dataclass(frozen=True)
class PrestartLine:
    """What a prestarted container is for; equal lines share containers."""

    argv: tuple[str, ...]  # the cold run's argv without the container's name and the command
    environ: tuple[tuple[str, str | None], ...]  # what the CLI would take from its environment now
    request: RunRequest = field(compare=False)  # what the waiting container's argv is made from
    binds: tuple[str, ...] = field(compare=False, default=())  # host paths it bind-mounts

    @property
    def image(self) -> str:
        return self.request.args.image

    def __str__(self) -> str:
        return self.request.args_text


Launcher = Callable[[PrestartLine], WaitingContainer]
# What the container CLI itself reads from its environment to find its engine.
CLI_ENVIRONMENT = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG")


def line_problem(request: RunRequest) -> str | None:
    """Why ``request``'s line runs cold, never prestarted (:func:`dockyter.wire.waiter.cold_reason`)."""
    reason = cold_reason(request.args)
    if reason is None and bind_sources(request.args) is None:
        reason = "a --mount value with quotes: read here, it might not mean what the docker CLI reads"
    return reason


def line_of(request: RunRequest, argv: Sequence[str]) -> PrestartLine:
    """The line of ``request`` (whose command is left out), from the cold argv it would have."""
    names = [*passed_through(request.args), *CLI_ENVIRONMENT]
    return PrestartLine(tuple(argv), environment_of(names), request, bind_sources(request.args) or ())


def status_rows(pool: PrestartPool | None, settings: DockerSettings, bang_problem: str | None) -> list[tuple[str, str]]:
    """``%docker_status``'s rows: what is ready for which line, what could not be, the settings."""
    if settings.prestart <= 0:
        return [("prestarted", "none: Dockyter.prestart = 0")]
    rows = []
    for line, ready, starting in pool.counts() if pool is not None else []:
        more = f", {starting} starting" if starting else ""
        rows.append(("prestarted", f"{ready} ready{more}: {line}"))
    if not rows:
        rows.append(("prestarted", "none yet (a line gets one after its first run; %docker IMAGE at once)"))
    if pool is not None and pool.served:
        rows.append(("served prestarted", f"{pool.served} command(s) so far"))
    for line, why in pool.failures() if pool is not None else []:
        rows.append(("not prestarted", f"{line}: {why}"))
    if bang_problem:
        rows.append(("! runs cold", bang_problem))
    idle = f"let go after {settings.prestart_idle:g} s unused" if settings.prestart_idle else "kept however long unused"
    rows.append(("prestart", f"{settings.prestart} per line, at most {settings.prestart_limit} in all, {idle}"))
    return rows


class PrestartPool:
    """Prestarted containers by line, filled in the background, taken by runs."""

    def __init__(self, settings: DockerSettings, launch: Launcher, image_ids: ImageIds) -> None:
        self.settings = settings
        self._launch = launch
        self.image_ids = image_ids
        self._lock = threading.Lock()
        self._waiting: dict[PrestartLine, list[WaitingContainer]] = {}
        self._failed: dict[PrestartLine, tuple[float, str]] = {}  # line -> (when, why)
        self._used_at: dict[PrestartLine, float] = {}
        self._janitor: threading.Thread | None = None
        self._closed = False
        # Let go or taken for a command, perhaps not gone yet: close() waits for them too.
        self._leaving: list[WaitingContainer] = []
        self.served = 0  # commands run in a prestarted container (for %docker_status and the bench)

    # -- taking --------------------------------------------------------------------------------

    def take(self, line: PrestartLine) -> WaitingContainer | None:
        """A ready container of ``line`` that may run a command now, out of the pool; None: run cold.

        Waits for one of the line's containers that is still starting, at most ``STARTING_WAIT``
        seconds (a KeyboardInterrupt then propagates: nothing has run).
        """
        if self.settings.prestart <= 0 or not self._waiting.get(line):
            return None
        image_id = self.image_ids.of_image(line.image)
        if image_id is None:
            return None
        deadline = time.monotonic() + STARTING_WAIT
        while True:
            found, stale, starting = self._pick(line, image_id)
            for container in stale:
                self._let_go(container)
            if found is not None or starting is None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            starting.settled.wait(min(remaining, SIGNAL_CHECK))  # short waits: Ctrl-C is seen

    def _pick(
        self, line: PrestartLine, image_id: str
    ) -> tuple[WaitingContainer | None, list[WaitingContainer], WaitingContainer | None]:
        """The container to use (out of the pool), those that may not serve (out too), one still starting."""
        stale: list[WaitingContainer] = []
        with self._lock:
            self._used_at[line] = time.monotonic()
            containers = self._waiting.get(line, [])
            for container in [c for c in containers if c.settled.is_set()]:
                containers.remove(container)
                if container.failure is None and container.unusable(image_id) is None:
                    self.served += 1
                    self._leave(container)  # it ends by itself after its command
                    return container, stale, None
                stale.append(container)
            return None, stale, next(iter(containers), None)

    # -- filling -------------------------------------------------------------------------------

    def refill(self, line: PrestartLine) -> None:
        """Start containers for ``line`` in the background, up to ``prestart`` of them."""
        wanted = self.settings.prestart
        if wanted <= 0 or self._closed:
            return
        started: list[WaitingContainer] = []
        evicted: list[WaitingContainer] = []
        with self._lock:
            failed = self._failed.get(line)
            if failed is not None and time.monotonic() - failed[0] < RETRY_AFTER:
                return
            self._used_at[line] = time.monotonic()
            containers = self._waiting.setdefault(line, [])
            while len(containers) < wanted:
                if self._total() >= self.settings.prestart_limit:
                    victim = self._least_recent_other(line)
                    if victim is None:
                        break
                    evicted.append(victim)
                container = self._launch(line)
                containers.append(container)
                started.append(container)
            if not containers:
                del self._waiting[line]
        for container in evicted:
            self._let_go(container)
        for container in started:
            threading.Thread(target=self._start, args=(line, container), name="dockyter-prestart", daemon=True).start()
        if started:
            self._watch()

    def _start(self, line: PrestartLine, container: WaitingContainer) -> None:
        container.start(self.image_ids)
        if container.failure is None:
            return
        with self._lock:
            self._discard(line, container)
            if container.failure not in (LET_GO, NOT_HERE):  # neither says the line cannot be prestarted
                self._failed[line] = (time.monotonic(), container.failure)

    def _total(self) -> int:
        return sum(len(containers) for containers in self._waiting.values())

    def _least_recent_other(self, line: PrestartLine) -> WaitingContainer | None:
        """Out of the pool: a container of the line used longest ago, other than ``line``."""
        others = [other for other, containers in self._waiting.items() if other != line and containers]
        if not others:
            return None
        oldest = min(others, key=lambda other: self._used_at.get(other, 0.0))
        container = self._waiting[oldest][0]
        self._discard(oldest, container)
        return container

    def _discard(self, line: PrestartLine, container: WaitingContainer) -> None:
        containers = self._waiting.get(line, [])
        if container in containers:
            containers.remove(container)
        if not containers:
            self._waiting.pop(line, None)

    # -- ending --------------------------------------------------------------------------------

    def drop(self) -> list[WaitingContainer]:
        """Let every container go, those still starting too, and forget past failures; those let go."""
        with self._lock:
            containers = [c for line in self._waiting.values() for c in line]
            self._waiting.clear()
            self._failed.clear()
        for container in containers:
            self._let_go(container)
        return containers

    def close(self, wait: float = CLOSE_WAIT) -> None:
        """Drop everything for good (the backend is replaced or unloaded), and wait up to ``wait``
        seconds until the containers are gone, those let go earlier too: an unloaded extension
        leaves nothing behind."""
        self._closed = True
        deadline = time.monotonic() + wait
        self.drop()
        with self._lock:
            leaving, self._leaving = self._leaving, []
        for container in leaving:
            container.wait_ended(max(deadline - time.monotonic(), 0))
        self.image_ids.close()

    def _let_go(self, container: WaitingContainer) -> None:
        """Let ``container`` go, and remember it until it is gone (close() waits for it)."""
        with self._lock:
            self._leave(container)
        container.let_go()

    def _leave(self, container: WaitingContainer) -> None:
        """Remember ``container``, out of the pool, until it is gone; forget those gone. Under the lock."""
        self._leaving = [c for c in self._leaving if not c.wait_ended(0)] + [container]

    def _watch(self) -> None:
        """Start the janitor, which lets idle and ended containers go, unless it runs."""
        with self._lock:
            if self._janitor is not None and self._janitor.is_alive():
                return
            self._janitor = threading.Thread(target=self._tidy, name="dockyter-prestart-idle", daemon=True)
            self._janitor.start()

    def _tidy(self) -> None:
        while True:
            time.sleep(JANITOR_PERIOD)
            idle = self.settings.prestart_idle
            now = time.monotonic()
            gone: list[WaitingContainer] = []
            with self._lock:
                for line, containers in list(self._waiting.items()):
                    for container in list(containers):
                        if not container.settled.is_set():
                            continue
                        expired = idle > 0 and container.ready_at is not None and now - container.ready_at > idle
                        if expired or not container.alive:
                            self._discard(line, container)
                            gone.append(container)
                done = not self._waiting
                if done:
                    self._janitor = None
            for container in gone:
                self._let_go(container)
            if done:
                return

    # -- what is there -------------------------------------------------------------------------

    def counts(self) -> list[tuple[PrestartLine, int, int]]:
        """``(line, ready, starting)`` for each line with containers."""
        with self._lock:
            return [
                (line, sum(c.settled.is_set() for c in containers), sum(not c.settled.is_set() for c in containers))
                for line, containers in self._waiting.items()
            ]

    def failures(self) -> list[tuple[PrestartLine, str]]:
        """The lines that could not be prestarted lately, and why."""
        with self._lock:
            now = time.monotonic()
            return [(line, why) for line, (when, why) in self._failed.items() if now - when < RETRY_AFTER]
