"""``%docker_session``'s verbs: list, start, stop and restart sessions (the work is in :mod:`dockyter.sessionmanager`)."""

from __future__ import annotations

from ..core import Dockyter, parse_args
from ..errors import BadSessionRequest
from ..sessionmanager import COLUMNS, Session
from ..shorthands import with_shorthands
from .cellline import docker_flags_of
from .grammar import Parsed
from .magiclines import CELL
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
        core.sessions.check_name(name)
        _refuse_cell_options(name, parsed.docker)
        given = {option.name for option, _ in parsed.given}
        args = with_shorthands(
            parse_args(parsed.docker), here="--here" in given or core.here, as_me="--as-me" in given or core.as_me
        )
        session = core.sessions.start(name, args)
        print(
            f"Dockyter: session {name!r} started ({args.image}, container {_container(session)}); "
            f"use it with %%docker --session {name}{_way_in(session)}"
        )
    elif parsed.verb == "stop":
        _stop(core, name)
    else:  # restart
        session, unsure = core.sessions.restart(name)
        if unsure:
            print(f"Dockyter: session {name!r}: its old container was not stopped: {unsure}")
        print(
            f"Dockyter: session {name!r} restarted: a fresh container from {session.args.image} "
            f"(files and shell state start over){_way_in(session)}"
        )
    return None


def _refuse_cell_options(name: str, tokens: list[str]) -> None:
    """A ``%%docker`` option on ``start`` (``--timeout=5``) is one line saying where it goes."""
    per_cell = {option.name for option in CELL.options} - {"--here", "--as-me", "--help", "--session"}
    for flag in docker_flags_of(tokens):
        if flag in ("--here", "--as-me"):
            raise BadSessionRequest(f"{flag} is an option of start: put it before the docker arguments")
        if flag in per_cell:
            at = next(index for index, token in enumerate(tokens) if token.partition("=")[0] == flag)
            option = CELL.option(flag)
            takes_value = option is not None and option.metavar is not None and "=" not in tokens[at]
            written = " ".join(tokens[at : at + 2] if takes_value else tokens[at : at + 1])
            raise BadSessionRequest(
                f"{flag} is a %%docker option, for each cell run in the session: %%docker --session {name} {written}; "
                "%docker_session start takes --here, --as-me and docker run's options"
            )


def _container(session: Session) -> str:
    assert session.shell is not None  # started
    return session.shell.container


def _way_in(session: Session) -> str:
    """``; a terminal in it: docker exec -it NAME bash`` where the session's container is on this machine."""
    command = session.shell.way_in() if session.shell is not None else None
    return f"; a terminal in it: {command}" if command else ""


def _stop(core: Dockyter, name: str) -> None:
    """Stop one session or all; "stopped" is said only of those whose container is surely gone."""
    if name == "--all":
        ended = core.stop_all_sessions()
        stopped = [each for each, unsure in ended.items() if unsure is None]
        print(f"Dockyter: stopped {len(stopped)} session(s){': ' + ', '.join(stopped) if stopped else ''}")
        for each, unsure in ended.items():
            if unsure is not None:
                print(f"Dockyter: session {each!r} forgotten here, not stopped: {unsure}")
        if core.session in ended:
            core.session = ""
            core.redirect = False
        return
    unsure = core.sessions.stop(name)
    said = f"session {name!r} stopped" if unsure is None else f"session {name!r} forgotten here, not stopped: {unsure}"
    if core.session == name and core.redirect:  # `!` no longer has anywhere to run
        core.redirect = False
        print(f"Dockyter: {said}; `!` runs on the host again")
    else:
        print(f"Dockyter: {said}")
    if core.session == name:
        core.session = ""
