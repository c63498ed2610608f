"""The Swarm executor's check of a held service: read back, compared with its plan, released.

Each service is created with no replica (:mod:`.swarmexecution`), so no task runs yet.
:class:`ServiceCheck` reads it back (through the manager's socket when ``docker_command``
plainly names one, else ``docker service inspect``), builds what it must be
(:meth:`ServiceCheck.expected`: the plan and what the executor adds, in service terms),
compares the two (:func:`.servicecheck.differences`; a difference is logged at error level and
answered 403), and releases a service that matches to one replica.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from ...wire.contract import INIT_ENV, shell_command
from ...wire.enginesocket import socket_path
from ..engine.control import Ask, Control
from ..engine.engineapi import EngineAPIError, get_json, post_json
from ..engine.enginecheck import disagreement
from ..engine.expected import ServerAdditions, expected_container
from ..policy.plan import Plan
from ..servererrors import EngineDisagrees, EngineUnavailable
from ..settings.fields import Settings
from .loopbackcheck import target
from .servicecheck import ServiceExpected, differences
from .swarmargs import binds_host_paths
from .swarmloopback import SwarmLoopbackCheck
from .swarmnetworks import SwarmNetworks


class HeldService(Protocol):
    """What the check needs of the execution whose service it reads (:class:`~.swarmexecution.SwarmExecution`)."""

    plan: Plan
    cmd: str
    merge_stderr: bool
    network: str | None  # its owner's overlay network, once acquired
    check_secret: str  # names the loopback check's directory in the task

    def labels(self) -> dict[str, str]: ...
    def own_network(self) -> bool: ...


class ServiceCheck:
    """Reads, checks and releases the held services of one Swarm executor."""

    def __init__(
        self, settings: Settings, control: Ask, networks: SwarmNetworks, loopback: SwarmLoopbackCheck | None
    ) -> None:
        self.settings = settings
        self.control = control
        self.networks = networks
        self.loopback = loopback  # swarm_isolation "nodes": the loopback check's config
        self.socket = socket_path(settings.docker_command)  # None: through the CLI

    async def expected(self, execution: HeldService) -> ServiceExpected:
        """The held service ``execution.service_argv()`` must make: its plan with what the executor adds."""
        settings = self.settings
        plan = execution.plan
        name, _, value = INIT_ENV.partition("=")
        adds = ServerAdditions.of(
            settings,
            command=(*plan.shell, shell_command(execution.cmd, execution.merge_stderr)),
            labels=execution.labels(),
            env={name: value},
            init=True,
            network="",  # the networks are compared as the service's own (below)
            forbid_new_privileges=False,  # a service cannot ask for it: the nodes' daemon.json sets it
            runtime="",  # a service cannot choose its runtime
            log_driver="json-file",
        )
        request = [o for o in plan.args.options if not (o.name == "--network" and o.value == "none")]
        loopback = self.loopback
        checked = loopback is not None and not execution.network and execution.own_network()
        where = target(execution.check_secret)
        return ServiceExpected(
            container=expected_container(plan, adds),
            labels=execution.labels(),
            networks=frozenset([await self.network_id(network) for network in self._joined(execution)]),
            constraints=tuple(settings.mount_constraints) if binds_host_paths(request) else (),
            entrypoint=(where,) if checked else (),
            configs={loopback.name: where} if checked and loopback is not None else {},
        )

    def refusal(self, service: dict[str, Any], expected: ServiceExpected, who: str) -> EngineDisagrees | None:
        """None when ``service`` (as :meth:`read` gives it) is what ``expected`` describes, else the
        error to answer with (logged)."""
        found = differences(expected, service.get("Spec") or {})
        name = str((service.get("Spec") or {}).get("Name", ""))
        return disagreement(found, who=who, service=name, image=expected.container.image) if found else None

    async def read(self, name: str) -> dict[str, Any]:
        """Service ``name`` (its ``ID``, ``Version`` and ``Spec``); raises :class:`EngineUnavailable`."""
        if self.socket is not None:
            try:
                service = await get_json(self.socket, f"/services/{name}")
            except EngineAPIError as error:
                raise EngineUnavailable(f"cannot read back service {name}: {error}") from None
        else:
            answer = await self.control("service", "inspect", name)
            if answer is None or answer.returncode != 0:
                why = answer.stderr.strip() if answer else "no answer"
                raise EngineUnavailable(f"cannot read back service {name}: {why}")
            try:
                service = (json.loads(answer.stdout) or [None])[0]
            except (ValueError, TypeError):
                service = None
        if not isinstance(service, dict) or not isinstance(service.get("Spec"), dict):
            raise EngineUnavailable(f"cannot read back service {name}: no spec")
        return service

    async def release(self, service: dict[str, Any]) -> Control | None:
        """Scale a held ``service`` to one replica; the answer of the update.

        Through the socket, the update carries the very spec that was checked, at the version it
        was read: the manager refuses it if the service changed in between. Else ``docker
        service scale``.
        """
        if self.socket is None:
            return await self.control("service", "scale", "--detach", f"{service['Spec']['Name']}=1")
        spec = {**service["Spec"], "Mode": {"Replicated": {"Replicas": 1}}}
        version = (service.get("Version") or {}).get("Index")
        try:
            await post_json(self.socket, f"/services/{service.get('ID')}/update?version={version}", spec)
        except EngineAPIError as error:
            return Control(1, "", str(error))
        return Control(0, "", "")

    async def network_id(self, name: str) -> str:
        """The id a service spec names network ``name`` by (the CLI resolves names to ids)."""
        known = self.networks.ids.get(name)
        if known:
            return known
        answer = await self.control("network", "inspect", "--format", "{{.Id}}", name)
        return answer.stdout.strip() if answer is not None and answer.returncode == 0 else name

    def _joined(self, execution: HeldService) -> list[str]:
        """The networks ``execution.service_argv()`` has its task join, by name."""
        settings = self.settings
        if execution.network:
            return [execution.network]
        if execution.own_network():
            return []  # none: nodes isolation (the loopback check runs first), or the server's default is none
        asked = [value for value in execution.plan.args.values("--network") if value != "none"]
        if settings.network and settings.network != "none" and not execution.plan.has_network:
            asked.append(settings.network)
        return asked
