"""The one interface every backend implements, and the request and result it speaks.

The magics build a :class:`RunRequest`, hand it to ``Backend.run`` with an
:class:`~dockyter.output.OutputSink`, and get a :class:`RunResult` back. They never know
which backend ran it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from ..output import OutputSink
from ..receipts import RunFacts
from ..wire.contract import DEFAULT_SHELL
from ..wire.dockerargs import RunArgs
from ..wire.images import LocalImages
from ..wire.outfolder import DEFAULT_LIMITS, Collected, FileLimits
from .settings import BackendSettings

# A SIGINT may be delivered to another thread of the kernel; Python then raises KeyboardInterrupt
# in the main thread only once it runs bytecode again: a backend waiting in the main thread
# never blocks longer than this at a time.
SIGNAL_CHECK = 0.2


@dataclass(frozen=True)
class RunRequest:
    """One command to run in one fresh container."""

    args: RunArgs  # docker options and image
    command: str  # the cell or the ! command: it reaches a shell only inside the container
    shell: tuple[str, ...] = DEFAULT_SHELL
    timeout: float | None = None  # seconds; None means no limit
    merge_stderr: bool = False  # stderr into stdout, as IPython's getoutput does
    files: FileLimits | None = DEFAULT_LIMITS  # $DOCKYTER_OUT, its files brought back within these; None: no folder
    stop: threading.Event | None = None  # set from another thread: stop the run as an interrupt does (--bg)

    @property
    def args_text(self) -> str:
        """The docker arguments and image as one shell-quoted string (the API's ``args``)."""
        return str(self.args)


@dataclass
class RunResult:
    """How a run ended."""

    exit_code: int
    reason: str | None = None  # "timeout", "interrupted", or a backend's own word; None: it just exited
    message: str | None = None  # what Dockyter or the server has to say about it, if anything
    files: Collected | None = None  # what the run left in $DOCKYTER_OUT (None: no folder, or not read)
    facts: RunFacts | None = None  # for its receipt: the image's digest, the argv, the runtime, the node


@dataclass
class BackendStatus:
    """What ``%docker_status`` shows about a backend."""

    name: str
    available: bool
    detail: str  # why not available, or what answered (e.g. "Docker Engine 27.1 via docker")
    facts: dict[str, str] = field(default_factory=dict)  # extra rows for the status table


class SessionHandle(Protocol):
    """A started session's container, as the backend drives it (see :mod:`dockyter.sessionmanager`)."""

    container: str  # what the listing shows: the container's name

    @property
    def alive(self) -> bool: ...

    def run(self, request: RunRequest, sink: OutputSink, stop_grace: float) -> RunResult:
        """Run ``request.command`` in the session; SessionDead when its shell is or goes away."""
        ...

    def death_reason(self) -> str: ...

    def way_in(self) -> str | None:
        """The command that opens a terminal in its container (``docker exec -it NAME bash``), when
        the container is on this machine; None otherwise."""
        ...

    def memory(self) -> str | None:
        """The memory its container uses now, as a listing shows it (``12.5MiB``); None when unknown."""
        ...

    def remove(self) -> str | None:
        """Stop it and remove its container; None when done, else why it may not be (one line)."""
        ...


class Backend(ABC):
    """Runs requests in containers. One instance per ``Dockyter`` backend choice.

    ``settings`` is typed (:mod:`dockyter.backends.settings`); with the ``Dockyter``
    configurable behind it, backends read its traits when they run, so ``%config`` changes
    apply to the next command without rebuilding anything.
    """

    name: ClassVar[str]
    # Whether containers it starts can outlive a dead kernel on this machine, for
    # %docker_cleanup to remove (a remote service removes its own).
    leaves_orphans: ClassVar[bool] = False

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        # What local_images() said last, refreshed in the background: for tab completion and
        # for knowing, without asking the engine, that an image needs no pull.
        self.images = LocalImages(self.local_images)

    @abstractmethod
    def run(self, request: RunRequest, sink: OutputSink) -> RunResult:
        """Run ``request``, streaming output into ``sink`` as it is produced.

        A ``KeyboardInterrupt`` during the run must stop the container before this returns
        a result with reason ``"interrupted"``; a timeout likewise with ``"timeout"``.
        """

    @abstractmethod
    def status(self) -> BackendStatus:
        """Check availability now (this may start a process or make a request)."""

    @abstractmethod
    def describe(self, request: RunRequest) -> str:
        """A copy-pasteable description of what ``run`` would do (a command line, a curl call)."""

    def cleanup(self) -> list[str]:
        """Remove containers left behind by dead kernels; return what was removed."""
        return []

    def open_session(self, name: str, args: RunArgs) -> SessionHandle:
        """Start session ``name``: a container that keeps its state from one command to the next."""
        from ..errors import BackendError

        raise BackendError(f"the {self.name} backend has no sessions")

    def as_me_userns(self) -> str | None:
        """The ``--userns`` that ``--as-me`` needs besides ``--user UID:GID`` on this backend; None for none."""
        return None

    def local_images(self) -> list[str] | None:
        """The images this backend has at hand, as ``repository:tag``; None when it cannot say.

        Slow (it may ask an engine): only the background cache of ``dockyter.wire.images`` calls it.
        """
        return None

    def prestart(self, request: RunRequest) -> None:  # noqa: B027 - only some backends prestart
        """Start a container for ``request``'s line now, ahead of its command, if this backend can."""

    def forget_prestarted(self) -> None:  # noqa: B027 - only some backends prestart
        """Let every prestarted container go (the settings changed)."""

    def prestart_rows(self, request: RunRequest | None) -> list[tuple[str, str]]:
        """``%docker_status``'s rows about prestarted containers; ``request``: what `!` would run."""
        return []

    def close(self) -> None:  # noqa: B027 - most backends hold nothing: closing them does nothing
        """Release whatever the backend holds (connections); called when it is replaced."""
