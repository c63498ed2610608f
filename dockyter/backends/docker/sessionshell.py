"""One session's container and its shell, driven from the kernel: start, run a cell, stop.

The container is ``docker run -i --rm ... IMAGE bash --login -i`` kept attached: its
stdin is our pipe, its stdout and stderr come back apart. Cells are fed one line each
(:mod:`dockyter.wire.sessionprotocol`). Two reader threads copy the pipes into a queue while a cell
runs; between cells they keep at most :data:`IDLE_KEEP` bytes of what background processes
print, shown at the start of the next cell, so a chatty server neither blocks nor fills memory.

When the kernel dies, our end of the stdin pipe closes, the shell reads end-of-file and exits,
and ``--rm`` removes the container; the labels still let ``%docker_cleanup`` find one that stays.
"""

from __future__ import annotations

import collections
import os
import queue
import shlex
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import IO

from ...errors import DockyterError, Interrupted, RuntimeNotFound, SessionDead, not_started_reason, say
from ...files.runfolder import FolderProblem, RunFolder, SessionFolder
from ...output import OutputSink, Stream
from ...receipts import RunFacts
from ...wire.contract import (
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    MANAGED_LABEL,
    OWNER_LABEL,
    READ_SIZE,
    new_container_name,
    owner_id,
)
from ...wire.dockerargs import RunArgs
from ...wire.outfolder import FOLDER_VARIABLE
from ...wire.sessionprotocol import (
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
from ..base import SIGNAL_CHECK, RunRequest, RunResult
from ..settings import DockerSettings
from .cli import control
from .flavour import OomMark, flavour_of, top_memory

IDLE_KEEP = 65536  # bytes of background output kept between cells, per session
SETTLE = 3.0  # seconds each later step of the stop ladder waits for the shell to answer

Item = tuple[Stream, "bytes | None"]  # a chunk of output, or None at end-of-file
TIMED_OUT = -1 << 40  # _pump's answer when the deadline passed (no shell status is this)
ENDED = -(1 << 41)  # _pump's answer when the shell ended before answering


class SessionShell:
    """A running session container and the bash inside it."""

    def __init__(
        self, runtime: Sequence[str], container: str, argv: Sequence[str], folder: SessionFolder | None = None
    ) -> None:
        self.runtime = list(runtime)
        self.container = container
        self.argv = list(argv)
        self.folder = folder  # where each cell's $DOCKYTER_OUT is made
        self.facts: RunFacts | None = None  # the session's image, for its cells' receipts (set by the backend)
        self.shell_pid = 0
        self.exit_status: int | None = None  # the CLI's exit status (the shell's) once it ended
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # guards routing between the readers and a running cell
        self._queue: queue.SimpleQueue[Item] | None = None
        self._idle: collections.deque[Item] = collections.deque()
        self._idle_size = 0
        self._eof = False
        self._stopping = False  # in the stop ladder: drop STOP_NOISE from stderr
        self._scanners: dict[Stream, FrameScanner] = {"stdout": FrameScanner(), "stderr": FrameScanner()}
        self._oom = OomMark()  # conmon's mark of a session killed for memory (podman), removed when it ends

    # -- starting ----------------------------------------------------------------------------

    @classmethod
    def launch(
        cls, settings: DockerSettings, name: str, args: RunArgs, folder: SessionFolder | None = None
    ) -> SessionShell:
        """Start session ``name`` from ``args`` with the container CLI of ``settings``; ``folder``: its
        cells' ``$DOCKYTER_OUT`` folders, mounted for the session's life."""
        container = new_container_name()
        mount = folder.docker_options() if folder is not None else []
        argv = [
            *settings.docker_command, "run", "-i", "--rm", "--name", container,
            # Labelled as every container a kernel starts (so a dead kernel's are found), and named.
            "--label", f"{MANAGED_LABEL}=1", "--label", f"{OWNER_LABEL}={owner_id()}", "--label", f"{SESSION_LABEL}={name}",
            # No --init: the shell is pid 1, so `kill 1` and `docker stop` reach it at once, and
            # it reaps orphans itself (bash waits for any child).
            *settings.base_run_args, *mount, *args.argv(), *SESSION_SHELL,
        ]  # fmt: skip
        shell = cls(settings.docker_command, container, argv, folder)
        try:
            shell.start()
        except BaseException:
            shell.drop_folder()
            raise
        return shell

    def start(self) -> None:
        """Start the container and wait until its shell answers; one-line errors otherwise."""
        try:
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C reaches the kernel, not the CLI
            )
        except (FileNotFoundError, PermissionError):
            raise RuntimeNotFound(
                f"the container runtime {self.runtime[0]!r} was not found or cannot be executed: install Docker "
                "(or podman), or set %config Dockyter.docker_command"
            ) from None
        for stream, pipe in (("stdout", self._process.stdout), ("stderr", self._process.stderr)):
            threading.Thread(
                target=self._read, args=(stream, pipe), name=f"dockyter-session-{stream}", daemon=True
            ).start()
        token = new_token()
        startup = OutputSink(show=False, capture=True)  # login banners, bash's "no job control" notice
        try:
            status = self._exchange(setup_line(token), token, startup, deadline=None)
        except KeyboardInterrupt:
            self.remove()
            raise Interrupted("interrupted: the session's container was removed before its shell answered") from None
        if status == ENDED:
            self.remove()
            raise SessionDead(self._start_failure(startup.text("stderr")), self.exit_status or 125)
        self.shell_pid = status
        self._detach()

    def _start_failure(self, stderr: str) -> str:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        text = "\n".join(lines).lower()
        if ("executable file not found" in text or "no such file" in text) and "bash" in text:
            return "the image has no bash, which a session needs (it keeps one bash running): choose an image with bash"
        if "unable to find image" in text or "pull access denied" in text or "manifest unknown" in text:
            return (
                "the image is not available locally and could not be pulled: check its name, or build or pull it first"
            )
        if "cannot connect to the docker daemon" in text or "is the docker daemon running" in text:
            return "no container engine answers: start the Docker daemon, or check DOCKER_HOST"
        # docker's own reason, not the pointer to its usage that follows it
        reason = not_started_reason(self.exit_status or 0, stderr)
        last = reason or next((line for line in reversed(lines) if not line.startswith("bash: ")), None)
        return f"the session's container did not start: {last or f'exit status {self.exit_status}'}"

    # -- reading ------------------------------------------------------------------------------

    def _read(self, stream: Stream, pipe: IO[bytes]) -> None:
        fd = pipe.fileno()
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:
                data = b""
            self._route(stream, data or None)
            if not data:
                return

    def _route(self, stream: Stream, data: bytes | None) -> None:
        with self._lock:
            if self._queue is not None:
                self._queue.put((stream, data))
                return
            self._idle.append((stream, data))
            self._idle_size += len(data or b"")
            while self._idle_size > IDLE_KEEP and self._idle[0][1] is not None:  # drop the oldest output
                self._idle_size -= len(self._idle.popleft()[1] or b"")

    def _attach(self) -> queue.SimpleQueue[Item]:
        with self._lock:
            if self._queue is None:
                self._queue = queue.SimpleQueue()
                for item in self._idle:
                    self._queue.put(item)
                self._idle.clear()
                self._idle_size = 0
            return self._queue

    def _detach(self) -> None:
        with self._lock:
            pending, self._queue = self._queue, None
            while pending is not None and not pending.empty():  # arrived after the frames: next cell's
                item = pending.get_nowait()
                self._idle.append(item)
                self._idle_size += len(item[1] or b"")

    # -- running a cell -----------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._process is not None and not self._eof and self._process.poll() is None

    def run(self, request: RunRequest, sink: OutputSink, stop_grace: float) -> RunResult:
        """Run one cell, streaming into ``sink``; the stop ladder on interrupt or timeout.

        Raises SessionDead when the shell is gone before or during the cell; ValueError for a
        cell no shell can receive (a NUL character).
        """
        if not self.alive:
            sink.close()
            raise SessionDead(self.death_reason(), self.exit_status or 125)
        cell_folder, env = self._cell_folder(request)
        try:
            result = self._run(request, sink, stop_grace, env)
            if cell_folder is not None and request.files is not None:
                result.files = cell_folder.collect(request.files)
            result.facts = self.facts
            return result
        finally:
            if cell_folder is not None:
                cell_folder.remove()

    def _cell_folder(self, request: RunRequest) -> tuple[RunFolder | None, dict[str, str | None]]:
        """The cell's folder and variable; without one, the variable unset (the shell keeps the last cell's)."""
        if self.folder is None:
            return None, {}
        if request.files is None:
            return None, {FOLDER_VARIABLE: None}
        try:
            folder, env = self.folder.next_cell()
        except FolderProblem as problem:
            say(f"{problem}; this cell has none")
            return None, {FOLDER_VARIABLE: None}
        return folder, {**env}

    def _run(self, request: RunRequest, sink: OutputSink, stop_grace: float, env: dict[str, str | None]) -> RunResult:
        timeout = request.timeout
        try:
            line = cell_line(request.command, new_token(), request.merge_stderr, env)
        except ValueError as error:  # a NUL character
            sink.close()
            raise DockyterError(str(error)) from None
        token = line.rsplit(b" ", 2)[1].decode()
        deadline = time.monotonic() + timeout if timeout else None
        try:
            try:
                status = self._exchange(line, token, sink, deadline)
            except KeyboardInterrupt:
                return self._stop_command(sink, stop_grace, EXIT_INTERRUPTED, "interrupted", "interrupted")
            if status == TIMED_OUT:
                return self._stop_command(sink, stop_grace, EXIT_TIMEOUT, "timeout", f"timed out after {timeout:g} s")
            if status == ENDED:
                raise SessionDead(self.death_reason(), self.exit_status or 125)
            self._detach()
            return RunResult(status)
        finally:
            sink.close()

    def _exchange(self, line: bytes, token: str, sink: OutputSink, deadline: float | None) -> int:
        """Send ``line`` and copy output to ``sink`` until both of ``token``'s frames arrive.

        Returns the stdout frame's status, ENDED or TIMED_OUT. The cell stays attached (output
        keeps coming to the queue) until ``_detach``; a KeyboardInterrupt propagates.
        """
        pending = self._attach()
        for scanner in self._scanners.values():
            scanner.expect(token)
        try:
            assert self._process is not None and self._process.stdin is not None
            self._process.stdin.write(line)
            self._process.stdin.flush()
        except (OSError, ValueError):
            pass  # the shell is gone: the readers report end-of-file
        return self._pump(pending, token, sink, deadline)

    def _pump(self, pending: queue.SimpleQueue[Item], token: str, sink: OutputSink, deadline: float | None) -> int:
        seen: dict[Stream, int | None] = {}
        closed: set[Stream] = set()
        while len(seen) < 2:
            if self._eof and not closed:
                return ENDED
            wait = SIGNAL_CHECK if deadline is None else min(deadline - time.monotonic(), SIGNAL_CHECK)
            if wait <= 0 and not closed:
                return TIMED_OUT
            sink.tick()
            due = sink.due_in()  # a batch of output waiting to be flushed
            wait = wait if due is None else min(wait, due)
            try:
                stream, data = pending.get(timeout=max(wait, 0.01))
            except queue.Empty:
                if closed and self._process is not None and self._process.poll() is not None:
                    break  # the CLI is gone and one pipe stays quiet: nothing more will come
                continue
            scanner = self._scanners[stream]
            if data is None:  # the shell ended: take what is left of the other stream too
                sink.write_bytes(stream, scanner.flush())
                closed.add(stream)
                if len(closed) == 2:
                    break
                continue
            output, frames = scanner.feed(data)
            if self._stopping and stream == "stderr":
                output = STOP_NOISE.sub(b"", output)
            if output:
                sink.write_bytes(stream, output)
            for found, status in frames:
                scanner.expected.discard(found)
                if found == token:
                    seen[stream] = status
        if closed:
            self._finish_exit()
            return ENDED
        return seen["stdout"] or 0

    # -- the stop ladder ----------------------------------------------------------------------

    def _stop_command(self, sink: OutputSink, grace: float, code: int, reason: str, what: str) -> RunResult:
        """SIGINT to the cell's processes; after ``grace`` SIGKILL them; the shell keeps its state.

        Each step sends a sync line: the shell answers it only once the cell has ended.
        """
        steps = [("INT", grace), ("foreground", SETTLE), ("all", SETTLE)]
        self._stopping = True
        try:
            return self._ladder(sink, steps, code, reason, what)
        finally:
            self._stopping = False

    def _ladder(self, sink: OutputSink, steps: list[tuple[str, float]], code: int, reason: str, what: str) -> RunResult:
        for step, wait in steps:
            try:
                self._signal(step)
                token = new_token()
                status = self._exchange(sync_line(token), token, sink, time.monotonic() + wait)
            except KeyboardInterrupt:  # another Ctrl-C moves on to the next step, never skips the ladder
                status = TIMED_OUT
            if status == ENDED:
                raise SessionDead(self.death_reason(), self.exit_status or 125)
            if status != TIMED_OUT:
                self._detach()
                note = "; its background jobs were stopped too" if step == "all" else ""
                return RunResult(code, reason, f"{what}: the command was stopped, the session keeps its state{note}")
        self.remove()
        raise SessionDead(
            f"{what}, and the shell did not answer after its commands were killed: the container was removed", code
        )

    def _signal(self, step: str) -> None:
        if step == "INT":
            script = INTERRUPT_SCRIPT
        else:
            script = KILL_SCRIPT
        self.control("exec", self.container, "bash", "-c", script, "_", str(self.shell_pid), step)

    def way_in(self) -> str:
        return shlex.join([*self.runtime, "exec", "-it", self.container, "bash"])

    def memory(self) -> str | None:
        """The container's memory use as ``docker stats`` reports it (about a second: it samples).

        Rootless podman on cgroup v1 has no stats (the container has no cgroup of its own): the
        resident memory of its processes, as ``podman top`` reads them, stands in.
        """
        answer = self.control("stats", "--no-stream", "--format", "{{.MemUsage}}", self.container)
        if answer is not None and answer.returncode == 0 and "/" in answer.stdout:
            return answer.stdout.split("/")[0].strip() or None
        if flavour_of(self.runtime).podman:
            listing = self.control("top", self.container, "rss")
            if listing is not None and listing.returncode == 0:
                return top_memory(listing.stdout)
        return None

    def control(self, *args: str) -> subprocess.CompletedProcess[str] | None:
        """A short runtime command (kill, exec, rm, stats); None if it could not run."""
        return control(self.runtime, *args)

    # -- ending -------------------------------------------------------------------------------

    def _finish_exit(self) -> None:
        self._eof = True
        if self._process is None:
            return
        try:
            self.exit_status = self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self.exit_status = self._process.wait()
        self._oom.clear(flavour_of(self.runtime), self.exit_status)

    def death_reason(self) -> str:
        """Why the shell is gone, in words."""
        if self.exit_status is None and self._process is not None:
            self.exit_status = self._process.poll()
        status = self.exit_status
        if status == 137:
            return "its container was killed (SIGKILL: out of memory, or removed from outside)"
        if status == 143:
            return "its container was stopped (SIGTERM, e.g. `kill 1`)"
        if status is None:
            return "its container is gone"
        return f"its shell exited with status {status}"

    def remove(self) -> None:
        """Remove the container by name and reap the CLI; safe to call more than once."""
        self.control(*flavour_of(self.runtime).remove_argv(), self.container)
        if self._process is not None:
            try:
                if self._process.stdin is not None:
                    self._process.stdin.close()
            except OSError:
                pass
            self._finish_exit()
        self.drop_folder()

    def drop_folder(self) -> None:
        """Remove the session's folder of cell folders (once its container is gone)."""
        if self.folder is not None:
            self.folder.remove()
