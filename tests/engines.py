"""The container engines the local backend's tests run on: Docker, podman, and podman rootless.

Plain helpers (no pytest): ``engine_fixtures.py`` turns them into the ``engine`` parameter.

* ``docker``: the Docker engine, through ``docker``.
* ``podman``: rootful podman (Debian's 4.3), through ``podman`` run as root.
* ``podman-rootless``: podman run by the unprivileged test user that ``.ci/podman`` makes
  (subordinate ids in /etc/subuid and /etc/subgid, its own storage under its home, its
  ``XDG_RUNTIME_DIR``). A root test process reaches it through ``setpriv``, which execs, so the
  CLI keeps the pid Dockyter gave it and signals reach podman itself; a kernel can also run as
  that user (``engine_fixtures.start_user_kernel``), as a rootless user's own notebook does.

:attr:`Engine.command` is the ``Dockyter.docker_command`` that reaches the engine from this
process. The helpers below ask each engine only what both CLIs answer the same way: podman
4.3's ``ps --format`` has no ``.Label`` function, so owners are read with ``container inspect``;
its ``rm -f`` stops with SIGTERM and waits 10 s before SIGKILL, so removal says ``--time 0``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from helpers import MANAGED_LABEL, OWNER_LABEL, engine_problem

ENGINE_NAMES = ("docker", "podman", "podman-rootless")
ROOTLESS_USER = os.environ.get("DOCKYTER_PODMAN_USER") or "dockyter-podman"
ENGINE_TIMEOUT = 20.0  # seconds for `info`: an engine slower than that is not usable
PROVISION = "bash .ci/provision, as root, installs podman and makes the rootless test user"


# -- the rootless user -------------------------------------------------------------------------


@dataclass(frozen=True)
class RootlessUser:
    """The unprivileged user that runs rootless podman in the tests."""

    name: str
    uid: int
    gid: int
    home: str

    @property
    def runtime_dir(self) -> str:
        """Its ``XDG_RUNTIME_DIR``, made by ``.ci/podman`` (a login through systemd would make it)."""
        return f"/run/user/{self.uid}"

    def env(self) -> dict[str, str]:
        """The environment of its login, with the runtime directory podman needs."""
        return {
            "HOME": self.home,
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": self.runtime_dir,
        }

    def become(self) -> list[str]:
        """The argv prefix that runs a command as this user, keeping the environment it is given."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups"]

    def argv(self, *command: str) -> list[str]:
        """``command`` as this user, with only its login environment, in ``/``.

        Not in the caller's working directory: a podman that cannot enter it fails ("cannot chdir
        to ...: Permission denied", or with no pause process yet "invalid internal status, try
        resetting the pause process"), and a root test's temporary directories are closed to it.
        """
        variables = [f"{name}={value}" for name, value in self.env().items()]
        return [*self.become(), "--reset-env", "env", "--chdir=/", *variables, *command]

    def processes(self, since: int = 0) -> dict[int, str]:
        """Its live processes started at clock tick ``since`` or later, pid -> command name.

        Zombies are left out: they are gone, only not yet reaped.
        """
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    head, _, tail = stat.read().rpartition(b")")  # the name may hold spaces and ')'
                uid = os.stat(f"/proc/{entry}").st_uid
            except OSError:
                continue  # gone meanwhile
            name, fields = head.partition(b"(")[2], tail.split()  # fields 3 and on
            if uid == self.uid and fields[0] != b"Z" and int(fields[19]) >= since:
                found[int(entry)] = name.decode(errors="replace")
        return found

    def busy(self, since: int = 0) -> dict[int, str]:
        """Its processes (started since ``since``) but podman's pause process, ``catatonit -P``,
        which holds its user namespace between podman commands."""
        return {pid: name for pid, name in self.processes(since).items() if name != "catatonit"}

    def stop(self, pids: list[int] | None = None) -> None:
        """SIGKILL ``pids`` (default: all its processes) until they are gone.

        Once the pause process is gone, so is its pid file: init reaps slowly here, and a podman
        that finds a zombie's pid there fails ("invalid internal status").
        """
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            alive = [pid for pid in self.processes() if pids is None or pid in pids]
            if not alive:
                if "catatonit" not in self.processes().values():
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(self.runtime_dir, "libpod", "tmp", "pause.pid"))
                return
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def stop_if_idle(self) -> None:
        """End the pause process when nothing else of the user runs (another test run may be using it)."""
        if not self.busy():
            self.stop()


def clock_ticks() -> int:
    """Now, in the clock ticks since boot that /proc gives as a process's start time."""
    with open("/proc/uptime", encoding="ascii") as uptime:
        return int(float(uptime.read().split()[0]) * os.sysconf("SC_CLK_TCK"))


@functools.cache
def rootless_user() -> RootlessUser | None:
    """The rootless test user, or None when it does not exist on this machine."""
    try:
        entry = pwd.getpwnam(ROOTLESS_USER)
    except KeyError:
        return None
    return RootlessUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


