"""One session container on ``dockyter-server``: :class:`ServerSession`.

``docker create -i`` of the session's image with the server's limits and labels, read back and
compared with its plan (:mod:`~dockyter.server.engine.enginecheck`; removed unstarted and refused with 403 when they
differ), then ``docker start --attach --interactive``; its bash started and checked
(:func:`~dockyter.wire.sessionprotocol.setup_line`), the readers that hand each pipe's output to the
running command or, between commands, to :mod:`.sessionidle` (a bounded tail, read at a bounded
pace), the signals of the stop ladder, and the container's removal. :mod:`.sessions` keeps the
sessions and ends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from typing import Any, Protocol

from ...wire.contract import MANAGED_LABEL, NAME_PREFIX, OWNER_LABEL, READ_SIZE, limit_args
from ...wire.outfolder import CONTAINER_FOLDER, FOLDER_VARIABLE, FileLimits
from ...wire.sessionprotocol import (
    INTERRUPT_SCRIPT,
    KILL_SCRIPT,
    SESSION_LABEL,
    SESSION_SHELL,
    STOP_NOISE,
    FrameScanner,
    setup_line,
)
from ..engine.control import Ask
from ..engine.enginecheck import EngineCheck
from ..engine.expected import Expected, ServerAdditions, expected_container
from ..engine.pullerrors import cli_pull_failure
from ..policy.plan import Plan
from ..runs.outfolders import RunFolders
from ..runs.runlife import Event
from ..runs.runreceipt import folder_mount, folder_options, folder_variable, receipt_event
from ..servererrors import ServerError, SessionBusy, SessionError, ShuttingDown, check_argv_size
from ..settings.fields import Settings
from .sessionidle import BackgroundOutput
from .sessionrun import SessionRun

log = logging.getLogger("dockyter.server")

SERVER_SESSION_LABEL = "io.dockyter.server-session"
START_TIMEOUT = 300.0  # seconds for a session's shell to answer (an image pull included)


class SessionEngine(Protocol):
    """What a session needs of the engine it runs on: the engine executor's CLI, check and folders."""

    check: EngineCheck
    runtime: str  # the runtime containers run under, as reported (for receipts)
    remove_words: tuple[str, ...]  # the rm that removes a container now (the engine's own spelling)

    @property
    def control(self) -> Ask: ...
    @property
    def folders(self) -> RunFolders: ...
    @property
    def known_runtime(self) -> str:
        """The runtime every container must show ("" when the engine could not say)."""
        ...

    async def remove_created(self, name: str) -> None: ...


class SessionKeeper(Protocol):
    """What a session needs of the registry that keeps it (:class:`~.sessionregistry.SessionRegistry`)."""

    settings: Settings
    label: str  # server_name:instance, the value of its SERVER_SESSION_LABEL
    owner: str
    closing: bool  # the server is shutting down: no new command

    @property
    def executor(self) -> SessionEngine: ...
    def forget(self, session: ServerSession) -> None: ...


