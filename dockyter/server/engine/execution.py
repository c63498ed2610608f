"""One execution: one container, created, checked against its plan, then started, streamed, limited and always removed.

``docker create`` makes the container; :mod:`.enginecheck` reads it back and compares it with
what the policy approved (:mod:`.containercheck`). Only a container that matches is started,
with ``docker start --attach``: an asyncio subprocess of the container CLI started from an argv
list, so the request's ``cmd`` reaches a shell only inside the container. One that does not
match is removed unstarted and the request is refused (403). Its output is read in chunks,
decoded incrementally and handed to whoever consumes the execution (an NDJSON stream or a
plain JSON reply) through a queue of at most ``QUEUE_EVENTS`` output events: a slow consumer
slows the container down, it never makes the server buffer more.

The queue, the output cap and what a stop does to the output are :class:`~dockyter.server.runs.runlife.Run`'s:
once a stop is asked for, the readers keep draining the CLI's pipes and discard what they
read, so that the CLI drains the engine's attach stream and ``docker kill`` / ``rm`` are not
held up by a client that stopped reading.

An :class:`Execution` is started, tracked and removed by the engine executor
(:mod:`.engineexecutor`), which also runs the short CLI commands (``kill``, ``rm``, ``image
inspect``) for it; what it needs of it is :class:`ExecutionHost`.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import shutil
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ...wire.contract import (
    EXIT_CANNOT_EXECUTE,
    EXIT_CANNOT_RUN,
    EXIT_NOT_FOUND,
    INIT_ENV,
    MANAGED_LABEL,
    NAME_PREFIX,
    OWNER_LABEL,
    READ_SIZE,
    SERVER_LABEL,
    IncrementalText,
    identity_args,
    limit_args,
    run_argv,
    shell_command,
)
from ...wire.outfolder import CONTAINER_FOLDER, FOLDER_VARIABLE, FileLimits
from ...wire.pull import PullFailed, PullProgress, last_value, pull
from ..policy.plan import Plan
from ..runs.outfolders import RunFolders
from ..runs.runlife import EXIT_CODES, QUEUE_EVENTS, Event, Run
from ..runs.runreceipt import folder_mount, folder_options, folder_variable, receipt_event
from ..servererrors import (
    CommandTooLong,
    EngineDisagrees,
    EngineUnavailable,
    ServerError,
    check_argv_size,
)
from ..settings.fields import Settings
from .control import ENGINE_DOWN
from .enginecheck import EngineCheck
from .expected import Expected, ServerAdditions, expected_container
from .pullerrors import CliPullLines, pull_failure

log = logging.getLogger("dockyter.server")

PULL_EVENT_INTERVAL = 0.25  # seconds between two pull progress events
EXIT_WAIT = 10.0  # seconds for the CLI to end once its container is killed

# Reads one of the CLI's pipes ("stdout" or "stderr") and forwards it.
Reader = Callable[[asyncio.StreamReader, str], Coroutine[Any, Any, None]]

# How `docker start` says that the engine could not start the container (the CLI then exits 1).
START_REFUSED = "Error response from daemon: "


class ExecutionHost(Protocol):
    """What an execution needs of the executor that admitted it (:class:`~.engineexecutor.EngineExecutor`)."""

    settings: Settings
    label: str  # server_name:instance, the io.dockyter.server label of what it starts
    owner: str
    runtime: str  # the runtime containers run under, as reported (for the log)
    present: set[str]  # images seen on the engine: a pull adds one
    check: EngineCheck

    @property
    def known_runtime(self) -> str:
        """The runtime every container must show ("" when the engine could not say)."""
        ...

    @property
    def folders(self) -> RunFolders:
        """Where each run's $DOCKYTER_OUT is made (:mod:`~dockyter.server.runs.outfolders`)."""
        ...

    def forget(self, execution: Execution) -> None: ...
    async def must_pull(self, plan: Plan) -> bool: ...
    async def remove_created(self, name: str) -> None: ...
    async def kill_and_remove(self, name: str, process: asyncio.subprocess.Process | None = None) -> None: ...


def execution_labels(executor: ExecutionHost) -> dict[str, str]:
    """The labels of every container of an execution (a prestarted one adds its own)."""
    # The server process is the owner, as kernels label theirs: tells other tools whose container it is.
    return {MANAGED_LABEL: "1", SERVER_LABEL: executor.label, OWNER_LABEL: executor.owner}


