"""Fixtures for the extension in a real IPython shell, with the user's files kept out of reach."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import capture_output


@dataclass
class CellRun:
    result: ExecutionResult
    stdout: str
    stderr: str
    shown: str  # the text/plain of everything display() showed

    @property
    def error(self) -> BaseException | None:
        return self.result.error_in_exec or self.result.error_before_exec


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """HOME, XDG_CONFIG_HOME and the working directory in a temporary folder; no DOCKYTER_* config."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("DOCKYTER_CONFIG", raising=False)
    monkeypatch.delenv("DOCKYTER_API_TOKEN", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def ip(isolated_home) -> Iterator[InteractiveShell]:
    """The process's InteractiveShell with Dockyter freshly loaded; unloaded afterwards."""
    shell = InteractiveShell.instance()
    # %config writes into shell.config, which outlives the extension: start and end clean.
    shell.config.pop("Dockyter", None)
    shell.run_line_magic("load_ext", "dockyter")
    yield shell
    if "dockyter" in shell.extension_manager.loaded:
        shell.run_line_magic("unload_ext", "dockyter")
    shell.config.pop("Dockyter", None)
    for name in ("_exit_code",):
        shell.user_ns.pop(name, None)


def run_cell(shell: InteractiveShell, cell: str) -> CellRun:
    """Run ``cell`` as a user would and return what it printed."""
    with capture_output() as captured:
        result = shell.run_cell(cell)
    shown = "".join(output.data.get("text/plain", "") + "\n" for output in captured.outputs)
    return CellRun(result, captured.stdout, captured.stderr, shown)


@pytest.fixture
def cell(ip):
    """``cell(text)`` runs a cell in the Dockyter shell and returns a CellRun."""
    return lambda text: run_cell(ip, text)