class ServerSession:
    """One session container, its shell, and whose it is."""

    def __init__(self, registry: SessionKeeper, plan: Plan, who: str, name: str) -> None:
        self.registry = registry
        self.settings = registry.settings
        self.plan = plan
        self.who = who
        self.name = name  # the client's name for it (not unique across tokens)
        self.id = secrets.token_hex(8)
        self.container = f"{NAME_PREFIX}s{self.id}"
        self.created = time.monotonic()
        self.created_at = time.time()
        self.last_used = time.monotonic()
        self.ended: str | None = None
        self.ended_event = asyncio.Event()
        self.exit_status: int | None = None
        self._background = BackgroundOutput()
        self._current: SessionRun | None = None
        self.shell_pid = 0
        self._process: asyncio.subprocess.Process | None = None
        self._scanners = {"stdout": FrameScanner(), "stderr": FrameScanner()}
        self._readers: list[asyncio.Task[None]] = []
        self._eof = 0
        self._startup: SessionRun | None = None
        # Its commands' $DOCKYTER_OUT: one folder for its life, mounted at /dockyter/out, one
        # numbered folder in it per command. None: the server gives none (files off, or it failed).
        self.folder: str | None = None
        self._commands = 0
        self.receipt: Event | None = None  # what its container was made of: each command's receipt

    @property
    def current(self) -> SessionRun | None:
        """The command running now (the start-up's setup line included), or None between commands."""
        return self._current

    @current.setter
    def current(self, run: SessionRun | None) -> None:
        self._current = run
        self._background.command_running(run is not None)

    def labels(self) -> dict[str, str]:
        return {
            MANAGED_LABEL: "1",
            SERVER_SESSION_LABEL: self.registry.label,
            OWNER_LABEL: self.registry.owner,
            SESSION_LABEL: self.id,
        }

    def argv(self) -> list[str]:
        """``docker create -i ...``: the request's options first, then the server's, which win."""
        settings = self.settings
        plan = self.plan
        limits = [
            *[word for key, value in self.labels().items() for word in ("--label", f"{key}={value}")],
            "--log-driver", "none",
            # The same limits and runtime as every execution of this server.
            *limit_args(settings, has_network=plan.has_network),
        ]  # fmt: skip
        folder = folder_options(self.folder) if self.folder is not None else []
        return [
            *settings.docker_command, "create", "-i", "--rm", "--name", self.container,
            *[token for option in plan.args.options for token in option.written],
            *limits, *folder, *settings.extra_run_args, plan.args.image, *SESSION_SHELL,
        ]  # fmt: skip

    def expected(self) -> Expected:
        """The container :meth:`argv` must make: the plan with what the server adds."""
        adds = ServerAdditions.of(
            self.settings,
            command=SESSION_SHELL,
            labels=self.labels(),
            env={},
            init=False,  # the shell is pid 1: `kill 1` and `docker stop` reach it (wire/sessionprotocol.py)
            runtime=self.registry.executor.known_runtime,
            mounts=(folder_mount(self.folder),) if self.folder is not None else (),
        )
        return expected_container(self.plan, adds)

    # -- starting -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.settings.files:
            try:
                self.folder = self.registry.executor.folders.new(0o755)  # the commands' folders are 0777
            except OSError as error:
                log.warning(json.dumps({"event": "files_folder", "session": self.id, "error": str(error)}))
        try:
            await self._start()
        except BaseException:
            self._drop_folder()
            raise

    async def _start(self) -> None:
        argv = self.argv()
        check_argv_size(argv)
        await self._create(argv)
        self.receipt = await self._receipt()
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.settings.docker_command,
                "start",
                "--attach",
                "--interactive",
                self.container,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=self.settings.engine_environment(),
            )
        except OSError as error:
            await self.registry.executor.remove_created(self.container)
            raise SessionError(f"cannot start the container CLI: {error.strerror or error}") from None
        self._startup = run = SessionRun(self, "", START_TIMEOUT, False)
        self._readers = [
            asyncio.create_task(self._read(self._process.stdout, "stdout")),  # type: ignore[arg-type]
            asyncio.create_task(self._read(self._process.stderr, "stderr")),  # type: ignore[arg-type]
        ]
        self.current = run
        collected: list[str] = []
        consumer = asyncio.ensure_future(_drain(run, collected))
        try:
            outcome = await run._ask(setup_line(run.token), START_TIMEOUT)
        finally:
            self.current = None
            consumer.cancel()
        if outcome != "answered":
            await self.remove("it did not start")
            output = "".join(collected)
            raise SessionError(
                cli_pull_failure(self.plan.args.image, output) or _start_failure(output, self.exit_status)
            )
        self.shell_pid = run._seen.get("stdout") or 0
        self.last_used = time.monotonic()  # idle from when it is ready, not from when it was asked for

    async def _create(self, argv: list[str]) -> None:
        """``docker create``, then the check against the plan; raises a :class:`~dockyter.server.servererrors.ServerError` when it cannot start.

        None is left behind whatever happens (:meth:`~dockyter.server.engine.enginecheck.EngineCheck.create`).
        """
        docker = self.settings.docker_command
        check = self.registry.executor.check
        answer = await check.create(argv[len(docker) :], self.container, self.expected(), self.who, START_TIMEOUT)
        if answer is None:
            raise SessionError(f"the container CLI {docker[0]!r} did not create the container in {START_TIMEOUT:g} s")
        if answer.returncode != 0:
            image = self.plan.args.image
            raise SessionError(
                cli_pull_failure(image, answer.stderr) or _start_failure(answer.stderr, answer.returncode)
            )

    async def _receipt(self) -> Event:
        """What the session runs, as the check read its container back (each command's receipt)."""
        executor = self.registry.executor
        try:
            node = (await executor.check.info()).get("Name")
        except ServerError:
            node = None
        made = executor.check.made_of(self.container)
        return receipt_event(self.plan, made, executor.runtime, node if isinstance(node, str) else None)

    def _drop_folder(self) -> None:
        folder, self.folder = self.folder, None
        if folder is not None:
            self.registry.executor.folders.remove(folder)

    def _command_folder(self, files: FileLimits | None) -> tuple[str | None, dict[str, str | None]]:
        """A fresh folder for the next command, and the variable that names it there.

        Made here, by the server: a name that exists already (a background job of the session
        made it ahead, as a link or with files in it) is never used; that command gets none, and
        the variable is unset (the shell still has the previous command's).
        """
        if self.folder is None:
            return None, {}
        if files is None:
            return None, {FOLDER_VARIABLE: None}
        self._commands += 1
        path = os.path.join(self.folder, str(self._commands))
        try:
            os.mkdir(path)
            os.chmod(path, 0o777)
        except OSError as error:
            log.warning(json.dumps({"event": "files_folder", "session": self.id, "error": str(error)}))
            return None, {FOLDER_VARIABLE: None}
        return path, {**folder_variable(f"{CONTAINER_FOLDER}/{self._commands}")}

    # -- the pipes --------------------------------------------------------------------------------

    def expect(self, token: str) -> None:
        for scanner in self._scanners.values():
            scanner.expect(token)

    async def _read(self, pipe: asyncio.StreamReader, stream: str) -> None:
        scanner = self._scanners[stream]
        while data := await pipe.read(READ_SIZE):
            output, frames = scanner.feed(data)
            for token, _ in frames:
                scanner.expected.discard(token)
            run = self.current
            if run is not None and run.reason is not None and stream == "stderr":
                output = STOP_NOISE.sub(b"", output)  # the run is being stopped
            if run is not None:
                await run.feed(stream, output, frames)
            else:
                if output:
                    self._background.keep(stream, output)
                await self._background.pause()  # between commands: a bounded pace
        run = self.current
        if run is not None:
            await run.feed(stream, scanner.flush(), [])
        self._eof += 1
        if self._eof == 2:
            await self._ended_by_itself()

    async def _ended_by_itself(self) -> None:
        process = self._process
        if process is not None:
            with contextlib.suppress(TimeoutError):
                self.exit_status = await asyncio.wait_for(process.wait(), 10)
        if self.ended is None:
            status = self.exit_status
            if status == 137:
                self.ended = "its container was killed (SIGKILL: out of memory, or removed)"
            elif status == 143:
                self.ended = "its container was stopped (SIGTERM)"
            else:
                self.ended = f"its shell exited with status {status}"
        self.ended_event.set()
        self.registry.forget(self)
        self._close_stdin()
        await self.registry.executor.control(*self.registry.executor.remove_words, self.container)
        self._drop_folder()

    def _close_stdin(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(Exception):
                self._process.stdin.close()

    async def write(self, line: bytes) -> None:
        process = self._process
        if process is None or process.stdin is None or self.ended_event.is_set():
            return
        try:
            process.stdin.write(line)
            await process.stdin.drain()
        except (ConnectionError, OSError):
            pass  # the readers see the end

    # -- running ------------------------------------------------------------------------------------

    async def run(self, cmd: str, timeout: float, merge_stderr: bool, files: FileLimits | None = None) -> SessionRun:
        """Start ``cmd`` in the session's shell; ``files``: what of its $DOCKYTER_OUT to send back."""
        if self.ended is not None:
            raise SessionError(f"the session has ended: {self.ended}")
        if self.registry.closing:
            raise ShuttingDown("the server is shutting down")
        if self.current is not None:
            raise SessionBusy("a command is already running in this session: wait for it, or cancel it")
        folder, env = self._command_folder(files)
        run = SessionRun(self, cmd, timeout, merge_stderr, files if folder is not None else None, folder, env)
        run.receipt = self.receipt  # what the command runs in: sent before its exit event
        self.current = run
        for stream, data in self._background.take():  # what background processes printed since the last one
            await run.feed(stream, data, [])
        run.start()
        return run

    def finish(self, run: SessionRun) -> None:
        if run.folder is not None:  # read already: what a background job writes there now is lost
            self.registry.executor.folders.remove(run.folder)
            run.folder = None
        if self.current is run:
            self.current = None
        self.last_used = time.monotonic()

    async def signal(self, step: str) -> None:
        script = INTERRUPT_SCRIPT if step == "INT" else KILL_SCRIPT
        await self.registry.executor.control(
            "exec", self.container, "bash", "-c", script, "_", str(self.shell_pid), step
        )

    async def remove(self, why: str) -> None:
        """Remove the container; the readers then see the end."""
        if self.ended is None:
            self.ended = why
        self.registry.forget(self)
        await self.registry.executor.control(*self.registry.executor.remove_words, self.container)
        self._drop_folder()
        self._close_stdin()
        process = self._process
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self.ended_event.set()

    def describe(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "id": self.id,
            "name": self.name,
            "image": self.plan.args.image,
            "state": "busy" if self.current is not None else ("running" if self.ended is None else "ended"),
            "age_seconds": round(now - self.created, 1),
            "idle_seconds": 0.0 if self.current is not None else round(now - self.last_used, 1),
            "container": self.container,
        }


async def _drain(run: SessionRun, collected: list[str]) -> None:
    """Reads what a session's start-up prints (kept, to explain a failure)."""
    while True:
        event = await run.next_event()
        if event and event.get("data"):
            collected.append(event["data"])


def _start_failure(output: str, status: int | None) -> str:
    text = output.lower()
    if ("executable file not found" in text or "no such file" in text) and "bash" in text:
        return "the image has no bash, which a session needs (it keeps one bash running): choose an image with bash"
    if "unable to find image" in text or "pull access denied" in text or "manifest unknown" in text:
        return "the image is not available on the server and could not be pulled"
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("bash: ")]
    return f"the session's container did not start: {lines[-1] if lines else f'exit status {status}'}"
