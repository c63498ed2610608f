"""Which engine ``docker_command`` drives, Docker or podman, asked once at start-up; and what that changes.

podman takes Docker's command line, and the server's containers run under the same confinement
on both. Where podman 4 answers differently, the server does this instead:

* ``ps --format`` has no ``.Label``: containers are listed by label, then read with ``container
  inspect`` (:mod:`dockyter.wire.labelled`), on both engines;
* ``rm --force`` waits 10 s for SIGTERM, and removes none of several names when one is gone:
  ``--time 0 --ignore`` (:func:`dockyter.wire.contract.remove_argv`);
* ``image inspect`` of a missing image says ``image not known``, not ``no such image``;
* ``inspect`` writes a created container otherwise (:mod:`.podmaninspect` reads it as docker's);
* ``info`` lists no runtimes: the ``runtime`` setting is trusted (and the check compares it
  with the container's ``OCIRuntime``), and without one the default is podman's (``runc``);
* rootless podman on cgroup v1 cannot limit a container at all (it ignores ``--memory``,
  ``--cpus`` and ``--pids-limit`` with a warning): such a server refuses to start while any of
  those limits is set (:func:`confinement_problem`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...wire.contract import ServerLimits, is_podman

ASK_TIMEOUT = 10.0  # seconds for `--version` and `info`


class EngineCannotConfine(Exception):
    """The engine cannot apply the confinement the settings ask for; the server does not start."""


@dataclass(frozen=True)
class EngineKind:
    """What the server needs to know of its engine."""

    podman: bool = False
    rootless: bool = False  # podman run by an unprivileged user
    cgroup_v1: bool = False  # podman's host: limits need cgroup v2 (and its delegation) rootless
    oci_runtime: str = ""  # podman's default OCI runtime (runc, crun); "" for Docker or unknown


DOCKER = EngineKind()


def ask_kind(docker_command: Sequence[str], environment: Mapping[str, str]) -> EngineKind:
    """The engine behind ``docker_command``; Docker's when the CLI cannot be asked (it then explains on each run)."""
    version = _ask([*docker_command, "--version"], environment)
    if version is None or not is_podman(version):
        return DOCKER
    answer = _ask([*docker_command, "info", "--format", "json"], environment)
    try:
        info = json.loads(answer) if answer else {}
    except ValueError:
        info = {}
    host = _section(info, "host")
    security, runtime = _section(host, "security"), _section(host, "ociRuntime")
    return EngineKind(
        podman=True,
        rootless=security.get("rootless") is True,
        cgroup_v1=host.get("cgroupVersion") == "v1",
        oci_runtime=str(runtime.get("name") or ""),
    )


def confinement_problem(kind: EngineKind, limits: ServerLimits) -> str | None:
    """Why ``kind`` cannot confine containers as ``limits`` ask (None when it can)."""
    if not (kind.podman and kind.rootless and kind.cgroup_v1):
        return None
    asked = [
        name
        for name, value in (("memory", limits.memory), ("cpus", limits.cpus), ("pids_limit", limits.pids_limit))
        if value
    ]
    if not asked:
        return None
    return (
        f"rootless podman on cgroup v1 cannot limit a container: it would ignore {', '.join(asked)} "
        "('Resource limits are not supported and ignored on cgroups V1 rootless systems'). Run the server "
        "with rootful podman or Docker, or on a host with cgroup v2 delegated to its user, or set "
        'memory = "", cpus = "" and pids_limit = 0 to run every container without limits'
    )


def _section(data: object, key: str) -> dict[str, Any]:
    """``data[key]`` when both are JSON objects, else an empty one."""
    found = data.get(key) if isinstance(data, dict) else None
    return found if isinstance(found, dict) else {}


def _ask(argv: list[str], environment: Mapping[str, str]) -> str | None:
    try:
        answer = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=ASK_TIMEOUT, env=dict(environment)
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return answer.stdout if answer.returncode == 0 else None
