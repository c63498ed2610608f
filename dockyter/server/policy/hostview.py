"""What no bind mount may expose on this host, found from what actually runs here.

Four kinds of host paths are never mount sources, nor inside one:

* **sockets** through which a container could drive the engine or another host service: the
  engine's own (from ``docker info`` or ``podman info``, ``/etc/docker/daemon.json``, the
  command lines of the running ``dockerd``, ``containerd`` and ``podman system service`` and
  containerd's configuration file) and every unix socket bound on the host
  (``/proc/net/unix``), plus the well-known defaults;
* **engine directories**, the data root and exec root of the engine and of containerd, and
  podman's storage, runtime state and configuration (rootless: the user's, as ``podman info``
  run by the server's ``docker_command`` reports them): every container writes there (image
  layers, upper directories, volumes, runtime state), or its configuration shapes the next one;
* **kernel pseudo file systems** (``proc``, ``sysfs``, ``cgroup``, ...) from
  ``/proc/self/mountinfo``: a host ``/proc`` in a container is an escape (``/proc/1/root``);
* **the server's own secrets** (:mod:`.secretpaths`): its token and configuration files, the
  container CLI's credentials and keys. A mount inside one is refused too.

:class:`HostSurvey` reads all of this and keeps it for :data:`CACHE_SECONDS`, so a socket or
a mount that appears after start-up is seen by the next request. ``docker info`` is a
subprocess and the data root it reports cannot change while the engine runs, so it is asked
once per process and command, in the container CLI's own environment (:mod:`~dockyter.server.engine.engineenv`), which
also says where ``DOCKER_HOST`` and ``XDG_RUNTIME_DIR`` point.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import posixpath
import re
import stat
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

log = logging.getLogger("dockyter.server")

CACHE_SECONDS = 1.0  # short: a socket bound after a check is a race documented in docs/server.md
INFO_TIMEOUT = 10.0  # seconds for `docker info` at start-up

# Well-known engine sockets, refused even when nothing runs there now.
DEFAULT_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/docker/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/run/crio/crio.sock",
)

# Where docker, containerd and podman keep containers' files and runtime state by default.
DEFAULT_ENGINE_DIRS = (
    "/var/lib/docker",
    "/run/docker",
    "/var/lib/containerd",
    "/run/containerd",
    "/var/lib/containers",
    "/run/containers",
    "/run/libpod",
    "/run/runc",
    "/etc/containers",  # podman's configuration: containers.conf (mounts for every container), registries, policy
)
# What rootful podman keeps in /run, and a rootless podman in its user's XDG_RUNTIME_DIR: its API
# socket, its state (pause.pid, events, exit codes), its containers' run root (and auth.json),
# network namespaces, and the OCI runtime's state.
PODMAN_RUNTIME_DIRS = ("podman", "libpod", "containers", "netns", "runc", "crun")

# Kernel file systems that open the host to whoever mounts them (a bind mount is recursive).
PSEUDO_FSTYPES = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "bpf", "configfs",
    "fusectl", "pstore", "efivarfs", "binfmt_misc", "devpts", "mqueue", "hugetlbfs", "devtmpfs",
    "nsfs", "autofs", "rpc_pipefs", "nfsd", "selinuxfs", "smackfs",
})  # fmt: skip
DEFAULT_PSEUDO = {"/proc": "proc", "/sys": "sysfs", "/dev": "devtmpfs"}

ENGINE_PROCESSES = {"dockerd", "containerd", "podman", "crio"}
DAEMON_JSON = "/etc/docker/daemon.json"


@dataclass(frozen=True)
class HostView:
    """One reading of the host: normalised absolute paths, each as written and resolved."""

    sockets: frozenset[str]
    engine_dirs: frozenset[str]
    pseudo: dict[str, str]  # mount point -> file system type
    secrets: dict[str, str] = field(default_factory=dict)  # path -> what it is ("the server's token file")
    secret_ids: dict[tuple[int, int], str] = field(default_factory=dict)  # (device, inode) -> what and where

    def exposed_by(self, path: str) -> str | None:
        """Why mounting ``path`` would expose one of these, or None."""
        for socket in sorted(self.sockets):
            if within(socket, path):
                return f"it would give the container the host socket {socket}"
        for point, fstype in sorted(self.pseudo.items()):
            if within(path, point):
                return f"it is on the host's {fstype} file system ({point})"
            if within(point, path):
                return f"it contains the host's {fstype} file system at {point}"
        for directory in sorted(self.engine_dirs):
            if within(path, directory) or within(directory, path):
                where = "is inside" if within(path, directory) else "contains"
                return f"it {where} the container engine's directory {directory}, which every container writes to"
        return None

    def secret_exposed_by(self, path: str) -> str | None:
        """Why mounting ``path`` would expose one of the server's secrets, or None."""
        for secret, what in sorted(self.secrets.items()):
            if within(path, secret) or within(secret, path):
                where = "is" if path == secret else "is inside" if within(path, secret) else "contains"
                return f"it {where} {what} {secret}, which no container may see"
        return None


