"""What a Swarm manager says about one server instance's tasks, and which nodes are down.

Asked through the Engine API when ``docker_command`` plainly names a unix socket (two
requests for every task of the instance, found by its ``io.dockyter.server`` label), else
through the CLI (``docker service ps`` and ``docker node ls``); see :mod:`~dockyter.server.engine.engineapi`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...wire.contract import NAME_PREFIX, SERVER_LABEL
from ...wire.enginesocket import socket_path
from ..engine.control import ENGINE_DOWN, Ask
from ..engine.engineapi import EngineAPIError, get_json

EXECUTION_LABEL = "io.dockyter.execution"

# Task states after which the task runs no more (lower case, as the API and `service ps` say them).
TERMINAL = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}


@dataclass(frozen=True)
class TaskStatus:
    """What the manager last said of an execution's task."""

    state: str = ""  # "" until a task exists; then "pending", "running", "complete", ...
    node: str = ""  # host name of the node it was placed on
    error: str = ""  # Swarm's error text for a failed task
    gone: bool = False  # the service no longer exists (another replica removed it)
    lost: str = ""  # why the manager is taken for lost (the poller's, not the manager's word)


class SwarmState:
    """Reads task states and down nodes for the server instance labelled ``label``."""

    def __init__(self, label: str, docker_command: Sequence[str], environment: Mapping[str, str], control: Ask) -> None:
        self.label = label
        self.control = control
        self._socket = socket_path(docker_command, environment)  # None: ask through the CLI
        self._nodes: dict[str, str] = {}  # node id -> host name (API only)

    @property
    def knows_nodes(self) -> bool:
        """Whether task states can name their nodes yet (the API gives node ids only)."""
        return self._socket is None or bool(self._nodes)

    async def task_statuses(self, names: list[str]) -> dict[str, TaskStatus] | None:
        """The state of each named service's task; None when the manager cannot be asked."""
        if self._socket is None:
            return await self._task_statuses_cli(names)
        try:
            mine = {"label": [f"{SERVER_LABEL}={self.label}"]}
            tasks = await get_json(self._socket, "/tasks", mine)
            services = await get_json(self._socket, "/services", mine)
        except EngineAPIError:
            return None
        existing = {service.get("Spec", {}).get("Name") for service in services}
        statuses: dict[str, TaskStatus] = {}
        newest: dict[str, str] = {}
        for task in tasks:
            labels = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
            name = NAME_PREFIX + labels.get(EXECUTION_LABEL, "")
            if newest.get(name, "") > task.get("CreatedAt", ""):
                continue  # an older task of the same service
            newest[name] = task.get("CreatedAt", "")
            status = task.get("Status") or {}
            node = self._nodes.get(task.get("NodeID", ""), "")
            statuses[name] = TaskStatus(str(status.get("State", "")).lower(), node, status.get("Err") or "")
        for name in names:
            if name not in existing:
                statuses[name] = TaskStatus(gone=True)
        return statuses

    async def _task_statuses_cli(self, names: list[str]) -> dict[str, TaskStatus] | None:
        fmt = "{{.Name}}\t{{.Node}}\t{{.CurrentState}}\t{{.Error}}"
        answer = await self.control("service", "ps", "--no-trunc", "--format", fmt, *names)
        if answer is None or any(sign in answer.stderr for sign in ENGINE_DOWN):
            return None
        statuses: dict[str, TaskStatus] = {}
        for line in answer.stdout.splitlines():
            task, node, current, error = (line.split("\t") + ["", "", "", ""])[:4]
            service = task.split(".", 1)[0]
            if service in statuses:
                continue  # the newest task comes first
            state = current.split(" ", 1)[0].lower()
            statuses[service] = TaskStatus(state, node, error.strip().strip('"'))
        for line in answer.stderr.splitlines():
            if line.startswith("no such service:"):
                statuses[line.split(":", 1)[1].strip()] = TaskStatus(gone=True)
        return statuses

    async def down_nodes(self) -> set[str] | None:
        """Host names of the nodes the manager sees down; None when it cannot be asked."""
        if self._socket is not None:
            try:
                nodes = await get_json(self._socket, "/nodes")
            except EngineAPIError:
                return None
            self._nodes = {node["ID"]: (node.get("Description") or {}).get("Hostname", "") for node in nodes}
            return {
                self._nodes[node["ID"]]
                for node in nodes
                if str((node.get("Status") or {}).get("State", "")).lower() in ("down", "disconnected")
            }
        answer = await self.control("node", "ls", "--format", "{{.Hostname}}\t{{.Status}}")
        if answer is None or answer.returncode != 0:
            return None
        rows = (line.split("\t") for line in answer.stdout.splitlines())
        return {row[0] for row in rows if len(row) == 2 and row[1].lower() in ("down", "disconnected")}
