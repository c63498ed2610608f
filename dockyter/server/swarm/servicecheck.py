"""Does a Swarm service's spec match the plan the policy approved? One job: say where it does not.

The Swarm executor creates each service with no replica, so that no task runs, reads its spec
back, and releases it to one only when this module finds no difference (:mod:`.swarmcheck`). It
is :mod:`~dockyter.server.engine.containercheck` for a service: the same plan (:class:`~dockyter.server.engine.expected.Expected`), read in
``docker service create`` terms, since the CLI's translation and parsing are what may differ.

What is compared, and why:

================  ==================================================================================
mounts            type, source, target and read-only flag of each: exactly the plan's binds and
                  named volumes and its ``--tmpfs`` targets (an anonymous volume is refused before);
                  bind propagation stays private.
environment       exactly the plan's variables and the server's, with their values (the image's
                  own are added on the node, after this check). Values are never shown.
labels            the container's: exactly the plan's and the server's; the service's: the server's.
user, groups,     as the plan set them.
working dir,
host name
capabilities      none added; dropped: the server's ``ALL`` and the plan's own.
privileges        no credential spec, SELinux, seccomp or AppArmor change.
network           exactly the networks the executor chose (a token's internal overlay, the
                  request's, the server's, or none).
placement         the operator's ``mount_constraints`` when a bind mount needs them.
init, read-only,  the stop ladder, the plan's root file system, the server's limits (memory, CPUs,
limits            pids), and the log driver ``service logs`` reads.
image, command    the image the policy allowed (or it pinned by digest); the shell and command the
                  server built; the loopback check as entrypoint and config where it runs first.
held              no replica, restart condition ``none``: nothing runs before the check.
sysctls           as the plan set them.
================  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..engine.containercheck import variable_differences
from ..engine.expected import Expected, capability, clean_path

Json = Mapping[str, Any]


@dataclass(frozen=True)
class ServiceExpected:
    """What a held service must be: the plan's container, and what only a service has."""

    container: Expected
    labels: Mapping[str, str]  # the service's own labels
    networks: frozenset[str]  # the ids of the networks its task joins
    constraints: tuple[str, ...]
    entrypoint: tuple[str, ...]  # () for the image's
    configs: Mapping[str, str]  # config name -> where it is in the task


def differences(expected: ServiceExpected, spec: Json) -> list[str]:
    """Where ``spec`` (``docker service inspect``'s ``Spec``) differs from ``expected``; empty when it does not."""
    plan = expected.container
    task = spec.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    found: list[str] = list(plan.notes)
    found += _mounts(plan, container.get("Mounts") or [])
    found += variable_differences(plan.env, container.get("Env") or [], None)
    found += _exactly("container label", plan.labels, container.get("Labels") or {})
    found += _exactly("service label", expected.labels, spec.get("Labels") or {})
    found += _identity(plan, container)
    found += _confinement(plan, task, container)
    found += _placement(expected, task)
    found += _command(expected, container)
    if ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas") != 0:
        found.append("the service was not created held (with no replica)")
    return found


def _mounts(plan: Expected, mounts: list[Json]) -> Iterable[str]:
    approved = {mount.target: (mount.kind, mount.source, mount.readonly) for mount in plan.mounts}
    approved.update({target: ("tmpfs", "", False) for target in plan.tmpfs})
    seen = set()
    for mount in mounts:
        target = clean_path(str(mount.get("Target", "")))
        seen.add(target)
        made = (str(mount.get("Type")), str(mount.get("Source") or ""), bool(mount.get("ReadOnly")))
        if target not in approved:
            yield f"the service mounts {_describe(*made)} at {target!r}, which the plan does not"
        elif made != approved[target]:
            yield f"the service mounts {_describe(*made)} at {target!r} where the plan has {_describe(*approved[target])}"
        elif ((mount.get("BindOptions") or {}).get("Propagation") or "rprivate") not in ("private", "rprivate"):
            yield f"the bind mount at {target!r} does not have private propagation"
    for target in approved.keys() - seen:
        yield f"the plan's {_describe(*approved[target])} at {target!r} is not among the service's mounts"


def _describe(kind: str, source: str, readonly: bool) -> str:
    mode = "read-only" if readonly else "read-write"
    return f"a {mode} {kind}" + (f" of {source}" if source else "")