def execution_argv(
    settings: Settings,
    plan: Plan,
    name: str,
    labels: dict[str, str],
    *,
    command: str,
    merge_stderr: bool = False,
    waiter: tuple[str, ...] = (),
    folder: str | None = None,
) -> list[str]:
    """``docker create ...`` of an execution's container: the request's options first, then the
    server's, which win; with ``waiter``, a prestarted one (:func:`dockyter.wire.contract.run_argv`);
    with ``folder``, the run's $DOCKYTER_OUT mounted."""
    # Output is streamed to the client: keeping a copy in the engine's log files is waste.
    server_args = [
        *identity_args(labels),
        "--log-driver",
        "none",
        *limit_args(settings, has_network=plan.has_network),
    ]
    if folder is not None:  # after the request's options: the server's variable wins
        server_args += [*folder_options(folder), "--env", f"{FOLDER_VARIABLE}={CONTAINER_FOLDER}"]
    return run_argv(
        settings.docker_command,
        name,
        options=[token for option in plan.args.options for token in option.written],
        after=[*server_args, *settings.extra_run_args],
        image=plan.args.image,
        shell=plan.shell,
        command=command,
        merge_stderr=merge_stderr,
        verb="create",
        waiter=waiter,
    )


def execution_expected(
    executor: ExecutionHost, plan: Plan, labels: dict[str, str], command: tuple[str, ...], folder: str | None = None
) -> Expected:
    """The container :func:`execution_argv` must make of ``plan``, its command being ``command``
    (and its $DOCKYTER_OUT ``folder``, if any)."""
    name, _, value = INIT_ENV.partition("=")
    adds = ServerAdditions.of(
        executor.settings,
        command=command,
        labels=labels,
        env={name: value, **(folder_variable() if folder is not None else {})},
        init=True,
        runtime=executor.known_runtime,
        mounts=(folder_mount(folder),) if folder is not None else (),
    )
    return expected_container(plan, adds)


