"""What both ends of the wire agree on: the kernel's extension and ``dockyter-server``.

Exit codes for runs that Dockyter itself ended, the default shell, the streaming media type,
how containers are named and labelled (and whose they are), the one ``docker run`` argv
skeleton and the limits a server adds to it, and the incremental UTF-8 decoding of container
output. Nothing here imports
IPython, traitlets or requests: the server imports this module and ``dockerargs``, and
nothing else from the client side.

Every container Dockyter starts carries :data:`MANAGED_LABEL`. Containers started from a
kernel also carry :data:`OWNER_LABEL` (host, pid and start time of the owning process), which
lets ``%docker_cleanup`` remove the ones whose kernel died without touching anything else.
Containers started by ``dockyter-server`` also carry :data:`SERVER_LABEL`
(``server_name:instance``), by which a restarted server finds what a crashed one left; their
owner is the server process, so a kernel's cleanup never mistakes them for orphans while it lives.
"""

from __future__ import annotations

import codecs
import os
import re
import secrets
import socket
from collections.abc import Mapping, Sequence
from typing import Protocol

# -- exit codes ----------------------------------------------------------------------------------
# What a run reports when Dockyter (or dockyter-server) itself ended it, as GNU timeout, shells
# and the kernel's OOM killer do; and what `_exit_code` says when a run could not start.
EXIT_USAGE = 2  # a misused magic line, as shells answer a misused builtin
EXIT_TIMEOUT = 124
EXIT_CANNOT_RUN = 125  # docker's own "could not run it"
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 130
EXIT_KILLED = 137

# -- control commands -----------------------------------------------------------------------------
# Seconds a short control command may take before it is given up on, on either end: a CLI call
# (kill, rm, exec, ps, stats, inspect, version) or a small HTTP request (a session's start check,
# lookup or removal).
CONTROL_TIMEOUT = 20.0

# -- the HTTP contract (docs/api.md) ---------------------------------------------------------------
DEFAULT_SHELL: tuple[str, ...] = ("bash", "-lc")  # what a server runs when the request names no shell
NDJSON = "application/x-ndjson"  # the streaming reply a client negotiates with Accept
READ_SIZE = 65536  # bytes per read of a pipe or a socket, on both ends
# Header names whose values are never shown (api_headers in listings, curl lines, logs).
SECRET_HEADER = re.compile(r"auth|cookie|token|key|secret|password", re.IGNORECASE)

# -- container names and labels --------------------------------------------------------------------
MANAGED_LABEL = "io.dockyter.managed"
OWNER_LABEL = "io.dockyter.owner"
SERVER_LABEL = "io.dockyter.server"
NAME_PREFIX = "dockyter-"
# docker's init (tini) then signals the whole process group, so Ctrl-C reaches `sleep` in
# `bash -lc 'sleep 60'`, and `a | b` dies at once, as in a terminal.
INIT_ENV = "TINI_KILL_PROCESS_GROUP=1"
# How a container Dockyter started is removed, whatever state it is in: forced (it may still
# run), and with its anonymous volumes (`-v /data`, an image's VOLUME). `docker run --rm` removes
# those when the container ends by itself, but a `docker rm -f` that gets there first leaves
# them behind, dangling, forever. Named volumes are never removed by it.
REMOVE_CONTAINER = ("rm", "--force", "--volumes")
# podman's `rm --force` stops a running container with SIGTERM and waits 10 s before it kills
# (`--time 0`: at once, as docker's does); and given one name that is already gone, podman 4.3
# removes none of the others (`--ignore`: it removes them).
PODMAN_REMOVE = (*REMOVE_CONTAINER, "--time", "0", "--ignore")
PODMAN_LOCAL = "localhost/"  # podman's name for the registry of images that came from none


def remove_argv(podman: bool) -> tuple[str, ...]:
    """The ``rm`` that removes containers now, running or not, with their anonymous volumes."""
    return PODMAN_REMOVE if podman else REMOVE_CONTAINER


def is_podman(version: str) -> bool:
    """Whether ``CLI --version`` printed podman's (``podman version 4.3.1``; Docker's: ``Docker version 28.2.2``)."""
    return version.lstrip().lower().startswith("podman")


def new_container_name() -> str:
    """A fresh, unique container name such as ``dockyter-5f3a9c0e12ab``."""
    return NAME_PREFIX + secrets.token_hex(6)


