"""``%docker_session``'s verbs: list, start, stop and restart sessions (the work is in :mod:`dockyter.sessionmanager`)."""

from __future__ import annotations

from ..core import Dockyter, parse_args
from ..sessionmanager import COLUMNS
from .grammar import Parsed
from .tables import Table


def session_command(core: Dockyter, parsed: Parsed) -> Table | None:
    """Carry out a ``%docker_session`` line read by its grammar; a table to show, or None (it printed what it did)."""
    if parsed.verb is None:
        rows = core.session_rows()
        if not rows:
            print("Dockyter: no sessions; start one with %docker_session start NAME IMAGE")
            return None
        return Table("Dockyter sessions", rows, columns=COLUMNS)
    name = parsed.words["NAME"]
    if parsed.verb == "start":
        args = parse_args(parsed.docker)
        core.sessions.check_name(name)
        session = core.sessions.start(name, args)
        assert session.shell is not None  # started
        print(
            f"Dockyter: session {name!r} started ({args.image}, container {session.shell.container}); "
            f"use it with %%docker --session {name}"
        )
    elif parsed.verb == "stop":
        _stop(core, name)
    else:  # restart
        session = core.sessions.restart(name)
        print(
            f"Dockyter: session {name!r} restarted: a fresh container from {session.args.image} "
            "(files and shell state start over)"
        )
    return None


def _stop(core: Dockyter, name: str) -> None:
    if name == "--all":
        stopped = core.stop_all_sessions()
        if core.session in stopped:
            core.session = ""
            core.redirect = False
        print(f"Dockyter: stopped {len(stopped)} session(s){': ' + ', '.join(stopped) if stopped else ''}")
        return
    core.sessions.stop(name)
    if core.session == name and core.redirect:  # `!` no longer has anywhere to run
        core.redirect = False
        print(f"Dockyter: session {name!r} stopped; `!` runs on the host again")
    else:
        print(f"Dockyter: session {name!r} stopped")
    if core.session == name:
        core.session = ""
