"""Background jobs: a cell's container that runs while the notebook goes on (``%%docker --bg``).

As ``%%script --bg`` has it: the cell returns at once; what the container prints is kept, not
shown, in a :class:`JobStream` per stream (``--out VAR`` / ``--err VAR`` name them, and keep all
of it; otherwise the last :data:`TAIL` bytes are kept); ``--proc VAR`` names the :class:`Job`
itself, a handle with ``returncode``, ``wait()`` and ``stop()``. ``%docker_jobs`` lists them.

Each job is one ``docker run`` of the docker backend, in a thread of its own, its container named
by us (or by the user's ``--name``, as in a cell) so that the listing can say which; ``stop()``, from
outside that thread, walks the interrupt ladder
(SIGINT, ``Dockyter.stop_grace`` seconds, then removal). Nothing is left when the kernel ends:
``%unload_ext``, the kernel's shutdown and interpreter exit stop every job, and the containers of
a killed kernel carry its owner label, for the next load's clean-up.
"""

from __future__ import annotations

import atexit
import collections
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from .backends.base import RunRequest, RunResult
from .errors import BadUsage, DockyterError
from .lifecycle import given_name
from .output import OutputSink, Stream
from .wire.contract import new_container_name
from .wire.dockerargs import DockerOption

TAIL = 65536  # characters of a stream kept when no variable asks for all of it
STOP_WAIT = 15.0  # seconds stop() waits, after the grace period, for the container to be removed


class JobSettings(Protocol):
    """What the jobs read of the ``Dockyter`` configurable, at each use."""

    @property
    def stop_grace(self) -> float: ...


class Runner(Protocol):
    """What runs a job: the docker backend, which honours ``RunRequest.stop``."""

    def run(self, request: RunRequest, sink: OutputSink) -> RunResult: ...


class JobStream:
    """One stream of a background job, as it arrives: ``read()`` gives what is new since the last
    read, ``text`` (and ``str()``) everything kept."""

    def __init__(self, keep: int | None) -> None:
        self.keep = keep  # characters kept at most (None: all)
        self._chunks: collections.deque[str] = collections.deque()
        self._size = 0
        self._read = 0  # characters of the kept text already read
        self._lock = threading.Lock()

    def feed(self, text: str) -> None:
        with self._lock:
            self._chunks.append(text)
            self._size += len(text)
            while self.keep is not None and self._size > self.keep and len(self._chunks) > 1:
                dropped = len(self._chunks.popleft())
                self._size -= dropped
                self._read = max(0, self._read - dropped)

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def read(self) -> str:
        """What arrived since the last ``read()`` (never waits)."""
        with self._lock:
            text = "".join(self._chunks)
            new, self._read = text[self._read :], len(text)
            return new

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<JobStream: {self._size} characters kept>"


class JobSink(OutputSink):
    """Where a job's output goes: its two :class:`JobStream`; nothing is shown."""

    def __init__(self, streams: dict[Stream, JobStream]) -> None:
        super().__init__(show=False)
        self.streams = streams

    def write(self, stream: Stream, text: str) -> None:
        if not text:
            return
        if stream == "stderr":
            self.stderr_tail = (self.stderr_tail + text)[-4096:]
        self.streams[stream].feed(text)