class HostSurvey:
    """Reads :class:`HostView` for the engine run by ``docker_command``, cached briefly.

    ``environment`` is the container CLI's (:mod:`~dockyter.server.engine.engineenv`); ``secrets`` the server's
    secret paths with what each is (:mod:`.secretpaths`).
    """

    def __init__(
        self,
        docker_command: Iterable[str],
        environment: Mapping[str, str],
        secrets: Mapping[str, str] | None = None,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.docker_command = tuple(docker_command)
        self.environment = dict(environment)
        self.secrets = dict(secrets or {})
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._view: HostView | None = None
        self._read_at = 0.0

    def view(self) -> HostView:
        """The current view: re-read when the last one is older than ``cache_seconds``."""
        with self._lock:
            now = time.monotonic()
            if self._view is None or now - self._read_at > self.cache_seconds:
                self._view = read_host(self.docker_command, self.environment, self.secrets)
                self._read_at = now
            return self._view


def read_host(
    docker_command: tuple[str, ...], environment: Mapping[str, str], secrets: Mapping[str, str] | None = None
) -> HostView:
    """Read everything now. Nothing here raises: an unreadable source adds nothing."""
    sockets = set(DEFAULT_SOCKETS)
    dirs = set(DEFAULT_ENGINE_DIRS)
    docker_host = environment.get("DOCKER_HOST", "")
    if docker_host.startswith("unix://"):
        sockets.add(docker_host[len("unix://") :])
    if environment.get("XDG_RUNTIME_DIR"):  # rootless docker and podman
        sockets.add(os.path.join(environment["XDG_RUNTIME_DIR"], "docker.sock"))
        sockets.add(os.path.join(environment["XDG_RUNTIME_DIR"], "podman", "podman.sock"))
        dirs.update(os.path.join(environment["XDG_RUNTIME_DIR"], name) for name in PODMAN_RUNTIME_DIRS)
    info_sockets, info_dirs = engine_info(docker_command, tuple(sorted(environment.items())))
    sockets.update(info_sockets)
    dirs.update(info_dirs)
    config_sockets, config_dirs = daemon_config(_read_text(DAEMON_JSON))
    sockets.update(config_sockets)
    dirs.update(config_dirs)
    for argv in engine_command_lines():
        process_sockets, process_dirs = command_line_paths(argv)
        sockets.update(process_sockets)
        dirs.update(process_dirs)
    sockets.update(bound_sockets(unix_socket_paths(_read_text("/proc/net/unix"))))
    pseudo = dict(DEFAULT_PSEUDO)
    pseudo.update(pseudo_mounts(_read_text("/proc/self/mountinfo")))
    secrets = dict(secrets or {})
    return HostView(_with_resolved(sockets), _with_resolved(dirs), pseudo, secrets, _identities(secrets))


# -- the engine's own account ---------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def engine_info(
    docker_command: tuple[str, ...], environment: tuple[tuple[str, str], ...]
) -> tuple[frozenset[str], frozenset[str]]:
    """Sockets and directories from ``docker info`` (or ``podman info``) run in ``environment``; nothing if it fails."""
    if not docker_command:
        return frozenset(), frozenset()
    try:
        answer = subprocess.run(
            [*docker_command, "info", "--format", "{{json .}}"],
            capture_output=True, text=True, timeout=INFO_TIMEOUT, stdin=subprocess.DEVNULL, env=dict(environment),
        )  # fmt: skip
        info = json.loads(answer.stdout) if answer.returncode == 0 else {}
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        log.warning("could not ask the engine where it keeps its files (%s): using the defaults", error)
        return frozenset(), frozenset()
    if not isinstance(info, dict):
        return frozenset(), frozenset()
    sockets, dirs = set(), set()
    dirs.add(_get(info, "DockerRootDir"))  # docker
    sockets.add(_get(info, "Containerd", "Address"))  # docker 27 and later
    podman_sockets, podman_dirs = podman_info_paths(info)
    return frozenset(filter(_absolute, sockets | podman_sockets)), frozenset(filter(_absolute, dirs | podman_dirs))


