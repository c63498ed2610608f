"""Fixtures for configuration tests: files in an isolated home, Dockyter loaded over them.

``config_home``   the isolated HOME / XDG_CONFIG_HOME / working directory of ``isolated_home``
                  (core_fixtures), with the paths where dockyter.toml is looked for and ``write``.
``load_dockyter`` ``load_dockyter(**traits)`` loads the extension on the InteractiveShell singleton,
                  with ``traits`` as the IPython config layer (what ``c.Dockyter.<name> = value`` in
                  ipython_config.py would set), and returns a :class:`Loaded` with what loading
                  printed. At teardown: the extension is unloaded, the shell's config restored.
``ipshell``       the shell with Dockyter loaded as ``load_dockyter()`` does (no IPython config;
                  whatever files the test wrote before asking for it).
``run(shell, cell)`` runs a cell, returning a :class:`Ran` (error, stdout, stderr, displayed text).
``RecordingBackend`` a backend named "recording" (when ``recording_backend`` is used) that runs
                  nothing and keeps every request, for checking what a cell would run.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from dockyter.backends import registry as backends
from dockyter.backends.base import Backend, BackendStatus, RunRequest, RunResult


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


@pytest.fixture
def config_home(isolated_home: Path) -> ConfigHome:
    return ConfigHome(isolated_home)


@dataclass
class Loaded:
    shell: InteractiveShell
    stdout: str
    stderr: str

    @property
    def magics(self) -> Any:
        return self.shell._dockyter


@pytest.fixture
def load_dockyter(config_home: ConfigHome) -> Iterator[Callable[..., Loaded]]:
    shell = InteractiveShell.instance()
    saved_config = shell.config

    def load(**traits: Any) -> Loaded:
        if "dockyter" in shell.extension_manager.loaded:
            shell.run_line_magic("unload_ext", "dockyter")
        config = deepcopy(saved_config)
        config.merge(Config({"Dockyter": traits}))
        shell.config = config
        with capture_output() as captured:
            shell.run_line_magic("load_ext", "dockyter")
        return Loaded(shell, captured.stdout, captured.stderr)

    yield load
    if "dockyter" in shell.extension_manager.loaded:
        shell.run_line_magic("unload_ext", "dockyter")
    shell.config = saved_config
    shell.user_ns.pop("_exit_code", None)


@pytest.fixture
def ipshell(load_dockyter: Callable[..., Loaded]) -> InteractiveShell:
    return load_dockyter().shell


@dataclass
class Ran:
    """What a cell did: its error, what it printed, and the plain text of what it displayed."""

    error: BaseException | None
    stdout: str
    stderr: str
    displayed: str


def run(shell: InteractiveShell, cell: str) -> Ran:
    """Run ``cell`` as a user would; ``display()`` output (%docker_status...) lands in ``displayed``."""
    with capture_output() as captured:
        result = shell.run_cell(cell)
    shown = "".join(output.data.get("text/plain", "") + "\n" for output in captured.outputs)
    return Ran(result.error_in_exec or result.error_before_exec, captured.stdout, captured.stderr, shown)


class RecordingBackend(Backend):
    """Runs nothing: keeps each request with the settings in force, answers with ``exit_code``."""

    name = "recording"
    exit_code = 0
    requests: list[tuple[RunRequest, dict[str, Any]]] = []  # replaced per test by the fixture

    def run(self, request: RunRequest, sink: Any) -> RunResult:
        seen = {name: getattr(self.settings, name) for name in ("default_args", "shell", "timeout", "raise_on_error")}
        RecordingBackend.requests.append((request, seen))
        return RunResult(RecordingBackend.exit_code)

    def status(self) -> BackendStatus:
        return BackendStatus(self.name, True, "records requests")

    def describe(self, request: RunRequest) -> str:
        return f"record {request.args} {request.command!r}"


@pytest.fixture
def recording_backend(monkeypatch: pytest.MonkeyPatch) -> type[RecordingBackend]:
    """Make "recording" a known backend; its requests start empty."""
    monkeypatch.setitem(backends.REGISTRY, "recording", "shell_fixtures:RecordingBackend")
    monkeypatch.setattr(RecordingBackend, "requests", [])
    monkeypatch.setattr(RecordingBackend, "exit_code", 0)
    return RecordingBackend
