"""The magics: thin parsers over the :class:`~dockyter.core.Dockyter` configurable.

Each magic reads its line with its grammar table (:mod:`~dockyter.ipython.magiclines`, which
also gives it its docstring and ``--help``), asks the core, and shows what comes back. This is
the one place where Dockyter's own errors about bad input become IPython's ``UsageError``. The
settings, the backend and the run path live in the core (``%config Dockyter`` lists its traits).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from IPython.core import magic
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, magics_class
from IPython.display import display as _display
from traitlets import TraitError

from ..core import Dockyter, parse_args
from ..errors import BadUsage, say
from ..linechecks import eaten_backslashes
from ..runspec import cell_asker
from ..wire.dockerargs import DockerArgsError
from .cellline import parse_cell_line
from .expansion import expand_known
from .grammar import Grammar, Parsed
from .jobsmagic import jobs_command, start_job
from .magiclines import BACKEND, CELL, CLEANUP, CONFIG, JOBS, LINE, OFF, ON, PROFILE, SESSION, STATUS
from .sessionmagic import session_command
from .tables import Table


def display(table: Table) -> None:
    """Show a table: HTML in a notebook, text in a terminal (IPython's display, typed)."""
    show: Any = _display
    show(table)


F = TypeVar("F", bound=Callable[..., Any])


def line_magic(name: str | None = None) -> Callable[[F], F]:
    """IPython's ``@line_magic`` with a precise type (IPython's own returns a union)."""
    marker: Any = magic.line_magic
    return cast(Callable[[F], F], marker(name) if name else marker)


def cell_magic(func: F) -> F:
    """IPython's ``@cell_magic`` with a precise type."""
    marker: Any = magic.cell_magic
    return cast(F, marker(func))


def usage(grammar: Grammar) -> Callable[[F], F]:
    """The magic's docstring is its usage, generated from its grammar table (``%docker_session?``)."""

    def document(method: F) -> F:
        method.__doc__ = grammar.usage()
        return method

    return document


def read(grammar: Grammar, line: str, *more: Grammar) -> Parsed | None:
    """``line`` read with ``grammar``; what does not fit is one UsageError line. None when the line
    asks for ``--help``, which is printed (with the usage of the ``more`` grammars after it)."""
    with usage_errors(f"{grammar.magic}: "):
        parsed = grammar.parse(line)
    if not parsed.help:
        return parsed
    print(grammar.usage())
    for other in more:
        print(f"and for {other.magic}:\n")
        print(other.usage())
    return None


@contextmanager
def usage_errors(prefix: str = "") -> Iterator[None]:
    """Bad input found below the magics becomes one ``UsageError`` line."""
    try:
        yield
    except (BadUsage, DockerArgsError, TraitError) as error:
        raise UsageError(f"{prefix}{error}") from None


def _warn_about_backslashes(line: str) -> None:
    warning = eaten_backslashes(line)
    if warning:
        say(warning)


def _announcing(core: Dockyter, method: F) -> F:
    @functools.wraps(method)
    def magic(*args: Any, **kwargs: Any) -> Any:
        core.announcer.flush()
        return method(*args, **kwargs)

    magic.__self__ = getattr(method, "__self__", None)  # type: ignore[attr-defined]  # still looks bound
    return magic  # type: ignore[return-value]


@magics_class
class DockyterMagics(Magics):
    """``%%docker``, ``%docker`` and friends, over one :class:`Dockyter` core."""

    def __init__(self, shell: InteractiveShell, core: Dockyter) -> None:
        super().__init__(shell=shell)
        self.core = core
        # Every magic first says the loading problems nobody has seen yet (dockyter/announce.py).
        for table in self.magics.values():
            for name, method in table.items():
                table[name] = _announcing(core, method)

    # -- running ---------------------------------------------------------------------------------

    @cell_magic
    @usage(CELL)
    def docker(self, line: str, cell: str) -> None:
        line = self._expanded(line)
        _warn_about_backslashes(line)
        with usage_errors("%%docker: "):
            options = parse_cell_line(line)
        if options.help:
            print(CELL.usage())
            return
        core = self.core
        raises = options.raises(core.raise_on_error)
        if options.session is not None:
            with usage_errors():
                core.run(options.run_spec(cell, None), cell_asker(raises))
            return
        with usage_errors(), core.layers.one_cell(options.profile):  # --profile NAME: this cell only
            args = parse_args(options.docker_tokens) if options.docker_tokens else core.configured_args()
            if options.bg:
                start_job(core, options.run_spec(cell, args), options.proc, self.shell.user_ns if self.shell else {})
                return
            # Inside the profile's cell: it may set raise_on_error.
            core.run(options.run_spec(cell, args), cell_asker(options.raises(core.raise_on_error)))

    @line_magic("docker")
    @usage(LINE)
    def docker_line(self, line: str) -> None:
        core = self.core
        if not line.strip():
            self._say_configuration()
            return
        line = self._expanded(line)
        _warn_about_backslashes(line)
        parsed = read(LINE, line, CELL)  # also the answer to `%%docker --help` with an empty cell
        if parsed is None:
            return
        session = parsed.value("--session")
        if session is not None:
            self._bang_in_session(session)
            return
        with usage_errors():
            args = parse_args(parsed.docker)
        core.session = ""
        dropped = self._drop_profile()  # new arguments: the profile's other values go with it
        core.default_args = str(args)
        core.redirect = True
        print(f"Dockyter: `!` now runs in {args.image} ({core.backend} backend){dropped}; %docker_off to stop.")

    def _expanded(self, line: str) -> str:
        """The line as IPython would have expanded it, had one ``$NAME`` not stopped it (``$PWD``)."""
        return expand_known(line, self.shell.user_ns) if self.shell is not None else line

    def _bang_in_session(self, name: str) -> None:
        with usage_errors():
            session = self.core.sessions.get(name)  # an unknown name: one line, with "did you mean"
        self.core.session = name
        self.core.redirect = True
        print(f"Dockyter: `!` now runs in session {name!r} ({session.args.image}); %docker_off to stop.")

    def _say_configuration(self) -> None:
        core = self.core
        if not core.default_args:
            print("Dockyter: nothing configured. Use %docker [DOCKER ARGS...] IMAGE.")
            return
        state = "on" if core.redirect else "off (%docker_on to turn it on)"
        if core.session:
            print(f"Dockyter: `!` runs in session {core.session!r}; redirection {state}; backend {core.backend}.")
            return
        print(f"Dockyter: default_args = {core.default_args!r}; `!` redirection {state}; backend {core.backend}.")

    def _drop_profile(self) -> str:
        """Undo the active profile; a few words for the magic's line (empty if none was active)."""
        layers = self.core.layers
        active = layers.active_profile
        if active is None:
            return ""
        restored = [name for name in layers.drop_profile() if name != "redirect"]
        return f"; profile {active.name!r} dropped" + (f" ({', '.join(restored)} back as before)" if restored else "")

    @line_magic()
    @usage(ON)
    def docker_on(self, line: str) -> None:
        core = self.core
        if not core.default_args.strip() and not core.session:
            raise UsageError("nothing to turn on: first use %docker [DOCKER ARGS...] IMAGE")
        was = core.redirect
        core.redirect = True
        state = "already runs" if was else "now runs"
        where = f"session {core.session!r}" if core.session else parse_args(core.default_args).image
        print(f"Dockyter: `!` {state} in {where} ({core.backend} backend); %docker_off to stop.")

    @line_magic()
    @usage(OFF)
    def docker_off(self, line: str) -> None:
        was = self.core.redirect
        self.core.redirect = False
        dropped = self._drop_profile()
        state = "runs on this machine again" if was else "already runs on this machine"
        print(f"Dockyter: `!` {state}{dropped}; %docker_on to run it in containers.")

    @line_magic()
    @usage(SESSION)
    def docker_session(self, line: str) -> None:
        parsed = read(SESSION, self._expanded(line))
        if parsed is None:
            return
        with usage_errors("%docker_session: "):
            table = session_command(self.core, parsed)
        if table is not None:
            display(table)

    @line_magic()
    @usage(JOBS)
    def docker_jobs(self, line: str) -> None:
        parsed = read(JOBS, line)
        if parsed is None:
            return
        with usage_errors("%docker_jobs: "):
            table = jobs_command(self.core, parsed)
        if table is not None:
            display(table)

    # -- the backend -----------------------------------------------------------------------------

    @line_magic()
    @usage(BACKEND)
    def docker_backend(self, line: str) -> None:
        core = self.core
        parsed = read(BACKEND, line)
        if parsed is None:
            return
        name, url = parsed.words["NAME"], parsed.words.get("URL")
        with usage_errors():
            if name == "api":
                if url is None and not core.api_url:
                    raise UsageError("usage: %docker_backend api URL")
                if url is not None:
                    core.api_url = url
            elif url is not None:
                raise UsageError(f"%docker_backend {name} takes no further arguments")
            core.backend = name
        self._show_status()

    @line_magic()
    @usage(STATUS)
    def docker_status(self, line: str) -> None:
        self._show_status()

    def _show_status(self) -> None:
        display(Table("Dockyter status", self.core.status_rows()))

    @line_magic()
    @usage(CLEANUP)
    def docker_cleanup(self, line: str) -> None:
        core = self.core
        if not core.cleans_up_here():
            print(f"Dockyter: the {core.backend} backend's service removes its own containers; nothing to clean here.")
            return
        removed = core.active_backend.cleanup()
        if removed:
            print(f"Dockyter: removed {len(removed)} container(s) left by dead kernels: {', '.join(removed)}")
        else:
            print("Dockyter: no containers left by dead kernels.")

    # -- configuration: dockyter.toml and its profiles (dockyter/layers.py) ----------------------

    @line_magic()
    @usage(PROFILE)
    def docker_profile(self, line: str) -> None:
        layers = self.core.layers
        parsed = read(PROFILE, line)
        if parsed is None:
            return
        name = parsed.words.get("NAME")
        if name == "--off":
            was = self.core.redirect
            dropped = self._drop_profile()
            print(
                f"Dockyter: {dropped[2:]}; {self._where_bang_runs(was)}."
                if dropped
                else "Dockyter: no profile is active."
            )
            return
        if name is not None and name.startswith("-"):
            close = difflib.get_close_matches(name, ["--off", "--help"], n=1)
            hint = f": did you mean {close[0]}?" if close else f"; usage: {PROFILE.forms()[0][0]}"
            raise UsageError(f"%docker_profile: unknown option {name!r}{hint}")
        if name is None:
            rows = layers.profile_rows()
            if rows:
                display(Table(f"Profiles in {layers.file_label()}", rows))
            else:
                print(f"Dockyter: no profiles; define them under [profiles] in dockyter.toml ({layers.file_label()})")
            return
        with usage_errors():
            profile = layers.use_profile(name)
            self.core.session = ""  # `!` follows the profile's arguments, not a session
            image = parse_args(profile.args).image
        print(
            f"Dockyter: profile {name!r}: `!` now runs in {image} ({self.core.backend} backend); %docker_off to stop."
        )

    def _where_bang_runs(self, was_redirected: bool) -> str:
        """Where `!` runs now that a profile is gone: in containers again, or on this machine."""
        core = self.core
        if core.redirect:
            where = f"session {core.session!r}" if core.session else parse_args(core.default_args).image
            return f"`!` runs in {where}"
        again = " again" if was_redirected else ""
        if core.default_args.strip() or core.session:
            return f"`!` runs on this machine{again}; %docker_on to run it in containers"
        return f"`!` runs on this machine{again}"

    @line_magic()
    @usage(CONFIG)
    def docker_config(self, line: str) -> None:
        layers = self.core.layers
        parsed = read(CONFIG, line)
        if parsed is None:
            return
        if parsed.verb == "reload":
            changed, kept = layers.reload()
            kept_words = f"; kept run-time values of {', '.join(kept)}" if kept else ""
            print(f"Dockyter: read {layers.file_label()}; changed: {', '.join(changed) or 'nothing'}{kept_words}")
        else:
            display(Table("Dockyter configuration", layers.rows()))