def _exactly(what: str, approved: Mapping[str, str], made: Mapping[str, str]) -> Iterable[str]:
    for name in made.keys() | approved.keys():
        if made.get(name) != approved.get(name):
            yield f"the {what} {name!r} is {made.get(name)!r}, the plan has {approved.get(name)!r}"


def _identity(plan: Expected, container: Json) -> Iterable[str]:
    wanted = {"User": plan.user, "Dir": plan.workdir, "Hostname": plan.hostname}
    for key, value in wanted.items():
        if (container.get(key) or "") != (value or ""):
            yield f"the service's {key.lower()} is {container.get(key)!r}, the plan has {value!r}"
    groups = list(container.get("Groups") or [])
    if groups != list(plan.groups):
        yield f"the service's extra groups are {groups}, the plan has {list(plan.groups)}"
    if container.get("CapabilityAdd"):
        yield f"the service is given the capabilities {container['CapabilityAdd']}, which no plan may add"
    dropped = {capability(str(name)) for name in container.get("CapabilityDrop") or []}
    if dropped != plan.cap_drop:
        yield f"the service drops the capabilities {sorted(dropped)}, the plan {sorted(plan.cap_drop)}"
    privileges = container.get("Privileges") or {}
    changed = [key for key, value in privileges.items() if value and not _default_privilege(key, value)]
    if changed:
        yield f"the service changes the privileges {changed}"


def _default_privilege(key: str, value: Any) -> bool:
    """Whether a ``Privileges`` entry leaves the engine's defaults (seccomp and AppArmor "default")."""
    return key in ("Seccomp", "AppArmor") and isinstance(value, dict) and value.get("Mode") in (None, "default")


def _confinement(plan: Expected, task: Json, container: Json) -> Iterable[str]:
    if not container.get("Init"):
        yield "the service lacks the init process the server decides on"
    if bool(container.get("ReadOnly")) != plan.read_only:
        yield "the service's root file system is not as planned"
    sysctls = dict(container.get("Sysctls") or {})
    if sysctls != plan.sysctls:
        yield f"the service's sysctls are {sysctls}, the plan has {plan.sysctls}"
    limits = (task.get("Resources") or {}).get("Limits") or {}
    for key, what, wanted in (
        ("MemoryBytes", "memory limit", plan.memory),
        ("NanoCPUs", "CPU limit", plan.nano_cpus),
        ("Pids", "pids limit", plan.pids_limit),
    ):
        if wanted is not None and (limits.get(key) or 0) != wanted:
            yield f"the service's {what} is {limits.get(key) or 0}, the server's is {wanted}"
    driver = (task.get("LogDriver") or {}).get("Name")
    if driver != plan.log_driver:
        yield f"the service's log driver is {driver!r}, the server's is {plan.log_driver!r}"
    if task.get("Runtime") not in (None, "", "container"):
        yield f"the service runs a {task.get('Runtime')!r}, not a container"
    if container.get("Secrets"):
        yield "the service is given Swarm secrets"


def _placement(expected: ServiceExpected, task: Json) -> Iterable[str]:
    networks = {str(network.get("Target", "")) for network in task.get("Networks") or []}
    if networks != expected.networks:
        yield "the service joins other networks than the executor chose"
    constraints = tuple((task.get("Placement") or {}).get("Constraints") or ())
    if constraints != expected.constraints:
        yield f"the service's placement constraints are {list(constraints)}, not {list(expected.constraints)}"
    if ((task.get("RestartPolicy") or {}).get("Condition")) != "none":
        yield "the service's task would be restarted"


def _command(expected: ServiceExpected, container: Json) -> Iterable[str]:
    plan = expected.container
    image = str(container.get("Image", ""))
    if image != plan.image and not image.startswith(plan.image + "@"):
        yield f"the service's image is {image!r}, the plan has {plan.image!r}"
    if list(container.get("Args") or []) != list(plan.command):
        yield "the service's command is not the one the server built"
    if tuple(container.get("Command") or ()) != expected.entrypoint:
        yield f"the service's entrypoint is {container.get('Command')!r}, not {list(expected.entrypoint)}"
    configs = {
        str(config.get("ConfigName")): str((config.get("File") or {}).get("Name"))
        for config in container.get("Configs") or []
    }
    if configs != dict(expected.configs):
        yield "the service is given other Swarm configs than the server's"
