"""The executor: starts, tracks and always removes the containers of one server instance.

Each execution (:mod:`.execution`) is one container, created, checked against its plan
(:mod:`.enginecheck`) and only then started; the executor admits it (at most
``max_concurrent`` at once, ``max_concurrent_per_token`` of one token), tracks it while it
runs and forgets it once its container is gone. It also runs the short CLI commands around
them (``kill``, ``rm``, ``ps``, ``image inspect``).

The executor owns every container it starts, and proves it with labels:
``io.dockyter.managed=1`` and ``io.dockyter.server=<server_name>:<instance>``. A container
is killed and removed by name (``docker kill``, then ``docker rm --force --volumes``, so that
its anonymous volumes go too) when its execution is cancelled, hits a limit or loses its
client; on shutdown every running one is; at start-up the ones a crashed earlier run of the
same ``server_name`` left behind are; and a periodic sweep removes any of ours that no
execution owns any more. On podman (:mod:`.enginekind`) the listing, the removal and the check
read and speak podman's way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from ...wire import labelled
from ...wire.contract import CONTROL_TIMEOUT, SERVER_LABEL, owner_id, remove_argv
from ...wire.outfolder import FileLimits
from ...wire.pull import last_value, needs_pull
from ..policy.plan import Plan
from ..runs.outfolders import RunFolders
from ..runs.slots import ExecutionSlots, per_token_limit
from ..runs.upkeep import Upkeep, instance_label
from ..settings.fields import Settings
from .control import EngineCli
from .enginecheck import EngineCheck
from .enginekind import DOCKER, EngineKind
from .execution import EXIT_WAIT, Execution
from .prestartedrun import PrestartedExecution
from .prestartpool import Prestarts
from .runtimes import UNKNOWN


class EngineExecutor(ExecutionSlots[Execution], Upkeep):
    """Starts, tracks and removes the containers of one server instance."""

    def __init__(self, settings: Settings, runtime: str = "", kind: EngineKind = DOCKER) -> None:
        ExecutionSlots.__init__(
            self, settings.max_concurrent, CONTROL_TIMEOUT + EXIT_WAIT, per_token_limit(settings), settings.retry_after
        )
        self.instance, label = instance_label(settings.server_name)
        Upkeep.__init__(self, settings.server_name, label)
        self.settings = settings
        # The runtime containers run under, as reported (the setting, or the engine's default).
        self.runtime = runtime or settings.runtime
        self.owner = owner_id()
        self.kind = kind  # Docker or podman (rootless or not), asked at start-up
        self.remove_words = remove_argv(kind.podman)  # rm --force --volumes (podman: --time 0 --ignore)
        self.control = EngineCli(settings.docker_command, settings.engine_environment())  # kill, rm, ps...
        self.present: set[str] = set()  # images seen on the engine: no need to ask again
        # What the engine made of each plan, read back before the container starts.
        self.check = EngineCheck(settings.docker_command, self.control, kind.podman)
        self.prestarts = Prestarts(self)  # containers of approved plans, ready before their requests
        # Each run's $DOCKYTER_OUT, sessions' too; a rootless engine's CLI may run as another user
        # than the server (setpriv, sudo -u), and must reach the folder it is given.
        self._folders = RunFolders(settings, self.instance, traversable=kind.rootless)

    @property
    def folders(self) -> RunFolders:
        return self._folders

    @property
    def known_runtime(self) -> str:
        """The runtime every container must show, or "" when the engine could not say which it is."""
        return "" if self.runtime == UNKNOWN else self.runtime

    async def must_pull(self, plan: Plan) -> bool:
        """Whether to pull ``plan``'s image (with progress events) before ``docker run``."""
        pull_flag = self.settings.pull or last_value(plan.args.values("--pull"))
        if not needs_pull(pull_flag):
            return False
        image = plan.args.image
        if pull_flag != "always" and image in self.present:
            return False
        answer = await self.control("image", "inspect", "--format", "{{.Id}}", image)
        if answer is not None and answer.returncode == 0:
            self.present.add(image)
            return pull_flag == "always"
        # Missing (docker's words, podman's), or the engine cannot say (then docker run reports why).
        reason = answer.stderr.lower() if answer is not None else ""
        return "no such image" in reason or "image not known" in reason

    # -- executions ---------------------------------------------------------------------------

    async def start(
        self,
        plan: Plan,
        cmd: str,
        timeout: float,
        merge_stderr: bool,
        who: str,
        per_token: int | None = None,
        files: FileLimits | None = None,
    ) -> Execution:
        """Admit and start one execution; raises :class:`~dockyter.server.servererrors.ServerError` subclasses.

        In a prestarted container of the same token and plan when one is ready (:mod:`.prestartpool`),
        else in a new one, as always; either way its line is filled again for the next request.
        ``per_token`` replaces ``max_per_token`` for this one (what the caller's hub groups say);
        ``files``: what of its $DOCKYTER_OUT to send back (None: it gets no folder).
        """
        key = self.prestarts.key(plan, who, files is not None)
        if key is None:
            return await self.admit(Execution(self, plan, cmd, timeout, merge_stderr, who, files), per_token)
        container = await self.prestarts.take(key, plan)
        if container is not None:
            try:
                execution: Execution = await self.admit(
                    PrestartedExecution(self, container, cmd, timeout, merge_stderr, who, files), per_token
                )
            except BaseException:
                self.prestarts.give_back(key, container)
                raise
            self.prestarts.refill(key, plan, who)
            return execution
        execution = await self.admit(Execution(self, plan, cmd, timeout, merge_stderr, who, files), per_token)
        self.prestarts.refill_after(execution, key)
        return execution

    async def cancel_elsewhere(self, execution_id: str, who: str) -> bool:
        """One engine, one server: an execution this instance does not run is no one's."""
        return False

    def prestarted(self, who: str) -> dict[str, int] | None:
        """Token ``who``'s prestarted containers (for /health); None when prestarting is off."""
        return self.prestarts.counts(who) if self.settings.prestart > 0 else None

    async def list_executions(self, who: str) -> list[dict[str, Any]]:
        """``{"id", "image", "node"}`` of every running execution of token ``who`` (node: None)."""
        mine = (execution for execution in self.running.values() if execution.who == who)
        return sorted(({"id": e.id, "image": e.plan.args.image, "node": None} for e in mine), key=lambda e: e["id"])

    # -- the container CLI --------------------------------------------------------------------

    async def kill_and_remove(self, name: str, process: asyncio.subprocess.Process | None = None) -> None:
        """``docker kill`` then ``docker rm --force --volumes`` by name; then make sure the CLI is gone too.

        The CLI may still be creating the container when this runs, so once it has ended the
        removal is repeated: after that nothing can create the container any more.
        """
        await self.control("kill", name)
        await self.control(*self.remove_words, name)
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), EXIT_WAIT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            await self.control(*self.remove_words, name)

    async def remove_created(self, name: str) -> None:
        """Remove a container that was created and never started (with its anonymous volumes)."""
        await self.check.remove(name)

    async def containers(self, label_filter: str, label: str = SERVER_LABEL) -> list[tuple[str, str]] | None:
        """``(name, value of label)`` of every container matching ``label_filter`` (``KEY`` or ``KEY=VALUE``).

        Listed, then inspected (:mod:`dockyter.wire.labelled`: podman's ``ps`` cannot say a
        label); one removed in between is left out. None when the engine cannot be asked (the
        caller tries again later).
        """
        key, _, value = label_filter.partition("=")
        answer = await self.control(*labelled.list_argv(key, value or None))
        if answer is None or answer.returncode != 0:
            return None
        names = labelled.names(answer.stdout)
        if not names:
            return []
        inspected = await self.control(*labelled.inspect_argv(label, names))
        if inspected is None:
            return None
        return sorted(labelled.values(inspected.stdout).items())

    async def remove(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        if names:
            await self.control(*self.remove_words, *names)
        return names

    # -- upkeep (runs/upkeep.py) ----------------------------------------------------------------

    def sweep_every(self) -> float:
        return self.settings.reap_interval

    async def remove_leftovers(self) -> list[str] | None:
        """Remove containers of earlier instances of this ``server_name``; None when the engine cannot be asked."""
        listing = await self.containers(SERVER_LABEL)
        if listing is None:
            return None
        removed = await self.remove(name for name, label in listing if self.earlier(label))
        return removed + await asyncio.to_thread(self._folders.remove_earlier)

    async def sweep(self) -> list[str]:
        """Remove prestarted containers unused too long, and containers of this instance that no
        running execution (nor the prestarted pool) owns."""
        expired = await self.prestarts.expire()
        owned = {execution.name for execution in self.running.values()} | self.prestarts.names()
        listing = await self.containers(f"{SERVER_LABEL}={self.label}") or []
        orphans = [name for name, _ in listing if name not in owned]
        # An execution registered after the first look may already be in the listing: look again.
        owned = {execution.name for execution in self.running.values()} | self.prestarts.names()
        return expired + await self.remove(name for name in orphans if name not in owned)

    async def stop_runs(self) -> None:
        self.prestarts.closing = True  # executions that end now fill no line
        await self.stop_all("the server is shutting down: container stopped and removed")
        await self.prestarts.close()

    async def remove_own(self) -> None:
        """Every container of this instance, whatever it was; then its folders."""
        await self.remove(name for name, _ in await self.containers(f"{SERVER_LABEL}={self.label}") or [])
        await asyncio.to_thread(self._folders.remove_all)
