"""The Swarm executor: each execution is a one-task service on a Docker Swarm.

``docker_command`` reaches a Swarm manager (``docker -H unix:///...``, ``DOCKER_HOST``, a
context). For each execution the executor

1. joins its owner's ``--internal`` overlay network (unless the policy let the request name
   a network): Swarm has no ``--network none`` for services, and a service without a network
   lands on the node's default bridge, with outside access. An internal overlay has no
   gateway, so the task reaches nothing outside it, and only the same token's running
   executions share it (:mod:`.swarmnetworks`). With ``swarm_isolation = "nodes"`` it joins
   none instead, and the loopback check (:mod:`.swarmloopback`) runs first in the task;
2. creates a service ``--mode replicated --replicas 1 --restart-condition none`` with the
   same confinement as the engine executor (:mod:`.swarmargs` translates the request's
   ``docker run`` options) and labels naming the server instance, the owner, the execution,
   the token and a deadline. (Replicated *jobs* are not used: on Docker 20.10 removing a
   job service leaves its running container behind on the node.);
3. follows ``docker service logs --follow --raw --timestamps``, one pipe per stream, and
   streams each message as it comes;
4. learns the task's state, node and exit status from a poller shared by all executions
   (one ``docker service ps`` for all of them, and ``docker node ls`` for dead nodes);
5. when the task has ended, reads the whole log once more and sends what the follower had
   not delivered yet (Swarm holds back a last line without a newline), then ``exit``;
6. removes the service (its container goes with it) and releases the network (removed with
   its owner's last execution), whatever ended the run: the task's end, cancel, timeout, the
   output cap, a lost client, a dead node, shutdown.

Labels are the state that replicas of the server share: a cancel reaching another replica
finds the service by its ``io.dockyter.execution`` label; a restarted replica removes what
its crashed predecessor (same ``server_name``) left; and any replica removes a service that
is past its deadline, whoever started it.

Steps 1 to 5 are one :class:`~.swarmexecution.SwarmExecution`; this module holds the executor that
starts the executions, polls their tasks, and removes services; :mod:`.swarmnetworks` keeps the networks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shlex
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...wire.contract import CONTROL_TIMEOUT, MANAGED_LABEL, OWNER_LABEL, SERVER_LABEL, owner_id
from ..engine.control import EngineCli
from ..policy.plan import Plan
from ..runs.slots import ExecutionSlots, per_token_limit
from ..runs.upkeep import Upkeep, instance_label
from ..settings.fields import Settings
from .swarmcheck import ServiceCheck
from .swarmexecution import (
    DEADLINE_LABEL,
    PRINCIPAL_LABEL,
    WHO_LABEL,
    SwarmExecution,
    principal_of,
)
from .swarmloopback import SwarmLoopbackCheck
from .swarmnetworks import SwarmNetworks
from .swarmstate import EXECUTION_LABEL, SwarmState

log = logging.getLogger("dockyter.server")

POLL_INTERVAL = 0.2  # seconds between two looks at the tasks' states
NODE_POLL_INTERVAL = 1.0  # seconds between two looks at which nodes are down
# The manager is taken for lost after this many failed polls in a row, spanning at least
# MANAGER_PATIENCE seconds: a leader election or one slow answer must not end the runs, and a
# manager that hangs (each poll waits for its timeout) must not take minutes to be noticed.
MANAGER_FAILURES = 2
MANAGER_PATIENCE = 10.0


class SwarmExecutor(ExecutionSlots[SwarmExecution], Upkeep):
    """Starts, tracks and removes the services of one server instance on a Swarm."""

    def __init__(self, settings: Settings) -> None:
        ExecutionSlots.__init__(
            self, settings.max_concurrent, 2 * CONTROL_TIMEOUT, per_token_limit(settings), settings.retry_after
        )
        self.instance, label = instance_label(settings.server_name)
        Upkeep.__init__(self, settings.server_name, label)
        self.settings = settings
        # A service cannot choose its runtime (the settings refuse one): each node's default runs it.
        self.runtime = "the nodes' default"
        self.owner = owner_id()
        self.down_nodes: set[str] = set()
        self.manager_lost: str | None = None  # why the runs cannot be followed any more, while so
        self.control = EngineCli(settings.docker_command, settings.engine_environment())  # service rm, ls...
        self.state = SwarmState(self.label, settings.docker_command, settings.engine_environment(), self.control)
        self._poller: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        labels = {MANAGED_LABEL: "1", SERVER_LABEL: self.label, OWNER_LABEL: self.owner}
        self.networks = SwarmNetworks(self.control, labels, WHO_LABEL, DEADLINE_LABEL)
        # swarm_isolation "nodes": no network for a task that gets none, but the check runs first in it.
        self.loopback = (
            SwarmLoopbackCheck(self.control, Path(settings.loopback_check), self.instance, labels)
            if settings.swarm_isolation == "nodes"
            else None
        )
        # Each service is created held, its spec compared with the plan, then released (swarmcheck.py).
        self.check = ServiceCheck(settings, self.control, self.networks, self.loopback)
        self._principals = {name: principal_of(token) for name, token in settings.token_table().items()}

    # -- executions ---------------------------------------------------------------------------------

    async def start(
        self, plan: Plan, cmd: str, timeout: float, merge_stderr: bool, who: str, per_token: int | None = None
    ) -> SwarmExecution:
        execution = await self.admit(SwarmExecution(self, plan, cmd, timeout, merge_stderr, who), per_token)
        self._ensure_poller()
        return execution

    async def cancel_elsewhere(self, execution_id: str, who: str) -> bool:
        """Remove the service of an execution another replica runs (found by its labels)."""
        if not re.fullmatch(r"[0-9a-f]{16}", execution_id):
            return False
        found = await self.services(f"{EXECUTION_LABEL}={execution_id}")
        principal = self.principal(who)
        mine = [name for name, labels in (found or {}).items() if labels.get(PRINCIPAL_LABEL) == principal]
        if not mine:
            return False
        await self.control("service", "rm", *mine)
        return True

    def principal(self, who: str) -> str:
        """The principal label of token name ``who`` (of the name itself when authentication is off)."""
        return self._principals.get(who) or principal_of(who)

    def prestarted(self, who: str) -> dict[str, int] | None:
        """None: services are not prestarted (docs/server.md, "Prestarted containers")."""
        return None

    async def list_executions(self, who: str) -> list[dict[str, Any]]:
        """The running executions of token ``who`` on every replica, found by their labels."""
        principal = self.principal(who)
        specs = await self.service_specs(f"{PRINCIPAL_LABEL}={principal}") or {}
        listed = []
        for spec in specs.values():
            labels = spec.get("Labels") or {}
            if labels.get(MANAGED_LABEL) != "1" or labels.get(PRINCIPAL_LABEL) != principal:
                continue
            execution_id = labels.get(EXECUTION_LABEL, "")
            local = self.running.get(execution_id)
            image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "")
            listed.append({"id": execution_id, "image": image, "node": local.node or None if local else None})
        return sorted(listed, key=lambda item: item["id"])

    # -- the CLI --------------------------------------------------------------------------------------

    async def services(self, label_filter: str) -> dict[str, dict[str, str]] | None:
        """Labels of every service matching ``label_filter``, by name; None when the manager cannot be asked."""
        specs = await self.service_specs(label_filter)
        return None if specs is None else {name: spec.get("Labels") or {} for name, spec in specs.items()}

    async def service_specs(self, label_filter: str) -> dict[str, dict[str, Any]] | None:
        """The spec of every service matching ``label_filter``, by name; None when the manager cannot be asked."""
        answer = await self.control("service", "ls", "--quiet", "--filter", f"label={label_filter}")
        if answer is None or answer.returncode != 0:
            return None
        ids = answer.stdout.split()
        if not ids:
            return {}
        answer = await self.control("service", "inspect", "--format", "{{json .Spec}}", *ids)
        if answer is None:
            return None
        found = {}
        for line in answer.stdout.splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                spec = json.loads(line)
                found[spec["Name"]] = spec
        return found

    async def network_labels(self, label_filter: str) -> dict[str, dict[str, str]] | None:
        """Labels of every network matching ``label_filter``, by name; None when the manager cannot be asked."""
        return await self._labelled("network", "{{.Name}}\t{{json .Labels}}", label_filter)

    async def config_labels(self, label_filter: str) -> dict[str, dict[str, str]] | None:
        """Labels of every Swarm config matching ``label_filter``, by name; None when the manager cannot be asked."""
        return await self._labelled("config", "{{.Spec.Name}}\t{{json .Spec.Labels}}", label_filter)

    async def _labelled(self, kind: str, name_and_labels: str, label_filter: str) -> dict[str, dict[str, str]] | None:
        answer = await self.control(kind, "ls", "--filter", f"label={label_filter}", "--format", "{{.Name}}")
        if answer is None or answer.returncode != 0:
            return None
        names = answer.stdout.split()
        if not names:
            return {}
        answer = await self.control(kind, "inspect", "--format", name_and_labels, *names)
        found = {}
        for line in (answer.stdout if answer else "").splitlines():
            name, _, labels = line.partition("\t")
            with contextlib.suppress(ValueError):
                found[name] = json.loads(labels) or {}
        return found

    async def remove_service(self, execution: SwarmExecution) -> None:
        """Remove the service now (its task's container goes with it) and release its network."""
        await self.control("service", "rm", execution.name)
        if execution.network:
            self.networks.release(execution.network)

    # -- the poller -----------------------------------------------------------------------------------

    def wake_poller(self) -> None:
        self._poke.set()

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_forever(), name="dockyter swarm poller")

    async def _poll_forever(self) -> None:
        last_nodes = 0.0
        failures, last_answer = 0, time.monotonic()  # polls the manager did not answer, in a row
        self.manager_lost = None
        manager = shlex.join(self.settings.docker_command)
        while True:
            watched = [execution for execution in self.running.values() if execution.watching]
            if not watched:
                self._poke.clear()
                if not self.running:
                    return  # started again with the next execution
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), POLL_INTERVAL)
                continue
            try:
                statuses = None
                down: set[str] | None = self.down_nodes
                if time.monotonic() - last_nodes >= NODE_POLL_INTERVAL or not self.state.knows_nodes:
                    last_nodes = time.monotonic()
                    down = await self.state.down_nodes()
                if down is not None:  # else the manager did not answer: a failed poll, no second wait
                    self.down_nodes = down
                    statuses = await self.state.task_statuses([execution.name for execution in watched])
            except Exception:  # the poller must outlive any surprise in the CLI's answers
                log.exception("polling the swarm failed")
                statuses = None
            if statuses is None:
                failures += 1
                silent = time.monotonic() - last_answer
                if failures >= MANAGER_FAILURES and silent >= MANAGER_PATIENCE and not self.manager_lost:
                    self.manager_lost = f"the Swarm manager ({manager}) has not answered for {silent:.0f} s"
                    log.warning(json.dumps({"event": "manager_lost", "manager": manager}))
            else:
                failures, last_answer, self.manager_lost = 0, time.monotonic(), None
            for execution in watched:
                if self.manager_lost:
                    execution.update(replace(execution.status, lost=self.manager_lost))  # it ends with an error
                if statuses is not None and execution.name in statuses:
                    execution.update(statuses[execution.name])
                if execution.status.node in self.down_nodes:
                    execution.update(execution.status, force=True)  # its node died: a state that never changes
            await asyncio.sleep(POLL_INTERVAL)

    # -- upkeep (runs/upkeep.py) ------------------------------------------------------------------------

    def sweep_every(self) -> float:
        return self.settings.reap_interval

    async def remove_leftovers(self) -> list[str] | None:
        """Remove services, networks and configs of earlier instances of this ``server_name``.

        The services removed; None when the manager could not list them (the sweep tries again).
        """

        def earlier(labels: dict[str, str]) -> bool:
            return self.earlier(labels.get(SERVER_LABEL, ""))

        services = await self.services(SERVER_LABEL)
        removed = await self._remove_services(name for name, labels in (services or {}).items() if earlier(labels))
        networks = await self.network_labels(SERVER_LABEL) or {}
        for name, labels in networks.items():
            if earlier(labels):
                self.networks.remove(name)
        configs = await self.config_labels(SERVER_LABEL) or {}
        stale_configs = [name for name, labels in configs.items() if earlier(labels)]
        if stale_configs:  # their services were removed just above
            await self.control("config", "rm", *stale_configs)
        return removed if services is not None else None

    async def sweep(self) -> list[str]:
        """Remove this instance's services no execution owns, and anyone's past their deadline."""
        services = await self.services(MANAGED_LABEL) or {}
        networks = await self.network_labels(MANAGED_LABEL) or {}
        now = time.time()
        owned = {execution.name for execution in self.running.values()}

        def stale(name: str, labels: dict[str, str]) -> bool:
            if name in owned:
                return False
            if labels.get(SERVER_LABEL) == self.label:
                return True
            try:
                return float(labels.get(DEADLINE_LABEL, "inf")) < now
            except ValueError:
                return False

        # An execution registered after the first look may be in the listing: look again.
        owned |= {execution.name for execution in self.running.values()}
        removed = await self._remove_services(name for name, labels in services.items() if stale(name, labels))
        for name, labels in networks.items():
            if stale(name, labels) and not self.networks.in_use(name):
                self.networks.remove(name)
        return removed

    async def _remove_services(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        if names:
            await self.control("service", "rm", *names)
        return names

    async def stop_runs(self) -> None:
        await self.stop_all("the server is shutting down: service removed")

    async def remove_own(self) -> None:
        """Every service, network and config of this instance (the poller stopped first)."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        mine = await self.services(f"{SERVER_LABEL}={self.label}") or {}
        await self._remove_services(mine)
        for name in await self.network_labels(f"{SERVER_LABEL}={self.label}") or {}:
            self.networks.remove(name, even_in_use=True)  # its services are gone: nothing will use it
        await self.networks.wait_removed()
        if self.loopback is not None:
            await self.loopback.remove()
