"""One execution on a Docker Swarm: its service, its output as it comes, its final event.

A :class:`SwarmExecution` creates its network and service (the options :mod:`.swarmargs`
translates, the labels other replicas read) with no replica, reads the service's spec back
and compares it with the plan (:mod:`.servicecheck`): a service that differs is removed before
any task ran and the request refused (403); one that matches is scaled to one replica. It
then follows ``docker service logs`` and streams each message, learns from the executor's
poller how the task ended, reads the whole log once more for what the follower had not
delivered, and has the executor remove what it created, whatever ended the run. :mod:`.swarm`
starts, tracks and sweeps the executions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import posixpath
import re
import secrets
import shlex
import shutil
import time
from dataclasses import dataclass
from typing import Protocol

from ...wire.contract import (
    INIT_ENV,
    MANAGED_LABEL,
    NAME_PREFIX,
    OWNER_LABEL,
    READ_SIZE,
    SERVER_LABEL,
    IncrementalText,
    limit_args,
    shell_command,
)
from ...wire.dockerargs import parse_run_args
from ..engine.control import ENGINE_DOWN, Ask, Control, captured
from ..engine.pullerrors import task_pull_failure
from ..policy.plan import Plan
from ..runs.runlife import EXIT_CODES, Event, Run
from ..servererrors import EngineUnavailable, NotOnSwarm, check_argv_size
from ..settings.fields import Settings
from .loopbackcheck import TARGET_DIR
from .swarmargs import SwarmArgsError, binds_host_paths, mount_targets, service_options
from .swarmcheck import ServiceCheck
from .swarmloopback import SwarmLoopbackCheck
from .swarmnetworks import SwarmNetworks
from .swarmstate import EXECUTION_LABEL, TERMINAL, TaskStatus

log = logging.getLogger("dockyter.server")

WHO_LABEL = "io.dockyter.who"
# Who may list and cancel the run from any replica: a digest of the caller's token, so that a
# token *name* reused by another deployment on the same swarm does not reach these runs.
PRINCIPAL_LABEL = "io.dockyter.principal"
DEADLINE_LABEL = "io.dockyter.deadline"  # unix time after which any replica may remove it

DEADLINE_GRACE = 60.0  # a service this long past its run's timeout is anyone's to remove
DRAIN_WAIT = 5.0  # seconds for the follower's pipes to empty once it is stopped

_EXIT_STATUS = re.compile(r"non-zero exit \((\d+)\)")
# A log message as `service logs --timestamps` prints it; anything else on its pipes is the CLI's own.
_MESSAGE = re.compile(rb"\d{4}-\d\d-\d\dT[0-9:.]+Z ")


@dataclass(frozen=True)
class SwarmLimits:
    """The server's limits (:class:`~dockyter.wire.contract.ServerLimits`) a service can carry.

    The network is chosen apart (a token's overlay, or none); services cannot ask for
    no-new-privileges (the nodes' daemon.json sets it, docs/scaling.md) nor for a runtime (the
    settings refuse one), and the image is resolved apart (``--no-resolve-image``).
    """

    memory: str
    cpus: str
    pids_limit: int
    drop_capabilities: bool
    network: str = ""
    forbid_new_privileges: bool = False
    pull: str = ""
    runtime: str = ""

    @classmethod
    def of(cls, settings: Settings) -> SwarmLimits:
        return cls(settings.memory, settings.cpus, settings.pids_limit, settings.drop_capabilities)


def principal_of(token: str) -> str:
    """The ``io.dockyter.principal`` label of a token: a digest that names it without revealing it."""
    return hashlib.sha256(b"io.dockyter.principal\0" + token.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def message_text(line: bytes) -> bytes | None:
    """The text of one ``TIMESTAMP TEXT`` log line; None for a line of the CLI's own (an error)."""
    found = _MESSAGE.match(line)
    return line[found.end() :] if found else None


class ServiceHost(Protocol):
    """What a Swarm execution needs of the executor that admitted it (:class:`~.swarmexecutor.SwarmExecutor`)."""

    settings: Settings
    label: str  # server_name:instance, the io.dockyter.server label of what it starts
    owner: str
    runtime: str  # as the log reports it
    down_nodes: set[str]  # host names of the nodes the manager sees down
    networks: SwarmNetworks
    loopback: SwarmLoopbackCheck | None  # swarm_isolation "nodes" only
    check: ServiceCheck

    @property
    def control(self) -> Ask: ...
    def principal(self, who: str) -> str: ...
    def forget(self, execution: SwarmExecution) -> None: ...
    def wake_poller(self) -> None: ...
    async def remove_service(self, execution: SwarmExecution) -> None: ...


class SwarmExecution(Run):
    """One service run. Consume it with :meth:`next_event` until an ``exit`` or ``error`` event."""

    def __init__(
        self, executor: ServiceHost, plan: Plan, cmd: str, timeout: float, merge_stderr: bool, who: str
    ) -> None:
        super().__init__(cmd, timeout, merge_stderr, who, executor.settings.max_output_bytes)
        self.executor = executor
        self.plan = plan
        self.name = NAME_PREFIX + self.id  # of the service
        self.deadline = time.time() + timeout + DEADLINE_GRACE
        self.status = TaskStatus()
        self.node = ""
        self.network: str | None = None  # its owner's network, once acquired
        # Names the loopback check's directory in the task (swarm_isolation "nodes"); never sent to the client.
        self.check_secret = secrets.token_hex(16)
        self.watching = False  # the poller reports on it (the service exists)
        self._changed = asyncio.Event()  # the poller saw something new
        self._messages = {"stdout": 0, "stderr": 0}  # log messages the follower delivered

    def stopped(self) -> str:
        return f"service {self.name} removed"

    def _release(self) -> None:
        self.executor.forget(self)

    # -- what the poller tells ---------------------------------------------------------------------

    def update(self, status: TaskStatus, force: bool = False) -> None:
        if force or status != self.status:
            self.status = status
            self._changed.set()

    # -- running -----------------------------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        executor = self.executor
        return {
            MANAGED_LABEL: "1",
            SERVER_LABEL: executor.label,
            OWNER_LABEL: executor.owner,
            EXECUTION_LABEL: self.id,
            WHO_LABEL: self.who,
            PRINCIPAL_LABEL: executor.principal(self.who),
            DEADLINE_LABEL: str(int(self.deadline)),
        }

    def own_network(self) -> bool:
        """Whether the run needs a network of its own: it asked for none, or the server's default is none."""
        asked = self.plan.args.values("--network")
        if asked:
            return all(value == "none" for value in asked)
        # "" leaves the task on its node's default network: isolated only on nodes run with --bridge none.
        return self.executor.settings.network == "none"

    def service_argv(self) -> list[str]:
        """``docker service create ...``: the request's options first, then the server's, which win."""
        settings = self.executor.settings
        plan = self.plan
        request = [o for o in plan.args.options if not (o.name == "--network" and o.value == "none")]
        argv = [
            *settings.docker_command, "service", "create", "--detach", "--quiet", "--name", self.name,
            # Held: no task runs until the spec is checked (then scaled to one replica).
            "--mode", "replicated", "--replicas", "0", "--restart-condition", "none",
            # No virtual IP: nothing connects to the task, and a VIP costs a load balancer on the node.
            "--endpoint-mode", "dnsrr",
            *service_options(request),
        ]  # fmt: skip
        if binds_host_paths(request):
            # Only on nodes the operator says have the allowed paths (the policy checked the server's).
            for constraint in settings.mount_constraints:
                argv += ["--constraint", constraint]
        for key, value in self.labels().items():
            argv += ["--label", f"{key}={value}", "--container-label", f"{key}={value}"]
        argv += [
            "--init", "--env", INIT_ENV,
            # Stopped as the engine executor stops a container: docker kill, SIGKILL.
            "--stop-signal", "KILL",
            # `service logs` reads the node's log files: json-file, sized well above the output cap.
            "--log-driver", "json-file", "--log-opt", f"max-size={max(8 * settings.max_output_bytes, 10 << 20)}",
        ]  # fmt: skip
        if self.network:
            argv += ["--network", self.network]
        elif self.own_network() and self.executor.loopback is not None:
            for target in mount_targets(request):
                path = posixpath.normpath("/" + target.lstrip("/"))
                if path == TARGET_DIR or path.startswith(TARGET_DIR + "/"):
                    raise SwarmArgsError(f"a mount at {target} is not allowed: {TARGET_DIR} holds the loopback check")
            argv += self.executor.loopback.mount(self.check_secret)
        elif settings.network and settings.network != "none" and not plan.has_network:
            argv += ["--network", settings.network]
        # The engine executor's limits, translated like the request's options.
        argv += service_options(
            parse_run_args(shlex.join([*limit_args(SwarmLimits.of(settings), has_network=True), "image"])).options
        )
        if settings.pull != "always":
            # Tasks use the node's image when it has one; no registry round trip per execution.
            argv.append("--no-resolve-image")
        argv += service_options(parse_run_args(shlex.join([*settings.extra_run_args, plan.args.image])).options)
        return [*argv, plan.args.image, *plan.shell, shell_command(self.cmd, self.merge_stderr)]

    async def start(self) -> None:
        """Create the service, check it and release its task; raises :class:`~dockyter.server.servererrors.ServerError` subclasses.

        A service whose spec differs from the plan is removed and :class:`EngineDisagrees`
        (403) raised before any task ran; whatever else goes wrong, including a cancellation,
        what was created is removed before this raises.
        """
        try:
            argv = self.service_argv()
        except SwarmArgsError as error:
            raise NotOnSwarm(str(error)) from None
        check_argv_size(argv)
        cli = self.executor.settings.docker_command[0]
        if shutil.which(cli) is None:
            # Said before the run starts, as the engine executor says it: no CLI is not "no answer".
            raise EngineUnavailable(f"cannot start the container CLI {cli!r}: not found, or not executable")
        try:
            final = await self._create()
        except BaseException:
            await asyncio.shield(self._remove())
            raise
        self._task = asyncio.create_task(self._run(final), name=f"dockyter {self.name}")

    async def _run(self, final: Event | None) -> None:
        await self._guarded(self._follow_unless(final), self._remove)

    async def _follow_unless(self, final: Event | None) -> Event:
        """``final`` when the service could not be made, else the task followed to its end."""
        return final or await self._follow()

    async def _remove(self) -> None:
        """Remove the service (and its network), whatever ended the run."""
        self.watching = False
        await asyncio.shield(self.executor.remove_service(self))

    async def _create(self) -> Event | None:
        """Create the network and the service; an event that ends the run when that fails."""
        executor = self.executor
        if self.own_network() and executor.loopback is not None:
            # No network: the node must give none, and the check that runs first in the task refuses otherwise.
            config, answer = await executor.loopback.config()
            if config is None:
                return await self._not_created(answer, "config create")
        elif self.own_network():
            # The owner's internal network, shared by its running executions only (swarmnetworks.py).
            self.network, answer = await executor.networks.acquire(self.who, self.deadline)
            if self.network is None:
                return await self._not_created(answer, "network create")
        argv = self.service_argv()
        answer = await executor.control(*argv[len(executor.settings.docker_command) :])
        if answer is None or answer.returncode != 0:
            return await self._not_created(answer, "service create")
        service = await executor.check.read(self.name)
        refusal = executor.check.refusal(service, await executor.check.expected(self), self.who)
        if refusal is not None:
            await self._remove()
            raise refusal
        answer = await executor.check.release(service)
        if answer is None or answer.returncode != 0:
            return await self._not_created(answer, "service update")
        self.watching = True
        executor.wake_poller()
        return None

    async def _not_created(self, answer: Control | None, what: str) -> Event:
        if answer is None:
            self.engine_down = True
            return {"event": "error", "message": f"the Swarm manager did not answer docker {what}"}
        text = answer.stderr.strip() or answer.stdout.strip()
        if any(sign in text for sign in ENGINE_DOWN):
            self.engine_down = True
            line = next(line for line in text.splitlines() if any(sign in line for sign in ENGINE_DOWN))
            return {"event": "error", "message": f"the Swarm manager is not reachable: {line}"}
        # As `docker run` does when it cannot create a container: the reason on stderr, status 125.
        await self._emit("stderr", f"docker {what}: {text}\n")
        return {"event": "exit", "code": 125, "reason": None, "message": None}

    async def _follow(self) -> Event:
        """Stream the task's output until it ends or is stopped; the final event."""
        executor = self.executor
        follower = await asyncio.create_subprocess_exec(
            *executor.settings.docker_command, "service", "logs", "--follow", "--raw", "--timestamps", self.name,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, env=executor.settings.engine_environment(),
        )  # fmt: skip
        readers = [
            asyncio.create_task(self._read(pipe, stream))
            for pipe, stream in ((follower.stdout, "stdout"), (follower.stderr, "stderr"))
            if pipe is not None
        ]
        deadline = self._started + self.timeout
        try:
            while True:
                status = self.status
                if status.node and not self.node:
                    self.node = status.node
                    self._put({"event": "node", "node": status.node})
                if self._stop.is_set():
                    break
                if status.gone:
                    self.stop("cancelled", f"cancelled: service {self.name} was removed by another server instance")
                    break
                if status.state in TERMINAL:
                    break
                if status.node and status.node in executor.down_nodes:
                    self.engine_down = True
                    return {
                        "event": "error",
                        "message": f"the node {status.node} went down during the run: "
                        f"the execution is lost and its service {self.name} removed",
                    }
                if status.lost:
                    self.engine_down = True
                    return {
                        "event": "error",
                        "message": f"{status.lost}: the run is given up, and its service {self.name} "
                        "is removed once the manager answers again",
                    }
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._time_is_up()
                    break
                self._changed.clear()
                waits = [asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(self._changed.wait())]
                try:
                    await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for wait in waits:
                        wait.cancel()
        finally:
            with contextlib.suppress(ProcessLookupError):
                follower.kill()
            await follower.wait()
            _, pending = await asyncio.wait(readers, timeout=DRAIN_WAIT)
            for reader in pending:
                reader.cancel()
        if self.reason in EXIT_CODES:
            return {"event": "exit", "code": EXIT_CODES[self.reason], "reason": self.reason, "message": self.message}
        if self.reason is not None:  # disconnected: nobody reads the final event
            return {"event": "exit", "code": EXIT_CODES["cancelled"], "reason": None, "message": self.message}
        await self._catch_up()
        return await self._ended(self.status)

    async def _read(self, pipe: asyncio.StreamReader, stream: str) -> None:
        """Forward the follower's messages (``TIMESTAMP TEXT\\n``) as they come."""
        decoder = IncrementalText()
        pending = b""
        while data := await pipe.read(READ_SIZE):
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = message_text(line)
                if text is None:
                    log.warning(json.dumps({"event": "logs_cli", "id": self.id, "line": line.decode(errors="replace")}))
                    continue
                self._messages[stream] += 1
                await self._forward(stream, decoder, text + b"\n")
        # A last message without a newline is left to _catch_up, which reads it whole.
        await self._emit(stream, decoder.flush())

    async def _catch_up(self) -> None:
        """Send what the follower had not delivered when the task ended."""
        settings = self.executor.settings
        answer = await captured(
            settings.docker_command, "service", "logs", "--raw", "--timestamps", self.name,
            env=settings.engine_environment(),
        )  # fmt: skip
        if answer is None:
            log.warning(json.dumps({"event": "catch_up_failed", "id": self.id}))
            return
        _, out, err = answer
        for stream, data in (("stdout", out), ("stderr", err)):
            messages = data.split(b"\n")
            last = messages.pop()  # b"" after a final newline, else a message without one
            texts = [text + b"\n" for text in map(message_text, messages) if text is not None]
            if last and (text := message_text(last)) is not None:
                texts.append(text)
            decoder = IncrementalText()
            for text in texts[self._messages[stream] :]:
                await self._forward(stream, decoder, text)
                if self.reason == "output_limit":
                    return
            await self._emit(stream, decoder.flush())

    async def _ended(self, status: TaskStatus) -> Event:
        """The final event for a task that ended by itself."""
        if status.state == "complete":
            return {"event": "exit", "code": 0, "reason": None, "message": None}
        found = _EXIT_STATUS.search(status.error)
        if status.state == "failed" and found:
            return {"event": "exit", "code": int(found.group(1)), "reason": None, "message": None}
        if status.state in ("failed", "rejected"):
            # The container could not start (no such image, user, command...): as `docker run`
            # says it, on stderr, with its status (126 cannot execute, 127 not found, 125 else).
            said = task_pull_failure(self.plan.args.image, status.error) or status.error
            await self._emit("stderr", f"docker: {said}\n")
            text = status.error.lower()
            code = 127 if "not found" in text or "no such file" in text else 126 if "permission denied" in text else 125
            return {"event": "exit", "code": code, "reason": None, "message": None}
        return {
            "event": "error",
            "message": f"the task ended as {status.state or 'unknown'} on {status.node or 'no node'}: {status.error}",
        }

    def _log(self, final: Event | None) -> None:
        self._log_record(
            final,
            service=self.name,
            node=self.node or None,
            image=self.plan.args.image,
            runtime=self.executor.runtime,  # the same fields as the engine executor's line
        )
