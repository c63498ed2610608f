"""The executor seam: what the HTTP layer needs of an executor and of a run, and which executor a server uses.

Two executors satisfy :class:`ExecutorLike`: the engine executor
(:mod:`~dockyter.server.engine.engineexecutor`, one container per execution on one engine) and
the Swarm executor (:mod:`~dockyter.server.swarm.swarmexecutor`, one service per execution on a
Docker Swarm). The ``executor`` setting picks one (:func:`create_executor`); the HTTP contract,
the policy, auth, limits and logs are the same for both. Sessions are containers of one engine:
a server on the engine has a :class:`~dockyter.server.sessions.sessionregistry.SessionRegistry`
over its executor, a server on a Swarm has none.
"""

from __future__ import annotations

from typing import Any, Protocol

from ...wire.outfolder import FileLimits
from ..engine.enginecheck import warn_about_extra_run_args
from ..engine.engineexecutor import EngineExecutor
from ..engine.enginekind import EngineCannotConfine, ask_kind, confinement_problem
from ..engine.runtimes import resolve_runtime
from ..policy.plan import Plan
from ..sessions.sessionregistry import SessionRegistry
from ..settings.fields import Settings
from ..swarm.swarmmounts import warn_about_node_paths

Event = dict[str, Any]


class RunningExecution(Protocol):
    """One run, as the HTTP layer consumes it: events until ``exit`` or ``error``."""

    id: str
    who: str  # the token name that started it: only that token may cancel it
    engine_down: bool  # it ended because the engine (or the Swarm manager) could not be reached
    refused: bool  # the engine made something else than the plan (found after a pull): never started

    async def next_event(self, timeout: float | None = None) -> Event | None: ...
    async def cancel(self) -> None: ...
    async def abandon(self) -> None: ...


class ExecutorLike(Protocol):
    """Starts, tracks and removes the executions of one server instance."""

    @property
    def runtime(self) -> str:
        """The OCI runtime its containers run under, for the health reply."""
        ...

    async def start(
        self,
        plan: Plan,
        cmd: str,
        timeout: float,
        merge_stderr: bool,
        who: str,
        per_token: int | None = None,
        files: FileLimits | None = None,
    ) -> RunningExecution:
        """Admit and start one execution of ``who``; ``per_token`` replaces max_concurrent_per_token for it
        (what the caller's hub groups say), None keeps it; ``files``: what of its $DOCKYTER_OUT to send
        back (None: no folder)."""
        ...

    def get(self, execution_id: str) -> RunningExecution | None: ...
    async def cancel_elsewhere(self, execution_id: str, who: str) -> bool:
        """Cancel an execution that another server instance runs; False when there is none."""
        ...

    def prestarted(self, who: str) -> dict[str, int] | None:
        """Token ``who``'s prestarted containers, ``ready`` and ``starting``; None: this executor prestarts none."""
        ...

    async def list_executions(self, who: str) -> list[dict[str, Any]]:
        """``{"id", "image", "node"}`` of every running execution of token ``who``, on every instance."""
        ...

    async def stop_all(self, message: str) -> None: ...
    async def startup(self) -> list[str]: ...
    async def shutdown(self) -> None: ...


def create_executor(settings: Settings) -> tuple[ExecutorLike, SessionRegistry | None]:
    """The executor named by ``settings.executor``, and the sessions it can hold (None on a Swarm).

    On the engine, the engine is asked once what it is (Docker or podman, rootless or not) and
    which runtime its containers will run under: raises
    :class:`~dockyter.server.engine.runtimes.RuntimeUnavailable` when it lacks the configured
    one, :class:`~dockyter.server.engine.enginekind.EngineCannotConfine` when it cannot apply the
    limits (rootless podman on cgroup v1).
    """
    warn_about_extra_run_args(settings.extra_run_args)
    if settings.executor == "engine":
        environment = settings.engine_environment()
        kind = ask_kind(settings.docker_command, environment)
        problem = confinement_problem(kind, settings)
        if problem is not None:
            raise EngineCannotConfine(problem)
        runtime = resolve_runtime(settings.runtime, settings.docker_command, environment, kind)
        engine = EngineExecutor(settings, runtime, kind)
        return engine, SessionRegistry(settings, engine)
    # Imported only when chosen: a server on one engine never loads the Swarm executor.
    from ..swarm.swarmexecutor import SwarmExecutor

    swarm = SwarmExecutor(settings)
    warn_about_node_paths(settings)  # the policy sees the server's files, a task its node's
    return swarm, None
