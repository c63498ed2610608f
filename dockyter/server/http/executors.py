"""The executor seam: what the application needs from an executor, and which one a server uses.

Two executors satisfy :class:`ExecutorLike`: the engine executor (:mod:`.executor`, one
``docker run`` per execution on one engine) and the Swarm executor (:mod:`.swarm`, one
service per execution on a Docker Swarm). The ``executor`` setting picks one; the HTTP
contract, the policy, auth, limits and logs are the same for both.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

from ..engine.enginecheck import warn_about_extra_run_args
from ..engine.engineexecutor import Executor
from ..engine.runtimes import resolve_runtime
from ..swarm.swarmmounts import warn_about_node_paths

if TYPE_CHECKING:  # pragma: no cover
    from ..policy.requestpolicy import Plan
    from ..settings import Settings

Event = dict[str, Any]

# Setting value -> "module:Class", imported when chosen (the Swarm executor is not needed otherwise).
EXECUTORS = {
    "engine": "dockyter.server.http.executors:EngineExecutor",
    "swarm": "dockyter.server.swarm.swarmexecutor:SwarmExecutor",
}


class RunningExecution(Protocol):
    """One execution, as the application consumes it: events until ``exit`` or ``error``."""

    id: str
    who: str  # the token name that started it: only that token may cancel it
    engine_down: bool  # it ended because the engine (or the Swarm manager) could not be reached
    refused: bool  # the engine made something else than the plan (found after a pull): never started

    async def next_event(self, timeout: float | None = None) -> Event | None: ...
    def stop(self, reason: str, message: str) -> None: ...
    async def cancel(self) -> None: ...
    async def abandon(self) -> None: ...
    async def wait(self) -> None: ...


class ExecutorLike(Protocol):
    """Starts, tracks and removes the executions of one server instance."""

    settings: Settings
    label: str  # server_name:instance, the io.dockyter.server label of what it starts
    runtime: str  # the OCI runtime its containers run under, for the health reply

    async def start(self, plan: Plan, cmd: str, timeout: float, merge_stderr: bool, who: str) -> RunningExecution: ...
    def get(self, execution_id: str) -> RunningExecution | None: ...
    async def cancel_elsewhere(self, execution_id: str, who: str) -> bool:
        """Cancel an execution that another server instance runs; False when there is none."""
        ...

    async def list_executions(self, who: str) -> list[dict[str, Any]]:
        """``{"id", "image", "node"}`` of every running execution of token ``who``, on every instance."""
        ...

    async def stop_all(self, message: str) -> None: ...
    async def startup(self) -> list[str]: ...
    async def shutdown(self) -> None: ...


class EngineExecutor(Executor):
    """The engine executor, completed with the seam's answer for what only a cluster shares."""

    async def cancel_elsewhere(self, execution_id: str, who: str) -> bool:
        # One engine, one server: an execution this instance does not run is no one's.
        return False

    async def list_executions(self, who: str) -> list[dict[str, Any]]:
        mine = (execution for execution in self.running.values() if execution.who == who)
        return sorted(({"id": e.id, "image": e.plan.args.image, "node": None} for e in mine), key=lambda e: e["id"])


def create_executor(settings: Settings) -> ExecutorLike:
    """The executor named by ``settings.executor``."""
    warn_about_extra_run_args(settings.extra_run_args)
    if settings.executor == "engine":
        # The engine is asked once which runtime its containers will run under (refused if unknown).
        runtime = resolve_runtime(settings.runtime, settings.docker_command, settings.engine_environment())
        return EngineExecutor(settings, runtime)
    module, _, name = EXECUTORS[settings.executor].partition(":")
    cls = getattr(importlib.import_module(module), name)
    executor: ExecutorLike = cls(settings)
    warn_about_node_paths(settings)  # the policy sees the server's files, a task its node's
    return executor
