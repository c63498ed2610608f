"""The Swarm executor: each execution is a one-task service on a Docker Swarm.

``docker_command`` reaches a Swarm manager (``docker -H unix:///...``, ``DOCKER_HOST``, a
context). For each execution the executor

1. creates an ``--internal`` overlay network of its own (unless the policy let the request
   name a network): Swarm has no ``--network none`` for services, and a service without a
   network lands on the node's default bridge, with outside access. An internal overlay
   has no gateway, so the task reaches nothing outside it, and no other task shares it;
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
6. removes the service (its container goes with it) and then the network, whatever ended
   the run: the task's end, cancel, timeout, the output cap, a lost client, a dead node,
   shutdown.

Labels are the state that replicas of the server share: a cancel reaching another replica
finds the service by its ``io.dockyter.execution`` label; a restarted replica removes what
its crashed predecessor (same ``server_name``) left; and any replica removes a service that
is past its deadline, whoever started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import re
import secrets
import shlex
import time
from collections.abc import Iterable
from typing import Any

from ..contract import MANAGED_LABEL, NAME_PREFIX, OWNER_LABEL, READ_SIZE, SERVER_LABEL, IncrementalText, owner_id
from ..dockerargs import parse_run_args
from .executor import (
    CONTROL_TIMEOUT,
    ENGINE_DOWN,
    EXIT_CODES,
    QUEUE_EVENTS,
    CommandTooLong,
    Control,
    ExecutorError,
    ShuttingDown,
    TooBusy,
    check_argv_size,
)
from .policy import Plan
from .settings import Settings
from .swarmargs import SwarmArgsError, service_options
from .swarmstate import EXECUTION_LABEL, TERMINAL, SwarmState, TaskStatus

log = logging.getLogger("dockyter.server")

WHO_LABEL = "io.dockyter.who"
DEADLINE_LABEL = "io.dockyter.deadline"  # unix time after which any replica may remove it

POLL_INTERVAL = 0.2  # seconds between two looks at the tasks' states
NODE_POLL_INTERVAL = 1.0  # seconds between two looks at which nodes are down
DEADLINE_GRACE = 60.0  # a service this long past its run's timeout is anyone's to remove
NETWORK_RETRY = 1.0  # a network can be removed once the task's container has left it
NETWORK_PATIENCE = 60.0  # seconds of retries before a network is left to the sweep
DRAIN_WAIT = 5.0  # seconds for the follower's pipes to empty once it is stopped

_EXIT_STATUS = re.compile(r"non-zero exit \((\d+)\)")
# A log message as `service logs --timestamps` prints it; anything else on its pipes is the CLI's own.
_MESSAGE = re.compile(rb"\d{4}-\d\d-\d\dT[0-9:.]+Z ")


def message_text(line: bytes) -> bytes | None:
    """The text of one ``TIMESTAMP TEXT`` log line; None for a line of the CLI's own (an error)."""
    found = _MESSAGE.match(line)
    return line[found.end() :] if found else None


Event = dict[str, Any]


class NotOnSwarm(ExecutorError):
    """The request asks for something a Swarm service cannot do (403, like a policy refusal)."""

    status = 403


