"""The magics: thin parsers over the :class:`~dockyter.core.Dockyter` configurable.

Each magic parses its line, asks the core, and shows what comes back. This is the one place
where Dockyter's own errors about bad input become IPython's ``UsageError``. The settings, the
backend and the run path live in the core (``%config Dockyter`` lists its traits).
"""

from __future__ import annotations

import argparse
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

from ..backends.registry import known_backends
from ..core import Dockyter, parse_args
from ..errors import BadUsage, say
from ..linechecks import eaten_backslashes
from ..runspec import cell_asker
from ..wire.dockerargs import DockerArgsError, split_line
from .cellline import OPTIONS, CellOptions, parse_cell_line
from .sessionmagic import SESSION_USAGE, session_command
from .tables import Table

__all__ = ["Dockyter", "DockyterMagics"]


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


CELL_DESCRIPTION = """\
Run the cell in one fresh container.

The whole cell runs through `bash -lc` (Dockyter.shell) in one container, so cd,
variables, loops and heredocs carry from line to line. Output streams live; stderr is
shown as stderr. With no arguments, Dockyter.default_args is used. Dockyter's options
come before the docker arguments; `--` ends them. Docker's own flags pass untouched.
"""

CELL_EPILOG = """\
After the run, `_exit_code` holds the exit status (124: timed out, 130: interrupted).
Interrupting the kernel stops and removes the container.

`$name` and `{expression}` on the magic line expand from Python, as on any
IPython magic line; the cell itself reaches the container's shell untouched.

Example:

    %%docker -v {project_dir}:/work -w /work python:3.12
    python --version
    ls
"""


def cell_usage() -> str:
    """The ``%%docker`` usage, generated from the option table of :mod:`dockyter.ipython.cellline`."""
    # argparse formats usage and help with %: a literal % is written %%.
    parser = argparse.ArgumentParser(
        prog="%%docker",
        usage="%%%%docker [OPTIONS] [--] [DOCKER ARGS...] [IMAGE]",
        description=CELL_DESCRIPTION,
        epilog=CELL_EPILOG,
        # a fixed width: the same text in every terminal, notebook and docstring
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, width=92),
        add_help=False,
    )
    group = parser.add_argument_group("options")
    for option in OPTIONS:
        if option.metavar:
            group.add_argument(option.name, metavar=option.metavar, help=option.help.replace("%", "%%"))
        else:
            group.add_argument(option.name, action="store_true", help=option.help.replace("%", "%%"))
    parser.add_argument("docker", nargs="*", metavar="DOCKER ARGS... IMAGE", help="as after `docker run`")
    return parser.format_help()


