"""What a request may ask ``dockyter-server`` for: an allowlist over the parsed arguments.

``args`` is parsed with the client's own ``docker run`` flag table
(:func:`dockyter.dockerargs.parse_run_args`), so every spelling of an option
(``--net host``, ``--net=host``, ``--network host``, ``-v/:/h``, ``-dit``...) reaches the same
check under its canonical name. Then:

* options that open the host or break the container's lifecycle are refused whatever their
  value (:data:`NEVER_ALLOWED`), even if an operator lists them;
* namespace options are refused with ``host`` or ``container:...`` values;
* every other option must be in the operator's ``allowed_flags``, and its value is checked
  where it matters: mounts (host paths, named volumes, the engine socket), networks, labels;
* the image must match ``allowed_images`` and the shell ``allowed_shells``.

A refusal is a :class:`PolicyError` whose message names the argument as it was written.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
import shlex
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, NoReturn

from ..contract import DEFAULT_SHELL
from ..dockerargs import ALIASES, BOOL_FLAGS, SHORT_FLAGS, VALUE_FLAGS, DockerOption, RunArgs, parse_run_args

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings


class PolicyError(Exception):
    """The policy refuses the request (HTTP 403); the message names the offending argument."""


# Options refused however they are written and whatever an operator allows, with the reason.
NEVER_ALLOWED: dict[str, str] = {
    "--privileged": "it gives the container full access to the host",
    "--cap-add": "it gives back capabilities the server drops",
    "--device": "it gives the container a host device",
    "--device-cgroup-rule": "it gives the container access to host devices",
    "--security-opt": "it can switch off the container's confinement",
    "--volumes-from": "it mounts the volumes of another container",
    "--use-api-socket": "it gives the container the engine's API socket",
    "--cgroup-parent": "it moves the container out of the server's resource limits",
    "--publish": "it opens a port on the server's host",
    "--publish-all": "it opens ports on the server's host",
    "--env-file": "it reads a file on the server",
    "--label-file": "it reads a file on the server",
    "--cidfile": "it writes a file on the server",
    "--name": "the server names its containers itself",
    "--detach": "the server follows every container to its end",
    "--restart": "the server removes every container when it ends",
    "--log-driver": "the server sets the container's logging itself",
    "--log-opt": "the server sets the container's logging itself",
}

# Switches the server always sets: turning them off would leave containers behind or unmanaged.
LIFECYCLE_SWITCHES = {"--rm", "--init"}

# Namespace options, refused with a value that shares a namespace with the host or a container.
NAMESPACE_FLAGS: dict[str, str] = {
    "--network": "network",
    "--pid": "process",
    "--ipc": "IPC",
    "--uts": "UTS (host name)",
    "--userns": "user",
    "--cgroupns": "cgroup",
}

# Sockets through which a container could drive a container engine: never mountable.
ENGINE_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
    "/var/run/podman/podman.sock",
    "/run/podman/podman.sock",
    "/var/run/crio/crio.sock",
    "/run/crio/crio.sock",
)

VOLUME_MODES = {"ro", "rw", "nocopy", "private", "rprivate", "consistent", "cached", "delegated"}
MOUNT_KEYS = {
    "type", "source", "src", "target", "destination", "dst", "readonly", "ro", "consistency",
    "bind-propagation", "volume-nocopy", "tmpfs-size", "tmpfs-mode",
}  # fmt: skip
MOUNT_KEY_ALIASES = {"src": "source", "destination": "target", "dst": "target", "ro": "readonly"}
VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class AllowedMount:
    """A host directory an operator lets requests bind-mount."""

    path: str  # absolute and normalised
    writable: bool  # False: only read-only mounts of it (or below it) are allowed


@dataclass(frozen=True)
class Plan:
    """A request the policy accepted: what the executor runs."""

    args: RunArgs  # the request's options and image, unchanged
    shell: tuple[str, ...]
    has_network: bool  # the request chose its own --network (the server then adds none)


def check_flag_names(names: list[str]) -> list[str]:
    """Canonical long names for ``allowed_flags`` (``env``, ``-e`` and ``--env`` all work).

    Raises ValueError for an unknown option or one in :data:`NEVER_ALLOWED`.
    """
    canonical = []
    for name in names:
        if re.fullmatch(r"-[A-Za-z]", name):
            long = SHORT_FLAGS.get(name[1])
        else:
            long = "--" + name.lstrip("-")
            long = ALIASES.get(long, long)
        if long is None or long not in VALUE_FLAGS | BOOL_FLAGS:
            raise ValueError(f"allowed_flags: {name!r} is not a docker run option")
        if long in NEVER_ALLOWED:
            raise ValueError(f"allowed_flags: {long} can never be allowed: {NEVER_ALLOWED[long]}")
        canonical.append(long)
    return canonical


def parse_allowed_mounts(entries: list[str]) -> list[AllowedMount]:
    """``PATH``, ``PATH:ro`` or ``PATH:rw`` entries; raises ValueError for a bad one."""
    mounts = []
    for entry in entries:
        path, colon, mode = entry.rpartition(":")
        if not colon or mode not in ("ro", "rw"):
            path, mode = entry, "ro"
        if not path.startswith("/"):
            raise ValueError(f"allowed_mounts: {entry!r} must be an absolute path, optionally followed by :ro or :rw")
        mounts.append(AllowedMount(_normalise(path), writable=mode == "rw"))
    return mounts


class Policy:
    """The checks of one server's settings; :meth:`check` turns a request into a :class:`Plan`."""

    def __init__(self, settings: Settings) -> None:
        self.images = list(settings.allowed_images)
        self.flags = set(settings.allowed_flags)
        self.mounts = parse_allowed_mounts(settings.allowed_mounts)
        self.volumes = list(settings.allowed_volumes)
        self.networks = {"none", *settings.allowed_networks}
        self.shells = [tuple(shlex.split(shell)) for shell in settings.allowed_shells]
        self.sockets = engine_sockets(settings.docker_command)

    def check(self, args: str, shell: list[str] | None = None) -> Plan:
        """Parse and check a request.

        Raises :class:`~dockyter.dockerargs.DockerArgsError` (400) when ``args`` cannot be
        understood and :class:`PolicyError` (403) when the policy refuses it.
        """
        run_args = parse_run_args(args)
        for option in run_args.options:
            self._check_option(option)
        self._check_image(run_args.image)
        has_network = any(option.name == "--network" for option in run_args.options)
        return Plan(run_args, self._check_shell(shell), has_network=has_network)

    # -- options ----------------------------------------------------------------------------

    def _check_option(self, option: DockerOption) -> None:
        written = _written(option)
        name = option.name
        if name in NEVER_ALLOWED:
            _refuse(written, NEVER_ALLOWED[name])
        if name in LIFECYCLE_SWITCHES and not option.enabled:
            _refuse(written, f"the server always runs containers with {name}")
        if name in NAMESPACE_FLAGS and option.value is not None:
            value = option.value.strip().lower()
            if value == "host" or value.startswith("container:"):
                _refuse(written, f"it shares the {NAMESPACE_FLAGS[name]} namespace of the host or another container")
        if name not in self.flags:
            raise PolicyError(f"{written} is not allowed by this server's policy")
        value = option.value or ""
        if name == "--network" and value not in self.networks:
            _refuse(written, f"allowed networks are {', '.join(sorted(self.networks))}")
        if name == "--label" and value.split("=", 1)[0].strip().lower().startswith("io.dockyter"):
            _refuse(written, "io.dockyter.* labels belong to the server")
        if name == "--volume":
            self._check_volume(written, value)
        if name == "--mount":
            self._check_mount(written, value)

    # -- mounts -----------------------------------------------------------------------------

    def _check_volume(self, written: str, spec: str) -> None:
        """``-v [SOURCE:]TARGET[:MODES]``: a bind mount, a named volume or an anonymous volume."""
        parts = spec.split(":")
        if len(parts) == 1:
            return  # an anonymous volume: created for this container and removed with it
        if len(parts) > 3 or not parts[0] or not parts[1]:
            _refuse(written, "expected SOURCE:TARGET[:MODES]")
        source = parts[0]
        modes = [mode for mode in (parts[2].split(",") if len(parts) == 3 else []) if mode]
        for mode in modes:
            if mode not in VOLUME_MODES:
                allowed = ", ".join(sorted(VOLUME_MODES))
                _refuse(written, f"the mount mode {mode!r} is not (allowed: {allowed})")
        self._check_source(written, source, readonly="ro" in modes and "rw" not in modes)

    def _check_mount(self, written: str, spec: str) -> None:
        """``--mount type=...,source=...,target=...``: the same rules as ``-v``, key by key."""
        if '"' in spec or "\n" in spec or "\r" in spec:
            _refuse(written, "quotes and line breaks in --mount are not")
        fields = next(csv.reader([spec]), [])
        values: dict[str, str | None] = {}
        for item in fields:
            key, equals, value = item.partition("=")
            key = key.strip().lower()
            if key not in MOUNT_KEYS:
                _refuse(written, f"the --mount key {key!r} is not")
            key = MOUNT_KEY_ALIASES.get(key, key)
            if key in values:
                _refuse(written, f"{key!r} is given twice")
            values[key] = value if equals else None
        kind = (values.get("type") or "volume").lower()
        source = values.get("source")
        if "bind-propagation" in values and values["bind-propagation"] not in ("private", "rprivate"):
            _refuse(written, "only private bind propagation is")
        readonly = "readonly" in values and (values["readonly"] or "true").lower() in ("true", "1")
        if kind == "tmpfs":
            if source:
                _refuse(written, "a tmpfs mount takes no source")
            return
        if kind == "bind":
            if not source or not source.startswith("/"):
                _refuse(written, "a bind mount needs an absolute source path")
            self._check_bind(written, source, readonly)
            return
        if kind == "volume":
            if source:
                if "/" in source:
                    _refuse(written, "a volume source is a volume name, not a path")
                self._check_source(written, source, readonly)
            return
        _refuse(written, f"the mount type {kind!r} is not (allowed: bind, volume, tmpfs)")

    def _check_source(self, written: str, source: str, readonly: bool) -> None:
        if source.startswith("/"):
            self._check_bind(written, source, readonly)
        elif VOLUME_NAME.fullmatch(source):
            # Named volumes outlive the container and are shared by every user of the engine.
            if not any(fnmatchcase(source, pattern) for pattern in self.volumes):
                _refuse(written, f"the named volume {source!r} is not in this server's allowed volumes")
        else:
            _refuse(written, f"{source!r} is neither an absolute host path nor a volume name")

    def _check_bind(self, written: str, source: str, readonly: bool) -> None:
        path = _normalise(source)
        resolved = os.path.realpath(path)
        for candidate in (path, resolved):
            for socket in self.sockets:
                if _within(socket, candidate):
                    _refuse(written, f"it would give the container the engine's socket {socket}")
        if resolved != path:
            # The engine follows symbolic links on the host: check, and mount, only real paths.
            _refuse(written, f"{path} is (or passes through) a symbolic link to {resolved}")
        rule = self._mount_rule(path)
        if rule is None:
            allowed = ", ".join(m.path + ("" if m.writable else " (read-only)") for m in self.mounts) or "none"
            _refuse(written, f"{path} is not under an allowed host path (allowed: {allowed})")
        if not rule.writable and not readonly:
            _refuse(written, f"{rule.path} may only be mounted read-only (add :ro or readonly)")

    def _mount_rule(self, path: str) -> AllowedMount | None:
        """The allowed mount ``path`` is at or below (an entry that is itself a link counts resolved too)."""
        for mount in self.mounts:
            if _within(path, mount.path) or _within(path, os.path.realpath(mount.path)):
                return mount
        return None

    # -- image and shell --------------------------------------------------------------------

    def _check_image(self, image: str) -> None:
        # IMAGE and IMAGE:latest are the same image: either matches a pattern written either way.
        candidates = [image, image.removesuffix(":latest")]
        if "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
            candidates.append(image + ":latest")
        if not any(fnmatchcase(candidate, pattern) for candidate in candidates for pattern in self.images):
            raise PolicyError(f"the image {image!r} is not allowed (allowed: {', '.join(self.images) or 'none'})")

    def _check_shell(self, shell: list[str] | None) -> tuple[str, ...]:
        if shell is None:
            # Clients of the original contract send no shell: bash -lc, or the operator's first choice.
            if DEFAULT_SHELL in self.shells or not self.shells:
                return DEFAULT_SHELL
            return self.shells[0]
        if tuple(shell) not in self.shells:
            allowed = ", ".join(shlex.join(s) for s in self.shells) or "none"
            raise PolicyError(f"the shell {shlex.join(shell)!r} is not allowed (allowed: {allowed})")
        return tuple(shell)


def engine_sockets(docker_command: list[str]) -> list[str]:
    """The engine sockets on this host, as written and resolved, including DOCKER_HOST's."""
    sockets = list(ENGINE_SOCKETS)
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host.startswith("unix://"):
        sockets.append(docker_host[len("unix://") :])
    if os.environ.get("XDG_RUNTIME_DIR"):  # rootless docker and podman
        sockets.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "docker.sock"))
        sockets.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "podman", "podman.sock"))
    resolved = [os.path.realpath(s) for s in sockets]
    return list(dict.fromkeys(_normalise(s) for s in sockets + resolved))


def _normalise(path: str) -> str:
    """``/a//b/../c/`` -> ``/a/c`` (POSIX keeps a leading ``//``; the engine does not)."""
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/")


def _within(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or below it (both normalised)."""
    return directory == "/" or path == directory or path.startswith(directory.rstrip("/") + "/")


def _refuse(written: str, why: str) -> NoReturn:
    """Refuse the argument ``written`` (as the user wrote it), saying ``why``."""
    raise PolicyError(f"{written} is not allowed: {why}")


def _written(option: DockerOption) -> str:
    """The option as the user wrote it, for messages (``--net host``, ``-v /:/h``)."""
    return " ".join(option.written) if option.written else option.name
