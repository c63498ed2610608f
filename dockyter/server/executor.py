"""Running executions: one ``docker run`` per request, streamed, limited and always removed.

Each execution is an asyncio subprocess of the container CLI started from an argv list, so
the request's ``cmd`` reaches a shell only inside the container. Its output is read in
chunks, decoded incrementally and handed to whoever consumes the execution (an NDJSON
stream or a plain JSON reply) through a queue of at most ``QUEUE_EVENTS`` output events: a
slow consumer slows the container down, it never makes the server buffer more.

Once a stop is asked for (cancel, disconnect, timeout, output limit, shutdown) output is
dropped: the readers keep draining the CLI's pipes and discard what they read, so that the
CLI drains the engine's attach stream and ``docker kill`` / ``rm`` are not held up by a
client that stopped reading. The final ``exit`` event is still queued (past the bound) for
a consumer that reads later; only :meth:`Execution.abandon` (the consumer is gone) drops it.

The executor owns every container it starts, and proves it with labels:
``io.dockyter.managed=1`` and ``io.dockyter.server=<server_name>:<instance>``. A container
is killed and removed by name (``docker kill``, then ``docker rm -f``) when its execution is
cancelled, hits a limit or loses its client; on shutdown every running one is; at start-up
the ones a crashed earlier run of the same ``server_name`` left behind are; and a periodic
sweep removes any of ours that no execution owns any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..contract import (
    EXIT_CANNOT_RUN,
    EXIT_INTERRUPTED,
    EXIT_KILLED,
    EXIT_TIMEOUT,
    MANAGED_LABEL,
    NAME_PREFIX,
    OWNER_LABEL,
    READ_SIZE,
    SERVER_LABEL,
    IncrementalText,
    identity_args,
    owner_id,
    run_argv,
)
from ..pull import PullFailed, PullProgress, last_value, needs_pull, pull
from .policy import Plan
from .settings import Settings

log = logging.getLogger("dockyter.server")

# The exit code reported for each way the server itself ends a run.
EXIT_CODES = {"timeout": EXIT_TIMEOUT, "cancelled": EXIT_INTERRUPTED, "output_limit": EXIT_KILLED}

PULL_EVENT_INTERVAL = 0.25  # seconds between two pull progress events
QUEUE_EVENTS = 64  # output chunks waiting for a slow client; beyond that the container waits for it
CONTROL_TIMEOUT = 20.0  # seconds for a `docker kill` / `rm` / `ps` before giving up on it
EXIT_WAIT = 10.0  # seconds for the CLI to end once its container is killed
MAX_ARGUMENT = 131072 - 1  # Linux MAX_ARG_STRLEN, less the terminating NUL
MAX_ARGV = 1024 * 1024  # a safe share of ARG_MAX for the whole command line

# What the docker and podman CLIs say (with exit status 125) when they cannot reach the engine.
ENGINE_DOWN = (
    "Cannot connect to the Docker daemon",
    "Is the docker daemon running",
    "error during connect",
    "Cannot connect to Podman",
)

Event = dict[str, Any]


class ExecutorError(Exception):
    """The execution could not be started; ``status`` is the HTTP status to answer with."""

    status = 503


class EngineUnavailable(ExecutorError):
    """The container CLI is missing or cannot reach its engine (503)."""


class TooBusy(ExecutorError):
    """``max_concurrent`` executions are already running (429)."""

    status = 429


class CommandTooLong(ExecutorError):
    """The command line would exceed what the kernel lets one process receive (413)."""

    status = 413


class ShuttingDown(ExecutorError):
    """The server is stopping and takes no new executions (503)."""


@dataclass(frozen=True)
class Control:
    """The outcome of a short CLI command (``kill``, ``rm``, ``ps``)."""

    returncode: int
    stdout: str
    stderr: str


class Execution:
    """One container run. Consume it with :meth:`next_event` until an ``exit`` or ``error`` event."""

    def __init__(
        self, executor: Executor, plan: Plan, cmd: str, timeout: float, merge_stderr: bool, who: str
    ) -> None:
        self.executor = executor
        self.plan = plan
        self.cmd = cmd
        self.timeout = timeout
        self.merge_stderr = merge_stderr
        self.who = who
        self.id = secrets.token_hex(8)
        self.name = NAME_PREFIX + self.id
        self.bytes_out = 0
        self.reason: str | None = None  # why the server stopped it, once it did
        self.message: str | None = None
        self.finished = False
        self.engine_down = False  # it ended because the CLI could not reach the engine
        # Unbounded as a queue: _emit bounds the output in it, so the final event always fits.
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._room = asyncio.Event()  # set when the consumer takes an event, or output is dropped
        self._stop = asyncio.Event()
        self._dropping = False  # a stop was asked for: read output and discard it
        self._consumer_gone = False  # nobody will read any more: queue nothing, not even the end
        self._tail = ""  # the last output, to recognise the CLI's own "cannot connect" error
        self._started = time.monotonic()
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._gone = asyncio.Event()  # set once the container is removed and the slot freed

    # -- for the consumer -----------------------------------------------------------------------

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when ``timeout`` seconds pass without one."""
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        self._room.set()
        return event

    def stop(self, reason: str, message: str) -> None:
        """Ask for the container to be killed and removed; the first reason given is kept.

        From now on output is dropped, and a reader waiting for room in the queue is released.
        """
        if self.reason is None and not self.finished:
            self.reason, self.message = reason, message
        self._dropping = True
        self._room.set()
        self._stop.set()

    async def cancel(self) -> None:
        """Stop the execution because its client asked to, and wait until its container is gone."""
        self.stop("cancelled", f"cancelled: container {self.name} stopped and removed")
        await self.wait()

    async def abandon(self) -> None:
        """The consumer is gone (client disconnected): stop, drop the output, wait for removal."""
        self.stop("disconnected", "the client went away")
        self._consumer_gone = True
        while not self._queue.empty():
            self._queue.get_nowait()
        await self.wait()

    async def wait(self) -> None:
        """Until the run is over and its container removed (not until a slow reader has read it all)."""
        if self._task is not None:
            await self._gone.wait()

    # -- running --------------------------------------------------------------------------------

    def argv(self) -> list[str]:
        """``docker run ...``: the request's options first, then the server's, which win."""
        settings = self.executor.settings
        plan = self.plan
        # The server process is the owner, as kernels label theirs: tells other tools whose container it is.
        labels = {MANAGED_LABEL: "1", SERVER_LABEL: self.executor.label, OWNER_LABEL: self.executor.owner}
        # Output is streamed to the client: keeping a copy in the engine's log files is waste.
        server_args = [*identity_args(labels), "--log-driver", "none"]
        if settings.network and not plan.has_network:
            server_args += ["--network", settings.network]
        if settings.memory:
            server_args += ["--memory", settings.memory]
        if settings.cpus:
            server_args += ["--cpus", settings.cpus]
        if settings.pids_limit:
            server_args += ["--pids-limit", str(settings.pids_limit)]
        if settings.drop_capabilities:
            server_args += ["--cap-drop", "ALL"]
        if settings.forbid_new_privileges:
            server_args += ["--security-opt", "no-new-privileges"]
        if settings.pull:
            server_args += ["--pull", settings.pull]
        if settings.runtime:
            server_args += ["--runtime", settings.runtime]
        return run_argv(
            settings.docker_command,
            self.name,
            options=[token for option in plan.args.options for token in option.written],
            after=[*server_args, *settings.extra_run_args],
            image=plan.args.image,
            shell=plan.shell,
            command=self.cmd,
            merge_stderr=self.merge_stderr,
        )

    async def start(self) -> None:
        """Start the CLI; raises :class:`ExecutorError` when it cannot be.

        When the engine lacks the image, the CLI starts only after a pull whose progress
        goes to the stream as ``pull`` events (the client shows one line for them).
        """
        argv = self.argv()
        check_argv_size(argv)
        if await self.executor.must_pull(self.plan):
            self._task = asyncio.create_task(self._pull_then_run(argv), name=f"dockyter {self.name} pull")
            return
        await self._spawn(argv)
        self._task = asyncio.create_task(self._run(), name=f"dockyter {self.name}")

    async def _spawn(self, argv: list[str]) -> None:
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT if self.merge_stderr else asyncio.subprocess.PIPE,
                # Its own session: a Ctrl-C meant for the server must not reach the CLI; the
                # server decides what happens to the container.
                start_new_session=True,
            )
        except OSError as error:
            if error.errno == errno.E2BIG:
                raise CommandTooLong("the command line is too long for one process") from None
            runtime = self.executor.settings.docker_command[0]
            reason = error.strerror or str(error)
            raise EngineUnavailable(f"cannot start the container CLI {runtime!r}: {reason}") from None

    async def _pull_then_run(self, argv: list[str]) -> None:
        final: Event | None = None
        try:
            final = await self._pull()
            if final is None and self.reason is None:
                await self._spawn(argv)
        except ExecutorError as error:
            final = {"event": "error", "message": str(error)}
        if self._process is None:  # the pull failed, or the run was cancelled during it
            final = final or self._final_event(None)
            self.finished = True
            self.executor.forget(self)
            self._gone.set()
            self._log(final)
            if not self._consumer_gone:
                self._queue.put_nowait(final)  # the end always gets in (the queue has no hard bound)
            return
        await self._run()

    async def _pull(self) -> Event | None:
        """Pull the image, streaming ``pull`` events; the final event instead when it cannot be pulled."""
        loop = asyncio.get_running_loop()
        image = self.plan.args.image
        platform = last_value(self.plan.args.values("--platform"))
        shown = 0.0

        def offer(progress: PullProgress) -> None:  # in the pull's thread
            nonlocal shown
            if time.monotonic() - shown >= PULL_EVENT_INTERVAL:
                shown = time.monotonic()
                loop.call_soon_threadsafe(self._offer, progress.event())

        try:
            progress = await asyncio.to_thread(
                pull, self.executor.settings.docker_command, image, platform, offer, self._stop.is_set
            )
        except PullFailed as error:
            if self.reason is not None:
                return None  # stopped during the pull: the final event says why
            message = f"cannot pull {image}: {error}"
            return {"event": "exit", "code": EXIT_CANNOT_RUN, "reason": "not_started", "message": message}
        self.executor.present.add(image)
        if not (self._consumer_gone or self._dropping):
            self._queue.put_nowait(progress.event(done=True))
        return None

    def _offer(self, event: Event) -> None:
        """Queue a progress event if there is room: progress may be dropped, output never."""
        if not (self._consumer_gone or self._dropping) and self._queue.qsize() < QUEUE_EVENTS:
            self._queue.put_nowait(event)

    async def _run(self) -> None:
        process = self._process
        assert process is not None
        pipes = [(process.stdout, "stdout"), (process.stderr, "stderr")]
        readers = [asyncio.create_task(self._read(pipe, stream)) for pipe, stream in pipes if pipe is not None]
        ended = asyncio.ensure_future(asyncio.gather(*readers, process.wait()))
        stop_asked = asyncio.create_task(self._stop.wait())
        final: Event | None = None
        removed = False
        try:
            done, _ = await asyncio.wait(
                {ended, stop_asked}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if ended in done:
                ended.result()  # a reader that failed fails the run (and the finally removes the container)
            else:
                self.stop("timeout", f"timed out after {self.timeout:g} s: container {self.name} stopped and removed")
                await self.executor.kill_and_remove(self.name, process)
                removed = True
                try:
                    await asyncio.wait_for(asyncio.shield(ended), EXIT_WAIT)
                except TimeoutError:  # pipes held open by something else: stop reading them
                    for reader in readers:
                        reader.cancel()
            final = self._final_event(process.returncode)
        except asyncio.CancelledError:
            final = {"event": "error", "message": "the server stopped this execution"}
            raise
        except Exception as error:  # never leave a container behind because of a bug here
            log.exception("execution %s failed", self.id)
            final = {"event": "error", "message": f"the server failed while running the command: {error}"}
        finally:
            stop_asked.cancel()
            try:
                if not removed and (process.returncode is None or self.reason is not None):
                    await asyncio.shield(self.executor.kill_and_remove(self.name, process))
            finally:
                for reader in readers:
                    reader.cancel()
                self.finished = True
                self.executor.forget(self)
                self._gone.set()
                self._log(final)
            if final is not None and not self._consumer_gone:
                # Past the output bound: a consumer that stopped reading gets it when it resumes.
                self._queue.put_nowait(final)

    async def _read(self, pipe: asyncio.StreamReader, stream: str) -> None:
        """Forward one pipe to the queue until it closes, counting bytes against the cap."""
        decoder = IncrementalText()
        limit = self.executor.settings.max_output_bytes
        while data := await pipe.read(READ_SIZE):
            if self._dropping:
                continue  # keep reading so that neither the CLI nor the engine blocks on us
            room = limit - self.bytes_out
            if len(data) > room:
                # Checked even when room is 0: an earlier chunk may have ended exactly on the cap,
                # and then this byte over it is the one that must stop the container.
                self.bytes_out += room
                # Exactly the cap is delivered, even to a consumer that is not reading now.
                self._queue_output(stream, decoder.decode(data[:room]) + decoder.flush())
                message = f"the output exceeded {limit} bytes: container {self.name} stopped and removed"
                self.stop("output_limit", message)
                continue
            self.bytes_out += len(data)
            await self._emit(stream, decoder.decode(data))
        await self._emit(stream, decoder.flush())

    async def _emit(self, stream: str, text: str) -> None:
        """Queue output, waiting while the queue holds QUEUE_EVENTS events (unless it is dropped)."""
        while self._queue.qsize() >= QUEUE_EVENTS and not self._dropping:
            self._room.clear()
            await self._room.wait()
        if not self._dropping:
            self._queue_output(stream, text)

    def _queue_output(self, stream: str, text: str) -> None:
        if text and not self._consumer_gone:
            self._tail = (self._tail + text)[-2048:]
            self._queue.put_nowait({"event": stream, "data": text})

    def _final_event(self, returncode: int | None) -> Event:
        if self.reason in EXIT_CODES:
            return {"event": "exit", "code": EXIT_CODES[self.reason], "reason": self.reason, "message": self.message}
        if returncode == 125 and any(sign in self._tail for sign in ENGINE_DOWN):
            line = next(line for line in self._tail.splitlines() if any(sign in line for sign in ENGINE_DOWN))
            line = line.removeprefix("docker: ").strip()
            self.engine_down = True
            return {"event": "error", "message": f"the container engine is not reachable: {line}"}
        code = returncode if returncode is not None else -1
        return {"event": "exit", "code": code, "reason": None, "message": None}

    def _log(self, final: Event | None) -> None:
        record = {
            "event": "execution",
            "id": self.id,
            "container": self.name,
            "image": self.plan.args.image,
            "runtime": self.executor.runtime,
            "who": self.who,
            "exit_code": final.get("code") if final else None,
            "reason": self.reason or ("error" if final and final["event"] == "error" else None),
            "duration": round(time.monotonic() - self._started, 3),
            "bytes_out": self.bytes_out,
        }
        log.info(json.dumps(record), extra={"execution": record})


class Executor:
    """Starts, tracks and removes the containers of one server instance."""

    def __init__(self, settings: Settings, runtime: str = "") -> None:
        self.settings = settings
        # The runtime containers run under, as reported (the setting, or the engine's default).
        self.runtime = runtime or settings.runtime
        self.instance = secrets.token_hex(6)
        self.label = f"{settings.server_name}:{self.instance}"
        self.owner = owner_id()
        self.running: dict[str, Execution] = {}
        self.closing = False
        self._reaper: asyncio.Task[None] | None = None
        self._leftovers_checked = False  # whether start-up clean-up could ask the engine yet
        self.present: set[str] = set()  # images seen on the engine: no need to ask again

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
        # Missing, or the engine cannot say (then docker run reports why).
        return answer is not None and "no such image" in answer.stderr.lower()

    # -- executions ---------------------------------------------------------------------------

    async def start(self, plan: Plan, cmd: str, timeout: float, merge_stderr: bool, who: str) -> Execution:
        """Admit and start one execution; raises :class:`ExecutorError` subclasses."""
        if self.closing:
            raise ShuttingDown("the server is shutting down")
        if len(self.running) >= self.settings.max_concurrent:
            raise TooBusy(f"all {self.settings.max_concurrent} execution slots of this server are taken: retry later")
        execution = Execution(self, plan, cmd, timeout, merge_stderr, who)
        # Registered before the CLI starts, so the sweep never takes its container for an orphan.
        self.running[execution.id] = execution
        try:
            await execution.start()
        except BaseException:
            self.forget(execution)
            raise
        return execution

    def get(self, execution_id: str) -> Execution | None:
        return self.running.get(execution_id)

    def forget(self, execution: Execution) -> None:
        self.running.pop(execution.id, None)

    async def stop_all(self, message: str) -> None:
        """Stop every running execution (each ends with reason ``cancelled``) and wait for them."""
        self.closing = True
        executions = list(self.running.values())
        for execution in executions:
            execution.stop("cancelled", message)
        if executions:
            waits = [asyncio.ensure_future(execution.wait()) for execution in executions]
            await asyncio.wait(waits, timeout=CONTROL_TIMEOUT + EXIT_WAIT)

    # -- the container CLI --------------------------------------------------------------------

    async def control(self, *args: str, timeout: float = CONTROL_TIMEOUT) -> Control | None:
        """Run a short CLI command; None when it cannot be started or does not answer in time."""
        try:
            process = await asyncio.create_subprocess_exec(
                *self.settings.docker_command,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError:
            return None
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            return None
        finally:
            if process.returncode is None:  # cancelled while waiting: never leave the CLI behind
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        return Control(process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))

    async def kill_and_remove(self, name: str, process: asyncio.subprocess.Process | None = None) -> None:
        """``docker kill`` then ``docker rm -f`` by name; then make sure the CLI is gone too.

        The CLI may still be creating the container when this runs, so once it has ended the
        removal is repeated: after that nothing can create the container any more.
        """
        await self.control("kill", name)
        await self.control("rm", "-f", name)
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), EXIT_WAIT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            await self.control("rm", "-f", name)

    async def containers(self, label_filter: str) -> list[tuple[str, str]] | None:
        """``(name, io.dockyter.server label)`` of every container matching ``label_filter``.

        None when the engine cannot be asked (the caller tries again later).
        """
        row = f'{{{{.Names}}}}\t{{{{.Label "{SERVER_LABEL}"}}}}'
        answer = await self.control("ps", "-a", "--filter", f"label={label_filter}", "--format", row)
        if answer is None or answer.returncode != 0:
            return None
        rows = (line.partition("\t") for line in answer.stdout.splitlines())
        return [(name, label) for name, _, label in rows if name]

    async def remove(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        if names:
            await self.control("rm", "-f", *names)
        return names

    # -- lifecycle ------------------------------------------------------------------------------

    async def startup(self) -> list[str]:
        """Remove what a crashed earlier run of this server left; start the periodic sweep."""
        removed = await self.remove_leftovers()
        self._reaper = asyncio.create_task(self._sweep_forever(), name="dockyter reaper")
        return removed

    async def remove_leftovers(self) -> list[str]:
        """Remove containers of earlier instances of this ``server_name``.

        When the engine cannot be asked (it starts after the server, say), the sweep tries again.
        """
        listing = await self.containers(SERVER_LABEL)
        self._leftovers_checked = listing is not None
        prefix = self.settings.server_name + ":"
        leftovers = [
            name
            for name, label in listing or []
            if label.startswith(prefix) and label != self.label and ":" not in label[len(prefix) :]
        ]
        removed = await self.remove(leftovers)
        if removed:
            log.warning(json.dumps({"event": "startup_cleanup", "removed": removed}))
        return removed

    async def sweep(self) -> list[str]:
        """Remove containers of this instance that no running execution owns."""
        owned = {execution.name for execution in self.running.values()}
        listing = await self.containers(f"{SERVER_LABEL}={self.label}") or []
        orphans = [name for name, _ in listing if name not in owned]
        # An execution registered after the first look may already be in the listing: look again.
        owned = {execution.name for execution in self.running.values()}
        return await self.remove(name for name in orphans if name not in owned)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reap_interval)
            try:
                if not self._leftovers_checked:
                    await self.remove_leftovers()
                removed = await self.sweep()
            except Exception:  # the sweep is a safety net: it must never take the server down
                log.exception("sweep failed")
                continue
            if removed:
                log.warning(json.dumps({"event": "sweep", "removed": removed}))

    async def shutdown(self) -> None:
        """Stop every running execution and remove every container of this instance."""
        await self.stop_all("the server is shutting down: container stopped and removed")
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self.remove(name for name, _ in await self.containers(f"{SERVER_LABEL}={self.label}") or [])


def check_argv_size(argv: list[str]) -> None:
    """Raise :class:`CommandTooLong` when the kernel would refuse ``argv`` (E2BIG)."""
    sizes = [len(arg.encode("utf-8", "surrogateescape")) for arg in argv]
    if max(sizes) > MAX_ARGUMENT:
        raise CommandTooLong(
            f"one argument (cmd or args) is longer than {MAX_ARGUMENT} bytes, the most a process accepts"
        )
    if sum(sizes) + len(sizes) > MAX_ARGV:
        raise CommandTooLong(f"the command line would be longer than {MAX_ARGV} bytes")