LINE_USAGE = """\
usage: %docker [DOCKER ARGS...] IMAGE
       %docker --session NAME

Run every later `!cmd` in a fresh container (or in session NAME's running container).

Stores the arguments in Dockyter.default_args and turns redirection on, so `!cmd`,
`x = !cmd`, `!!cmd` and `%sx cmd` run in containers. `%docker_off` restores the normal
`!`; `%docker_on` brings the containers back. Without arguments, says what is configured.
"""


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
    def docker(self, line: str, cell: str) -> None:
        _warn_about_backslashes(line)
        with usage_errors("%%docker: "):
            options = parse_cell_line(line)
        if options.help:
            print(cell_usage())
            return
        if options.session is not None:
            self._cell_in_session(options, cell)
            return
        core = self.core
        with usage_errors(), core.layers.one_cell(options.profile):  # --profile NAME: this cell only
            args = parse_args(options.docker_tokens) if options.docker_tokens else core.configured_args()
            # Inside the profile's cell: it may set raise_on_error.
            core.run(options.run_spec(cell, args), cell_asker(options.raises(core.raise_on_error)))

    def _cell_in_session(self, options: CellOptions, cell: str) -> None:
        core = self.core
        with usage_errors():
            core.run(options.run_spec(cell, None), cell_asker(options.raises(core.raise_on_error)))

    docker.__doc__ = cell_usage()

    @line_magic("docker")
    def docker_line(self, line: str) -> None:
        core = self.core
        if not line.strip():
            self._say_configuration()
            return
        if line.split() == ["--help"]:  # also the answer to `%%docker --help` with an empty cell
            print(LINE_USAGE)
            print("and for a whole cell:\n")
            print(cell_usage())
            return
        _warn_about_backslashes(line)
        with usage_errors("%docker: "):
            words = split_line(line, comments=True)
        if words and (words[0] == "--session" or words[0].startswith("--session=")):
            self._bang_in_session(words)
            return
        with usage_errors():
            args = parse_args(line)
        core.session = ""
        dropped = self._drop_profile()  # new arguments: the profile's other values go with it
        core.default_args = str(args)
        core.redirect = True
        print(f"Dockyter: `!` now runs in {args.image} ({core.backend} backend){dropped}; %docker_off to stop.")

    def _bang_in_session(self, words: list[str]) -> None:
        name = words[0].partition("=")[2] if "=" in words[0] else (words[1] if len(words) > 1 else "")
        rest = words[1:] if "=" in words[0] else words[2:]
        if not name or rest:
            raise UsageError("usage: %docker --session NAME")
        with usage_errors():
            session = self.core.sessions.get(name)  # an unknown name: one line, with "did you mean"
        self.core.session = name
        self.core.redirect = True
        print(f"Dockyter: `!` now runs in session {name!r} ({session.args.image}); %docker_off to stop.")

    docker_line.__doc__ = LINE_USAGE

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
    def docker_on(self, line: str) -> None:
        """Run ``!`` commands in containers again, with the last arguments given to %docker."""
        core = self.core
        if not core.default_args.strip() and not core.session:
            raise UsageError("nothing to turn on: first use %docker [DOCKER ARGS...] IMAGE")
        was = core.redirect
        core.redirect = True
        state = "already runs" if was else "now runs"
        where = f"session {core.session!r}" if core.session else parse_args(core.default_args).image
        print(f"Dockyter: `!` {state} in {where} ({core.backend} backend); %docker_off to stop.")

    @line_magic()
    def docker_off(self, line: str) -> None:
        """Restore IPython's own ``!`` behaviour and drop the active profile (the arguments are kept for %docker_on)."""
        was = self.core.redirect
        self.core.redirect = False
        dropped = self._drop_profile()
        state = "runs on this machine again" if was else "already runs on this machine"
        print(f"Dockyter: `!` {state}{dropped}; %docker_on to run it in containers.")

    @line_magic()
    def docker_session(self, line: str) -> None:
        with usage_errors("%docker_session: "):
            table = session_command(self.core, line)
        if table is not None:
            display(table)

    docker_session.__doc__ = SESSION_USAGE

    # -- the backend -----------------------------------------------------------------------------

    @line_magic()
    def docker_backend(self, line: str) -> None:
        """Choose the backend: ``%docker_backend docker`` or ``%docker_backend api URL``, then show the status."""
        core = self.core
        with usage_errors("%docker_backend: "):
            words = split_line(line, comments=True)
        if not words:
            raise UsageError(f"usage: %docker_backend {{{'|'.join(known_backends())}}} [URL]")
        name, rest = words[0], words[1:]
        with usage_errors():
            if name == "api":
                if len(rest) > 1 or (not rest and not core.api_url):
                    raise UsageError("usage: %docker_backend api URL")
                if rest:
                    core.api_url = rest[0]
            elif rest:
                raise UsageError(f"%docker_backend {name} takes no further arguments")
            core.backend = name
        self._show_status()

    @line_magic()
    def docker_status(self, line: str) -> None:
        """Show the backend, whether it is available and why not, the configured image and arguments,
        whether ``!`` is redirected, and the exact command a cell would run."""
        self._show_status()

    def _show_status(self) -> None:
        display(Table("Dockyter status", self.core.status_rows()))

    @line_magic()
    def docker_cleanup(self, line: str) -> None:
        """Remove Dockyter containers left running by kernels that died (and nothing else)."""
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
    def docker_profile(self, line: str) -> None:
        """Apply a dockyter.toml profile for later ``!`` commands: ``%docker_profile NAME``.

        Like ``%docker ARGS IMAGE`` with the profile's arguments: sets Dockyter.default_args and
        the traits the profile overrides (shell, timeout, backend...), and turns redirection on.
        Another profile replaces it, with all its overrides. ``%docker_profile --off`` (and
        ``%docker_off``) drops it: every value it set goes back to what it was before, unless
        changed since. Without a name, lists the profiles and what each sets.
        """
        layers = self.core.layers
        name = line.strip()
        if name == "--off":
            dropped = self._drop_profile()
            print(f"Dockyter: {dropped[2:]}." if dropped else "Dockyter: no profile is active.")
            return
        if not name:
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

    @line_magic()
    def docker_config(self, line: str) -> None:
        """Show the dockyter.toml read and where each value came from; ``%docker_config reload`` re-reads it.

        Layers, lowest first: default < ipython_config.py < dockyter.toml < run time. A reload
        keeps every value changed at run time in this kernel (%config, %docker, %docker_profile...)
        and recomputes the others, so a value removed from the file falls back to the layers below.
        """
        layers = self.core.layers
        action = line.strip()
        if action == "reload":
            changed, kept = layers.reload()
            kept_words = f"; kept run-time values of {', '.join(kept)}" if kept else ""
            print(f"Dockyter: read {layers.file_label()}; changed: {', '.join(changed) or 'nothing'}{kept_words}")
        elif action:
            raise UsageError("usage: %docker_config [reload]")
        else:
            display(Table("Dockyter configuration", layers.rows()))
