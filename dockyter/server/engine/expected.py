"""What the engine must make of an approved plan: the expected container, in engine-neutral terms.

Derived from two things only: the :class:`~dockyter.server.policy.plan.Plan` (each option as the policy read it,
each mount as the policy approved it) and what the server itself puts on every container
(:class:`ServerAdditions`: its labels, environment, command, limits and runtime). Never from
the argv text the CLI is given: the point of the check is to compare the policy's reading of a
request with the engine's, so the expectation must not be a third reading of the same text.

:mod:`.containercheck` compares an :class:`Expected` with ``docker inspect`` of a created
container, :mod:`~dockyter.server.swarm.servicecheck` with the spec of a Swarm service.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from ...wire.contract import ServerLimits
from ..policy.plan import Plan, PlannedMount

# The namespaces a request may choose (the policy refuses host and container:... values).
NAMESPACES = {"--pid": "pid", "--ipc": "ipc", "--uts": "uts", "--userns": "userns", "--cgroupns": "cgroupns"}

# docker's sizes (go-units RAMInBytes): a number, then an optional binary unit.
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


@dataclass(frozen=True)
class ServerAdditions:
    """What the server puts on a container besides the request's options; where both set something, the server's wins."""

    command: tuple[str, ...]  # the shell and the request's command (or a session's shell)
    labels: Mapping[str, str]
    env: Mapping[str, str]
    init: bool
    network: str  # used when the request names none ("": the engine's default network)
    memory: str
    cpus: str
    pids_limit: int
    drop_capabilities: bool
    forbid_new_privileges: bool
    runtime: str  # the runtime the engine runs it under ("": not known, then not compared)
    log_driver: str = "none"

    @classmethod
    def of(
        cls,
        limits: ServerLimits,
        *,
        command: tuple[str, ...],
        labels: Mapping[str, str],
        env: Mapping[str, str],
        init: bool,
        runtime: str,
        network: str | None = None,
        forbid_new_privileges: bool | None = None,
        log_driver: str = "none",
    ) -> ServerAdditions:
        """The additions of a server whose confinement is ``limits`` (its settings); the rest as given."""
        return cls(
            command=command,
            labels=labels,
            env=env,
            init=init,
            network=limits.network if network is None else network,
            memory=limits.memory,
            cpus=limits.cpus,
            pids_limit=limits.pids_limit,
            drop_capabilities=limits.drop_capabilities,
            forbid_new_privileges=(
                limits.forbid_new_privileges if forbid_new_privileges is None else forbid_new_privileges
            ),
            runtime=runtime,
            log_driver=log_driver,
        )


@dataclass(frozen=True)
class Expected:
    """The container a plan and the server's additions describe.

    ``None`` in ``user``, ``workdir`` and ``entrypoint`` means "the image's own", in
    ``hostname`` and a namespace "the engine's default".
    """

    image: str
    command: tuple[str, ...]
    entrypoint: tuple[str, ...] | None
    env: dict[str, str | None]  # every variable the plan or the server set; None: given without a value
    labels: dict[str, str]
    mounts: tuple[PlannedMount, ...]  # targets cleaned as the engine cleans them
    tmpfs: dict[str, str]  # --tmpfs target -> its options
    user: str | None
    workdir: str | None
    hostname: str | None
    groups: tuple[str, ...]
    cap_drop: frozenset[str]  # upper case, without CAP_
    security_opt: frozenset[str]
    network: str
    namespaces: dict[str, str | None]  # "pid", "ipc", "uts", "userns", "cgroupns" -> the value asked for
    sysctls: dict[str, str]
    annotations: dict[str, str]
    read_only: bool
    init: bool
    memory: int | None  # bytes; None: a size the server cannot read (then it cannot agree)
    nano_cpus: int | None
    pids_limit: int
    runtime: str
    log_driver: str
    volume_driver: str
    gpus: bool = False
    notes: tuple[str, ...] = field(default=())  # what the server could not read in its own settings


def expected_container(plan: Plan, adds: ServerAdditions) -> Expected:
    """The container the engine must make of ``plan`` with the server's ``adds``."""
    options = plan.args.options
    env: dict[str, str | None] = {}
    labels: dict[str, str] = {}
    tmpfs: dict[str, str] = {}
    sysctls: dict[str, str] = {}
    annotations: dict[str, str] = {}
    groups: list[str] = []
    cap_drop: set[str] = set()
    last: dict[str, str] = {}
    for option in options:
        value = option.value or ""
        if option.name == "--env":
            name, equals, text = value.partition("=")
            env[name] = text if equals else None
        elif option.name == "--label":
            name, _, text = value.partition("=")
            labels[name] = text
        elif option.name == "--tmpfs":
            target, _, tmpfs_options = value.partition(":")
            tmpfs[clean_path(target)] = tmpfs_options
        elif option.name == "--sysctl":
            name, _, text = value.partition("=")
            sysctls[name] = text
        elif option.name == "--annotation":
            name, _, text = value.partition("=")
            annotations[name] = text
        elif option.name == "--group-add":
            groups.append(value)
        elif option.name == "--cap-drop":
            cap_drop.add(capability(value))
        elif option.value is not None:
            last[option.name] = option.value
    env.update(adds.env)
    labels.update(adds.labels)
    if adds.drop_capabilities:
        cap_drop.add("ALL")
    notes = []
    memory = size_in_bytes(adds.memory or last.get("--memory", ""))
    if memory is None:
        notes.append(f"the memory limit {adds.memory or last.get('--memory')!r} is not a size the server can read")
    nano_cpus = cpus_in_nanos(adds.cpus or last.get("--cpus", ""))
    if nano_cpus is None:
        notes.append(f"the CPU limit {adds.cpus or last.get('--cpus')!r} is not a number the server can read")
    pids = adds.pids_limit or _integer(last.get("--pids-limit", "0"))
    entrypoint = last.get("--entrypoint")
    return Expected(
        image=plan.args.image,
        command=adds.command,
        entrypoint=None if entrypoint is None else ((entrypoint,) if entrypoint else ()),
        env=env,
        labels=labels,
        mounts=tuple(
            PlannedMount(mount.kind, mount.source, clean_path(mount.target), mount.readonly) for mount in plan.mounts
        ),
        tmpfs=tmpfs,
        user=last.get("--user"),
        workdir=last.get("--workdir"),
        hostname=last.get("--hostname"),
        groups=tuple(groups),
        cap_drop=frozenset(cap_drop),
        security_opt=frozenset({"no-new-privileges"} if adds.forbid_new_privileges else set()),
        network=last["--network"] if plan.has_network else (adds.network or "default"),
        namespaces={kind: last.get(flag) for flag, kind in NAMESPACES.items()},
        sysctls=sysctls,
        annotations=annotations,
        read_only=plan.args.has("--read-only"),
        init=adds.init,
        memory=memory,
        nano_cpus=nano_cpus,
        pids_limit=pids if pids is not None and pids > 0 else 0,
        runtime=adds.runtime,
        log_driver=adds.log_driver,
        volume_driver=last.get("--volume-driver", ""),
        gpus="--gpus" in last,
        notes=tuple(notes),
    )


