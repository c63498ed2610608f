"""What a local run's receipt says of its image and engine: digest, image ID, runtime, node.

Asked while the container starts, in a thread of its own, so that a run waits for none of it:
the image on the engine's socket (about a millisecond, :mod:`dockyter.wire.enginesocket`) or with
``docker image inspect`` where the socket is not plain to see (podman, ``sudo docker``); the
engine's default runtime and host name once per backend. The image is read just before
``docker run`` resolves it, so a tag moved in that instant would go unnoticed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from ...receipts import RunFacts
from ...wire.enginesocket import EngineSocketError, get_json, socket_path
from ...wire.images import choose_digest
from .cli import control


class EngineFacts:
    """The engine's side of a receipt for one docker backend; the engine's own facts asked once."""

    def __init__(self, docker_command: Sequence[str]) -> None:
        self.docker_command = list(docker_command)
        self._engine: tuple[str | None, str | None] | None = None  # (default runtime, host name)
        self._lock = threading.Lock()

    def start(self, image: str, runtime: str | None, argv: Sequence[str]) -> FactsLookup:
        """Look the facts of a run of ``image`` (with ``--runtime``, if given) up in the background."""
        lookup = FactsLookup(self, image, runtime, argv)
        lookup.start()
        return lookup

    def image(self, image: str) -> tuple[str | None, list[str]]:
        """The image's ID and repository digests; (None, []) when the engine cannot say."""
        socket = socket_path(self.docker_command)
        answer: Any = None
        if socket is not None:
            try:
                answer = get_json(socket, f"/images/{image}/json")
            except EngineSocketError:
                answer = None
        else:
            done = control(self.docker_command, "image", "inspect", image)
            if done is not None and done.returncode == 0:
                try:
                    listed = json.loads(done.stdout)
                except ValueError:
                    listed = None
                answer = listed[0] if isinstance(listed, list) and listed else None
        if not isinstance(answer, dict):
            return None, []
        image_id = answer.get("Id") if isinstance(answer.get("Id"), str) else None
        if image_id and ":" not in image_id:  # podman writes the bare hexadecimal
            image_id = f"sha256:{image_id}"
        digests = answer.get("RepoDigests")
        return image_id, [entry for entry in digests or () if isinstance(entry, str)]

    def engine(self) -> tuple[str | None, str | None]:
        """The engine's default OCI runtime and host name, asked once."""
        with self._lock:
            if self._engine is None:
                self._engine = self._ask_engine()
            return self._engine

    def _ask_engine(self) -> tuple[str | None, str | None]:
        socket = socket_path(self.docker_command)
        if socket is not None:
            try:
                info = get_json(socket, "/info")
            except EngineSocketError:
                info = None
            if isinstance(info, dict):
                runtime, name = info.get("DefaultRuntime"), info.get("Name")
                return (runtime if isinstance(runtime, str) else None, name if isinstance(name, str) else None)
        done = control(self.docker_command, "info", "--format", "{{.DefaultRuntime}}\t{{.Name}}")
        if done is None or done.returncode != 0 or "\t" not in done.stdout:
            return None, None
        runtime, _, name = done.stdout.strip().partition("\t")
        return runtime or None, name or None


class FactsLookup(threading.Thread):
    """One run's facts, looked up while it runs; :meth:`facts` waits for them (briefly)."""

    def __init__(self, engine: EngineFacts, image: str, runtime: str | None, argv: Sequence[str]) -> None:
        super().__init__(name="dockyter-receipt", daemon=True)
        self.engine = engine
        self.image = image
        self.runtime = runtime
        self.argv = tuple(argv)
        self._facts = RunFacts(argv=self.argv)

    def run(self) -> None:
        image_id, digests = self.engine.image(self.image)
        default_runtime, node = self.engine.engine()
        self._facts = RunFacts(
            digest=choose_digest(self.image, image_id, digests),
            image_id=image_id,
            argv=self.argv,
            runtime=self.runtime or default_runtime,
            node=node,
        )

    def facts(self, wait: float = 5.0) -> RunFacts:
        self.join(wait)
        return self._facts