class Execution(Run):
    """One container run. Consume it with :meth:`next_event` until an ``exit`` or ``error`` event."""

    def __init__(
        self,
        executor: ExecutionHost,
        plan: Plan,
        cmd: str,
        timeout: float,
        merge_stderr: bool,
        who: str,
        files: FileLimits | None = None,
    ) -> None:
        super().__init__(cmd, timeout, merge_stderr, who, executor.settings.max_output_bytes)
        self.executor = executor
        self.plan = plan
        self.name = NAME_PREFIX + self.id
        self.files = files  # what of $DOCKYTER_OUT is sent back; None: the run gets no folder
        self.folder: str | None = None  # the server's own folder mounted at /dockyter/out
        self._tail = ""  # the last output, to recognise the CLI's own "cannot connect" error
        self._tail_complete = True  # the tail holds all the output
        self._process: asyncio.subprocess.Process | None = None

    def stopped(self) -> str:
        return f"container {self.name} stopped and removed"

    def _release(self) -> None:
        self._drop_folder()
        self.executor.forget(self)

    def _drop_folder(self) -> None:
        """Remove the run's folder (its container is gone: nothing writes there any more)."""
        folder, self.folder = self.folder, None
        if folder is not None:
            self.executor.folders.remove(folder)

    # -- running --------------------------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        return execution_labels(self.executor)

    def argv(self) -> list[str]:
        """``docker create ...``: the request's options first, then the server's, which win."""
        return execution_argv(
            self.executor.settings,
            self.plan,
            self.name,
            self.labels(),
            command=self.cmd,
            merge_stderr=self.merge_stderr,
            folder=self.folder,
        )

    def expected(self) -> Expected:
        """The container :meth:`argv` must make: the plan with what the server adds (as :meth:`argv` adds it)."""
        command = (*self.plan.shell, shell_command(self.cmd, self.merge_stderr))
        return execution_expected(self.executor, self.plan, self.labels(), command, self.folder)

    async def start(self) -> None:
        """Create the container and check it; raises a :class:`~dockyter.server.servererrors.ServerError` when it cannot run.

        A container that differs from its plan is removed and :class:`EngineDisagrees` (403)
        raised. When the engine lacks the image, the container is created only after a pull
        whose progress goes to the stream as ``pull`` events (the client shows one line for
        them); a difference found then ends the stream with an ``error`` event.
        """
        self._make_folder()
        try:
            argv = self.argv()
            check_argv_size(argv)
            cli = self.executor.settings.docker_command[0]
            if shutil.which(cli) is None:
                raise EngineUnavailable(f"cannot start the container CLI {cli!r}: not found, or not executable")
            if await self.executor.must_pull(self.plan):
                self._task = asyncio.create_task(self._pull_then_run(argv), name=f"dockyter {self.name} pull")
                return
            final = await self._create(argv)
        except BaseException:
            self._drop_folder()  # no run: _finish will not come
            raise
        self._task = asyncio.create_task(self._run(final), name=f"dockyter {self.name}")

    def _make_folder(self) -> None:
        """The run's $DOCKYTER_OUT, when it wants one; a server that cannot make one runs it without (logged)."""
        if self.files is None:
            return
        try:
            self.folder = self.executor.folders.new()
        except OSError as error:
            log.warning(json.dumps({"event": "files_folder", "id": self.id, "error": str(error)}))
            self.files = None

    async def _create(self, argv: list[str]) -> Event | None:
        """``docker create``, then the check; the final event when the container could not be created.

        A container that differs from its plan is removed and its :class:`EngineDisagrees`
        raised; none is left behind whatever happens (:meth:`.enginecheck.EngineCheck.create`).
        """
        executor = self.executor
        words = argv[len(executor.settings.docker_command) :]
        answer = await executor.check.create(words, self.name, self.expected(), self.who, self.timeout)
        if answer is None:  # the CLI did not answer within the run's own time
            self._time_is_up()
            return self._final_event(None)
        if answer.returncode != 0:
            down = next((line for line in answer.stderr.splitlines() if any(s in line for s in ENGINE_DOWN)), None)
            if down is not None:
                raise EngineUnavailable(f"the container engine is not reachable: {down.removeprefix('docker: ')}")
            # As `docker run` says it: the CLI's reason on stderr (a failed pull summarised), and status 125.
            await self._forward(self._stderr_stream, IncrementalText(), self._without_pull_lines(answer.stderr))
            return {"event": "exit", "code": EXIT_CANNOT_RUN, "reason": None, "message": None}
        if answer.stderr:  # the engine's warnings, as `docker run` prints them, without the CLI's pull
            await self._forward(self._stderr_stream, IncrementalText(), self._without_pull_lines(answer.stderr))
        self.receipt = await self._receipt()
        return None

    async def _receipt(self) -> Event:
        """What ran, as the check read it back: the image the engine resolved, its digest, the runtime, the engine."""
        check = self.executor.check
        try:
            node = (await check.info()).get("Name")
        except ServerError:
            node = None
        made = check.made_of(self.name)
        return receipt_event(self.plan, made, self.executor.runtime, node if isinstance(node, str) else None)

    @property
    def _stderr_stream(self) -> str:
        """Where the CLI's own stderr goes: to stdout when the request merges the two, as `docker run 2>&1` would."""
        return "stdout" if self.merge_stderr else "stderr"

    def _without_pull_lines(self, stderr: str) -> bytes:
        """``docker create``'s stderr without its own pull lines: they open it if it pulled, summarised, never echoed."""
        lines = CliPullLines(self.plan.args.image)
        return lines.feed(stderr.encode()) + lines.flush()

    async def _spawn(self) -> None:
        """``docker start --attach NAME``: streams the created container's output and exits with its status."""
        argv = [*self.executor.settings.docker_command, "start", "--attach", self.name]
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT if self.merge_stderr else asyncio.subprocess.PIPE,
                # Its own session: a Ctrl-C meant for the server must not reach the CLI; the
                # server decides what happens to the container.
                start_new_session=True,
                env=self.executor.settings.engine_environment(),
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
                final = await self._create(argv)
            elif final is None:  # cancelled during the pull
                final = self._final_event(None)
        except ServerError as error:
            self.refused = isinstance(error, EngineDisagrees)
            self.engine_down = isinstance(error, EngineUnavailable)
            final = {"event": "error", "message": str(error)}
        await self._run(final)

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
            settings = self.executor.settings
            progress = await asyncio.to_thread(
                pull, settings.docker_command, image, platform, offer, self._stop.is_set, settings.engine_environment()
            )
        except PullFailed as error:
            if self.reason is not None:
                return None  # stopped during the pull: the final event says why
            message = pull_failure(image, str(error))
            return {"event": "exit", "code": EXIT_CANNOT_RUN, "reason": "not_started", "message": message}
        self.executor.present.add(image)
        if not (self._consumer_gone or self._dropping):
            self._queue.put_nowait(progress.event(done=True))
        return None

    def _offer(self, event: Event) -> None:
        """Queue a progress event if there is room: progress may be dropped, output never."""
        if not (self._consumer_gone or self._dropping) and self._queue.qsize() < QUEUE_EVENTS:
            self._queue.put_nowait(event)

    async def _run(self, final: Event | None) -> None:
        """Start the created container and follow it; with ``final``, there is none: just end with it."""
        if final is None and self.reason is not None:  # stopped while it was being created
            await self.executor.remove_created(self.name)
            final = self._final_event(None)
        if final is None:
            try:
                await self._spawn()
            except ServerError as error:
                await self.executor.remove_created(self.name)
                final = {"event": "error", "message": str(error)}
        if final is not None:
            self._finish(final)
            return
        process = self._process
        assert process is not None
        await self._follow(process, self._read)

    async def _follow(self, process: asyncio.subprocess.Process, read: Reader) -> None:
        """Read the CLI's pipes with ``read`` until the run ends, is stopped or times out; then
        make sure the container is gone."""
        pipes = [(process.stdout, "stdout"), (process.stderr, "stderr")]
        readers = [asyncio.create_task(read(pipe, stream)) for pipe, stream in pipes if pipe is not None]
        removed = False

        async def clean_up() -> None:
            try:
                if not removed and (process.returncode is None or self.reason is not None):
                    await asyncio.shield(self.executor.kill_and_remove(self.name, process))
            finally:
                for reader in readers:
                    reader.cancel()

        async def work() -> Event:
            nonlocal removed
            ended = asyncio.ensure_future(asyncio.gather(*readers, process.wait()))
            early = asyncio.create_task(self._ends_early())
            stop_asked = asyncio.create_task(self._stop.wait())
            try:
                waiting: set[asyncio.Future[Any]] = {ended, early, stop_asked}  # result types differ: wait wants one
                done, _ = await asyncio.wait(waiting, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
                if early in done and self.reason is None:
                    final: Event = early.result()
                    if self.folder is not None and self.files is not None:
                        await self._send_files(self.folder, self.files)  # its command has ended
                    self._announce(final)  # the client has its end; the container ends by itself
                    try:
                        await asyncio.wait_for(asyncio.shield(ended), EXIT_WAIT)
                    except TimeoutError:
                        await self.executor.kill_and_remove(self.name, process)
                        removed = True
                    return final
                if ended in done:
                    ended.result()  # a reader that failed fails the run (and clean_up removes the container)
                    if self.folder is not None and self.files is not None:
                        await self._send_files(self.folder, self.files)  # the command has ended: all is written
                else:
                    self._time_is_up()
                    await self.executor.kill_and_remove(self.name, process)
                    removed = True
                    try:
                        await asyncio.wait_for(asyncio.shield(ended), EXIT_WAIT)
                    except TimeoutError:  # pipes held open by something else: stop reading them
                        for reader in readers:
                            reader.cancel()
                return self._final_event(process.returncode)
            finally:
                early.cancel()
                stop_asked.cancel()

        await self._guarded(work(), clean_up)

    async def _ends_early(self) -> Event:
        """The final event, once the run's output shows its end before its CLI ends: never here
        (a prestarted container's frames do, :mod:`.prestartedrun`)."""
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def _read(self, pipe: asyncio.StreamReader, stream: str) -> None:
        """Forward one pipe to the queue until it closes (after a stop, read and drop it)."""
        decoder = IncrementalText()
        while data := await pipe.read(READ_SIZE):
            await self._forward(stream, decoder, data)
        await self._emit(stream, decoder.flush())

    def _queue_output(self, stream: str, text: str) -> None:
        if text and not self._consumer_gone:
            self._tail_complete = self._tail_complete and len(self._tail) + len(text) <= 2048
            self._tail = (self._tail + text)[-2048:]
        super()._queue_output(stream, text)

    def _final_event(self, returncode: int | None) -> Event:
        if self.reason in EXIT_CODES:
            return {"event": "exit", "code": EXIT_CODES[self.reason], "reason": self.reason, "message": self.message}
        if returncode in (1, 125) and any(sign in self._tail for sign in ENGINE_DOWN):
            line = next(line for line in self._tail.splitlines() if any(sign in line for sign in ENGINE_DOWN))
            line = line.removeprefix("docker: ").strip()
            self.engine_down = True
            return {"event": "error", "message": f"the container engine is not reachable: {line}"}
        code = returncode if returncode is not None else -1
        if returncode == 1 and self._only_output_is_a_start_error():
            code = _not_started_status(self._tail)
        return {"event": "exit", "code": code, "reason": None, "message": None}

    def _only_output_is_a_start_error(self) -> bool:
        """Whether all ``docker start`` printed is its own one line saying the engine could not start the container.

        `docker start` then exits 1, where `docker run` gives 125, 126 or 127. Output of the
        container itself comes before any such line, and a container that printed nothing
        but this very line and exited 1 is reported as not started: its own business.
        """
        tail = self._tail
        return self._tail_complete and tail.startswith(START_REFUSED) and tail.count("\n") <= 1

    def _log(self, final: Event | None) -> None:
        self._log_record(final, container=self.name, image=self.plan.args.image, runtime=self.executor.runtime)


def _not_started_status(message: str) -> int:
    """The status ``docker run`` gives when the engine cannot start a container, from the engine's reason."""
    reason = message.lower()
    if any(sign in reason for sign in ("executable file not found", "no such file or directory")):
        return EXIT_NOT_FOUND
    if "permission denied" in reason or "is a directory" in reason:
        return EXIT_CANNOT_EXECUTE
    return EXIT_CANNOT_RUN
