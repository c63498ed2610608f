"""One execution: one ``docker run``, streamed, limited and always removed.

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

An :class:`Execution` is started, tracked and removed by its :class:`~.executor.Executor`,
which also runs the short CLI commands (``kill``, ``rm``, ``image inspect``) for it.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

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
    run_argv,
)
from ..pull import PullFailed, PullProgress, last_value, pull
from .executorerrors import CommandTooLong, EngineUnavailable, ExecutorError, check_argv_size
from .policy import Plan

if TYPE_CHECKING:
    from .executor import Executor

log = logging.getLogger("dockyter.server")

# The exit code reported for each way the server itself ends a run.
EXIT_CODES = {"timeout": EXIT_TIMEOUT, "cancelled": EXIT_INTERRUPTED, "output_limit": EXIT_KILLED}

PULL_EVENT_INTERVAL = 0.25  # seconds between two pull progress events
QUEUE_EVENTS = 64  # output chunks waiting for a slow client; beyond that the container waits for it
EXIT_WAIT = 10.0  # seconds for the CLI to end once its container is killed

# What the docker and podman CLIs say (with exit status 125) when they cannot reach the engine.
ENGINE_DOWN = (
    "Cannot connect to the Docker daemon",
    "Is the docker daemon running",
    "error during connect",
    "Cannot connect to Podman",
)

Event = dict[str, Any]


class Execution:
    """One container run. Consume it with :meth:`next_event` until an ``exit`` or ``error`` event."""

    def __init__(self, executor: Executor, plan: Plan, cmd: str, timeout: float, merge_stderr: bool, who: str) -> None:
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
            waiting: set[asyncio.Future[Any]] = {ended, stop_asked}  # two result types: wait wants one
            done, _ = await asyncio.wait(waiting, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
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
        # Output counted under the cap before the cap stopped the run is still part of "exactly the cap".
        if not self._dropping or self.reason == "output_limit":
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
