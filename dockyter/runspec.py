"""What one run asks for, and who asks: the two values the core's one run path takes.

A ``%%docker`` cell, a ``%%docker --session`` cell and a ``!`` command differ only in these:
the magics and the ``!`` redirection build a :class:`RunSpec` and an :class:`Asker`, and
:meth:`dockyter.core.Dockyter.run` carries them out and returns a :class:`Ran`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .backends.base import RunResult
from .output import OutputSink, Stream
from .wire.dockerargs import RunArgs


@dataclass(frozen=True)
class RunSpec:
    """One command to run, where, and what becomes of its output."""

    command: str  # the cell or the `!` command: it reaches a shell only inside the container
    args: RunArgs | None = None  # docker arguments and image; None: Dockyter.default_args
    session: str | None = None  # run in this session's running container instead of a fresh one
    timeout: float | None = None  # seconds; None: Dockyter.timeout (0 there: no limit)
    here: bool = False  # --here for this run (Dockyter.here applies anyway)
    as_me: bool = False  # --as-me for this run (Dockyter.as_me applies anyway)
    merge_stderr: bool = False  # stderr into stdout, in the container (a captured `!`, as IPython's getoutput)
    show: bool = True  # write the output to the cell as it arrives
    capture: bool = False  # keep the output's text (a captured `!`)
    store: Mapping[str, Stream] = field(default_factory=dict)  # variable -> the stream stored in it (--out, --err)
    hide: frozenset[Stream] = frozenset()  # streams captured instead of shown (--out/--err without --tee)
    written: str | None = None  # the command as the user typed it, for the CalledProcessError of a `!`

    def sink(self, limit: int | None = None) -> OutputSink:
        """Where the output goes: shown live (at most ``limit`` bytes), captured, or both."""
        return OutputSink(show=self.show, capture=self.capture or bool(self.store), hide=self.hide, limit=limit)


@dataclass(frozen=True)
class Asker:
    """Who asked for a run, and so what a failure becomes for them."""

    raise_errors: bool  # a run that cannot start: raise (a cell) or say it and go on (`!`)
    raise_exit: bool  # a non-zero exit: raise, or only say its hint
    status_in_hint: bool  # the hint of a non-zero exit starts "exit status N:"


def cell_asker(raise_on_error: bool) -> Asker:
    return Asker(raise_errors=True, raise_exit=raise_on_error, status_in_hint=True)


def bang_asker(raise_on_error: bool) -> Asker:
    return Asker(raise_errors=False, raise_exit=raise_on_error, status_in_hint=False)


@dataclass
class Ran:
    """A finished run: how it ended and its output sink (captured text, stderr tail)."""

    result: RunResult
    sink: OutputSink
