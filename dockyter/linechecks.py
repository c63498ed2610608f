"""Two habits from a terminal that a magic line turns into surprises, caught with one line each.

* ``-v $PWD:/work``: IPython expands ``$name`` on a magic line from *Python* variables, and
  leaves ``$PWD`` as it is when no Python variable has that name; docker then refuses the
  volume. Refused here, saying so, with what to write instead; so is an image written
  ``$IMAGE`` that no Python variable names.
* ``-v C:\\Users\\me\\data:/data``: the line is split as a POSIX shell would, so an unquoted
  backslash escapes the next character and disappears (``C:Usersmedata``). Said as a warning;
  quoting keeps the backslashes.
"""

from __future__ import annotations

import re
import shlex

from .wire.dockerargs import RunArgs
from .wire.shellchars import shell_chars

UNEXPANDED = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
# Options whose value names something on the host: a literal $NAME there is never meant.
HOST_VALUES = ("--volume", "--mount", "--workdir", "--env-file", "--label-file")


def unexpanded_variable(args: RunArgs) -> str | None:
    """One line about a ``$NAME`` left in a host path of ``args``, or None."""
    for option in args.options:
        if option.name in HOST_VALUES and option.value and (found := UNEXPANDED.search(option.value)):
            return _not_expanded(found.group(1), " ".join(option.written))
    return None


def unexpanded_in(text: str) -> str | None:
    """One line about the first ``$NAME`` in ``text`` (a message quoting what docker's arguments
    could not use, such as ``'$IMAGE' is not a valid image reference``), or None."""
    found = UNEXPANDED.search(text)
    if found is None:
        return None
    quoted = re.search(r"'([^']*\$[^']*)'", text)
    return _not_expanded(found.group(1), quoted.group(1) if quoted else found.group(0))


def _not_expanded(name: str, written: str) -> str:
    instead = (
        "--here (mounts the kernel's folder and starts there), or {os.getcwd()}"
        if name == "PWD"
        else (f"{{os.environ[{name!r}]}}")
    )
    return (
        f"${name} in {written!r} was not expanded: IPython expands $name on a magic line from Python "
        f"variables, not from the environment; write {instead}"
    )


def eaten_backslashes(line: str) -> str | None:
    """A warning when splitting ``line`` like a shell removed a backslash the user probably meant."""
    eaten = any(role == "escaped" and (char.isalnum() or char in "._-:/") for _, char, role in shell_chars(line))
    if not eaten:
        return None
    for word in line.split():
        if "\\" in word:
            try:
                split = shlex.split(word)
            except ValueError:
                continue
            if split and split[0] != word:
                return (
                    f"the line is split as a shell would, so a backslash escapes the next character: "
                    f"{word} became {' '.join(split)}; quote it ('{word}') to keep the backslashes"
                )
    return "the line is split as a shell would, so an unquoted backslash was removed: quote the value to keep it"
