"""The local container CLI backend: ``docker run`` (or ``podman run``, ``sudo docker run``).

Each request is one ``docker run --rm --init`` with a fresh name and Dockyter's labels,
started from an argv list (no host shell), its stdout and stderr read as they arrive.
An interrupt or a timeout walks the stop ladder: SIGINT to the container's processes, a short
grace period while its last output still flows, then ``rm --force --volumes`` by name (its
anonymous volumes go with it). Since the container is named, it is found and removed even when
the CLI process itself is already gone. Where podman differs from Docker (its init, its
``rm``, its image names), :mod:`~dockyter.backends.docker.flavour` says what to do instead.
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import shlex
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Protocol

from ...errors import BackendError, RuntimeNotFound, SessionDead, say
from ...files.runfolder import ANY_FOLDER_OPTIONS, FolderProblem, RunFolder, SessionFolder, sweep
from ...lifecycle import given_name
from ...output import OutputSink, ProgressLine, Stream
from ...wire import labelled
from ...wire.contract import (
    EXIT_CANNOT_RUN,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    MANAGED_LABEL,
    OWNER_LABEL,
    identity_args,
    new_container_name,
    owner_id,
    owner_is_gone,
    run_argv,
    shell_command,
)
from ...wire.dockerargs import RunArgs
from ...wire.pull import PullFailed, last_value, needs_pull, pull
from ...wire.waiter import MAX_COMMAND_BYTES, PRESTART_LABEL, new_ready_token, waiter_words
from ..base import SIGNAL_CHECK, Backend, BackendStatus, RunRequest, RunResult
from ..settings import BackendSettings
from .cli import control
from .flavour import Flavour, OomMark, flavour_of, init_exit_status
from .imagefacts import EngineFacts
from .imageids import ImageIds
from .prestart import PrestartLine, PrestartPool, line_of, line_problem, status_rows
from .starthold import StartHold
from .waiting import FramedEnding, WaitingContainer

if TYPE_CHECKING:
    from ...wire.dockerargs import RunArgs
    from .sessionshell import SessionShell

# Bytes a pipe from the CLI holds, and the most one read takes: 1 MiB, the default most an
# unprivileged process may ask for (/proc/sys/fs/pipe-max-size), against Linux's 64 KiB.
PIPE_SIZE = 1 << 20
# A read this large means output is pouring in; then wait GATHER seconds before the next one.
FLOOD = 16384
GATHER = 0.004


class DockerBackend(Backend):
    """Runs each request with the container CLI named by ``Dockyter.docker_command``."""

    name = "docker"
    leaves_orphans = True

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self._engine_facts: EngineFacts | None = None
        self._pool: PrestartPool | None = None

    # -- building the command line ---------------------------------------------------------

    def command_line(self, request: RunRequest, container_name: str, extra: Sequence[str] = ()) -> list[str]:
        """The ``docker run`` argv of ``request``; ``extra``: options of ours for this run (its folder's mount)."""
        return self._argv(request, container_name, extra=extra)

    def _argv(
        self,
        request: RunRequest,
        name: str,
        *,
        waiter: tuple[str, ...] = (),
        per_container: bool = True,
        extra: Sequence[str] = (),
    ) -> list[str]:
        """The run's argv; with ``waiter``, that of a prestarted container (labelled as one)."""
        settings = self.settings
        labels = {MANAGED_LABEL: "1", OWNER_LABEL: owner_id()}
        if waiter:
            labels[PRESTART_LABEL] = "1"
        # Our labels, base_run_args and extra first: the user's own options come later and win.
        return run_argv(
            settings.docker_command,
            name,
            before=[
                *identity_args(labels),
                *settings.base_run_args,
                *extra,
                *(self.container_options(name) if per_container else []),
            ],
            options=[token for option in request.args.options for token in option.written],
            image=request.args.image,
            shell=request.shell,
            command=request.command,
            # A prestarted container never pulls: a pull, with its progress line, is a cold run's.
            after=["--pull", "never"] if waiter else [],
            merge_stderr=request.merge_stderr,
            waiter=waiter,
        )

    def container_options(self, name: str) -> list[str]:
        """Options of the one container called ``name``, cold or prestarted (none today).

        A prestarted container gets them when it starts, before its command is known; they
        are not part of what makes two lines the same (:class:`PrestartLine`).
        """
        return []

    def describe(self, request: RunRequest) -> str:
        return shlex.join(self.command_line(request, new_container_name()))

    # -- running ------------------------------------------------------------------------------

    def run(self, request: RunRequest, sink: OutputSink) -> RunResult:
        if "\0" in request.command:
            sink.close()
            raise BackendError("the command contains a NUL character, which no process can receive as an argument")
        line = self.prestart_line(request)
        if line is not None and len(request.command.encode(errors="surrogateescape")) <= MAX_COMMAND_BYTES:
            try:
                container = self.prestarted.take(line)
            except KeyboardInterrupt:
                sink.close()
                return RunResult(EXIT_INTERRUPTED, "interrupted", "interrupted before the command started; nothing ran")
            if container is not None:
                self.prestarted.refill(line)  # for the next command, while this one runs
                result = self._run_waiting(container, request, sink)
                if result is not None:
                    return result
        result = self._run_cold(request, sink)
        if line is not None and result.exit_code != EXIT_CANNOT_RUN and result.reason != "not_started":
            self.prestarted.refill(line)  # a line used once may well come again
        return result

    def _run_waiting(self, container: WaitingContainer, request: RunRequest, sink: OutputSink) -> RunResult | None:
        """Run ``request`` in a prestarted container; None when it cannot serve it (run cold)."""
        folder = container.folder
        if request.files is not None and folder is None:  # its folder could not be made
            container.let_go()
            return None
        try:
            token = container.send(shell_command(request.command, request.merge_stderr))
        except OSError:
            container.let_go()
            if folder is not None:
                folder.remove()
            return None
        runtime = last_value(request.args.values("--runtime"))
        lookup = self.engine_facts().start(request.args.image, runtime, container.argv)
        ending = FramedEnding(container, token, request.merge_stderr)
        for stream, data in container.early:  # what its entrypoint said, as a cold run shows it
            sink.write_bytes("stdout" if request.merge_stderr else stream, data)
        assert container.process is not None
        try:
            result = _ContainerRun(self, container.process, container.name, sink, False, request.args, ending).wait(
                request.timeout, request.stop
            )
            result.facts = lookup.facts()
            if folder is not None and request.files is not None:
                result.files = folder.collect(request.files)
            return result
        finally:
            if folder is not None:
                folder.remove()

    def _run_cold(self, request: RunRequest, sink: OutputSink) -> RunResult:
        not_started = self._pull_if_missing(request.args)
        if not_started is not None:
            return not_started
        folder = self._folder(request)
        try:
            result = self._run(request, sink, folder)
            if folder is not None and request.files is not None:
                result.files = folder.collect(request.files)
            return result
        finally:
            if folder is not None:
                folder.remove()

    def _folder(self, request: RunRequest) -> RunFolder | None:
        """The run's $DOCKYTER_OUT, when it wants one; one line, and none, if it cannot be made."""
        if request.files is None:
            return None
        try:
            return RunFolder.make()
        except FolderProblem as problem:
            say(f"{problem}; this run has none")
            return None

    def _run(self, request: RunRequest, sink: OutputSink, folder: RunFolder | None) -> RunResult:
        chosen = given_name(request.args)  # --name NAME: that is the container we stop and remove
        name = chosen or new_container_name()
        argv = self.command_line(request, name, folder.docker_options() if folder is not None else ())
        lookup = self.engine_facts().start(request.args.image, last_value(request.args.values("--runtime")), argv)
        oom = OomMark()
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if request.merge_stderr else subprocess.PIPE,
                # Our own process group: a terminal's Ctrl-C reaches us, not the CLI, so the
                # stop ladder below decides what the container gets.
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError) as error:
            raise RuntimeNotFound(self._not_found_message(error)) from None
        except OSError as error:
            if error.errno == errno.E2BIG:  # Linux limits one argument to 128 KiB
                raise BackendError(
                    f"the cell is too long to pass as one argument ({len(request.command.encode())} bytes): "
                    "write the script to a file in a mounted folder and run that instead"
                ) from None
            raise BackendError(f"cannot start {self.settings.docker_command[0]!r}: {error.strerror}") from None
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                widen(pipe.fileno())
        run = _ContainerRun(self, process, name, sink, chosen is not None, request.args)
        result = run.wait(request.timeout, request.stop)
        oom.clear(self.flavour, process.returncode)
        result.facts = lookup.facts()
        return result

    def engine_facts(self) -> EngineFacts:
        """What receipts say of images and the engine, for the container command in force."""
        command = list(self.settings.docker_command)
        if self._engine_facts is None or self._engine_facts.docker_command != command:
            self._engine_facts = EngineFacts(command)
        return self._engine_facts

    # -- prestarted containers (prestart.py) -------------------------------------------------

    @property
    def prestarted(self) -> PrestartPool:
        """This backend's prestarted containers, by line (created on first use)."""
        if self._pool is None:
            ids = ImageIds(lambda: self.settings.docker_command)
            self._pool = PrestartPool(self.settings, self._waiting_container, ids)
        return self._pool

    def prestart_line(self, request: RunRequest) -> PrestartLine | None:
        """The line ``request`` is of, if its containers can be prestarted (and prestart is on)."""
        if self.settings.prestart <= 0 or line_problem(request) is not None:
            return None
        line_request = replace(request, command="", merge_stderr=False, timeout=None, stop=None)
        # A run that wants $DOCKYTER_OUT and one that does not are of different lines.
        folder = ANY_FOLDER_OPTIONS if request.files is not None else ()
        return line_of(line_request, self._argv(line_request, "NAME", per_container=False, extra=folder))

    def _waiting_container(self, line: PrestartLine) -> WaitingContainer:
        name, token = new_container_name(), new_ready_token()
        folder = None
        if line.request.files is not None:
            try:  # its own folder, from the start; without one it serves no run (that run goes cold)
                folder = RunFolder.make()
            except FolderProblem:
                pass
        extra = folder.docker_options() if folder is not None else ()
        argv = self._argv(line.request, name, waiter=waiter_words(token), extra=extra)
        return WaitingContainer(self.settings.docker_command, name, line.image, argv, line.binds, token, folder)

    def prestart(self, request: RunRequest) -> None:
        line = self.prestart_line(request)
        if line is not None:
            self.prestarted.refill(line)

    def forget_prestarted(self) -> None:
        if self._pool is not None:
            self._pool.drop()

    def prestart_rows(self, request: RunRequest | None) -> list[tuple[str, str]]:
        return status_rows(self._pool, self.settings, line_problem(request) if request is not None else None)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- the image ------------------------------------------------------------------------------

    def _pull_if_missing(self, args: RunArgs) -> RunResult | None:
        """Pull the image with a progress line when the engine lacks it; a result if the run cannot go on.

        ``docker run`` would pull it too, silently: a first pull of a large image would look
        like a hung cell. ``--pull never`` is left to docker; ``--pull always`` pulls here.
        """
        pull_flag = last_value(args.values("--pull"))
        if not needs_pull(pull_flag):
            return None
        image = args.image
        if pull_flag != "always" and (self.images.known(image) or self.image_present(image) is not False):
            return None  # here already, or the engine cannot say: docker run explains
        platform = last_value(args.values("--platform"))
        line = ProgressLine()
        try:
            progress = pull(self.settings.docker_command, image, platform, lambda p: line.update(p.line()))
        except PullFailed as error:
            if line.shown:
                line.finish(f"pulling {image} failed")
            return RunResult(EXIT_CANNOT_RUN, "not_started", f"cannot pull {image}: {error}")
        except KeyboardInterrupt:
            line.finish(f"pulling {image} interrupted")
            return RunResult(EXIT_INTERRUPTED, "interrupted", f"interrupted while pulling {image}; nothing ran")
        line.finish(progress.summary())
        self.images.note(image)
        return None

    def image_present(self, image: str) -> bool | None:
        """Whether the engine has ``image``; None when it cannot be asked."""
        answer = self.control("image", "inspect", "--format", "{{.Id}}", image)
        if answer is None:
            return None
        if answer.returncode == 0:
            self.images.note(image)
            return True
        reason = answer.stderr.lower()
        return False if "no such image" in reason or "image not known" in reason else None  # docker's, podman's

    def _not_found_message(self, error: OSError) -> str:
        runtime = self.settings.docker_command[0]
        reason = "was not found on PATH" if isinstance(error, FileNotFoundError) else "cannot be executed"
        return (
            f"the container runtime {runtime!r} {reason}: install Docker (or podman), "
            f"or set %config Dockyter.docker_command = ['podman']"
        )

    def control(self, *args: str) -> subprocess.CompletedProcess[str] | None:
        """Run a short runtime command (kill, rm, ps, version); None if the runtime is missing."""
        return control(self.settings.docker_command, *args)

    @property
    def flavour(self) -> Flavour:
        """Docker's CLI or podman's, asked once per ``docker_command``."""
        return flavour_of(self.settings.docker_command)

    # -- status and cleanup -----------------------------------------------------------------

    def open_session(self, name: str, args: RunArgs) -> SessionShell:
        from .sessionshell import SessionShell  # only when sessions are used

        not_started = self._pull_if_missing(args)  # the same progress line as a cell's
        if not_started is not None:
            raise SessionDead(not_started.message or f"{args.image} could not be pulled", not_started.exit_code)
        try:
            folder: SessionFolder | None = SessionFolder()
        except FolderProblem as problem:
            say(f"{problem}; this session's cells have none")
            folder = None
        shell = SessionShell.launch(self.settings, name, args, folder)
        lookup = self.engine_facts().start(args.image, last_value(args.values("--runtime")), shell.argv)
        shell.facts = lookup.facts()
        return shell

    def status(self) -> BackendStatus:
        runtime = " ".join(self.settings.docker_command)
        answer = self.control("version", "--format", "{{.Server.Version}}")
        if answer is None:
            return BackendStatus(self.name, False, f"{runtime!r} was not found or did not answer")
        if answer.returncode != 0:
            reason = (answer.stderr.strip().splitlines() or ["no reason given"])[-1]
            return BackendStatus(self.name, False, f"{runtime!r} cannot reach its engine: {reason}")
        version = answer.stdout.strip()
        return BackendStatus(self.name, True, f"engine {version} via {runtime!r}", {"runtime version": version})

    def as_me_userns(self) -> str | None:
        return self.flavour.as_me_userns()

    def local_images(self) -> list[str] | None:
        listing = self.control("images", "--format", "{{.Repository}}:{{.Tag}}")
        if listing is None or listing.returncode != 0:
            return None
        return [self.flavour.image_name(name) for name in listing.stdout.split() if "<none>" not in name]

    def cleanup(self) -> list[str]:
        """Remove Dockyter containers whose owning kernel process is gone; touch nothing else."""
        flavour = self.flavour  # asked here, in the background at load, rather than by a first interrupt
        sweep()  # the $DOCKYTER_OUT folders of dead kernels, whatever the engine says
        listing = self.control(*labelled.list_argv(OWNER_LABEL))
        if listing is None or listing.returncode != 0 or not labelled.names(listing.stdout):
            return []
        # A container removed since the listing makes inspect fail, but the others are still read.
        inspected = self.control(*labelled.inspect_argv(OWNER_LABEL, labelled.names(listing.stdout)))
        owners = labelled.values(inspected.stdout) if inspected is not None else {}
        orphans = sorted(name for name, owner in owners.items() if owner_is_gone(owner))
        if orphans:
            self.control(*flavour.remove_argv(), *orphans)
        return orphans


