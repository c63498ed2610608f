"""``%docker_session``: start, list, stop and restart sessions (the work is in :mod:`dockyter.sessionmanager`)."""

from __future__ import annotations

from ..core import Dockyter, parse_args
from ..errors import BadUsage
from ..sessionmanager import COLUMNS
from ..wire.dockerargs import split_line
from .tables import Table

SESSION_USAGE = """\
usage: %docker_session                                   list the sessions
       %docker_session start NAME [DOCKER ARGS...] IMAGE  start a session
       %docker_session stop NAME | --all                  stop one, or every one
       %docker_session restart NAME                       a fresh container, same arguments

A session is a container that stays up between cells, with one bash in it: files, installed
packages, background processes, the working directory, exported variables, shell functions
and an activated virtualenv carry from one cell to the next, as in a terminal.

    %%docker --session NAME     runs a cell in it
    %docker --session NAME      makes `!cmd`, `x = !cmd`, `!!cmd` and %sx run in it

Interrupting a cell stops its command (SIGINT, then SIGKILL after Dockyter.stop_grace) and
keeps the session. Sessions idle for Dockyter.session_idle_timeout seconds are stopped
(0: never); %unload_ext, the kernel's shutdown and `stop --all` remove them all.
"""


def session_command(core: Dockyter, line: str) -> Table | None:
    """Carry out one ``%docker_session`` line; a table to show, or None (it printed what it did)."""
    words = split_line(line, comments=True)
    if not words:
        rows = core.sessions.rows() if core._sessions is not None else []
        if not rows:
            print("Dockyter: no sessions; start one with %docker_session start NAME IMAGE")
            return None
        return Table("Dockyter sessions", rows, columns=COLUMNS)
    action, rest = words[0], words[1:]
    if action in ("--help", "help"):
        print(SESSION_USAGE)
        return None
    if action == "start":
        if len(rest) < 2:
            raise BadUsage("usage: %docker_session start NAME [DOCKER ARGS...] IMAGE")
        name, args = rest[0], parse_args(rest[1:])
        core.sessions.check_name(name)
        session = core.sessions.start(name, args)
        assert session.shell is not None  # started
        print(
            f"Dockyter: session {name!r} started ({args.image}, container {session.shell.container}); "
            f"use it with %%docker --session {name}"
        )
        return None
    if action == "stop":
        if rest == ["--all"]:
            stopped = core.sessions.stop_all() if core._sessions is not None else []
            if core.session in stopped:
                core.session = ""
                core.redirect = False
            print(f"Dockyter: stopped {len(stopped)} session(s){': ' + ', '.join(stopped) if stopped else ''}")
            return None
        if len(rest) != 1:
            raise BadUsage("usage: %docker_session stop NAME | --all")
        core.sessions.stop(rest[0])
        if core.session == rest[0] and core.redirect:  # `!` no longer has anywhere to run
            core.redirect = False
            print(f"Dockyter: session {rest[0]!r} stopped; `!` runs on the host again")
        else:
            print(f"Dockyter: session {rest[0]!r} stopped")
        if core.session == rest[0]:
            core.session = ""
        return None
    if action == "restart":
        if len(rest) != 1:
            raise BadUsage("usage: %docker_session restart NAME")
        session = core.sessions.restart(rest[0])
        print(
            f"Dockyter: session {rest[0]!r} restarted: a fresh container from {session.args.image} "
            "(files and shell state start over)"
        )
        return None
    raise BadUsage(f"unknown %docker_session action {action!r}: use start, stop, restart, or nothing to list")
