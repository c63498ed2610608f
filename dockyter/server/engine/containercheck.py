"""Does a created container match the plan the policy approved? One job: say where it does not.

The policy approves its own reading of a request; the docker CLI, the engine and CPython's
parsers read the same text too, and they have read it differently (a ``\\n`` in a ``-v``
target that ended docker's ``--mount`` record early and dropped ``readonly``; a value-less
``-e NAME`` that the CLI filled from the server's own environment). So before a container
starts, its ``docker inspect`` is compared with :class:`~.expected.Expected` (the plan and the
server's own additions), and any difference keeps it from starting.

What is compared, and why:

==================  ================================================================================
mounts              every mount's type, source (bind: the real path checked; volume: its name),
                    target and read-write flag: exactly the approved ones, plus the image's own
                    anonymous volumes. A mount that is missing, extra, writable or of another
                    source is how a host file becomes writable. Bind propagation stays private.
tmpfs               the ``--tmpfs`` targets and their options.
environment         every variable that is not the image's own (same name and value) must be one
                    the plan or the server set, with that value; each of those must be there.
                    Values are never shown: a variable the CLI filled may hold a secret.
user, groups        who the command runs as: the plan's ``--user`` (or the image's), its groups.
capabilities        none added; dropped: the server's ``ALL`` and the plan's own.
privileged,         never: each of these hands the container the host.
devices, ports,
volumes-from,
cgroup parent
security options    exactly the server's (``no-new-privileges``): an extra one can switch off
                    seccomp, AppArmor or SELinux.
network             the plan's ``--network`` or the server's, and no other network attached.
namespaces          pid, ipc, uts, userns, cgroupns: the plan's value, or the engine's own default
                    (never ``host`` or another container's, unless that is the engine default).
runtime             the server's runtime (gVisor's ``runsc``, say): the confinement it promises.
labels              the server's ``io.dockyter.*`` and the plan's; others only the image's own.
read-only root      as the plan asked.
init, auto-remove,  what the stop ladder and "nothing left behind" rely on.
log driver
limits              memory, CPUs, pids: the server's confinement of every container.
image, command      the image the policy allowed; the shell and the command the server built.
working directory,  as the plan set them (the image's own otherwise); the host name only when
entrypoint,         the plan sets one (the engine picks one otherwise).
hostname
sysctls,            as the plan set them; anything else is something no check allowed.
annotations, gpus
==================  ================================================================================

Resource knobs the operator lets requests tune (``--ulimit``, ``--shm-size``, ``--dns``, ...)
and what ``extra_run_args`` sets outside the list above are not compared. ``extra_run_args``
that change a compared field make every container differ from its plan: :func:`compared_options`
names them for the start-up warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..policy.plan import PlannedMount
from .expected import Expected, capability, clean_path, variable_pairs

Json = Mapping[str, Any]

# docker run options whose effect this module compares (an extra_run_args entry among them
# makes every container differ from its plan).
COMPARED_OPTIONS = frozenset(
    """
    --volume --mount --tmpfs --env --env-file --user --group-add --cap-add --cap-drop --privileged
    --device --device-cgroup-rule --gpus --publish --publish-all --volumes-from --cgroup-parent
    --security-opt --network --pid --ipc --uts --userns --cgroupns --runtime --label --label-file
    --read-only --init --rm --log-driver --memory --cpus --pids-limit --workdir
    --entrypoint --sysctl --annotation --volume-driver --use-api-socket --name
    """.split()
)

_ANONYMOUS = re.compile(r"[0-9a-f]{64}")  # the engine's name for an anonymous volume
_PRIVATE = {"", "private", "rprivate"}  # bind propagation that shares no mount with the host


def compared_options(names: Iterable[str]) -> list[str]:
    """The option names among ``names`` whose effect the check compares with the plan."""
    return [name for name in names if name in COMPARED_OPTIONS]


def differences(expected: Expected, container: Json, image: Json, cgroupns_defaults: Iterable[str]) -> list[str]:
    """Where ``container`` (``docker inspect``) differs from ``expected``; empty when it does not.

    ``image`` is the inspect of the container's image (its own variables, labels, volumes,
    user...); ``cgroupns_defaults`` the cgroup namespace modes the engine gives a container
    that asks for none.
    """
    config = container.get("Config") or {}
    host = container.get("HostConfig") or {}
    image_config = image.get("Config") or {}
    found: list[str] = list(expected.notes)
    # The most telling difference first: the 403 names only the first (the log has them all).
    checks: list[Callable[[], Iterable[str]]] = [
        lambda: _host_access(expected, host),
        lambda: _namespaces(expected, host, set(cgroupns_defaults)),
        lambda: _mounts(expected, container.get("Mounts") or [], image_config),
        lambda: _tmpfs(expected, host),
        lambda: _network(expected, host, container.get("NetworkSettings") or {}),
        lambda: _identity(expected, config, host, image_config),
        lambda: variable_differences(expected.env, config.get("Env") or [], image_config.get("Env") or []),
        lambda: _labels(expected.labels, config.get("Labels") or {}, image_config.get("Labels") or {}),
        lambda: _lifecycle_and_limits(expected, host),
        lambda: _command(expected, config, image_config),
    ]
    for check in checks:
        found.extend(check())
    return found


# -- mounts -------------------------------------------------------------------------------------


def _mounts(expected: Expected, mounts: list[Json], image_config: Json) -> Iterable[str]:
    approved = {mount.target: mount for mount in expected.mounts}
    image_volumes = {clean_path(target) for target in image_config.get("Volumes") or {}}
    seen = set()
    for mount in mounts:
        target = str(mount.get("Destination", ""))
        seen.add(target)
        plan = approved.get(target)
        made = _describe_made(mount)
        if plan is None:
            if target in image_volumes and _is_anonymous(mount):
                continue  # the image's own VOLUME: a fresh anonymous volume, removed with the container
            yield f"the engine mounts {made} at {target!r}, which the plan does not"
            continue
        if mount.get("Type") != plan.kind or not _same_source(plan, mount):
            yield f"the engine mounts {made} at {target!r} where the plan has {_describe_planned(plan)}"
        elif bool(mount.get("RW")) == plan.readonly:
            yield f"the engine mounts {made} at {target!r} where the plan has {_describe_planned(plan)}"
        elif mount.get("Type") == "bind" and mount.get("Propagation", "") not in _PRIVATE:
            yield f"the bind mount at {target!r} has {mount.get('Propagation')} propagation, not private"
        elif mount.get("Type") == "volume" and mount.get("Driver", "local") not in (expected.volume_driver or "local",):
            yield f"the volume at {target!r} uses the driver {mount.get('Driver')!r}, which the plan does not"
    for target, plan in approved.items():
        if target not in seen:
            yield f"the plan's {_describe_planned(plan)} at {target!r} is not among the engine's mounts"


def _same_source(plan: PlannedMount, mount: Json) -> bool:
    if plan.kind == "bind":
        return mount.get("Source") == plan.source
    if plan.kind == "volume":
        return _is_anonymous(mount) if not plan.source else mount.get("Name") == plan.source
    return True  # tmpfs: no source


def _is_anonymous(mount: Json) -> bool:
    return mount.get("Type") == "volume" and bool(_ANONYMOUS.fullmatch(str(mount.get("Name", ""))))


def _describe_made(mount: Json) -> str:
    mode = "read-write" if mount.get("RW") else "read-only"
    kind = mount.get("Type")
    if kind == "bind":
        return f"a {mode} bind of {mount.get('Source')}"
    if kind == "volume":
        return f"a {mode} anonymous volume" if _is_anonymous(mount) else f"the {mode} volume {mount.get('Name')!r}"
    return f"a {mode} {kind}"


def _describe_planned(plan: PlannedMount) -> str:
    mode = "read-only" if plan.readonly else "read-write"
    if plan.kind == "bind":
        return f"a {mode} bind of {plan.source}"
    if plan.kind == "volume":
        return f"the {mode} volume {plan.source!r}" if plan.source else f"a {mode} anonymous volume"
    return f"a {mode} {plan.kind}"


def _tmpfs(expected: Expected, host: Json) -> Iterable[str]:
    made = {clean_path(str(target)): str(options) for target, options in (host.get("Tmpfs") or {}).items()}
    for target, options in made.items():
        if target not in expected.tmpfs:
            yield f"the engine mounts a tmpfs at {target!r}, which the plan does not"
        elif options != expected.tmpfs[target]:
            yield f"the tmpfs at {target!r} has the options {options!r}, not {expected.tmpfs[target]!r}"
    for target in expected.tmpfs.keys() - made.keys():
        yield f"the plan's tmpfs at {target!r} is not among the engine's mounts"


# -- environment and labels -----------------------------------------------------------------------


def variable_differences(approved: Mapping[str, str | None], made: list[str], image: list[str] | None) -> Iterable[str]:
    """The variables ``made`` against the ``approved`` ones, the ``image``'s own allowed too
    (None: no image is merged yet, as in a service's spec). Values never appear in a message."""
    own = dict(variable_pairs(image or []))
    container: dict[str, str | None] = {}
    for name, value in variable_pairs(made):
        if name in container and container[name] != value:
            yield f"the environment sets {name!r} twice, with different values"
        container[name] = value
    nobody = "neither the plan nor the image set it" if image is not None else "the plan did not set it"
    for name, value in container.items():
        if name in approved:
            if value != approved[name]:
                yield f"the environment variable {name!r} has another value than the plan approved"
        elif name not in own or own[name] != value:
            yield f"the environment variable {name!r} is set, and {nobody}"
    for name in approved.keys() - container.keys():
        yield f"the environment variable {name!r} the plan approved is missing"


def _labels(approved: Mapping[str, str], made: Mapping[str, str], image: Mapping[str, str]) -> Iterable[str]:
    for name, value in made.items():
        if name in approved:
            if value != approved[name]:
                yield f"the label {name!r} is {value!r}, the plan has {approved[name]!r}"
        elif image.get(name) != value:
            yield f"the label {name!r} is set, and neither the plan nor the image set it"
    for name in approved.keys() - made.keys():
        yield f"the label {name!r} the plan has is missing"


# -- who runs, and what it may reach ---------------------------------------------------------------


def _identity(expected: Expected, config: Json, host: Json, image_config: Json) -> Iterable[str]:
    user = expected.user if expected.user is not None else image_config.get("User") or ""
    if (config.get("User") or "") != user:
        yield f"the container runs as user {config.get('User')!r}, the plan has {user!r}"
    groups = [str(group) for group in host.get("GroupAdd") or []]
    if groups != list(expected.groups):
        yield f"the container has the extra groups {groups}, the plan has {list(expected.groups)}"
    added = [capability(str(name)) for name in host.get("CapAdd") or []]
    if added:
        yield f"the container is given the capabilities {', '.join(added)}, which no plan may add"
    dropped = {capability(str(name)) for name in host.get("CapDrop") or []}
    if dropped != expected.cap_drop:
        yield f"the container drops the capabilities {sorted(dropped)}, the plan {sorted(expected.cap_drop)}"
    options = {str(option) for option in host.get("SecurityOpt") or []}
    if options != expected.security_opt:
        yield f"the container has the security options {sorted(options)}, the server sets {sorted(expected.security_opt)}"


def _host_access(expected: Expected, host: Json) -> Iterable[str]:
    if host.get("Privileged"):
        yield "the container is privileged"
    if host.get("Devices"):
        yield f"the container is given the host devices {[d.get('PathOnHost') for d in host['Devices']]}"
    if host.get("DeviceCgroupRules"):
        yield f"the container is given the device rules {host['DeviceCgroupRules']}"
    if bool(host.get("DeviceRequests")) != expected.gpus:
        yield "the container's device requests (--gpus) differ from the plan"
    if host.get("PortBindings") or host.get("PublishAllPorts"):
        yield "the container publishes ports on the host"
    if host.get("VolumesFrom"):
        yield f"the container mounts the volumes of {host['VolumesFrom']}"
    if host.get("CgroupParent"):
        yield f"the container is moved to the cgroup {host['CgroupParent']!r}"
    if (host.get("VolumeDriver") or "") != expected.volume_driver:
        yield f"the container's volume driver is {host.get('VolumeDriver')!r}, the plan has {expected.volume_driver!r}"
    sysctls = {str(k): str(v) for k, v in (host.get("Sysctls") or {}).items()}
    if sysctls != expected.sysctls:
        yield f"the container's sysctls are {sysctls}, the plan has {expected.sysctls}"
    annotations = {str(k): str(v) for k, v in (host.get("Annotations") or {}).items()}
    if annotations != expected.annotations:
        yield f"the container's annotations are {annotations}, the plan has {expected.annotations}"


def _network(expected: Expected, host: Json, settings: Json) -> Iterable[str]:
    mode = host.get("NetworkMode") or "default"
    if mode != expected.network:
        yield f"the container's network is {mode!r}, the plan has {expected.network!r}"
    attached = set(settings.get("Networks") or {})
    allowed = {expected.network, "bridge"} if expected.network == "default" else {expected.network}
    if not attached <= allowed:
        yield f"the container is attached to {sorted(attached - allowed)}, which the plan does not join"


def _namespaces(expected: Expected, host: Json, cgroupns_defaults: set[str]) -> Iterable[str]:
    defaults = {
        "pid": {""},
        "ipc": {"", "private", "shareable"},
        "uts": {""},
        "userns": {""},
        "cgroupns": {"", "private"} | cgroupns_defaults,
    }
    fields = {"pid": "PidMode", "ipc": "IpcMode", "uts": "UTSMode", "userns": "UsernsMode", "cgroupns": "CgroupnsMode"}
    for kind, key in fields.items():
        made = str(host.get(key) or "")
        asked = expected.namespaces.get(kind)
        if (made != asked) if asked is not None else (made not in defaults[kind]):
            yield f"the container's {kind} namespace is {made!r}, the plan has {asked or 'the default'!r}"


# -- how it runs and ends -----------------------------------------------------------------------------


def _lifecycle_and_limits(expected: Expected, host: Json) -> Iterable[str]:
    if expected.runtime and host.get("Runtime") != expected.runtime:
        yield f"the container's runtime is {host.get('Runtime')!r}, the server's is {expected.runtime!r}"
    if bool(host.get("ReadonlyRootfs")) != expected.read_only:
        yield f"the container's root file system is {'read-only' if host.get('ReadonlyRootfs') else 'writable'}, not as planned"
    if bool(host.get("Init")) != expected.init:
        yield f"the container {'has' if host.get('Init') else 'lacks'} the init process the server decides on"
    if not host.get("AutoRemove"):
        yield "the container would not be removed when it ends (--rm)"
    if (host.get("RestartPolicy") or {}).get("Name", "") not in ("", "no"):
        yield "the container would be restarted"
    log_driver = (host.get("LogConfig") or {}).get("Type")
    if log_driver != expected.log_driver:
        yield f"the container's log driver is {log_driver!r}, the server's is {expected.log_driver!r}"
    limits = [
        ("memory limit", host.get("Memory") or 0, expected.memory),
        ("CPU limit", host.get("NanoCpus") or 0, expected.nano_cpus),
        ("pids limit", host.get("PidsLimit") or 0, expected.pids_limit),
    ]
    for what, made, wanted in limits:
        if wanted is not None and made != wanted:
            yield f"the container's {what} is {made}, the server's is {wanted}"


def _command(expected: Expected, config: Json, image_config: Json) -> Iterable[str]:
    if config.get("Image") != expected.image:
        yield f"the container's image is {config.get('Image')!r}, the plan has {expected.image!r}"
    if list(config.get("Cmd") or []) != list(expected.command):
        yield "the container's command is not the one the server built"
    entrypoint = expected.entrypoint if expected.entrypoint is not None else image_config.get("Entrypoint")
    if _words(config.get("Entrypoint")) != _words(entrypoint):
        yield f"the container's entrypoint is {config.get('Entrypoint')!r}, the plan has {entrypoint!r}"
    workdir = expected.workdir if expected.workdir is not None else image_config.get("WorkingDir") or ""
    if (config.get("WorkingDir") or "") != workdir:
        yield f"the container's working directory is {config.get('WorkingDir')!r}, the plan has {workdir!r}"
    if expected.hostname is not None and config.get("Hostname") != expected.hostname:
        yield f"the container's host name is {config.get('Hostname')!r}, the plan has {expected.hostname!r}"


def _words(value: Any) -> list[str]:
    """An entrypoint as a list; ``None``, ``[]`` and ``[""]`` all mean "none"."""
    words = [str(word) for word in value or []]
    return [] if words == [""] else words
