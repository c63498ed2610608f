"""Which image a tag names now, and which image a container was made from, by ID.

A prestarted container may serve a command only if it was made from the very image its tag
names at that moment: a tag rebuilt or pulled to a new image must never be served by a
container of the old one. So every take asks the engine, through its unix socket when
``docker_command`` plainly names one this process may open (about 1 ms,
:mod:`dockyter.wire.enginesocket`), else through the CLI (``docker image inspect``, 20 ms or
more). IDs are compared without their ``sha256:`` prefix, which podman leaves out.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ...wire.enginesocket import EngineSocket, EngineSocketError, socket_path
from .cli import control


def bare(image_id: str) -> str:
    """``sha256:abc...`` -> ``abc...``: the ID as both docker and podman can be compared."""
    return image_id.strip().removeprefix("sha256:")


class ImageIds:
    """Image IDs from the engine that ``runtime()`` (read at each question) names."""

    def __init__(self, runtime: Callable[[], Sequence[str]]) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._socket: tuple[tuple[str, ...], EngineSocket | None] | None = None  # for which runtime

    def of_image(self, image: str) -> str | None:
        """The ID of the image ``image`` names now; None when it is not here or the engine cannot say."""
        return self._ask(f"/images/{image}/json", "Id", "image", "inspect", "--format", "{{.Id}}", image)

    def of_container(self, name: str) -> str | None:
        """The ID of the image container ``name`` was made from; None when unknown."""
        return self._ask(f"/containers/{name}/json", "Image", "container", "inspect", "--format", "{{.Image}}", name)

    def _ask(self, path: str, field: str, *cli: str) -> str | None:
        """``field`` of the engine's answer to ``GET path``, else of the CLI's (``cli``: its arguments)."""
        engine = self._engine()
        if engine is not None:
            try:
                answer: Any = engine.get(path)
            except EngineSocketError:
                pass  # the CLI below says better
            else:
                found = answer.get(field) if isinstance(answer, dict) else None  # None: a 404
                return bare(found) if isinstance(found, str) and found else None
        completed = control(self._runtime(), *cli)
        if completed is None or completed.returncode != 0 or not completed.stdout.strip():
            return None
        return bare(completed.stdout)

    def _engine(self) -> EngineSocket | None:
        runtime = tuple(self._runtime())
        with self._lock:
            if self._socket is None or self._socket[0] != runtime:
                if self._socket is not None and self._socket[1] is not None:
                    self._socket[1].close()
                path = socket_path(runtime)
                usable = path is not None and os.access(path, os.R_OK | os.W_OK)
                self._socket = (runtime, EngineSocket(path) if usable and path else None)
            return self._socket[1]

    def close(self) -> None:
        with self._lock:
            if self._socket is not None and self._socket[1] is not None:
                self._socket[1].close()
            self._socket = None
