"""The server's ``$DOCKYTER_OUT`` folders: one private root per server instance, one folder per run.

Every folder is the server's own, made by the server in its own root, never a path a request
names: ``files_dir`` (the operator's, or the system's temporary directory) holds
``dockyter-files-SERVER_NAME@INSTANCE-xxxx`` (mode 0700: no other user of the host reaches
into it; 0711 for a rootless engine, whose CLI may run as another user and must reach the run
folder it is given by its random name), and each execution gets a fresh ``run-xxxx`` in it (mode 0777: the container may run
as any user), bind-mounted at ``/dockyter/out``. A session gets one folder for its life (mode
0755) and each of its commands a numbered folder in it. After a run the folder is read
(:func:`dockyter.wire.outfolder.collect`, which follows no link and opens no special file) and
removed.

What a container writes as root in a rootful engine belongs to root: a server that runs as
another user (the docs' systemd unit) reads such files unless they were made private, but may
fail to remove a directory a container locked; :meth:`RunFolders.remove` logs what it could not
remove (``files_leftover``). The start-up removes the roots that earlier instances of the same
``server_name`` left, as far as it can.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile

from ..settings.fields import RUN_FOLDERS_PREFIX, Settings

log = logging.getLogger("dockyter.server")

ROOT_PREFIX = RUN_FOLDERS_PREFIX


class RunFolders:
    """The run folders of one server instance, below one private root made on first use."""

    def __init__(self, settings: Settings, instance: str, traversable: bool = False) -> None:
        self.base = settings.run_folders_base() or tempfile.gettempdir()
        # "@" is in no server_name: the roots of server "lab" are never those of server "lab-2".
        self.prefix = f"{ROOT_PREFIX}{settings.server_name}@"
        self.instance = instance
        self._root: str | None = None
        # 0711 rather than 0700: others may pass through to a folder whose random name they are
        # given (a rootless engine's CLI run as another user), never list the root or create in it.
        self._root_mode = 0o711 if traversable else 0o700

    @property
    def root(self) -> str:
        if self._root is None or not os.path.isdir(self._root):
            self._root = tempfile.mkdtemp(prefix=f"{self.prefix}{self.instance}-", dir=self.base)
            os.chmod(self._root, self._root_mode)
        return self._root

    def new(self, mode: int = 0o777) -> str:
        """A fresh empty folder for one run (OSError when none can be made)."""
        path = tempfile.mkdtemp(prefix="run-", dir=self.root)
        os.chmod(path, mode)
        return path

    def remove(self, path: str) -> None:
        """Remove a run's folder, once its container is gone; what cannot be removed is logged."""
        try:
            os.rmdir(path)  # the common case: a run that wrote nothing
            return
        except OSError:
            pass
        if os.path.islink(path):  # a session's command swapped its folder for a link: the link goes, not its target
            with contextlib.suppress(OSError):
                os.unlink(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
        if os.path.lexists(path):
            log.warning(json.dumps({"event": "files_leftover", "path": path}))

    def remove_earlier(self) -> list[str]:
        """Remove the roots earlier instances of this ``server_name`` left; their paths."""
        removed: list[str] = []
        try:
            names = os.listdir(self.base)
        except OSError:
            return removed
        mine = f"{self.prefix}{self.instance}-"
        for name in names:
            path = os.path.join(self.base, name)
            if not name.startswith(self.prefix) or name.startswith(mine):
                continue
            try:
                owned = os.lstat(path).st_uid == os.getuid()
            except OSError:
                continue
            if owned:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    def remove_all(self) -> None:
        """At shutdown: this instance's root and whatever is left in it."""
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
