"""Helpers for tests of the extension in a real IPython shell; the fixtures that use them are in conftest.py.

``run_cell(shell, cell)`` runs a cell as a user would and returns a :class:`CellRun` (its error,
what it printed, the text of what it displayed). :class:`ConfigHome` says where dockyter.toml is
looked for in a test's isolated home; :class:`Loaded` is what ``load_dockyter`` gives back.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import capture_output


@dataclass
class CellRun:
    result: ExecutionResult
    stdout: str
    stderr: str
    shown: str  # the text/plain of everything display() showed (%docker_status...)

    @property
    def error(self) -> BaseException | None:
        return self.result.error_in_exec or self.result.error_before_exec


def run_cell(shell: InteractiveShell, cell: str) -> CellRun:
    """Run ``cell`` as a user would and return what it printed and displayed."""
    with capture_output() as captured:
        result = shell.run_cell(cell)
    shown = "".join(output.data.get("text/plain", "") + "\n" for output in captured.outputs)
    return CellRun(result, captured.stdout, captured.stderr, shown)


@dataclass
class ConfigHome:
    """Where dockyter.toml may be found, all inside the test's temporary directory."""

    work: Path  # the working directory

    @property
    def home(self) -> Path:
        return self.work.parent / "home"

    @property
    def project(self) -> Path:
        return self.work / "dockyter.toml"

    @property
    def user(self) -> Path:
        return self.home / ".dockyter.toml"

    @property
    def xdg(self) -> Path:
        return self.home / ".config" / "dockyter" / "config.toml"

    def write(self, path: Path, text: str) -> Path:
        """Write ``text`` (dedented) to ``path``, creating its folders."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path


@dataclass
class Loaded:
    """The shell Dockyter was loaded on, and what loading printed."""

    shell: InteractiveShell
    stdout: str
    stderr: str

    @property
    def magics(self) -> Any:
        return self.shell._dockyter
