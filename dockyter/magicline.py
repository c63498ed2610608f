"""Splitting a ``%%docker`` line into Dockyter's own options and the docker arguments.

Dockyter's options come first; none of them is also a ``docker run`` flag, so
``%%docker --timeout 5 -v /d:/d img`` is unambiguous. ``--`` ends Dockyter's options
explicitly when needed: ``%%docker --out log -- -e X=1 img``.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field

from .dockerargs import DockerArgsError, split_line


@dataclass(frozen=True)
class Option:
    """One of Dockyter's own ``%%docker`` options: the one declaration parsing and ``--help`` use."""

    name: str
    metavar: str | None  # None: a switch
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("--no-raise-error", None, "do not raise CalledProcessError on a non-zero exit"),
    Option("--raise-error", None, "raise even if Dockyter.raise_on_error is off"),
    Option("--timeout", "SECONDS", "stop the container after this long (exit status 124)"),
    Option("--out", "VAR", "also store stdout in the variable VAR"),
    Option("--err", "VAR", "also store stderr in the variable VAR"),
    Option(
        "--profile",
        "NAME",
        "run this cell with a dockyter.toml profile (its arguments and overrides; %docker_profile lists them)",
    ),
    Option(
        "--session",
        "NAME",
        "run the cell in the running container of session NAME, which keeps its state "
        "(%docker_session start NAME IMAGE starts one)",
    ),
    Option("--help", None, "show this help and run nothing"),
)
VALUE_OPTIONS = tuple(option.name for option in OPTIONS if option.metavar)
SWITCHES = tuple(option.name for option in OPTIONS if not option.metavar)


@dataclass
class CellOptions:
    """What the ``%%docker`` line asks for besides the docker arguments."""

    raise_on_error: bool | None = None  # None: use Dockyter.raise_on_error
    timeout: float | None = None  # None: use Dockyter.timeout
    out: str | None = None  # capture stdout into this variable
    err: str | None = None  # capture stderr into this variable
    profile: str | None = None
    session: str | None = None  # run in this session's container
    help: bool = False  # --help: show the usage, run nothing
    docker_tokens: list[str] = field(default_factory=list)


def parse_cell_line(line: str) -> CellOptions:
    """Parse ``[DOCKYTER OPTIONS] [--] [DOCKER ARGS...] [IMAGE]``; raises DockerArgsError."""
    tokens = split_line(line, comments=True)  # `%%docker img  # note` as in a shell
    options = CellOptions()
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if token == "--":
            position += 1
            break
        name, has_value, inline = token.partition("=")
        if token == "--help":
            options.help = True
            position += 1
        elif token in SWITCHES:
            options.raise_on_error = token == "--raise-error"
            position += 1
        elif name in VALUE_OPTIONS:
            if has_value:
                value, position = inline, position + 1
            elif position + 1 < len(tokens):
                value, position = tokens[position + 1], position + 2
            else:
                raise DockerArgsError(f"{name} needs a value")
            _apply(options, name, value)
        else:
            break
    options.docker_tokens = tokens[position:]
    if options.profile is not None and options.docker_tokens:
        raise DockerArgsError("--profile NAME replaces the docker arguments: give one or the other")
    if options.session is not None and (options.docker_tokens or options.profile is not None):
        raise DockerArgsError(
            "--session NAME runs in the session's container, which has its arguments already: "
            "give no docker arguments or profile with it"
        )
    return options


def _apply(options: CellOptions, name: str, value: str) -> None:
    if name == "--timeout":
        options.timeout = parse_timeout(value)
    elif name in ("--out", "--err"):
        if not value.isidentifier() or keyword.iskeyword(value):
            raise DockerArgsError(f"{name} needs a Python variable name, not {value!r}")
        setattr(options, name[2:], value)
    elif name == "--session":
        options.session = value
    else:
        options.profile = value


def parse_timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise DockerArgsError(f"--timeout needs a number of seconds, not {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise DockerArgsError(f"--timeout must be a positive number of seconds, not {value!r}")
    return seconds