class SwarmExecution:
    """One service run. Consume it with :meth:`next_event` until an ``exit`` or ``error`` event."""

    def __init__(
        self, executor: SwarmExecutor, plan: Plan, cmd: str, timeout: float, merge_stderr: bool, who: str
    ) -> None:
        self.executor = executor
        self.plan = plan
        self.cmd = cmd
        self.timeout = timeout
        self.merge_stderr = merge_stderr
        self.who = who
        self.id = secrets.token_hex(8)
        self.name = NAME_PREFIX + self.id  # of the service, and of its network
        self.deadline = time.time() + timeout + DEADLINE_GRACE
        self.bytes_out = 0
        self.reason: str | None = None
        self.message: str | None = None
        self.finished = False
        self.engine_down = False
        self.status = TaskStatus()
        self.node = ""
        self.network: str | None = None  # its own network, once created
        self.watching = False  # the poller reports on it (the service exists)
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUE_EVENTS)
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()  # the poller saw something new
        self._discard = False
        self._messages = {"stdout": 0, "stderr": 0}  # log messages the follower delivered
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._gone = asyncio.Event()

    # -- for the consumer (as the engine executor's Execution) -------------------------------------

    async def next_event(self, timeout: float | None = None) -> Event | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def stop(self, reason: str, message: str) -> None:
        if self.reason is None and not self.finished:
            self.reason, self.message = reason, message
        self._stop.set()

    async def cancel(self) -> None:
        self.stop("cancelled", f"cancelled: service {self.name} removed")
        await self.wait()

    async def abandon(self) -> None:
        self.stop("disconnected", "the client went away")
        self._discard = True
        while not self._queue.empty():
            self._queue.get_nowait()
        await self.wait()

    async def wait(self) -> None:
        if self._task is not None:
            await self._gone.wait()

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
            "--mode", "replicated", "--replicas", "1", "--restart-condition", "none",
            # No virtual IP: nothing connects to the task, and a VIP costs a load balancer on the node.
            "--endpoint-mode", "dnsrr",
            *service_options(request),
        ]  # fmt: skip
        for key, value in self.labels().items():
            argv += ["--label", f"{key}={value}", "--container-label", f"{key}={value}"]
        argv += [
            "--init", "--env", "TINI_KILL_PROCESS_GROUP=1",
            # Stopped as the engine executor stops a container: docker kill, SIGKILL.
            "--stop-signal", "KILL",
            # `service logs` reads the node's log files: json-file, sized well above the output cap.
            "--log-driver", "json-file", "--log-opt", f"max-size={max(8 * settings.max_output_bytes, 10 << 20)}",
        ]  # fmt: skip
        if self.network:
            argv += ["--network", self.network]
        elif settings.network and settings.network != "none" and not plan.has_network:
            argv += ["--network", settings.network]
        if settings.memory:
            argv += ["--limit-memory", settings.memory]
        if settings.cpus:
            argv += ["--limit-cpu", settings.cpus]
        if settings.pids_limit:
            argv += ["--limit-pids", str(settings.pids_limit)]
        if settings.drop_capabilities:
            argv += ["--cap-drop", "ALL"]
        # no-new-privileges: services cannot ask for it; the nodes' daemon.json sets it (docs/scaling.md).
        if settings.pull != "always":
            # Tasks use the node's image when it has one; no registry round trip per execution.
            argv.append("--no-resolve-image")
        argv += service_options(parse_run_args(shlex.join([*settings.extra_run_args, plan.args.image])).options)
        command = f"exec 2>&1; {self.cmd}" if self.merge_stderr else self.cmd
        return [*argv, plan.args.image, *plan.shell, command]

    async def start(self) -> None:
        """Check the command line and start the run; raises ExecutorError subclasses."""
        try:
            argv = self.service_argv()
        except SwarmArgsError as error:
            raise NotOnSwarm(str(error)) from None
        check_argv_size(argv)
        self._task = asyncio.create_task(self._run(), name=f"dockyter {self.name}")

    async def _run(self) -> None:
        final: Event | None = None
        try:
            final = await self._create()
            if final is None:
                final = await self._follow()
        except asyncio.CancelledError:
            final = {"event": "error", "message": "the server stopped this execution"}
            raise
        except Exception as error:  # never leave a service behind because of a bug here
            log.exception("execution %s failed", self.id)
            final = {"event": "error", "message": f"the server failed while running the command: {error}"}
        finally:
            self.watching = False
            try:
                await asyncio.shield(self.executor.remove_service(self))
            finally:
                self.finished = True
                self.executor.forget(self)
                self._gone.set()
                self._log(final)
            if final is not None and not self._discard:
                await self._queue.put(final)

    async def _create(self) -> Event | None:
        """Create the network and the service; an event that ends the run when that fails."""
        executor = self.executor
        if self.own_network():
            labels = [token for key, value in self.labels().items() for token in ("--label", f"{key}={value}")]
            answer = await executor.control(
                "network", "create", "--driver", "overlay", "--internal", *labels, self.name
            )
            if answer is None or answer.returncode != 0:
                return await self._not_created(answer, "network create")
            self.network = self.name
        argv = self.service_argv()
        answer = await executor.control(*argv[len(executor.settings.docker_command) :])
        if answer is None or answer.returncode != 0:
            return await self._not_created(answer, "service create")
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
            start_new_session=True,
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
                    await self._put({"event": "node", "node": status.node})
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
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stop("timeout", f"timed out after {self.timeout:g} s: service {self.name} removed")
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
        argv = [*self.executor.settings.docker_command, "service", "logs", "--raw", "--timestamps", self.name]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), CONTROL_TIMEOUT)
        except (OSError, TimeoutError):
            log.warning(json.dumps({"event": "catch_up_failed", "id": self.id}))
            return
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

    async def _forward(self, stream: str, decoder: IncrementalText, data: bytes) -> None:
        """Count ``data`` against the output cap, then send it."""
        if self._discard or self.reason == "output_limit":
            return
        limit = self.executor.settings.max_output_bytes
        room = limit - self.bytes_out
        if len(data) > room:
            self.stop("output_limit", f"the output exceeded {limit} bytes: service {self.name} removed")
            data = data[:room]
        self.bytes_out += len(data)
        await self._emit(stream, decoder.decode(data))

    async def _emit(self, stream: str, text: str) -> None:
        if text and not self._discard:
            await self._queue.put({"event": stream, "data": text})

    async def _put(self, event: Event) -> None:
        if not self._discard:
            await self._queue.put(event)

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
            await self._emit("stderr", f"docker: {status.error}\n")
            text = status.error.lower()
            code = 127 if "not found" in text or "no such file" in text else 126 if "permission denied" in text else 125
            return {"event": "exit", "code": code, "reason": None, "message": None}
        return {
            "event": "error",
            "message": f"the task ended as {status.state or 'unknown'} on {status.node or 'no node'}: {status.error}",
        }

    def _log(self, final: Event | None) -> None:
        record = {
            "event": "execution",
            "id": self.id,
            "service": self.name,
            "node": self.node or None,
            "image": self.plan.args.image,
            "who": self.who,
            "exit_code": final.get("code") if final else None,
            "reason": self.reason or ("error" if final and final["event"] == "error" else None),
            "duration": round(time.monotonic() - self._started, 3),
            "bytes_out": self.bytes_out,
        }
        log.info(json.dumps(record), extra={"execution": record})


