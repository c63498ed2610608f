"""podman's ``inspect`` of a created container, read as docker's, for the check of what the engine made.

:mod:`.containercheck` compares docker's ``inspect`` with the plan. podman 4 writes the same
container differently in a few fields; :func:`as_docker` rewrites exactly those, each to what
docker would have written for the same container, and leaves every other field as podman wrote
it (so that a real difference still shows):

=====================  ===========================================================================
capabilities           podman's ``HostConfig.CapDrop`` is a fixed list minus what the container
                       has, whatever was asked; what it has is ``EffectiveCaps`` (and
                       ``BoundingCaps``). A drop the plan (or the server's ``ALL``) asked for
                       counts as made when the capability is in neither; ``ALL`` when both are
                       empty. A capability beyond docker's default set is reported as added.
runtime                ``HostConfig.Runtime`` is always ``oci``; the runtime is ``OCIRuntime``.
image                  a name as docker writes it: ``localhost/NAME`` (no registry) and
                       ``docker.io/library/NAME`` are ``NAME``. Another registry stays: a short
                       name podman resolved elsewhere than the policy allowed is a difference.
environment            podman's own ``container=podman`` and ``TERM=xterm`` are the engine's,
                       as an image's variables are (same name and value only).
network                podman's default network is called ``podman`` where docker's is ``bridge``.
namespaces             ``private`` pid and uts namespaces are podman's default, docker's ``""``.
working directory      ``/`` where the image names none (docker: ``""``).
tmpfs options          podman adds ``rw,rprivate,nosuid,nodev,tmpcopyup`` to what was asked.
pids limit             podman gives every container one (2048) when none is asked: more
                       confinement than the plan's "none", never less.
read-only root         podman mounts a tmpfs at ``/run``, ``/tmp`` and ``/var/tmp`` of a container
                       with a read-only root (its ``--read-only-tmpfs``, on by default).
entrypoint             a string (``sh``), where docker writes a list.
=====================  ===========================================================================

And two fields podman 4.3's ``inspect`` does not say at all, read from the runtime spec podman
writes when it initializes the container (``podman init``: the OCI bundle is made, nothing runs
yet), which is what the runtime will do (:func:`with_spec`):

=====================  ===========================================================================
namespaces             ``HostConfig.IpcMode`` is ``shareable`` whatever the IPC namespace is
                       (``--ipc host`` included). In the spec, a namespace missing from
                       ``linux.namespaces`` is the host's, one with a ``path`` is joined: ipc,
                       pid and uts are read from there.
sysctls                not in ``inspect``; ``linux.sysctl`` in the spec. podman's own default
                       (``net.ipv4.ping_group_range=0 0``, containers.conf's ``default_sysctls``)
                       is the engine's: a plan or an operator setting exactly that value cannot
                       be told apart from it, and makes no difference.
=====================  ===========================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...wire.contract import PODMAN_LOCAL
from .expected import Expected, capability

Json = Mapping[str, Any]

# The capabilities docker gives a container by default: podman's are fewer (containers.conf).
DOCKER_DEFAULT_CAPS = frozenset(
    "AUDIT_WRITE CHOWN DAC_OVERRIDE FOWNER FSETID KILL MKNOD NET_BIND_SERVICE NET_RAW SETFCAP SETGID SETPCAP "
    "SETUID SYS_CHROOT".split()
)
ENGINE_ENV = ("container=podman", "TERM=xterm")  # podman sets these on every container
TMPFS_DEFAULTS = frozenset({"rw", "rprivate", "nosuid", "nodev", "tmpcopyup"})
READ_ONLY_TMPFS = ("/run", "/tmp", "/var/tmp")  # podman's tmpfs on a container with a read-only root
ENGINE_SYSCTLS = {"net.ipv4.ping_group_range": "0 0"}  # podman's default_sysctls
SPEC_NAMESPACES = {"ipc": "IpcMode", "pid": "PidMode", "uts": "UTSMode"}
DOCKER_HUB = ("docker.io/library/", "docker.io/")


def as_docker(container: Json, image: Json, expected: Expected) -> tuple[dict[str, Any], dict[str, Any]]:
    """``container`` and its ``image`` (podman's inspects) as docker would have written them; see the module's table."""
    config = dict(container.get("Config") or {})
    image_config = dict(image.get("Config") or {})
    image_config["Env"] = [*(image_config.get("Env") or []), *ENGINE_ENV]
    if config.get("WorkingDir") == "/" and not image_config.get("WorkingDir") and expected.workdir is None:
        config["WorkingDir"] = ""
    host = dict(container.get("HostConfig") or {})
    settings = dict(container.get("NetworkSettings") or {})
    host.update(_capabilities(container, expected))
    host["Runtime"] = container.get("OCIRuntime") or host.get("Runtime")
    config["Image"] = image_name(str(config.get("Image") or ""))
    networks = dict(settings.get("Networks") or {})
    if "podman" in networks:
        networks["bridge"] = networks.pop("podman")
    settings["Networks"] = networks
    for kind, key in (("pid", "PidMode"), ("uts", "UTSMode")):
        if host.get(key) == "private" and expected.namespaces.get(kind) is None:
            host[key] = ""
    tmpfs = dict(host.get("Tmpfs") or {})
    if host.get("ReadonlyRootfs"):
        for target in READ_ONLY_TMPFS:
            if target not in expected.tmpfs:
                tmpfs.pop(target, None)
    host["Tmpfs"] = {target: _tmpfs(str(options), expected.tmpfs.get(target)) for target, options in tmpfs.items()}
    entrypoint = config.get("Entrypoint")
    if isinstance(entrypoint, str):
        config["Entrypoint"] = entrypoint.split(" ") if entrypoint else []
    if not expected.pids_limit:
        host["PidsLimit"] = 0
    made = {**container, "Config": config, "HostConfig": host, "NetworkSettings": settings}
    return made, {**image, "Config": image_config}


def with_spec(container: Json, spec: Json, expected: Expected) -> dict[str, Any]:
    """``container`` (read as docker's) with the namespaces and sysctls of podman's runtime ``spec``."""
    host = dict(container.get("HostConfig") or {})
    found = spec.get("linux")
    linux: Json = found if isinstance(found, dict) else {}
    present = {str(entry.get("type")): entry for entry in linux.get("namespaces") or [] if isinstance(entry, dict)}
    for kind, key in SPEC_NAMESPACES.items():
        entry = present.get(kind)
        if entry is None:
            host[key] = "host"
        elif entry.get("path"):
            host[key] = f"container:{entry['path']}"  # joined: another container's, or the host's by path
    sysctls = {str(name): str(value) for name, value in (linux.get("sysctl") or {}).items()}
    host["Sysctls"] = {
        name: value
        for name, value in sysctls.items()
        if name in expected.sysctls or ENGINE_SYSCTLS.get(name) != value  # podman's own default
    }
    return {**container, "HostConfig": host}


def image_name(name: str) -> str:
    """``localhost/NAME`` and ``docker.io/library/NAME`` as ``NAME``, as docker names them."""
    for prefix in (PODMAN_LOCAL, *DOCKER_HUB):
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return name


def _capabilities(container: Json, expected: Expected) -> dict[str, list[str]]:
    has = {capability(str(name)) for key in ("EffectiveCaps", "BoundingCaps") for name in container.get(key) or []}
    added = [capability(str(name)) for name in (container.get("HostConfig") or {}).get("CapAdd") or []]
    added += sorted(has - DOCKER_DEFAULT_CAPS - set(added))
    dropped = [name for name in sorted(expected.cap_drop) if (not has if name == "ALL" else name not in has)]
    return {"CapAdd": added, "CapDrop": dropped}


def _tmpfs(made: str, asked: str | None) -> str:
    """podman's options for one tmpfs: what was asked when the rest is podman's defaults."""
    if asked is None:
        return made
    extra = {option for option in made.split(",") if option} - TMPFS_DEFAULTS
    wanted = {option for option in asked.split(",") if option} - TMPFS_DEFAULTS
    return asked if extra == wanted else made