def identity_args(labels: Mapping[str, str]) -> list[str]:
    """``--label k=v ...`` for ``labels``, then the init's environment: what marks a container ours."""
    words = [word for name, value in labels.items() for word in ("--label", f"{name}={value}")]
    return [*words, "--env", INIT_ENV]


def run_argv(
    runtime: Sequence[str],
    name: str,
    *,
    image: str,
    shell: Sequence[str],
    command: str,
    options: Sequence[str] = (),
    before: Sequence[str] = (),
    after: Sequence[str] = (),
    merge_stderr: bool = False,
    verb: str = "run",
    waiter: Sequence[str] = (),
) -> list[str]:
    """The one ``docker run`` argv: ``RUNTIME run --rm --init --name NAME BEFORE OPTIONS AFTER IMAGE SHELL CMD``.

    ``options`` are the user's docker options; what comes later wins in ``docker run``, so
    ``before`` holds defaults a user may override and ``after`` what a caller enforces. The
    command is one argument: it reaches a shell only inside the container. ``verb`` is
    ``create`` for a container that is checked before it is started (``dockyter-server``).
    With ``waiter`` (:func:`dockyter.wire.waiter.waiter_words`), the container is prestarted:
    ``-i``, and ``IMAGE WAITER... SHELL`` without a command, which comes later on stdin.
    """
    if waiter:
        return [
            *runtime,
            verb,
            "-i",
            "--rm",
            "--init",
            "--name",
            name,
            *before,
            *options,
            *after,
            image,
            *waiter,
            *shell,
        ]
    last = shell_command(command, merge_stderr)
    return [*runtime, verb, "--rm", "--init", "--name", name, *before, *options, *after, image, *shell, last]


def shell_command(command: str, merge_stderr: bool) -> str:
    """The command line given to the shell: with ``merge_stderr``, stderr goes to stdout first.

    The engine reads stdout and stderr separately; merging in the container keeps their order.
    """
    return f"exec 2>&1; {command}" if merge_stderr else command


class ServerLimits(Protocol):
    """The settings by which ``dockyter-server`` confines every container it starts."""

    @property
    def network(self) -> str: ...
    @property
    def memory(self) -> str: ...
    @property
    def cpus(self) -> str: ...
    @property
    def pids_limit(self) -> int: ...
    @property
    def drop_capabilities(self) -> bool: ...
    @property
    def forbid_new_privileges(self) -> bool: ...
    @property
    def pull(self) -> str: ...
    @property
    def runtime(self) -> str: ...


def limit_args(limits: ServerLimits, *, has_network: bool) -> list[str]:
    """The ``docker run`` flags a server enforces on each of its containers, executions and sessions alike.

    They go after the user's options, so they win: the server's network (unless the policy let
    the request choose one: ``has_network``), memory, CPU and pid limits, no capabilities, no
    new privileges, when to pull, and the OCI runtime.
    """
    args = []
    if limits.network and not has_network:
        args += ["--network", limits.network]
    if limits.memory:
        args += ["--memory", limits.memory]
    if limits.cpus:
        args += ["--cpus", limits.cpus]
    if limits.pids_limit:
        args += ["--pids-limit", str(limits.pids_limit)]
    if limits.drop_capabilities:
        args += ["--cap-drop", "ALL"]
    if limits.forbid_new_privileges:
        args += ["--security-opt", "no-new-privileges"]
    if limits.pull:
        args += ["--pull", limits.pull]
    if limits.runtime:
        args += ["--runtime", limits.runtime]
    return args


# -- whose container it is -------------------------------------------------------------------------


def process_start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), or None if unknown.

    Together with the pid it identifies a process even after the pid is reused.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name (field 2) may contain spaces; fields after ')' are safe to split.
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19].decode() if len(fields) > 19 else None


def owner_id(pid: int | None = None) -> str:
    """``host:pid:starttime`` for ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{process_start_time(pid) or '?'}"


def owner_is_gone(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer exists.

    Owners on other hosts are never judged gone: we cannot see their processes.
    """
    try:
        host, pid_text, started = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    current = process_start_time(pid)
    if current is None:
        return not os.path.exists(f"/proc/{pid}") and not _pid_alive(pid)
    return started != "?" and current != started


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- output ----------------------------------------------------------------------------------------


class IncrementalText:
    """UTF-8 bytes in, text out, even when a character is split across two reads."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        """Whatever is left at end of stream (an incomplete character becomes U+FFFD)."""
        return self._decoder.decode(b"", final=True)