def variable_pairs(entries: object) -> list[tuple[str, str | None]]:
    """``NAME=VALUE`` entries (an engine's ``Env``) as pairs; None for an entry without ``=``."""
    pairs: list[tuple[str, str | None]] = []
    for entry in entries if isinstance(entries, list) else []:
        name, equals, value = str(entry).partition("=")
        pairs.append((name, value if equals else None))
    return pairs


def clean_path(path: str) -> str:
    """``path`` as the engine cleans a mount target (Go's ``path.Clean``): ``//a/./b/`` is ``/a/b``."""
    if not path:
        return path
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned


def capability(name: str) -> str:
    """A capability as docker compares them: upper case, without ``CAP_``."""
    upper = name.strip().upper()
    return upper.removeprefix("CAP_")


def size_in_bytes(text: str) -> int | None:
    """A docker size (``512m``, ``1.5g``, ``1024``) in bytes; 0 for none; None when unreadable."""
    if not text:
        return 0
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        return None
    return int(Decimal(found.group(1)) * _UNITS[(found.group(2) or "").lower()])


def cpus_in_nanos(text: str) -> int | None:
    """A ``--cpus`` value in billionths of a CPU (the engine's NanoCpus); 0 for none; None when unreadable."""
    if not text:
        return 0
    try:
        return int(Decimal(text.strip()) * 1_000_000_000)
    except InvalidOperation:
        return None


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
