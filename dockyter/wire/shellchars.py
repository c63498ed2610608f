"""How a POSIX shell reads each character of a line: plain, quoted, escaped, or a quote itself.

One scanner for the readers that need more than :func:`shlex.split`'s words:
:func:`dockyter.wire.dockerargs.strip_comment` (a ``#`` that starts an unquoted word ends the
line) and :func:`dockyter.linechecks.eaten_backslashes` (a backslash outside quotes, which the
split removes). It reads quotes and backslashes as ``shlex.split`` does in POSIX mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, NamedTuple

Role = Literal["plain", "quote", "escape", "escaped", "quoted"]
# What a backslash escapes inside double quotes for shlex, which splits Dockyter's lines (bash
# also escapes $ and ` there); before anything else it is a plain backslash.
ESCAPED_IN_DOUBLE_QUOTES = ('"', "\\")


class ShellChar(NamedTuple):
    at: int  # its index in the line
    char: str
    role: Role


def shell_chars(line: str) -> Iterator[ShellChar]:
    """Each character of ``line`` with its role:

    ``plain``    outside quotes and not escaped: part of a word, a space between words, a ``#``
    ``quote``    a quote that opens or closes a quoted part
    ``escape``   a backslash that escapes the next character (and is removed by a split)
    ``escaped``  the character after an ``escape`` outside quotes: kept as it is
    ``quoted``   inside quotes (an escaped one too)
    """
    quote: str | None = None
    escaping = False
    for index, char in enumerate(line):
        if escaping:
            escaping = False
            yield ShellChar(index, char, "quoted" if quote else "escaped")
        elif quote:
            if char == quote:
                quote = None
                yield ShellChar(index, char, "quote")
            elif char == "\\" and quote == '"' and line[index + 1 : index + 2] in ESCAPED_IN_DOUBLE_QUOTES:
                escaping = True
                yield ShellChar(index, char, "escape")
            else:
                yield ShellChar(index, char, "quoted")
        elif char == "\\":
            escaping = True
            yield ShellChar(index, char, "escape")
        elif char in "'\"":
            quote = char
            yield ShellChar(index, char, "quote")
        else:
            yield ShellChar(index, char, "plain")