class Job:
    """One background container: its output, its exit status once it ends, and how to stop it."""

    def __init__(self, number: int, request: RunRequest, keep_all: Sequence[Stream], settings: JobSettings) -> None:
        self.id = number
        self.image = request.args.image
        self.command = request.command
        self._stop = threading.Event()  # the run walks the interrupt ladder when it is set
        # The user's --name is honoured as in a cell; otherwise named by us, so the listing can say which.
        chosen = given_name(request.args)
        self.container = chosen or new_container_name()
        args = request.args
        if chosen is None:
            named = DockerOption("--name", self.container, ("--name", self.container))
            args = replace(args, options=(*args.options, named))
        self.request = replace(request, args=args, stop=self._stop)
        self.stdout = JobStream(None if "stdout" in keep_all else TAIL)
        self.stderr = JobStream(None if "stderr" in keep_all else TAIL)
        self.settings = settings
        self.started = time.time()
        self.result: RunResult | None = None
        self.failure: str | None = None  # why it could not run at all
        self.stopped = False  # stop() was asked
        self._done = threading.Event()

    def start(self, runner: Runner) -> None:
        sink = JobSink({"stdout": self.stdout, "stderr": self.stderr})
        threading.Thread(target=self._run, args=(runner, sink), name=f"dockyter-job-{self.id}", daemon=True).start()

    def _run(self, runner: Runner, sink: JobSink) -> None:
        try:
            self.result = runner.run(self.request, sink)
        except DockyterError as error:
            self.failure = str(error)
        except Exception as error:  # noqa: BLE001 - a job's thread must end in a state, never silently
            self.failure = f"{type(error).__name__}: {error}"
        finally:
            self._done.set()

    # -- what a handle answers -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    @property
    def returncode(self) -> int | None:
        """The exit status once it ended (130 when stopped, 125 when it could not start); None while it runs."""
        if self.running:
            return None
        if self.result is not None:
            return self.result.exit_code
        return 125

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until it ends; its exit status. ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(f"job {self.id}", timeout or 0)
        code = self.returncode
        assert code is not None
        return code

    def stop(self) -> int | None:
        """Stop its container as an interrupt stops a cell's: SIGINT, ``Dockyter.stop_grace`` seconds,
        then removal (the container and its anonymous volumes); its exit status (130 when it was
        running), or None when it has not ended after :data:`STOP_WAIT` seconds more (an image
        still being pulled: the job stops once the pull ends)."""
        if self.running:
            self.stopped = True
            self._stop.set()
            self._done.wait(self.settings.stop_grace + STOP_WAIT)
        return self.returncode

    @property
    def state(self) -> str:
        if self.running:
            return "running"
        if self.failure is not None:
            return f"did not start: {self.failure}"
        assert self.result is not None
        code = self.result.exit_code
        if self.stopped and self.result.reason == "interrupted":
            return f"stopped ({code})"
        if self.result.reason == "timeout":
            return f"timed out ({code})"
        if self.result.reason == "not_started":
            return f"did not start: {self.result.message}"
        return f"exited {code}"

    def __repr__(self) -> str:
        return f"<Dockyter job {self.id}: {self.state}, {self.image}, container {self.container}>"


class Jobs:
    """This kernel's background jobs, numbered from 1; every one is stopped at exit."""

    COLUMNS = ("job", "state", "image", "age", "command", "container")

    def __init__(self, settings: JobSettings, runner: Callable[[], Runner]) -> None:
        self.settings = settings
        self.runner = runner
        self.jobs: dict[int, Job] = {}
        self._numbers = 0
        closer = weakref.WeakMethod(self.stop_all)
        self._at_exit = lambda: (method := closer()) is not None and method()
        atexit.register(self._at_exit)

    def start(self, request: RunRequest, keep_all: Sequence[Stream]) -> Job:
        self._numbers += 1
        job = Job(self._numbers, request, keep_all, self.settings)
        self.jobs[job.id] = job
        job.start(self.runner())
        return job

    def get(self, number: str) -> Job:
        job = self.jobs.get(int(number)) if number.isdigit() else None
        if job is None:
            known = ", ".join(str(n) for n in self.jobs) or "none yet"
            raise BadUsage(f"no job {number!r} (jobs: {known}); %docker_jobs lists them")
        return job

    def stop_all(self) -> list[int]:
        """Stop every running job; their numbers."""
        running = [job for job in self.jobs.values() if job.running]
        for job in running:
            job.stop()
        return [job.id for job in running]

    def close(self) -> None:
        atexit.unregister(self._at_exit)
        self.stop_all()

    def numbers(self) -> list[str]:
        return [str(number) for number in self.jobs]

    def rows(self) -> list[tuple[str, ...]]:
        return [
            (
                str(job.id),
                job.state,
                job.image,
                _age(time.time() - job.started),
                _first_line(job.command),
                job.container,
            )
            for job in self.jobs.values()
        ]


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60} s"


def _first_line(command: str, width: int = 40) -> str:
    lines = command.strip().splitlines() or [""]
    line = lines[0] + (" ..." if len(lines) > 1 else "")
    return line if len(line) <= width else line[: width - 3] + "..."
