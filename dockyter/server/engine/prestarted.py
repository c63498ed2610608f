"""One prestarted container on the server: an execution's container, created, checked and started before its request.

It is made exactly as an execution's container (:func:`.execution.execution_argv`), with ``-i``
and, in place of ``SHELL CMD``, the waiter of :mod:`dockyter.wire.waiter` followed by the plan's
shell, and the label ``io.dockyter.prestart=1``. The check of what the engine made
(:mod:`.enginecheck`) runs ahead of time as it runs for an execution: ``docker create``, read
back, compared with the plan (the command compared being the waiter's), removed unstarted and
never used when they differ. Only then is it started with ``docker start --attach
--interactive``, whose process keeps its stdin; it is ready once the waiter's ready frame is
read. Before then, the bind sources of its plan are stat'ed: a request is served by it only if
each is still the same file or folder (:meth:`PrestartedContainer.unusable`).

``docker create -i`` leaves the container's stdin open when the CLI's closes, so letting one go
removes it by name (:meth:`PrestartedContainer.let_go`); if the server dies, its next start-up
removes it with the rest of the instance's containers (:mod:`~dockyter.server.runs.upkeep`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Protocol

from ...wire.contract import NAME_PREFIX, READ_SIZE
from ...wire.waiter import PRESTART_LABEL, ReadyWatch, identity, new_ready_token, waiter_words
from ..policy.plan import Plan
from ..servererrors import ServerError, check_argv_size
from ..settings.fields import Settings
from .enginecheck import EngineCheck
from .execution import ExecutionHost, execution_argv, execution_expected, execution_labels

log = logging.getLogger("dockyter.server")

READY_TIMEOUT = 120.0  # seconds from `docker create` to the waiter's ready frame


class PrestartHost(ExecutionHost, Protocol):
    """What a prestarted container needs of the engine executor (:class:`~.engineexecutor.EngineExecutor`)."""

    settings: Settings
    check: EngineCheck


class PrestartedContainer:
    """A container of an approved plan, waiting for its one command."""

    def __init__(self, host: PrestartHost, plan: Plan, who: str) -> None:
        self.host = host
        self.plan = plan
        self.who = who  # the token it was started for: only its requests use it
        self.name = NAME_PREFIX + secrets.token_hex(8)  # as an execution's: its execution takes the id
        self.ready_token = new_ready_token()
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()  # set once it is ready or has failed
        self.failure: str | None = None
        self.image_id = ""
        self.ready_at: float | None = None
        self.early: list[tuple[str, bytes]] = []
        self.identities: dict[str, tuple[int, int] | None] = {}
        self.expected = execution_expected(host, plan, self.labels(), (*waiter_words(self.ready_token), *plan.shell))
        self._let_go = False

    @property
    def memory(self) -> int | None:
        """Its memory limit in bytes (0: none; None: unreadable), as the prestart budget counts it."""
        return self.expected.memory

    def labels(self) -> dict[str, str]:
        return {**execution_labels(self.host), PRESTART_LABEL: "1"}

    def argv(self) -> list[str]:
        waiter = waiter_words(self.ready_token)
        return execution_argv(self.host.settings, self.plan, self.name, self.labels(), command="", waiter=waiter)

    # -- starting -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create, check, start and wait for the ready frame; on any failure, :attr:`failure` says why."""
        try:
            self.failure = await self._start()
        except ServerError as error:  # the check refused it (logged there), or the engine is away
            self.failure = str(error)
        except Exception as error:  # noqa: BLE001 - a bug must not leave a container behind: removed below
            log.exception("prestarting %s failed", self.name)
            self.failure = f"{type(error).__name__}: {error}"
        if self.failure is None:
            self.ready_at = time.monotonic()
        self.ready.set()
        if self.failure is not None or self._let_go:
            await self.let_go()

    async def _start(self) -> str | None:
        # Before it starts: a source replaced after this is seen as changed, never the other way round.
        self.identities = {mount.source: identity(mount.source) for mount in self.plan.mounts if mount.kind == "bind"}
        argv = self.argv()
        check_argv_size(argv)
        docker = self.host.settings.docker_command
        answer = await self.host.check.create(argv[len(docker) :], self.name, self.expected, self.who, READY_TIMEOUT)
        if answer is None or answer.returncode != 0:
            return f"docker create failed: {(answer.stderr.strip() if answer else '') or 'no answer'}"
        self.image_id = await self.host.check.image_of(self.name)
        if self._let_go:
            return "let go before it was ready"
        try:
            self.process = await asyncio.create_subprocess_exec(
                *docker, "start", "--attach", "--interactive", self.name,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True, env=self.host.settings.engine_environment(),
            )  # fmt: skip
        except OSError as error:
            await self.host.remove_created(self.name)
            return f"cannot start the container CLI: {error.strerror or error}"
        return await self._read_until_ready()

    async def _read_until_ready(self) -> str | None:
        assert self.process is not None and self.process.stdout is not None
        watch = ReadyWatch(self.ready_token)
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                while data := await self.process.stdout.read(READ_SIZE):
                    if watch.feed(data):
                        self.early = [("stdout", chunk) for chunk in watch.early]
                        return None
        except TimeoutError:
            return f"its waiting shell did not start within {READY_TIMEOUT:g} s"
        return (
            "it ended before its waiting shell started (no sh in the image, or an entrypoint that ignores its command)"
        )

    # -- using ----------------------------------------------------------------------------------------

    def unusable(self, image_id: str | None) -> str | None:
        """Why it may not serve a request now; None when it may."""
        if self.failure is not None or self.ready_at is None or self._let_go:
            return "not ready"
        if self.process is None or self.process.returncode is not None:
            return "it has ended"
        if image_id is None or image_id != self.image_id:
            return "its image is no longer the one its tag names"
        for path, before in self.identities.items():
            if identity(path) != before:
                return f"the bind-mounted {path} is not the one it was started with"
        return None

    # -- letting go -----------------------------------------------------------------------------------

    async def let_go(self) -> None:
        """Remove it (unused, or done with): killed and removed by name, its CLI reaped."""
        self._let_go = True
        if not self.ready.is_set():
            return  # start() removes it once it knows its state
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(Exception):
                self.process.stdin.close()
        await self.host.kill_and_remove(self.name, self.process)