def podman_info_paths(info: dict[str, object]) -> tuple[set[str], set[str]]:
    """Sockets and directories in ``podman info --format json``, rootful or rootless.

    Its storage (``store.graphRoot``, ``runRoot``, ``volumePath``) and the folder around the
    storage (``~/.local/share/containers``, ``/var/lib/containers``); the API socket
    (``host.remoteSocket``, which exists only while the service runs: refused by name) and,
    beside it, what podman keeps in that runtime directory (:data:`PODMAN_RUNTIME_DIRS`: for
    rootless podman, its user's ``XDG_RUNTIME_DIR`` as podman itself sees it, whatever the
    server's is); a rootless user's configuration (``~/.config/containers``: containers.conf,
    registries, ``auth.json``), the folder of ``store.configFile``.
    """
    graph = _get(info, "store", "graphRoot")
    dirs = {graph, _get(info, "store", "runRoot"), _get(info, "store", "volumePath")}
    if posixpath.basename(graph) == "storage":
        dirs.add(posixpath.dirname(graph))
    socket = _get(info, "host", "remoteSocket", "path").removeprefix("unix://")
    if socket.endswith("/podman/podman.sock"):
        runtime_dir = posixpath.dirname(posixpath.dirname(socket))
        dirs.update(posixpath.join(runtime_dir, name) for name in PODMAN_RUNTIME_DIRS)
    host = info.get("host")
    security = host.get("security") if isinstance(host, dict) else None
    if isinstance(security, dict) and security.get("rootless") is True:  # rootful's is the vendor's, /usr/share
        dirs.add(posixpath.dirname(_get(info, "store", "configFile")))
    return {socket}, dirs


def daemon_config(text: str) -> tuple[set[str], set[str]]:
    """``hosts``, ``containerd``, ``exec-root``, ``data-root`` (and the old ``graph``) of daemon.json."""
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError:
        return set(), set()
    if not isinstance(config, dict):
        return set(), set()
    hosts = config.get("hosts") or []
    sockets = {_unix(host) for host in (hosts if isinstance(hosts, list) else [hosts])}
    sockets.add(_unix(config.get("containerd")))
    dirs = {_get(config, key) for key in ("exec-root", "data-root", "graph")}
    return set(filter(_absolute, sockets)), set(filter(_absolute, dirs))


def engine_command_lines() -> Iterator[list[str]]:
    """The argv of every running dockerd, containerd, podman and crio this process can read."""
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                raw = file.read()
        except OSError:
            continue  # gone, or not ours to read
        argv = [part.decode("utf-8", "surrogateescape") for part in raw.split(b"\0") if part]
        if argv and posixpath.basename(argv[0]) in ENGINE_PROCESSES:
            yield argv


def command_line_paths(argv: list[str]) -> tuple[set[str], set[str]]:
    """Sockets and directories named on a dockerd or containerd command line."""
    values = option_values(argv[1:])
    sockets = {_unix(value) for value in values.get("-H", []) + values.get("--host", [])}
    sockets.update(values.get("--containerd", []) + values.get("--address", []) + values.get("-a", []))
    dirs = {value for flag in ("--data-root", "--exec-root", "-g", "--graph") for value in values.get(flag, [])}
    dirs.update(values.get("--root", []) + values.get("--state", []))  # containerd (and podman's --root)
    dirs.update(values.get("--runroot", []))  # podman
    sockets.update(_unix(word) for word in argv[1:] if word.startswith("unix://"))  # podman system service URI
    for path in values.get("--config", []) + values.get("-c", []):
        if posixpath.basename(argv[0]) == "containerd":
            config_sockets, config_dirs = containerd_config(_read_text(path))
            sockets.update(config_sockets)
            dirs.update(config_dirs)
    return set(filter(_absolute, sockets)), set(filter(_absolute, dirs))


