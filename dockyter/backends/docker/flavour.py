"""Which container CLI ``Dockyter.docker_command`` reaches, Docker's or podman's, and what differs.

podman takes Docker's ``run`` line, and Dockyter's containers run the same way on both; where
podman 4 answers differently, the backend asks the :class:`Flavour` what to do:

* ``--init`` is catatonit, not tini: it passes a signal to the shell only, and ignores tini's
  ``TINI_KILL_PROCESS_GROUP``. An interrupt is then sent to every process of the container from
  inside it (:meth:`Flavour.interrupt_argv`), as tini would send it to the shell's group.
* ``rm --force`` stops a running container with SIGTERM and waits 10 s before it kills;
  ``--time 0`` kills at once, as ``docker rm --force`` does. And given one name that no longer
  exists, podman 4.3's ``rm`` removes none of the others, unless ``--ignore``
  (:meth:`Flavour.remove_argv`).
* An image built or loaded without a registry is listed as ``localhost/NAME``, though users
  write, and podman runs, ``NAME`` (:meth:`Flavour.image_name`).
* Rootless (podman run by its own user), the container's root is that user on the host, so
  ``--as-me`` needs ``--userns keep-id`` (:meth:`Flavour.as_me_userns`); on cgroup v1 there is
  no ``stats``, and a session's memory is read from its processes instead (``podman top``).

Asked once per ``docker_command`` (``CLI --version``: ``podman version 4.3.1``; for podman, also
whether it is rootless). The load-time clean-up asks first, in the background; a CLI that cannot
be asked counts as Docker's, and is asked again next time.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ...wire.contract import EXIT_KILLED, PODMAN_LOCAL, is_podman, remove_argv
from ...wire.dockerargs import RunArgs
from .cli import control

# Run in the container by `exec`: SIGINT to every process in its pid namespace but its init
# (pid 1) and this shell itself, as Ctrl-C in a terminal reaches the whole foreground job.
GROUP_INTERRUPT = ("sh", "-c", "kill -INT -1")


@dataclass(frozen=True)
class Flavour:
    """What the backend must do differently for one container CLI."""

    podman: bool = False
    rootless: bool = False  # podman run by an unprivileged user (never said of Docker)

    def remove_argv(self) -> tuple[str, ...]:
        """``rm`` that removes a container now, running or not, with its anonymous volumes."""
        return remove_argv(self.podman)

    def interrupt_argv(self, container: str, args: RunArgs) -> tuple[str, ...]:
        """The CLI arguments that give the container's command the interrupt (SIGINT).

        Docker's init (tini) passes it to the shell's whole process group. podman's (catatonit)
        passes it to the shell only, so it goes from inside: ``exec ... kill -INT -1``. Not when
        the container shares another pid namespace (``--pid host``, ``--pid container:X``):
        there ``-1`` would be every process of that namespace, so only the shell gets it.
        """
        if self.podman and all(mode == "private" for mode in args.values("--pid")):
            return ("exec", container, *GROUP_INTERRUPT)
        return ("kill", "--signal", "INT", container)

    def image_name(self, listed: str) -> str:
        """An image's name as users write it: podman's ``localhost/NAME`` is ``NAME``."""
        return listed.removeprefix(PODMAN_LOCAL) if self.podman else listed

    def as_me_userns(self) -> str | None:
        """The ``--userns`` that ``--as-me`` needs besides ``--user UID:GID``; None for none.

        Rootless podman maps the container's root to the user and every other uid to the user's
        subordinate ids: ``--user UID:GID`` alone would be a stranger on the host. ``keep-id``
        maps the user's own uid to itself.
        """
        return "keep-id" if self.rootless else None


DOCKER = Flavour()
_known: dict[tuple[str, ...], Flavour] = {}
_lock = threading.Lock()


def flavour_of(docker_command: Sequence[str]) -> Flavour:
    """The flavour of the CLI ``docker_command``, asked once (Docker's when it cannot be asked)."""
    key = tuple(docker_command)
    with _lock:
        known = _known.get(key)
    if known is not None:
        return known
    version = control(docker_command, "--version")
    if version is None or version.returncode != 0:
        return DOCKER  # not remembered: the CLI may be installed or reachable later
    found = DOCKER
    if is_podman(version.stdout):
        rootless = control(docker_command, "info", "--format", "{{.Host.Security.Rootless}}")
        found = Flavour(podman=True, rootless=rootless is not None and rootless.stdout.strip() == "true")
    with _lock:
        _known[key] = found
    return found


# catatonit's words when it cannot start the container's command (its exit status is then 1):
# "ERROR (catatonit:6): failed to exec pid1: No such file or directory".
INIT_EXEC_FAILED = re.compile(r"^ERROR \(catatonit:\d+\): failed to exec pid1: (.+)$", re.MULTILINE)


def init_exit_status(code: int, tail: str) -> int:
    """``code`` as Docker would give it when podman's init could not start the command.

    catatonit exits 1 where tini (and podman without ``--init``) exit 127 for a command not
    found and 126 for one that cannot be executed; the exit status must mean the same.
    """
    found = INIT_EXEC_FAILED.findall(tail) if code == 1 else []
    if not found:
        return code
    return 126 if "permission denied" in found[-1].lower() else 127


class OomMark:
    """conmon's ``oom`` file, which a run may leave in the working directory it was started in.

    Made before the run (one ``lstat``); :meth:`clear` after it removes the file when the
    container was killed (137) on podman and the file is new and empty: never one that was
    there before, or that has anything in it.
    """

    def __init__(self, cwd: str | None = None) -> None:
        self.path = os.path.join(cwd or os.getcwd(), "oom")
        self.existed = os.path.lexists(self.path)

    def clear(self, flavour: Flavour, code: int | None) -> None:
        if code != EXIT_KILLED or self.existed or not flavour.podman:
            return
        try:
            found = os.lstat(self.path)
            if stat.S_ISREG(found.st_mode) and found.st_size == 0:
                os.remove(self.path)
        except OSError:
            pass  # not there (Docker, or a conmon that writes it elsewhere), or not ours to remove


def top_memory(listing: str) -> str | None:
    """The resident memory of a container's processes from ``podman top NAME rss`` (KiB each)."""
    sizes = [line.split()[0] for line in listing.splitlines()[1:] if line.split()]
    if not sizes or not all(size.isdigit() for size in sizes):
        return None
    mebibytes = sum(map(int, sizes)) / 1024
    return f"{mebibytes:.1f}MiB"
