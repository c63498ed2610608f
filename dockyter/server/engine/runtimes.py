"""The OCI runtime the server's containers run under, checked against the engine at start-up.

The ``runtime`` setting puts ``--runtime NAME`` on every ``docker run`` (gVisor's ``runsc``,
say); a request can never choose one (the policy refuses ``--runtime``). An engine that does
not know the name would refuse every run, so the server asks the engine once, at start-up,
and refuses to start with one line naming the runtimes it does know. podman lists no runtimes
(its ``info`` has no ``.Runtimes``): the setting is trusted, and without one its default runs.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .enginekind import DOCKER, EngineKind

log = logging.getLogger("dockyter.server")

ASK_TIMEOUT = 10.0  # seconds for `docker info`; an engine slower than that is not answering
UNKNOWN = "default"  # reported when no runtime is set and the engine could not be asked


class RuntimeUnavailable(Exception):
    """The engine answers but does not know the configured runtime."""


@dataclass(frozen=True)
class EngineRuntimes:
    """What ``docker info`` says about runtimes."""

    names: tuple[str, ...]
    default: str


def ask_engine(docker_command: Sequence[str], environment: Mapping[str, str]) -> EngineRuntimes | None:
    """The engine's runtimes, or None when it cannot be asked (no CLI, no engine, another CLI)."""
    try:
        answer = subprocess.run(
            [*docker_command, "info", "--format", "{{json .Runtimes}}\n{{json .DefaultRuntime}}"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=ASK_TIMEOUT, env=environment,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = answer.stdout.splitlines()
    if answer.returncode != 0 or len(lines) < 2:
        return None
    try:
        runtimes, default = json.loads(lines[0]), json.loads(lines[1])
    except ValueError:
        return None
    if not isinstance(runtimes, dict) or not isinstance(default, str):
        return None
    return EngineRuntimes(tuple(sorted(runtimes)), default)


def resolve_runtime(
    runtime: str, docker_command: Sequence[str], environment: Mapping[str, str], kind: EngineKind = DOCKER
) -> str:
    """The name of the runtime the containers will run under, for the health reply and the log.

    Raises :class:`RuntimeUnavailable` when the engine answers without knowing ``runtime``.
    When the engine cannot be asked, the setting is trusted: ``--runtime`` is still put on
    every run, and the engine refuses those runs (exit 125) rather than fall back to another.
    """
    engine = None if kind.podman else ask_engine(docker_command, environment)
    if kind.podman and not runtime and kind.oci_runtime:
        return kind.oci_runtime  # podman's default: the one its containers show
    if engine is None:
        if runtime:
            log.warning(
                json.dumps({"event": "runtime_unchecked", "runtime": runtime, "message": "the engine did not answer"})
            )
        return runtime or UNKNOWN
    if runtime and runtime not in engine.names:
        known = ", ".join(engine.names) or "none"
        raise RuntimeUnavailable(
            f"the container engine has no runtime {runtime!r} (it has: {known}); register it in the engine's "
            'configuration ("runtimes" in /etc/docker/daemon.json, then reload dockerd) or change --runtime'
        )
    return runtime or engine.default
