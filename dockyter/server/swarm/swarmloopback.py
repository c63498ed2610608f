"""The loopback check as a Swarm config, for ``swarm_isolation = "nodes"``.

A task that gets no network runs the check (:mod:`.loopbackcheck`) as its entrypoint; the
nodes receive the program as a Swarm config, mounted read-only and executable at
a path under ``/.dockyter`` named by a secret of the execution
(:func:`~.loopbackcheck.target`). Each server instance creates its own config on first use
(labelled like its services, so that the next start of the same ``server_name`` removes a
crashed predecessor's) and removes it at shutdown, after its services.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from ..engine.control import Ask, Control
from .loopbackcheck import target


class SwarmLoopbackCheck:
    """Creates, names and removes this instance's config holding the loopback check."""

    def __init__(self, control: Ask, program: Path, instance: str, labels: dict[str, str]) -> None:
        self.control = control
        self.program = program
        digest = hashlib.sha256(program.read_bytes()).hexdigest()[:12]
        # Configs are immutable: the content's digest in the name keeps a rebuilt check apart.
        self.name = f"dockyter-loopback-{instance}-{digest}"
        self.labels = labels
        self._created = False
        self._lock = asyncio.Lock()

    async def config(self) -> tuple[str | None, Control | None]:
        """The config's name, created when it does not exist yet; None and the CLI's answer when that failed."""
        async with self._lock:
            if self._created:
                return self.name, None
            labels = [arg for key, value in self.labels.items() for arg in ("--label", f"{key}={value}")]
            answer = await self.control("config", "create", *labels, self.name, str(self.program))
            if answer is None or (answer.returncode != 0 and "already exists" not in answer.stderr):
                return None, answer
            self._created = True
            return self.name, None

    def mount(self, secret: str) -> list[str]:
        """The ``docker service create`` arguments that put the check in the task and run it first.

        ``secret`` names the check's directory in the task (:func:`~.loopbackcheck.target`):
        random, and never told to the user before the task runs.
        """
        path = target(secret)
        return ["--config", f"source={self.name},target={path},mode=0555", "--entrypoint", path]

    async def remove(self) -> None:
        """Remove the config (once no service uses it: call after removing the services)."""
        async with self._lock:
            if self._created:
                await self.control("config", "rm", self.name)
                self._created = False
