"""Where ``$DOCKYTER_OUT`` lives on this machine for the docker backend: a fresh folder per run, bind-mounted.

Every run gets an empty directory below this kernel's own root in the temporary directory
(``dockyter-files-PID-START-xxxx``, mode 0711: no other user of the machine can list it or put
files in it, but an engine CLI run as another user, such as ``sudo -u USER podman``, can reach the
run folder it is given by its random name), mounted at ``/dockyter/out`` in the container with
``DOCKYTER_OUT`` naming it. The run's directory is mode 0777: the container may run as any user
(``--user``, ``--as-me``). After the run the kernel reads it (:func:`dockyter.wire.outfolder.collect`) and removes it.

A bind mount, rather than ``docker cp`` out of a stopped container or a tmpfs read back, because
it costs the run nothing: no extra CLI call, no container kept after its end, and prestarted
containers can carry theirs from the start (:meth:`RunFolder.docker_options` is all a caller
adds to ``docker run``). ``-v`` rather than ``--mount``: an engine on another machine (a remote
``DOCKER_HOST``) makes the directory there instead of refusing the run; its files then simply
do not come back.

A session mounts one folder for its whole life at ``/dockyter/out`` and each cell gets its own
subdirectory, ``/dockyter/out/N`` (:class:`SessionFolder`).

Files a container writes as root in a rootful engine belong to root: a kernel running as
another user can read them (unless the container made them private) but may not be able to
remove what they hold; :func:`sweep` removes the roots of dead kernels, as far as it can.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading

from ..wire.contract import process_start_time
from ..wire.outfolder import CONTAINER_FOLDER, FOLDER_VARIABLE, Collected, FileLimits, collect

ROOT_PREFIX = "dockyter-files-"

_root: str | None = None
_root_lock = threading.Lock()


class FolderProblem(Exception):
    """No folder could be made for a run (the temporary directory is full or not writable)."""


def kernel_root() -> str:
    """This process's root for run folders, made on first use and removed when the process ends."""
    global _root
    with _root_lock:
        if _root is None or not os.path.isdir(_root):
            started = process_start_time(os.getpid()) or "0"
            try:
                _root = tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-{started}-")
                os.chmod(_root, 0o711)
            except OSError as error:
                raise FolderProblem(f"cannot make a folder for $DOCKYTER_OUT: {error.strerror}") from None
            atexit.register(shutil.rmtree, _root, True)
        return _root


def mount_options(source: str, target: str) -> list[str]:
    """``-v SOURCE:TARGET`` (``--mount`` when the source holds a ``:``, which ``-v`` cannot carry)."""
    if ":" not in source:
        return ["--volume", f"{source}:{target}"]
    return ["--mount", f'type=bind,"source={source.replace(chr(34), chr(34) * 2)}",target={target}']


def folder_options(path: str) -> list[str]:
    """The mount of the run folder ``path`` at ``/dockyter/out``, and the variable that names it."""
    return [*mount_options(path, CONTAINER_FOLDER), "--env", f"{FOLDER_VARIABLE}={CONTAINER_FOLDER}"]


# In place of a run's folder where only the shape of its argv matters (a prestarted line's key).
ANY_FOLDER_OPTIONS = tuple(folder_options("RUN-FOLDER"))


class RunFolder:
    """One run's ``$DOCKYTER_OUT``: made empty, mounted, read back, removed."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def make(cls) -> RunFolder:
        """A fresh empty folder that any user of the container can write; FolderProblem if none can be made."""
        try:
            path = tempfile.mkdtemp(prefix="run-", dir=kernel_root())
            os.chmod(path, 0o777)
        except OSError as error:
            raise FolderProblem(f"cannot make a folder for $DOCKYTER_OUT: {error.strerror}") from None
        if any(ord(char) < 0x20 for char in path):
            raise FolderProblem(f"the temporary directory {path!r} holds a control character: set TMPDIR")
        return cls(path)

    def docker_options(self) -> list[str]:
        """What ``docker run`` needs for this folder: its mount and the variable that names it."""
        return folder_options(self.path)

    def collect(self, limits: FileLimits) -> Collected:
        return collect(self.path, limits)

    def remove(self) -> None:
        try:
            os.rmdir(self.path)  # the common case, an empty folder: a tenth of rmtree's cost
        except OSError:
            shutil.rmtree(self.path, ignore_errors=True)


class SessionFolder:
    """A session's mounted folder: one subdirectory per cell, named by the cell's number."""

    def __init__(self) -> None:
        self.root = RunFolder.make()
        os.chmod(self.root.path, 0o755)  # the cells' folders are writable, the root is not
        self._count = 0

    def docker_options(self) -> list[str]:
        """The mount, for the session's ``docker run``; each cell's variable comes with the cell."""
        return mount_options(self.root.path, CONTAINER_FOLDER)

    def next_cell(self) -> tuple[RunFolder, dict[str, str]]:
        """A fresh folder for the next cell, and the variable the cell's shell must get."""
        self._count += 1
        path = os.path.join(self.root.path, str(self._count))
        try:
            os.mkdir(path)
            os.chmod(path, 0o777)
        except OSError as error:
            raise FolderProblem(f"cannot make a folder for $DOCKYTER_OUT: {error.strerror}") from None
        return RunFolder(path), {FOLDER_VARIABLE: f"{CONTAINER_FOLDER}/{self._count}"}

    def remove(self) -> None:
        self.root.remove()


def sweep() -> list[str]:
    """Remove the folder roots of kernels of this user that are gone; the paths removed."""
    removed: list[str] = []
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(ROOT_PREFIX):
            continue
        path = os.path.join(base, name)
        pid_text, _, rest = name[len(ROOT_PREFIX) :].partition("-")
        started = rest.partition("-")[0]
        try:
            owned = os.lstat(path).st_uid == os.getuid()
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if owned and path != _root and process_start_time(pid) != started:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
