"""Routing ``!cmd``, ``x = !cmd``, ``!!cmd`` and ``%sx`` into containers, and back.

IPython sends ``!cmd`` to ``shell.system`` and captured forms to ``shell.getoutput``. We
shadow both with instance attributes and remember exactly what the instance held before,
so removing the redirection restores the shell as it was, however often it was installed.
"""

from __future__ import annotations

from collections.abc import Callable

from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.text import LSString, SList

_MISSING = object()
OVERRIDDEN = ("system", "getoutput")

# run(command, capture, as written) -> captured stdout. The command is already expanded; the
# runner sets _exit_code and raises CalledProcessError when IPython's system_raise_on_error asks.
Runner = Callable[[str, bool, str], str]


class Redirection:
    """Installs and removes the ``system`` / ``getoutput`` overrides on one shell, idempotently."""

    def __init__(self, shell: InteractiveShell, run: Runner) -> None:
        self.shell = shell
        self.run = run
        self._saved: dict[str, object] | None = None

    @property
    def installed(self) -> bool:
        return self._saved is not None

    def install(self) -> None:
        if self.installed:
            return
        self._saved = {name: self.shell.__dict__.get(name, _MISSING) for name in OVERRIDDEN}
        # Instance attributes shadow the methods: deliberate, and undone exactly by remove().
        self.shell.system = self._system  # type: ignore[method-assign]
        self.shell.getoutput = self._getoutput  # type: ignore[method-assign]

    def remove(self) -> None:
        if self._saved is None:
            return
        for name, previous in self._saved.items():
            if previous is _MISSING:
                self.shell.__dict__.pop(name, None)
            else:
                setattr(self.shell, name, previous)
        self._saved = None

    # These two mirror InteractiveShell.system_piped and .getoutput, including the frame depth
    # given to var_expand, so $var and {expr} see the same local variables as IPython's own.

    def _system(self, cmd: str) -> None:
        self.run(self.shell.var_expand(cmd, depth=1), False, cmd)

    def _getoutput(self, cmd: str, split: bool = True, depth: int = 0) -> SList | LSString:
        output = self.run(self.shell.var_expand(cmd, depth=depth + 1), True, cmd)
        return SList(output.splitlines()) if split else LSString(output)