# -- engines ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """One engine: how this process reaches it, and what the tests ask of it."""

    name: str
    command: tuple[str, ...]  # Dockyter.docker_command for it, from this process
    user: RootlessUser | None = None  # who runs it, when rootless

    @property
    def rootless(self) -> bool:
        return self.user is not None

    @property
    def is_podman(self) -> bool:
        return self.name.startswith("podman")

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``ENGINE ARGS`` with text output captured; never raises on a non-zero exit."""
        return subprocess.run(
            [*self.command, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )

    def problem(self) -> str | None:
        """Why this engine cannot be used here (None when it can)."""
        return _engine_problem(self.name)

    def image_problem(self, image: str) -> str | None:
        """Why ``image`` cannot be used on this engine (None when the engine has it)."""
        problem = self.problem()
        if problem is not None:
            return problem
        for _ in range(3):  # under load, another run's podman may hold the storage for a moment
            answer = self.run("image", "inspect", "--format", "{{.Id}}", image)
            if answer.returncode == 0:
                return None
            time.sleep(1)
        said = answer.stderr.strip().splitlines()[-1:] or [f"status {answer.returncode}"]
        return f"the test image {image} is missing from {self.name}'s storage (bash .ci/podman loads it): {said[0]}"

    def warm_up(self) -> None:
        """Start rootless podman's pause process now, if it is not running.

        The first podman command of a user namespace warns on stderr that "/" is not a shared
        mount (true on this machine): better here than in the first cell a test reads.
        """
        if self.rootless:
            self.run("ps", "-q")

    # -- Dockyter's containers ----------------------------------------------------------------

    def labelled(self, label: str = MANAGED_LABEL, running_only: bool = False) -> dict[str, str]:
        """Containers that carry ``label``, name -> owner label ('' when none).

        Listed by ``ps --filter label=`` (both CLIs), then read by ``container inspect``: podman
        4.3's ``ps --format`` has no ``.Label``. A container removed in between is left out.
        """
        args = ["ps", *(() if running_only else ("-a",)), "--filter", f"label={label}", "--format", "{{.Names}}"]
        for _ in range(5):  # under load, `docker ps` racing other runs' removals can fail for a moment
            listing = self.run(*args)
            if listing.returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{self.name} ps failed: {listing.stderr.strip()}")
        names = listing.stdout.split()
        if not names:
            return {}
        answer = self.run(
            "container", "inspect", "--format", f'{{{{.Name}}}}\t{{{{index .Config.Labels "{OWNER_LABEL}"}}}}', *names
        )
        rows = (line.partition("\t") for line in answer.stdout.splitlines() if line)
        # docker writes the name as "/name", and a missing label as "<no value>"
        return {name.lstrip("/"): owner.replace("<no value>", "") for name, _, owner in rows}

    def containers_of(self, pid: int, running_only: bool = False) -> list[str]:
        """Dockyter containers started by the process ``pid`` on this host."""
        prefix = f"{socket.gethostname()}:{pid}:"
        owners = self.labelled(OWNER_LABEL, running_only=running_only)
        return sorted(name for name, owner in owners.items() if owner.startswith(prefix))

    def exists(self, name: str) -> bool:
        return self.run("container", "inspect", "--format", "{{.Id}}", name).returncode == 0

    def remove(self, *names: str) -> None:
        """Remove now, running or not. podman's ``rm -f`` alone waits 10 s for a container that
        ignores SIGTERM (``--time 0`` kills at once), and removes none of the names when one is
        already gone (unless ``--ignore``)."""
        if names:
            self.run("rm", "-f", *(("--time", "0", "--ignore") if self.is_podman else ()), *names)


def engine_named(name: str) -> Engine:
    """The engine called ``name`` (one of :data:`ENGINE_NAMES`)."""
    if name == "docker":
        return Engine(name, ("docker",))
    if name == "podman":
        return Engine(name, ("podman",))
    if name == "podman-rootless":
        user = rootless_user()
        if user is None:
            return Engine(name, ("podman",), None)  # unusable: _engine_problem says why
        return Engine(name, tuple(user.argv("podman")), user)
    raise ValueError(f"no engine called {name!r}: one of {', '.join(ENGINE_NAMES)}")


@functools.cache
def _engine_problem(name: str) -> str | None:
    if name == "docker":
        return engine_problem()
    if shutil.which("podman") is None:
        return f"podman is not installed ({PROVISION})"
    if os.geteuid() != 0:
        # As anyone else, `podman` is that user's rootless podman, and setpriv needs root.
        return f"the {name} tests run podman as root or as the test user {ROOTLESS_USER}: they need root"
    if name == "podman-rootless" and rootless_user() is None:
        return f"the rootless test user {ROOTLESS_USER} does not exist ({PROVISION})"
    try:
        answer = engine_named(name).run("info", "--format", "{{.Host.Security.Rootless}}", timeout=ENGINE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"`podman info` ({name}) did not answer within {ENGINE_TIMEOUT:g} s"
    if answer.returncode != 0:
        last = (answer.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"`podman info` ({name}) failed: {last}"
    if answer.stdout.strip() != str(name == "podman-rootless").lower():
        return f"{name}: podman says rootless={answer.stdout.strip()}"
    return None
