"""Small helpers the figures share: what Dockyter's docker backend would run."""

from __future__ import annotations

import shlex
from typing import Any, Literal, overload

from dockyter.backends.base import RunRequest
from dockyter.wire.dockerargs import parse_run_args


def magics(shell: Any) -> Any:
    """The ``Dockyter`` configurable registered on ``shell``."""
    return shell._dockyter


@overload
def docker_backend_argv(shell: Any, args: str, command: str, shown: Literal[True]) -> str: ...
@overload
def docker_backend_argv(shell: Any, args: str, command: str, shown: Literal[False] = ...) -> list[str]: ...


def docker_backend_argv(shell: Any, args: str, command: str, shown: bool = False) -> list[str] | str:
    """The ``docker run`` argv the docker backend builds for ``command`` with the docker ``args``
    (options and image, as on a ``%%docker`` line); ``shown``: as one line."""
    from dockyter.backends.docker.dockerbackend import DockerBackend

    settings = magics(shell)
    request = RunRequest(args=parse_run_args(args), command=command, shell=tuple(settings.shell))
    argv = DockerBackend(settings).command_line(request, "dockyter-<fresh name>")
    return shlex.join(argv) if shown else argv


def use_api(shell: Any, server: Any) -> None:
    """Point the shell's Dockyter at ``server`` (a :class:`~bench.server.BenchServer`), as a user would."""
    from ..ipy import run_cell

    run_cell(shell, f"%config Dockyter.api_token = {server.token!r}")
    run_cell(shell, f"%docker_backend api {server.url}")


def shown(argv: list[str]) -> str:
    """``argv`` as one shell line, its container name replaced by a placeholder (each run has a fresh one)."""
    words = list(argv)
    for index, word in enumerate(words[:-1]):
        if word == "--name":
            words[index + 1] = "<fresh name>"
    return shlex.join(words)
