"""Reading back what the engine created, before it starts: the engine executor's and the sessions' check.

A container is created (``docker create``), then :class:`EngineCheck` reads it back with its
image (through the Engine API on the engine's unix socket when ``docker_command`` plainly
names one, else through ``docker inspect``), compares it with the plan
(:func:`.containercheck.differences`) and, when they differ, logs it at error level with the
token name and returns the :class:`~dockyter.server.servererrors.EngineDisagrees` (403) to raise once the
caller has removed the container. Images are read once per image id. podman's inspect is read
as docker's first (:mod:`.podmaninspect`); what it does not say (the IPC namespace, sysctls) is
read from the runtime spec podman writes when the container is initialized (``podman init``,
then the bundle's ``config.json``). Where that file cannot be read (a podman reached through its
service on another machine), those two are not compared, and the log says so once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from ...wire.contract import remove_argv
from ...wire.dockerargs import DockerArgsError, parse_run_args
from ...wire.enginesocket import socket_path
from ..servererrors import EngineDisagrees, EngineUnavailable
from .containercheck import compared_options, differences
from .control import Ask, Control
from .engineapi import EngineAPIError, get_json
from .expected import Expected
from .podmaninspect import as_docker, with_spec

log = logging.getLogger("dockyter.server")

IMAGES_KEPT = 64  # image inspections kept (by image id)


class _NotInitialized(Exception):
    """podman's runtime refused to initialize a created container (``answer``): nothing ran."""

    def __init__(self, answer: Control) -> None:
        super().__init__(answer.stderr)
        self.answer = answer


def warn_about_extra_run_args(extra_run_args: Sequence[str]) -> list[str]:
    """At start-up, a warning for ``extra_run_args`` options whose effect the check compares; their names.

    The check expects only the plan and the server's own settings there: such an option makes
    every container differ from its plan, so every request would be refused.
    """
    try:
        options = parse_run_args([*extra_run_args, "image"]).options
    except DockerArgsError:
        return []  # the CLI says what is wrong with them, on every run
    names = list(dict.fromkeys(compared_options(option.name for option in options)))
    if names:
        log.warning(
            "extra_run_args sets %s, which the check of what the engine made compares with each approved plan: "
            "every container will differ from its plan and be refused (use the server's own settings instead)",
            ", ".join(names),
        )
    return names


def disagreement(found: list[str], **record: str) -> EngineDisagrees:
    """Log the differences ``found`` at error level (with ``record``: the token name, what and where)
    and return the one-line 403 that names the first."""
    log.error(json.dumps({"event": "engine_disagrees", **record, "differences": found}))
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return EngineDisagrees(f"the engine did not make what the policy approved: {found[0]}{more}; removed unstarted")