class SwarmExecutor:
    """Starts, tracks and removes the services of one server instance on a Swarm."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance = secrets.token_hex(6)
        self.label = f"{settings.server_name}:{self.instance}"
        # A service cannot choose its runtime (the settings refuse one): each node's default runs it.
        self.runtime = "the nodes' default"
        self.owner = owner_id()
        self.running: dict[str, SwarmExecution] = {}
        self.closing = False
        self.down_nodes: set[str] = set()
        self.state = SwarmState(self.label, settings.docker_command, self.control)
        self._poller: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._reaper: asyncio.Task[None] | None = None
        self._pending_networks: dict[str, float] = {}  # network -> when to give up on it
        self._network_reaper: asyncio.Task[None] | None = None
        self._leftovers_checked = False

    # -- executions ---------------------------------------------------------------------------------

    async def start(self, plan: Plan, cmd: str, timeout: float, merge_stderr: bool, who: str) -> SwarmExecution:
        if self.closing:
            raise ShuttingDown("the server is shutting down")
        if len(self.running) >= self.settings.max_concurrent:
            raise TooBusy(f"all {self.settings.max_concurrent} execution slots of this server are taken: retry later")
        execution = SwarmExecution(self, plan, cmd, timeout, merge_stderr, who)
        self.running[execution.id] = execution
        try:
            await execution.start()
        except BaseException:
            self.forget(execution)
            raise
        self._ensure_poller()
        return execution

    def get(self, execution_id: str) -> SwarmExecution | None:
        return self.running.get(execution_id)

    def forget(self, execution: SwarmExecution) -> None:
        self.running.pop(execution.id, None)

    async def cancel_elsewhere(self, execution_id: str, who: str) -> bool:
        """Remove the service of an execution another replica runs (found by its labels)."""
        if not re.fullmatch(r"[0-9a-f]{16}", execution_id):
            return False
        found = await self.services(f"{EXECUTION_LABEL}={execution_id}")
        mine = [name for name, labels in (found or {}).items() if labels.get(WHO_LABEL) == who]
        if not mine:
            return False
        await self.control("service", "rm", *mine)
        return True

    async def list_executions(self, who: str) -> list[dict[str, Any]]:
        """The running executions of token ``who`` on every replica, found by their labels."""
        specs = await self.service_specs(f"{WHO_LABEL}={who}") or {}
        listed = []
        for spec in specs.values():
            labels = spec.get("Labels") or {}
            if labels.get(MANAGED_LABEL) != "1" or labels.get(WHO_LABEL) != who:
                continue
            execution_id = labels.get(EXECUTION_LABEL, "")
            local = self.running.get(execution_id)
            image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "")
            listed.append({"id": execution_id, "image": image, "node": local.node or None if local else None})
        return sorted(listed, key=lambda item: item["id"])

    async def stop_all(self, message: str) -> None:
        self.closing = True
        executions = list(self.running.values())
        for execution in executions:
            execution.stop("cancelled", message)
        if executions:
            waits = [asyncio.ensure_future(execution.wait()) for execution in executions]
            await asyncio.wait(waits, timeout=2 * CONTROL_TIMEOUT)

    # -- the CLI --------------------------------------------------------------------------------------

    async def control(self, *args: str, timeout: float = CONTROL_TIMEOUT) -> Control | None:
        """Run a short CLI command; None when it cannot be started or does not answer in time."""
        try:
            process = await asyncio.create_subprocess_exec(
                *self.settings.docker_command, *args,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            if error.errno == errno.E2BIG:
                raise CommandTooLong("the command line is too long for one process") from None
            return None
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            return None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        return Control(process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))

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

    async def networks(self, label_filter: str) -> dict[str, dict[str, str]] | None:
        """Labels of every network matching ``label_filter``, by name; None when the manager cannot be asked."""
        answer = await self.control("network", "ls", "--filter", f"label={label_filter}", "--format", "{{.Name}}")
        if answer is None or answer.returncode != 0:
            return None
        names = answer.stdout.split()
        if not names:
            return {}
        answer = await self.control("network", "inspect", "--format", "{{.Name}}\t{{json .Labels}}", *names)
        found = {}
        for line in (answer.stdout if answer else "").splitlines():
            name, _, labels = line.partition("\t")
            with contextlib.suppress(ValueError):
                found[name] = json.loads(labels) or {}
        return found

    async def remove_service(self, execution: SwarmExecution) -> None:
        """Remove the service now (its task's container goes with it); its network once free."""
        await self.control("service", "rm", execution.name)
        if execution.network:
            self._remove_network(execution.network)

    def _remove_network(self, name: str) -> None:
        """Remove ``name`` once the removed task's container has left it (the node takes seconds).

        Pending networks are removed together, one ``docker network rm`` for all of them a
        second, rather than one retrying CLI per execution: with dozens of executions ending
        at once, starting CLI processes is what costs the most.
        """
        self._pending_networks.setdefault(name, time.monotonic() + NETWORK_PATIENCE)
        if self._network_reaper is None or self._network_reaper.done():
            self._network_reaper = asyncio.create_task(self._remove_networks(), name="dockyter network reaper")

    async def _remove_networks(self) -> None:
        while self._pending_networks:
            names = list(self._pending_networks)
            answer = await self.control("network", "rm", *names)
            if answer is not None:
                # Removed ones are printed; one already gone is as good.
                done = set(answer.stdout.split())
                done |= {name for name in names if f"network {name} not found" in answer.stderr}
                for name in done:
                    self._pending_networks.pop(name, None)
            for name, give_up in list(self._pending_networks.items()):
                if time.monotonic() > give_up:
                    self._pending_networks.pop(name)
                    log.warning(json.dumps({"event": "network_left", "network": name}))  # the sweep tries again
            if self._pending_networks:
                await asyncio.sleep(NETWORK_RETRY)

    # -- the poller -----------------------------------------------------------------------------------

    def wake_poller(self) -> None:
        self._poke.set()

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_forever(), name="dockyter swarm poller")

    async def _poll_forever(self) -> None:
        last_nodes = 0.0
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
                if time.monotonic() - last_nodes >= NODE_POLL_INTERVAL or not self.state.knows_nodes:
                    last_nodes = time.monotonic()
                    down = await self.state.down_nodes()
                    if down is not None:
                        self.down_nodes = down
                statuses = await self.state.task_statuses([execution.name for execution in watched])
            except Exception:  # the poller must outlive any surprise in the CLI's answers
                log.exception("polling the swarm failed")
                statuses = None
            for execution in watched:
                if statuses is not None and execution.name in statuses:
                    execution.update(statuses[execution.name])
                if execution.status.node in self.down_nodes:
                    execution.update(execution.status, force=True)  # its node died: a state that never changes
            await asyncio.sleep(POLL_INTERVAL)

    # -- lifecycle --------------------------------------------------------------------------------------

    async def startup(self) -> list[str]:
        """Remove what a crashed earlier run of this server left; start the periodic sweep."""
        removed = await self.remove_leftovers()
        self._reaper = asyncio.create_task(self._sweep_forever(), name="dockyter reaper")
        return removed

    async def remove_leftovers(self) -> list[str]:
        """Remove services and networks of earlier instances of this ``server_name``."""
        prefix = self.settings.server_name + ":"

        def earlier(labels: dict[str, str]) -> bool:
            label = labels.get(SERVER_LABEL, "")
            return label.startswith(prefix) and label != self.label and ":" not in label[len(prefix) :]

        services = await self.services(SERVER_LABEL)
        self._leftovers_checked = services is not None
        removed = await self._remove_services(name for name, labels in (services or {}).items() if earlier(labels))
        networks = await self.networks(SERVER_LABEL) or {}
        for name, labels in networks.items():
            if earlier(labels):
                self._remove_network(name)
        if removed:
            log.warning(json.dumps({"event": "startup_cleanup", "removed": removed}))
        return removed

    async def sweep(self) -> list[str]:
        """Remove this instance's services no execution owns, and anyone's past their deadline."""
        services = await self.services(MANAGED_LABEL) or {}
        networks = await self.networks(MANAGED_LABEL) or {}
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
            if stale(name, labels) and name not in services:
                self._remove_network(name)
        return removed

    async def _remove_services(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        if names:
            await self.control("service", "rm", *names)
        return names

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reap_interval)
            try:
                if not self._leftovers_checked:
                    await self.remove_leftovers()
                removed = await self.sweep()
            except Exception:
                log.exception("sweep failed")
                continue
            if removed:
                log.warning(json.dumps({"event": "sweep", "removed": removed}))

    async def shutdown(self) -> None:
        """Stop every execution, remove every service and network of this instance."""
        await self.stop_all("the server is shutting down: service removed")
        for task in (self._reaper, self._poller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        mine = await self.services(f"{SERVER_LABEL}={self.label}") or {}
        await self._remove_services(mine)
        for name in await self.networks(f"{SERVER_LABEL}={self.label}") or {}:
            self._remove_network(name)
        if self._network_reaper is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._network_reaper), NETWORK_PATIENCE)
