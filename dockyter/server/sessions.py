"""Sessions on ``dockyter-server``: long-lived containers that keep their state between commands.

The same protocol as a kernel's sessions (:mod:`dockyter.sessionwire`): the container's main
process is an interactive bash reading one line per command from our pipe. Each session
belongs to the token that created it. A command in a session is a :class:`SessionRun`, which
streams and ends exactly like an :class:`~dockyter.server.executor.Execution`, so ``/execute``'s
NDJSON stream and JSON reply serve both. Stopping a run (cancel, timeout, output cap, a client
that goes away) stops that command, not the session: SIGINT, then SIGKILL of its processes.

Session containers carry the server's limits (memory, CPUs, pids, capabilities, network),
``io.dockyter.managed``, the server's owner label, and :data:`SERVER_SESSION_LABEL`
(``server_name:instance``) rather than the executions' ``io.dockyter.server``, so the
executor's sweep never takes them for orphans; this module removes them instead: on delete,
after ``session_idle_timeout`` or ``session_max_lifetime``, at shutdown, and at start-up when
an earlier instance of the same ``server_name`` crashed and left them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from typing import Any

from ..contract import (
    EXIT_INTERRUPTED,
    EXIT_KILLED,
    EXIT_TIMEOUT,
    MANAGED_LABEL,
    NAME_PREFIX,
    OWNER_LABEL,
    READ_SIZE,
    IncrementalText,
)
from ..sessionwire import (
    INTERRUPT_SCRIPT,
    KILL_SCRIPT,
    SESSION_LABEL,
    SESSION_SHELL,
    STOP_NOISE,
    FrameScanner,
    cell_line,
    new_token,
    setup_line,
    sync_line,
)
from .executor import Executor, ExecutorError, TooBusy, check_argv_size
from .policy import Plan
from .settings import Settings

log = logging.getLogger("dockyter.server")

SERVER_SESSION_LABEL = "io.dockyter.server-session"
EXIT_CODES = {"timeout": EXIT_TIMEOUT, "cancelled": EXIT_INTERRUPTED, "output_limit": EXIT_KILLED}
QUEUE_EVENTS = 64
IDLE_KEEP = 65536  # bytes of background output kept between commands
STOP_GRACE = 2.0  # seconds between SIGINT and SIGKILL of a stopped command
SETTLE = 3.0  # seconds each later step of the stop ladder waits for the shell
START_TIMEOUT = 300.0  # seconds for a session's shell to answer (an image pull included)
REAP_EVERY = 15.0

Event = dict[str, Any]


class SessionError(ExecutorError):
    """A session could not be created or used; ``status`` is the HTTP answer."""

    status = 400


class SessionBusy(SessionError):
    status = 409


class SessionRun:
    """One command in a session; consumed like an Execution (``next_event`` until exit/error)."""

    def __init__(self, session: ServerSession, cmd: str, timeout: float, merge_stderr: bool) -> None:
        self.session = session
        self.who = session.who
        self.id = secrets.token_hex(8)
        self.cmd = cmd
        self.timeout = timeout
        self.merge_stderr = merge_stderr
        self.engine_down = False
        self.finished = False
        self.reason: str | None = None
        self.message: str | None = None
        self.bytes_out = 0
        self.token = new_token()
        self._seen: dict[str, int | None] = {}
        self._answered = asyncio.Event()  # both frames of self.token arrived
        self._stop = asyncio.Event()
        self._discard = False
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUE_EVENTS)
        self._decoders = {"stdout": IncrementalText(), "stderr": IncrementalText()}
        self._gone = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- for the consumer (as Execution) ----------------------------------------------------------

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
        self.stop("cancelled", "cancelled: the command was stopped; the session keeps its state")
        await self.wait()

    async def abandon(self) -> None:
        """The client went away: stop the command (not the session) and drop its output."""
        self.stop("disconnected", "the client went away")
        self._discard = True
        while not self._queue.empty():
            self._queue.get_nowait()
        await self.wait()

    async def wait(self) -> None:
        if self._task is not None:
            await self._gone.wait()

    # -- fed by the session's readers -------------------------------------------------------------

    async def feed(self, stream: str, output: bytes, frames: list[tuple[str, int | None]]) -> None:
        if output:
            limit = self.session.settings.max_output_bytes
            room = limit - self.bytes_out
            if len(output) > room:
                self.stop("output_limit", f"the output exceeded {limit} bytes: the command was stopped")
                output = output[: max(room, 0)]
            self.bytes_out += len(output)
            await self._emit(stream, self._decoders[stream].decode(output))
        for token, status in frames:
            if token == self.token:
                self._seen[stream] = status
                if len(self._seen) == 2:
                    self._answered.set()

    async def _emit(self, stream: str, text: str) -> None:
        if text and not self._discard:
            await self._queue.put({"event": stream, "data": text})

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"dockyter session run {self.id}")

    async def _ask(self, line: bytes, wait: float | None) -> str:
        """Send ``line``; 'answered', 'stop', 'ended' or 'late' (``wait`` passed)."""
        self._answered.clear()
        self._seen = {}
        self.session.expect(self.token)
        await self.session.write(line)
        waits = {
            asyncio.ensure_future(self._answered.wait()): "answered",
            asyncio.ensure_future(self.session.ended_event.wait()): "ended",
        }
        if not self._stop.is_set():
            waits[asyncio.ensure_future(self._stop.wait())] = "stop"
        try:
            done, _ = await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in waits:
                future.cancel()
        if not done:
            return "late"
        outcomes = {waits[future] for future in done}
        for outcome in ("answered", "ended", "stop"):
            if outcome in outcomes:
                return outcome
        return "late"

    async def _run(self) -> None:
        final: Event | None = None
        try:
            outcome = await self._ask(cell_line(self.cmd, self.token, self.merge_stderr), self.timeout)
            if outcome == "late":
                self.stop("timeout", f"timed out after {self.timeout:g} s: the command was stopped; the session keeps its state")
            if outcome in ("late", "stop"):
                outcome = await self._stop_command()
            final = self._final(outcome)
        except asyncio.CancelledError:
            final = {"event": "error", "message": "the server stopped this command"}
            raise
        except Exception as error:  # noqa: BLE001 - never leave a run hanging because of a bug here
            log.exception("session run %s failed", self.id)
            final = {"event": "error", "message": f"the server failed while running the command: {error}"}
        finally:
            for stream, decoder in self._decoders.items():
                with contextlib.suppress(Exception):
                    await self._emit(stream, decoder.flush())
            self.finished = True
            self.session.finish(self)
            self._gone.set()
            if final is not None and not self._discard:
                await self._queue.put(final)

    async def _stop_command(self) -> str:
        for step, wait in (("INT", STOP_GRACE), ("foreground", SETTLE), ("all", SETTLE)):
            await self.session.signal(step)
            self.token = new_token()
            outcome = await self._ask(sync_line(self.token), wait)
            if outcome in ("answered", "ended"):
                return outcome
        await self.session.remove("its shell did not answer after its commands were killed")
        return "ended"

    def _final(self, outcome: str) -> Event:
        if outcome == "ended":
            return {
                "event": "exit",
                "code": self.session.exit_status if self.session.exit_status is not None else EXIT_KILLED,
                "reason": "session_ended",
                "message": f"the session ended: {self.session.ended}",
            }
        if self.reason in EXIT_CODES:
            return {"event": "exit", "code": EXIT_CODES[self.reason], "reason": self.reason, "message": self.message}
        if self.reason is not None:  # disconnected: nobody reads it
            return {"event": "exit", "code": EXIT_INTERRUPTED, "reason": "cancelled", "message": self.message}
        status = self._seen.get("stdout")
        return {"event": "exit", "code": status if status is not None else 0, "reason": None, "message": None}


class ServerSession:
    """One session container, its shell, and whose it is."""

    def __init__(self, registry: SessionRegistry, plan: Plan, who: str, name: str) -> None:
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
        self.current: SessionRun | None = None
        self.shell_pid = 0
        self._process: asyncio.subprocess.Process | None = None
        self._scanners = {"stdout": FrameScanner(), "stderr": FrameScanner()}
        self._idle: deque[tuple[str, bytes]] = deque()
        self._idle_size = 0
        self._readers: list[asyncio.Task[None]] = []
        self._eof = 0
        self._startup: SessionRun | None = None

    def argv(self) -> list[str]:
        settings = self.settings
        plan = self.plan
        limits = [
            "--label", f"{MANAGED_LABEL}=1",
            "--label", f"{SERVER_SESSION_LABEL}={self.registry.label}",
            "--label", f"{OWNER_LABEL}={self.registry.owner}",
            "--label", f"{SESSION_LABEL}={self.id}",
            "--log-driver", "none",
        ]  # fmt: skip
        # The same limits as every execution of this server (Execution.argv).
        if settings.network and not plan.has_network:
            limits += ["--network", settings.network]
        if settings.memory:
            limits += ["--memory", settings.memory]
        if settings.cpus:
            limits += ["--cpus", settings.cpus]
        if settings.pids_limit:
            limits += ["--pids-limit", str(settings.pids_limit)]
        if settings.drop_capabilities:
            limits += ["--cap-drop", "ALL"]
        if settings.forbid_new_privileges:
            limits += ["--security-opt", "no-new-privileges"]
        if settings.pull:
            limits += ["--pull", settings.pull]
        return [
            *settings.docker_command, "run", "-i", "--rm", "--name", self.container,
            *[token for option in plan.args.options for token in option.written],
            *limits, *settings.extra_run_args, plan.args.image, *SESSION_SHELL,
        ]  # fmt: skip

    # -- starting -----------------------------------------------------------------------------------

    async def start(self) -> None:
        argv = self.argv()
        check_argv_size(argv)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            raise SessionError(f"cannot start the container CLI: {error.strerror or error}", ) from None
        self._startup = run = SessionRun(self, "", START_TIMEOUT, False)
        run._discard = False
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
            raise SessionError(_start_failure("".join(collected), self.exit_status))
        self.shell_pid = run._seen.get("stdout") or 0
        self.last_used = time.monotonic()  # idle from when it is ready, not from when it was asked for

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
            elif output:
                self._keep_idle(stream, output)
        run = self.current
        if run is not None:
            await run.feed(stream, scanner.flush(), [])
        self._eof += 1
        if self._eof == 2:
            await self._ended_by_itself()

    def _keep_idle(self, stream: str, data: bytes) -> None:
        self._idle.append((stream, data))
        self._idle_size += len(data)
        while self._idle_size > IDLE_KEEP:
            self._idle_size -= len(self._idle.popleft()[1])

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
        await self.registry.executor.control("rm", "-f", self.container)

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

    async def run(self, cmd: str, timeout: float, merge_stderr: bool) -> SessionRun:
        if self.ended is not None:
            raise SessionError(f"the session has ended: {self.ended}")
        if self.current is not None:
            raise SessionBusy("a command is already running in this session: wait for it, or cancel it")
        run = SessionRun(self, cmd, timeout, merge_stderr)
        self.current = run
        for stream, data in self._idle:  # what background processes printed since the last command
            await run.feed(stream, data, [])
        self._idle.clear()
        self._idle_size = 0
        run.start()
        return run

    def finish(self, run: SessionRun) -> None:
        if self.current is run:
            self.current = None
        self.last_used = time.monotonic()

    async def signal(self, step: str) -> None:
        script = INTERRUPT_SCRIPT if step == "INT" else KILL_SCRIPT
        await self.registry.executor.control("exec", self.container, "bash", "-c", script, "_", str(self.shell_pid), step)

    async def remove(self, why: str) -> None:
        """Remove the container; the readers then see the end."""
        if self.ended is None:
            self.ended = why
        self.registry.forget(self)
        await self.registry.executor.control("rm", "-f", self.container)
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


class SessionRegistry:
    """Every session of one server instance, by id, each usable only by the token that made it."""

    def __init__(self, settings: Settings, executor: Executor) -> None:
        self.settings = settings
        self.executor = executor
        self.label = executor.label
        self.owner = executor.owner
        self.sessions: dict[str, ServerSession] = {}
        self.closing = False
        self._reaper: asyncio.Task[None] | None = None

    async def create(self, plan: Plan, who: str, name: str) -> ServerSession:
        if self.closing or self.executor.closing:
            raise SessionError("the server is shutting down")
        if not self.settings.max_sessions:
            raise SessionError("sessions are turned off on this server (max_sessions = 0)")
        mine = [s for s in self.sessions.values() if s.who == who]
        limit = self.settings.max_sessions_per_token
        if limit and len(mine) >= limit:
            raise TooBusy(f"this token already has {limit} sessions (max_sessions_per_token): delete one first")
        if len(self.sessions) >= self.settings.max_sessions:
            raise TooBusy(f"all {self.settings.max_sessions} session slots of this server are taken: retry later")
        session = ServerSession(self, plan, who, name)
        self.sessions[session.id] = session
        try:
            await session.start()
        except BaseException:
            self.forget(session)
            raise
        log.info(json.dumps({"event": "session_start", "id": session.id, "who": who, "image": plan.args.image}))
        return session

    def get(self, session_id: str, who: str) -> ServerSession | None:
        session = self.sessions.get(session_id)
        return session if session is not None and session.who == who else None

    def mine(self, who: str) -> list[ServerSession]:
        return [session for session in self.sessions.values() if session.who == who]

    def run_by_id(self, run_id: str) -> SessionRun | None:
        for session in self.sessions.values():
            if session.current is not None and session.current.id == run_id:
                return session.current
        return None

    def forget(self, session: ServerSession) -> None:
        self.sessions.pop(session.id, None)

    async def delete(self, session: ServerSession, why: str = "deleted") -> None:
        run = session.current
        if run is not None:
            run.stop("cancelled", "cancelled: the session was deleted")
        await session.remove(why)
        if run is not None:
            await run.wait()
        log.info(json.dumps({"event": "session_end", "id": session.id, "who": session.who, "why": why}))

    # -- lifecycle ------------------------------------------------------------------------------------

    async def startup(self) -> list[str]:
        """Remove the sessions an earlier instance of this ``server_name`` left; start the reaper."""
        removed = await self.remove_leftovers()
        self._reaper = asyncio.create_task(self._reap_forever(), name="dockyter session reaper")
        return removed

    async def remove_leftovers(self) -> list[str]:
        row = f'{{{{.Names}}}}\t{{{{.Label "{SERVER_SESSION_LABEL}"}}}}'
        answer = await self.executor.control("ps", "-a", "--filter", f"label={SERVER_SESSION_LABEL}", "--format", row)
        if answer is None or answer.returncode != 0:
            return []
        prefix = self.settings.server_name + ":"
        leftovers = []
        for line in answer.stdout.splitlines():
            name, _, label = line.partition("\t")
            rest = label[len(prefix) :]
            if name and label.startswith(prefix) and label != self.label and ":" not in rest:
                leftovers.append(name)
        removed = await self.executor.remove(leftovers)
        if removed:
            log.warning(json.dumps({"event": "session_startup_cleanup", "removed": removed}))
        return removed

    async def reap(self) -> list[str]:
        """End sessions idle longer than ``session_idle_timeout`` or older than ``session_max_lifetime``."""
        now = time.monotonic()
        idle_limit = self.settings.session_idle_timeout
        life_limit = self.settings.session_max_lifetime
        ended = []
        for session in list(self.sessions.values()):
            if life_limit and now - session.created >= life_limit:
                await self.delete(session, f"it reached session_max_lifetime ({life_limit:g} s)")
                ended.append(session.id)
            elif idle_limit and session.current is None and now - session.last_used >= idle_limit:
                await self.delete(session, f"it was idle for session_idle_timeout ({idle_limit:g} s)")
                ended.append(session.id)
        return ended

    async def _reap_forever(self) -> None:
        limits = [x for x in (self.settings.session_idle_timeout, self.settings.session_max_lifetime) if x]
        every = min([REAP_EVERY, *(limit / 4 for limit in limits)])
        while True:
            await asyncio.sleep(every)
            try:
                await self.reap()
            except Exception:  # noqa: BLE001 - a safety net must never take the server down
                log.exception("session reaper failed")

    async def shutdown(self) -> None:
        self.closing = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        sessions = list(self.sessions.values())
        if sessions:
            await asyncio.wait(
                [asyncio.ensure_future(self.delete(s, "the server is shutting down")) for s in sessions], timeout=30
            )
        answer = await self.executor.control("ps", "-aq", "--filter", f"label={SERVER_SESSION_LABEL}={self.label}")
        if answer is not None and answer.stdout.split():
            await self.executor.remove(answer.stdout.split())