class EngineCheck:
    """Compares created containers of one engine with their plans."""

    def __init__(self, docker_command: Sequence[str], control: Ask, podman: bool = False) -> None:
        self.control = control
        self.podman = podman  # podman's inspect is read as docker's; its rm needs --time 0
        self.socket = socket_path(docker_command)  # None: read through the CLI
        self._images: dict[str, dict[str, Any]] = {}
        self._info: dict[str, Any] | None = None
        # What each container checked was made of, until its run takes it for its receipt.
        self._made: dict[str, tuple[str, dict[str, Any]]] = {}
        self._cgroupns: frozenset[str] | None = None
        self._spec_unread = False  # said once: podman's runtime spec could not be read

    async def create(
        self, words: Sequence[str], name: str, expected: Expected, who: str, timeout: float
    ) -> Control | None:
        """``docker WORDS`` (a ``create`` of container ``name``), then the check.

        Returns the CLI's answer: None when it did not answer within ``timeout`` (it was killed),
        a non-zero status when it created nothing (or, on podman, when the runtime refused to
        initialize it: the image has no such command, say; it is removed), else the container is
        created and matches ``expected``. Raises the refusal (:class:`EngineDisagrees`), or :class:`EngineUnavailable`
        when the container cannot be read back. Whatever goes wrong, a cancellation included, a
        container the engine made is removed before this returns or raises.
        """
        try:
            answer = await self.control(*words, timeout=timeout)
            if answer is None:
                await self.remove(name)  # the engine may have made it all the same
                return None
            if answer.returncode != 0:
                return answer
            try:
                refusal = await self.refusal(name, expected, who)
            except _NotInitialized as refused:
                await self.remove(name)
                return refused.answer  # what `podman start` would have said: as a failed create
        except BaseException:
            await asyncio.shield(self.remove(name))
            raise
        if refusal is not None:
            await self.remove(name)
            raise refusal
        return answer

    async def remove(self, name: str) -> None:
        """Remove a container that was created and never started (with its anonymous volumes)."""
        await self.control(*remove_argv(self.podman), name)

    async def refusal(self, name: str, expected: Expected, who: str) -> EngineDisagrees | None:
        """None when container ``name`` is what ``expected`` describes, else the error to answer with.

        Raises :class:`EngineUnavailable` when the container or its image cannot be read.
        """
        container = await self._read(f"/containers/{name}/json", "container", name)
        image = await self.image(str(container.get("Image", "")))
        if self.podman:
            spec = await self.podman_spec(name, container)
            container, image = as_docker(container, image, expected)
            if spec is not None:
                container = with_spec(container, spec, expected)
        if len(self._made) >= IMAGES_KEPT:  # runs that never took theirs (refused, removed)
            self._made.clear()
        self._made[name] = (str(container.get("Image", "")), image)
        found = differences(expected, container, image, await self.cgroupns_defaults())
        return disagreement(found, who=who, container=name, image=expected.image) if found else None

    async def podman_spec(self, name: str, container: dict[str, Any]) -> dict[str, Any] | None:
        """The OCI runtime spec podman made for container ``name``: ``podman init``, then its ``config.json``.

        None (and a warning, once) when the file cannot be read; raises :class:`_NotInitialized`
        when the runtime refuses to initialize it, :class:`EngineUnavailable` when podman does not answer.
        """
        answer = await self.control("init", name)
        if answer is None:
            raise EngineUnavailable(f"cannot initialize container {name}: no answer")
        if answer.returncode != 0:
            raise _NotInitialized(answer)
        path = os.path.join(str(container.get("StaticDir") or ""), "config.json")
        try:
            spec = await asyncio.to_thread(_read_json, path)
        except (OSError, ValueError) as error:
            spec = None
            if not self._spec_unread:
                self._spec_unread = True
                log.warning(
                    "podman's runtime spec %s cannot be read (%s): the IPC namespace and the sysctls of its "
                    "containers are not compared with their plans",
                    path,
                    error,
                )
        return spec if isinstance(spec, dict) else None

    async def image_of(self, container: str) -> str:
        """The ID of the image container ``container`` was made from; raises :class:`EngineUnavailable`."""
        return str((await self._read(f"/containers/{container}/json", "container", container)).get("Image", ""))

    async def image_id(self, reference: str) -> str | None:
        """The ID of the image ``reference`` names now; None when the engine has none of that name."""
        try:
            return str((await self._read(f"/images/{reference}/json", "image", reference)).get("Id", "")) or None
        except EngineUnavailable:
            return None

    async def image(self, image_id: str) -> dict[str, Any]:
        """The inspection of image ``image_id`` (kept: an id names one content)."""
        known = self._images.get(image_id)
        if known is None:
            known = await self._read(f"/images/{image_id}/json", "image", image_id)
            if len(self._images) >= IMAGES_KEPT:
                self._images.clear()
            self._images[image_id] = known
        return known

    def made_of(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """The image ID and inspection container ``name`` was checked with (once: it is then forgotten)."""
        return self._made.pop(name, None)

    async def cgroupns_defaults(self) -> frozenset[str]:
        """The cgroup namespace mode the engine gives a container that asks for none, beyond ``private``.

        An engine on cgroup v1 shares the host's by default; asked once.
        """
        info = await self.info()
        return frozenset({"host"}) if str(info.get("CgroupVersion", "")) == "1" else frozenset()

    async def info(self) -> dict[str, Any]:
        """The engine's ``docker info`` (its cgroup version, its host name), asked once."""
        if self._info is None:
            self._info = await self._read("/info", "system", "info")
        return self._info

    async def _read(self, path: str, kind: str, name: str) -> dict[str, Any]:
        """``GET path`` from the socket, else ``docker KIND inspect NAME``; raises EngineUnavailable."""
        if self.socket is not None:
            try:
                answer = await get_json(self.socket, path)
            except EngineAPIError as error:
                raise EngineUnavailable(f"cannot read back {kind} {name}: {error}") from None
        else:
            words = ["info", "--format", "{{json .}}"] if kind == "system" else [kind, "inspect", name]
            reply = await self.control(*words)
            if reply is None or reply.returncode != 0:
                why = reply.stderr.strip() if reply is not None else "no answer"
                raise EngineUnavailable(f"cannot read back {kind} {name}: {why}")
            try:
                answer = json.loads(reply.stdout)
            except ValueError:
                raise EngineUnavailable(f"cannot read back {kind} {name}: not JSON") from None
            answer = answer[0] if isinstance(answer, list) and answer else answer
        if not isinstance(answer, dict):
            raise EngineUnavailable(f"cannot read back {kind} {name}: not an object")
        return answer


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as file:
        return json.load(file)
