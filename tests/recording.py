"""A backend that runs nothing and keeps every request: what a cell would run, without running it.

With the ``recording_backend`` fixture (conftest.py) it is the backend named "recording"; the
configuration tests and the documentation snippets use it.
"""

from __future__ import annotations

from typing import Any

from dockyter.backends.base import Backend, BackendStatus, RunRequest, RunResult


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
