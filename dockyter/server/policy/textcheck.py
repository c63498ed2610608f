"""What text from a request may hold before anything reads it: one check for every text field.

Other programs read what a user sends: CPython's ``csv``, the docker CLI's flag parser and its
CSV reader, the engine, log readers. They disagree about line breaks and other control
characters (a ``\\n`` that one writer leaves unquoted ends another reader's record), so none
reaches them. Every text field of every request body is checked here, before any parsing:

* no text may hold a NUL character or a lone surrogate: no process argument can carry them;
* no text but the command may hold a control character: C0 (U+0000-U+001F), DEL (U+007F),
  C1 (U+0080-U+009F), or the Unicode line and paragraph separators (U+2028, U+2029). The
  command (``cmd``) is a script for the shell inside the container, where newlines are its
  business.

``args`` is checked token by token, after splitting it like a shell would (which is not yet
option parsing), so that a refusal names the argument that holds the character.
"""

from __future__ import annotations

import re
import shlex

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMES = {
    "\x00": "NUL",
    "\t": "tab",
    "\n": "line feed",
    "\x0b": "vertical tab",
    "\x0c": "form feed",
    "\r": "carriage return",
    "\x1b": "escape",
    "\x7f": "delete",
    "\x85": "next line",
    "\u2028": "line separator",
    "\u2029": "paragraph separator",
}
SHOWN_LENGTH = 80  # characters of an argument quoted in a refusal


def character(char: str) -> str:
    """``U+000A (line feed)``: a character named so that every reader sees which one."""
    name = _NAMES.get(char, "a control character")
    return f"U+{ord(char):04X} ({name})"


def shown(text: str, around: int = 0) -> str:
    """``text`` quoted on one line, every unusual character escaped; when long, the part near ``around``."""
    if len(text) <= SHOWN_LENGTH:
        return repr(text)
    start = max(0, min(around - SHOWN_LENGTH // 2, len(text) - SHOWN_LENGTH))
    part = repr(text[start : start + SHOWN_LENGTH])
    return ("..." if start else "") + part + ("..." if start + SHOWN_LENGTH < len(text) else "")


def unsendable(text: str) -> str | None:
    """Why no process argument can hold ``text`` (a NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "contains a NUL character, which no process argument can hold"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid Unicode text"
    return None


def command_problem(text: str) -> str | None:
    """What is wrong with the command (``cmd``): only what no process can receive."""
    return unsendable(text)


def text_problem(text: str) -> str | None:
    """What is wrong with any other text field, or None."""
    problem = unsendable(text)
    if problem:
        return problem
    found = CONTROL.search(text)
    if found:
        return f"contains {character(found.group())}: no control character is accepted here"
    return None


def args_problem(args: str) -> str | None:
    """What is wrong with ``args``; a control character is reported with the argument holding it."""
    problem = unsendable(args)
    if problem:
        return problem
    found = CONTROL.search(args)
    if not found:
        return None
    try:
        tokens = shlex.split(args)
    except ValueError:  # unbalanced quotes: no argument to name
        return f"contains {character(found.group())}: no argument may hold a control character"
    for token in tokens:
        problem = token_problem(token)
        if problem:
            return problem
    return f"contains {character(found.group())} between two arguments: separate arguments with spaces"


def token_problem(token: str) -> str | None:
    """Why one argument of ``args`` may not reach the engine, naming it, or None."""
    found = CONTROL.search(token)
    if found:
        where = shown(token, found.start())
        return f"contains {character(found.group())} in the argument {where}: no argument may hold a control character"
    return None