def containerd_config(text: str) -> tuple[set[str], set[str]]:
    """``root``, ``state`` and the gRPC, ttrpc and debug socket addresses of a containerd TOML."""
    try:
        config = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        return set(), set()
    sockets = {_get(config, section, "address") for section in ("grpc", "ttrpc", "debug")}
    dirs = {_get(config, "root"), _get(config, "state")}
    return set(filter(_absolute, sockets)), set(filter(_absolute, dirs))


# -- the kernel's account ---------------------------------------------------------------------------


def unix_socket_paths(text: str) -> set[str]:
    """Paths of the unix sockets bound in this network namespace (abstract ones have none)."""
    paths = set()
    for line in text.splitlines()[1:]:
        fields = line.split(maxsplit=7)
        if len(fields) == 8 and fields[7].startswith("/"):
            paths.add(fields[7])
    return paths


def bound_sockets(paths: Iterable[str]) -> set[str]:
    """Those of ``paths`` that are a socket on the host now.

    ``/proc/net/unix`` lists the path a socket was bound to, as its binder wrote it: a socket since
    removed, or bound through a process's own file descriptor (podman's conmon binds
    ``/proc/self/fd/N/attach``), names nothing a mount could reach.
    """
    found = set()
    for path in paths:
        if path.startswith("/proc/"):
            continue  # relative to the binding process, and refused as a pseudo file system anyway
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                found.add(path)
        except OSError:
            continue
    return found


def pseudo_mounts(text: str) -> dict[str, str]:
    """Mount points of kernel pseudo file systems in ``/proc/self/mountinfo``."""
    found = {}
    for line in text.splitlines():
        before, dash, after = line.partition(" - ")
        fields, kind = before.split(), after.split()
        if dash and len(fields) >= 5 and kind and kind[0] in PSEUDO_FSTYPES:
            found[_unescape(fields[4])] = kind[0]
    return found


# -- helpers -------------------------------------------------------------------------------------------


def normalise(path: str) -> str:
    """``/a//b/../c/`` -> ``/a/c`` (POSIX keeps a leading ``//``; the engine does not)."""
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/")


def within(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or below it (both normalised)."""
    return directory == "/" or path == directory or path.startswith(directory.rstrip("/") + "/")


def _identities(paths: Mapping[str, str]) -> dict[tuple[int, int], str]:
    """(device, inode) of each of ``paths`` that exists now, with what it is and where: the same file by any name."""
    found: dict[tuple[int, int], str] = {}
    for path, what in paths.items():
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            continue
        found.setdefault((info.st_dev, info.st_ino), f"{what} {path}")
    return found


def _with_resolved(paths: Iterable[str]) -> frozenset[str]:
    """Each path normalised, and resolved too (``/var/run`` is often a link to ``/run``)."""
    answer = set()
    for path in paths:
        answer.add(normalise(path))
        try:
            answer.add(normalise(os.path.realpath(path)))
        except (OSError, ValueError):
            pass
    return frozenset(answer)


def option_values(args: list[str]) -> dict[str, list[str]]:
    """``--flag value`` and ``--flag=value`` pairs of a command line, by flag (``dockerd``'s, the CLI's)."""
    values: dict[str, list[str]] = {}
    for index, arg in enumerate(args):
        if not arg.startswith("-"):
            continue
        name, equals, value = arg.partition("=")
        if not equals:
            if index + 1 >= len(args):
                continue
            value = args[index + 1]
        values.setdefault(name, []).append(value)
    return values


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            return file.read()
    except (OSError, ValueError):
        return ""


def _get(data: object, *keys: str) -> str:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, str) else ""


def _unix(address: object) -> str:
    """The path of a ``unix://`` address (or of a bare path); "" for anything else."""
    if not isinstance(address, str):
        return ""
    return address.removeprefix("unix://")


def _absolute(path: object) -> bool:
    return isinstance(path, str) and path.startswith("/") and "\0" not in path


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)
