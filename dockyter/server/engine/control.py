"""The server's short CLI commands (``kill``, ``rm``, ``ps``, ``service rm``, ``exec``...).

Both executors and the sessions run them the same way (:class:`EngineCli`): the container CLI
with its output captured, in the CLI's own environment (:mod:`.engineenv`, never the
server's), at most ``CONTROL_TIMEOUT`` seconds (the kernel side's too: :mod:`dockyter.wire.contract`), in a session of its own (a Ctrl-C meant for the
server must not reach it), and killed when it does not answer or its caller is cancelled, so
that no CLI process outlives the request that started it. :data:`ENGINE_DOWN` is how the CLIs
say that they cannot reach their engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from ...wire.contract import CONTROL_TIMEOUT
from ..servererrors import CommandTooLong

# What the docker and podman CLIs say (with exit status 125, or 1 for `create` and `start`) when
# they cannot reach the engine.
ENGINE_DOWN = (
    "Cannot connect to the Docker daemon",
    "Is the docker daemon running",
    "error during connect",
    "Cannot connect to Podman",
)


@dataclass(frozen=True)
class Control:
    """The outcome of a short CLI command."""

    returncode: int
    stdout: str
    stderr: str


# A runner of short CLI commands, as the checks, the Swarm's networks and state are handed one.
Ask = Callable[..., Awaitable[Control | None]]


class EngineCli:
    """The short CLI commands of one engine (or Swarm manager): ``docker_command`` in its fixed environment."""

    def __init__(self, docker_command: Sequence[str], environment: Mapping[str, str]) -> None:
        self.docker_command = list(docker_command)
        self.environment = dict(environment)

    async def __call__(self, *args: str, timeout: float = CONTROL_TIMEOUT) -> Control | None:
        """``docker_command ARGS``; None when it cannot be started or does not answer in time (:func:`control`)."""
        return await control(self.docker_command, *args, env=self.environment, timeout=timeout)


async def control(
    docker_command: Sequence[str], *args: str, env: Mapping[str, str], timeout: float = CONTROL_TIMEOUT
) -> Control | None:
    """Run ``docker_command ARGS`` in ``env``; None when it cannot be started or does not answer in time.

    Raises :class:`CommandTooLong` when the kernel refuses the command line (E2BIG).
    """
    answer = await captured(docker_command, *args, env=env, timeout=timeout)
    if answer is None:
        return None
    returncode, out, err = answer
    return Control(returncode, out.decode(errors="replace"), err.decode(errors="replace"))


async def captured(
    docker_command: Sequence[str], *args: str, env: Mapping[str, str], timeout: float = CONTROL_TIMEOUT
) -> tuple[int, bytes, bytes] | None:
    """:func:`control`'s run, with the output as the bytes the CLI wrote (for output to be decoded later)."""
    try:
        process = await asyncio.create_subprocess_exec(
            *docker_command, *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, env=env,
        )  # fmt: skip
    except OSError as error:
        if error.errno == errno.E2BIG:
            raise CommandTooLong("the command line is too long for one process") from None
        return None
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return None
    finally:
        if process.returncode is None:  # cancelled while waiting: never leave the CLI behind
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    return process.returncode or 0, out, err
