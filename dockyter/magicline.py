"""Splitting a ``%%docker`` line into Dockyter's own options and the docker arguments.

Dockyter's options come first; none of them is also a ``docker run`` flag, so
``%%docker --timeout 5 -v /d:/d img`` is unambiguous. ``--`` ends Dockyter's options
explicitly when needed: ``%%docker --out log -- -e X=1 img``.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field

from .dockerargs import DockerArgsError, split_line

VALUE_OPTIONS = ("--timeout", "--out", "--err", "--profile")
SWITCHES = ("--no-raise-error", "--raise-error")


@dataclass
class CellOptions:
    """What the ``%%docker`` line asks for besides the docker arguments."""

    raise_on_error: bool | None = None  # None: use Dockyter.raise_on_error
    timeout: float | None = None  # None: use Dockyter.timeout
    out: str | None = None  # capture stdout into this variable
    err: str | None = None  # capture stderr into this variable
    profile: str | None = None
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
        if token in SWITCHES:
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
    return options


def _apply(options: CellOptions, name: str, value: str) -> None:
    if name == "--timeout":
        options.timeout = parse_timeout(value)
    elif name in ("--out", "--err"):
        if not value.isidentifier() or keyword.iskeyword(value):
            raise DockerArgsError(f"{name} needs a Python variable name, not {value!r}")
        setattr(options, name[2:], value)
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
