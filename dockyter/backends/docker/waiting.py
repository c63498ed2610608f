"""One prestarted container: ``docker run -i`` with the waiter, ready or not, used for one command, let go.

:mod:`dockyter.wire.waiter` says what runs inside. Here: the ``docker run -i`` process that
holds the container's stdin and output; the bind sources as they were when it started; its
image ID once it is up; what it printed before its waiter was ready (an entrypoint's words,
shown to the command's cell as a cold run would show them); sending the command; the frames
that end the command's run (:class:`FramedEnding`); and letting it go. A container let go
without a command gets end-of-file on stdin, and its waiter ends it: nothing is removed by
hand unless it does not end, and a dead kernel's containers end the same way, by themselves.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import IO

from ...output import Stream
from ...wire.contract import READ_SIZE, REMOVE_CONTAINER
from ...wire.sessionprotocol import FrameScanner, new_token
from ...wire.waiter import ReadyWatch, command_block, identity
from .cli import control
from .imageids import ImageIds

READY_TIMEOUT = 60.0  # seconds a container may take to start its waiter before it is given up
END_TIMEOUT = 30.0  # seconds a container let go may take to end by itself before it is removed by name
LET_GO = "let go before it was ready"
NOT_HERE = "the image is not here yet"


class WaitingContainer:
    """A container started ahead of its command."""

    def __init__(
        self, runtime: Sequence[str], name: str, image: str, argv: Sequence[str], binds: Sequence[str], ready_token: str
    ) -> None:
        self.runtime = list(runtime)
        self.name = name
        self.image = image
        self.argv = list(argv)  # with ``waiter_words(ready_token)``
        self.binds = tuple(binds)
        self.ready_token = ready_token
        self.identities: dict[str, tuple[int, int] | None] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.settled = threading.Event()  # set once it is ready, or has failed
        self.failure: str | None = None
        self.image_id: str | None = None
        self.ready_at: float | None = None  # monotonic time it became ready
        self.early: list[tuple[Stream, bytes]] = []
        self.used = False
        self._let_go = False  # asked to end
        self._reaping = False  # its CLI is being reaped
        self._reaper: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- starting ----------------------------------------------------------------------------

    def start(self, image_ids: ImageIds) -> None:
        """Start the container and wait for its waiter's ready frame (the pool's starter thread)."""
        if image_ids.of_image(self.image) is None:
            self._settle(NOT_HERE)  # pulled by the first cold run, with its progress line
            return
        # Before it starts: a source replaced after this is seen as changed (and the container
        # not used), never the other way round.
        self.identities = {path: identity(path) for path in self.binds}
        try:
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C reaches the kernel, not the CLI
            )
        except OSError as error:
            self._settle(f"cannot start {self.runtime[0]!r}: {error.strerror}")
            return
        with self._lock:
            self.process = process
        if self._let_go:  # let go while it was being spawned: end it now
            process.stdin.close()  # type: ignore[union-attr]
        problem = self._read_until_ready()
        if problem is None:
            self.image_id = image_ids.of_container(self.name)
            if self.image_id is None:
                problem = "the engine did not say which image it was made from"
        if problem is None:
            self.ready_at = time.monotonic()
        self._settle(problem)  # from now on, letting it go reaps it
        if problem is not None or self._let_go:
            self.let_go()

    def _settle(self, failure: str | None) -> None:
        self.failure = failure
        self.settled.set()

    def _read_until_ready(self) -> str | None:
        """Read stdout until the ready frame; what went wrong, or None."""
        assert self.process is not None and self.process.stdout is not None
        watch = ReadyWatch(self.ready_token)
        deadline = time.monotonic() + READY_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while True:
                if self._let_go:
                    return LET_GO
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return f"its waiting shell did not start within {READY_TIMEOUT:g} s"
                try:
                    if not selector.select(min(wait, 0.5)):
                        continue
                    data = os.read(self.process.stdout.fileno(), READ_SIZE)
                except (OSError, ValueError):  # let go meanwhile: its reaper closed the pipe
                    return LET_GO
                if not data:
                    return self._start_failure()
                if watch.feed(data):
                    self.early = [("stdout", chunk) for chunk in watch.early]
                    return None

    def _start_failure(self) -> str:
        """Why the container ended before its waiter was ready, in words (its CLI's stderr)."""
        assert self.process is not None and self.process.stderr is not None
        try:
            status = self.process.wait(timeout=10)
            text = self.process.stderr.read(READ_SIZE).decode(errors="replace")
        except subprocess.TimeoutExpired:
            return "it ended before its waiting shell started"
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        lowered = text.lower()
        # runc's words without an init, the init's (tini) with one
        if ('"sh"' in lowered and "not found" in lowered) or "exec sh failed" in lowered:
            return "the image has no sh, in which a prestarted container waits"
        if "no such image" in lowered or "unable to find image" in lowered:
            return NOT_HERE
        said = [line.split("dockyter-prestart: ", 1)[1] for line in lines if "dockyter-prestart: " in line]
        if said:
            return said[-1]  # the waiter's own words
        last = lines[-1] if lines else f"exit status {status}"
        return f"it ended before its waiting shell started (an entrypoint that does not run its command?): {last}"

    # -- using -------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and not self._let_go

    def unusable(self, image_id: str) -> str | None:
        """Why this ready container may not run a command now; None when it may."""
        if not self.alive:
            return "it has ended"
        if self.image_id != image_id:
            return "its image is no longer the one its tag names"
        for path, before in self.identities.items():
            if identity(path) != before:
                return f"the bind-mounted {path} is not the one it was started with"
        return None

    def send(self, command: str) -> str:
        """Give the waiter ``command``; the token of the frames that will end it.

        OSError when the container is gone; ValueError for a command no shell can receive.
        """
        assert self.process is not None and self.process.stdin is not None
        token = new_token()
        block = command_block(token, command)
        self.used = True
        self.process.stdin.write(block)
        self.process.stdin.flush()
        self.process.stdin.close()  # nothing else comes: what the kernel does next cannot reach it
        return token

    # -- letting go --------------------------------------------------------------------------

    def let_go(self) -> None:
        """End this container: its waiter reads end-of-file and ends it (a used one ends by itself).

        The ``docker run`` process is reaped in the background, its output drained so it never
        blocks; if the container has not ended in ``END_TIMEOUT`` seconds, it is removed by name.
        Safe from any thread, before, while or after it starts (then its starter reaps it).
        """
        self._let_go = True
        with self._lock:
            process = self.process
            reap = process is not None and self.settled.is_set() and not self._reaping
            self._reaping = self._reaping or reap
        if process is not None and process.stdin is not None and not process.stdin.closed:
            try:
                process.stdin.close()
            except OSError:
                pass
        if reap:
            reaper = threading.Thread(target=self._reap, name="dockyter-prestart-end", daemon=True)
            reaper.start()
            with self._lock:  # only once started: wait_ended joins it
                self._reaper = reaper

    def wait_ended(self, timeout: float) -> bool:
        """Wait until a container let go has ended and its CLI is reaped; whether it has."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                reaper = self._reaper
            if reaper is not None:
                break
            if self.settled.is_set() and self.process is None:
                return True  # it never started
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)  # its starter is still spawning it, or about to reap it
        reaper.join(max(deadline - time.monotonic(), 0))
        return not reaper.is_alive()

    def _reap(self) -> None:
        assert self.process is not None
        pipes: list[IO[bytes]] = [pipe for pipe in (self.process.stdout, self.process.stderr) if pipe is not None]
        deadline = time.monotonic() + END_TIMEOUT
        removed = False
        with selectors.DefaultSelector() as selector:
            for pipe in pipes:
                try:
                    selector.register(pipe, selectors.EVENT_READ)
                except (ValueError, OSError):  # closed already
                    pass
            while selector.get_map():
                if not removed and time.monotonic() > deadline:
                    control(self.runtime, *REMOVE_CONTAINER, self.name)
                    removed = True
                for key, _ in selector.select(0.5):
                    try:
                        data = os.read(key.fd, READ_SIZE)
                    except OSError:
                        data = b""
                    if not data:
                        selector.unregister(key.fileobj)
        try:
            self.process.wait(timeout=END_TIMEOUT)
        except subprocess.TimeoutExpired:
            control(self.runtime, *REMOVE_CONTAINER, self.name)
            self.process.kill()
            self.process.wait()
        if self.ready_at is None and not self.used:
            # It never became ready: whatever state its CLI left it in, it goes (its CLI is
            # never killed before this: the engine may still be creating it).
            control(self.runtime, *REMOVE_CONTAINER, self.name)
        for pipe in pipes:
            pipe.close()


class FramedEnding:
    """The end of a prestarted container's command, found in its output: the waiter's two frames.

    The docker backend's run reads the pipes as for a cold run and hands every chunk here: what
    comes back goes to the cell, frames taken out. Once both frames are in, everything the
    command wrote has been read, and its status is known, while the engine still tears the
    container down: that is left to the background (:meth:`WaitingContainer.let_go`).
    """

    def __init__(self, container: WaitingContainer, token: str, merge_stderr: bool) -> None:
        self.container = container
        self.token = token
        self.merge_stderr = merge_stderr  # stderr to stdout, as a cold run's CLI would have it
        self.scanners: dict[Stream, FrameScanner] = {"stdout": FrameScanner(), "stderr": FrameScanner()}
        for scanner in self.scanners.values():
            scanner.expect(token)
        self.seen: dict[Stream, int | None] = {}

    def _to(self, stream: Stream) -> Stream:
        return "stdout" if self.merge_stderr else stream

    def feed(self, stream: Stream, data: bytes) -> tuple[Stream, bytes]:
        """A chunk read from ``stream``: where it goes and what of it is output."""
        output, frames = self.scanners[stream].feed(data)
        for found, status in frames:
            if found == self.token:
                self.seen[stream] = status
        return self._to(stream), output

    def flush(self, stream: Stream) -> tuple[Stream, bytes]:
        """``stream`` ended: what was held back as a possible frame is output after all."""
        return self._to(stream), self.scanners[stream].flush()

    @property
    def done(self) -> bool:
        return len(self.seen) == 2

    @property
    def status(self) -> int:
        return self.seen.get("stdout") or 0

    def handover(self) -> None:
        """The run is over: the container's CLI is reaped in the background."""
        self.container.let_go()