def widen(fd: int) -> None:
    """Give the pipe room for ``PIPE_SIZE`` bytes (Linux), so that the CLI rarely waits for us
    and each wake-up of ours takes everything that has arrived; best effort elsewhere."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (AttributeError, OSError):  # not Linux, or over /proc/sys/fs/pipe-max-size
        pass


class Ending(Protocol):
    """How a run's end is found in its output, when not by its pipes closing (a prestarted
    container's frames, :class:`~dockyter.backends.docker.waiting.FramedEnding`)."""

    def feed(self, stream: Stream, data: bytes) -> tuple[Stream, bytes]: ...
    def flush(self, stream: Stream) -> tuple[Stream, bytes]: ...
    @property
    def done(self) -> bool: ...
    @property
    def status(self) -> int: ...
    def handover(self) -> None: ...


class _ContainerRun:
    """One running ``docker run`` process: pumps its output and stops it when asked."""

    def __init__(
        self,
        backend: DockerBackend,
        process: subprocess.Popen[bytes],
        name: str,
        sink: OutputSink,
        chosen: bool,
        args: RunArgs,
        ending: Ending | None = None,
    ) -> None:
        self.backend = backend
        self.process = process
        self.name = name
        self.args = args  # what the container was started with (its pid namespace)
        # A name the user chose may belong to another container (ours then failed to start
        # with a name conflict): that one is never ours to stop.
        self.chosen = chosen
        self.sink = sink
        self.ending = ending
        self.output = StartHold(sink)  # the CLI's own complaint is said once, by the red line
        if ending is not None:
            self.output.release()  # a prestarted container runs already: no complaint can come
        self.selector = selectors.DefaultSelector()
        pipes: list[tuple[IO[bytes] | None, Stream]] = [(process.stdout, "stdout"), (process.stderr, "stderr")]
        for pipe, stream in pipes:
            if pipe is not None:
                self.selector.register(pipe, selectors.EVENT_READ, stream)

    def wait(self, timeout: float | None, stop: threading.Event | None = None) -> RunResult:
        deadline = time.monotonic() + timeout if timeout else None
        finished = False
        try:
            try:
                finished = self._pump(deadline, stop)
            except KeyboardInterrupt:
                self._stop()
                finished = True
                return RunResult(EXIT_INTERRUPTED, "interrupted", f"interrupted: container {self.name} stopped")
            if not finished and stop is not None and stop.is_set():  # asked from another thread
                self._stop()
                finished = True
                return RunResult(EXIT_INTERRUPTED, "interrupted", f"stopped: container {self.name} stopped")
            if not finished:
                self._stop()
                finished = True
                return RunResult(
                    EXIT_TIMEOUT, "timeout", f"timed out after {timeout:g} s: container {self.name} stopped"
                )
            if self._ended():
                return RunResult(self.ending.status if self.ending is not None else 0)
            code = self.process.wait()
            if code == 1:  # podman's init (catatonit) could not start the command: Docker's 127 or 126
                code = init_exit_status(code, self._error_tail())
            reason = self.output.conclude(code)
            return RunResult(code, "not_started", reason) if reason else RunResult(code)
        finally:
            if not finished:  # an unexpected error while pumping: still never leave it running
                self._stop(grace=0)
            self.output.release()
            self.sink.close()
            self.selector.close()
            if self._ended() and self.ending is not None:
                self.ending.handover()  # the container ends by itself; its CLI is reaped meanwhile
            else:
                for pipe in (self.process.stdout, self.process.stderr):
                    if pipe is not None:
                        pipe.close()

    def _ended(self) -> bool:
        return self.ending is not None and self.ending.done

    def _error_tail(self) -> str:
        """The end of what the CLI wrote on stderr (in stdout when both go there)."""
        return self.sink.stderr_tail if self.process.stderr is not None else self.sink.text("stdout")[-4096:]

    def _pump(self, deadline: float | None, stop: threading.Event | None = None) -> bool:
        """Copy output to the sink until both pipes close or the ending is found (True), or
        ``deadline`` passes or ``stop`` is set (False)."""
        while self.selector.get_map() and not self._ended():
            wait = SIGNAL_CHECK if deadline is None else min(deadline - time.monotonic(), SIGNAL_CHECK)
            if wait <= 0 or (stop is not None and stop.is_set()):
                return False
            due = self.sink.due_in()  # a batch of output waiting to be flushed
            wait = wait if due is None else max(min(wait, due), 0.001)
            flooding = False
            for key, _ in self.selector.select(wait):
                data = os.read(key.fd, PIPE_SIZE)
                if data:
                    self._deliver(key.data, data)
                    flooding = flooding or len(data) >= FLOOD
                else:
                    self.selector.unregister(key.fileobj)
                    if self.ending is not None:
                        self.output.write_bytes(*self.ending.flush(key.data))
            self.output.tick()
            if flooding:
                # Output is pouring in: let it gather in the pipe for a moment, so that each
                # wake-up, read and write of ours carries more of it (a trickle never waits).
                time.sleep(GATHER)
        return True

    def _deliver(self, stream: Stream, data: bytes) -> None:
        if self.ending is not None:
            stream, data = self.ending.feed(stream, data)
        self.output.write_bytes(stream, data)

    def _stop(self, grace: float | None = None) -> None:
        """SIGINT, a grace period with output still flowing, then kill and remove by name."""
        grace = self.backend.settings.stop_grace if grace is None else grace
        try:
            if grace > 0 and self.process.poll() is None and self._ours():
                self._interrupt()
                self._pump(time.monotonic() + grace)
        except KeyboardInterrupt:
            pass  # a second interrupt skips the grace period, not the removal
        finally:
            self._kill_and_remove()

    def _interrupt(self) -> None:
        """SIGINT to the command: through the container's init, or from inside it (podman)."""
        argv = self.backend.flavour.interrupt_argv(self.name, self.args)
        answer = self.backend.control(*argv)
        if argv[0] == "exec" and (answer is None or answer.returncode != 0):
            self.backend.control("kill", "--signal", "INT", self.name)  # no `sh` in the image: the shell at least

    def _ours(self) -> bool:
        """Whether the container called ``name`` is this kernel's (always, for a name we made)."""
        if not self.chosen:
            return True
        answer = self.backend.control("inspect", "--format", f'{{{{index .Config.Labels "{OWNER_LABEL}"}}}}', self.name)
        return answer is None or answer.returncode != 0 or answer.stdout.strip() == owner_id()

    def _remove(self) -> None:
        if self._ours():
            self.backend.control(*self.backend.flavour.remove_argv(), self.name)

    def _kill_and_remove(self) -> None:
        for attempt in range(3):  # repeated Ctrl-C must not skip the removal
            try:
                if self.process.poll() is None:
                    self._remove()
                    try:
                        self.process.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        self.process.kill()
                        self.process.wait()
                # The CLI is gone now, so nothing can create the container after this removal.
                self._remove()
                return
            except KeyboardInterrupt:
                if attempt == 2:
                    raise
