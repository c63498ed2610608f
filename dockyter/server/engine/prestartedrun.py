"""An execution in a prestarted container: its command sent on stdin, its end found in its output.

The container was created, checked against the same plan and started before the request came
(:mod:`.prestarted`); the request was checked by the policy and admitted as any other
execution. Its command goes to the waiter as a command block (:func:`dockyter.wire.waiter.command_block`),
and its output is read from the CLI's pipes as an execution's, the waiter's two frames taken out:
once both are in, all the output has been read and the status is known, and the final event
goes out at once (:meth:`~dockyter.server.runs.runlife.Run._announce`), while the container ends
by itself. The run is over, its slot freed, only once its CLI has ended; a container that does
not end within ``EXIT_WAIT`` seconds after its frames is killed and removed, and so is one
whose run is stopped (cancel, timeout, output cap, a client gone, shutdown), exactly as an
execution's.
"""

from __future__ import annotations

import asyncio
import contextlib

from ...wire.contract import NAME_PREFIX, READ_SIZE, IncrementalText, shell_command
from ...wire.sessionprotocol import FrameScanner, new_token
from ...wire.waiter import command_block
from ..runs.runlife import Event
from .execution import Execution, ExecutionHost
from .prestarted import PrestartedContainer


class PrestartedExecution(Execution):
    """One execution whose container was prestarted."""

    def __init__(
        self,
        executor: ExecutionHost,
        container: PrestartedContainer,
        cmd: str,
        timeout: float,
        merge_stderr: bool,
        who: str,
    ) -> None:
        super().__init__(executor, container.plan, cmd, timeout, merge_stderr, who)
        self.container = container
        self.name = container.name
        self.id = container.name.removeprefix(NAME_PREFIX)  # dockyter-<id>, as every execution's
        self._process = container.process
        self._token = new_token()
        self._scanners = {"stdout": FrameScanner(), "stderr": FrameScanner()}
        for scanner in self._scanners.values():
            scanner.expect(self._token)
        self._seen: dict[str, int | None] = {}
        self._framed = asyncio.Event()

    async def start(self) -> None:
        """Send the command; the rest happens in the run's task. ValueError: a NUL in the command."""
        block = command_block(self._token, shell_command(self.cmd, self.merge_stderr))
        process = self._process
        assert process is not None and process.stdin is not None
        with contextlib.suppress(ConnectionError, OSError):  # gone meanwhile: its pipes end, its status says why
            process.stdin.write(block)
            await process.stdin.drain()
            process.stdin.close()
        self._task = asyncio.create_task(self._run_prestarted(), name=f"dockyter {self.name}")

    async def _run_prestarted(self) -> None:
        process = self._process
        assert process is not None
        for stream, data in self.container.early:  # what its entrypoint said, as a cold run streams it
            await self._forward(self._to(stream), IncrementalText(), data)
        await self._follow(process, self._read_framed)

    async def _ends_early(self) -> Event:
        await self._framed.wait()
        return {"event": "exit", "code": self._seen.get("stdout") or 0, "reason": None, "message": None}

    def _to(self, stream: str) -> str:
        return "stdout" if self.merge_stderr else stream

    async def _read_framed(self, pipe: asyncio.StreamReader, stream: str) -> None:
        """Forward one pipe without the waiter's frames; note them when they come."""
        scanner = self._scanners[stream]
        decoder = IncrementalText()
        while data := await pipe.read(READ_SIZE):
            output, frames = scanner.feed(data)
            await self._forward(self._to(stream), decoder, output)
            for token, status in frames:
                if token == self._token:
                    self._seen[stream] = status
            if len(self._seen) == 2:
                self._framed.set()
        await self._forward(self._to(stream), decoder, scanner.flush())
        await self._emit(self._to(stream), decoder.flush())

    def _log(self, final: Event | None) -> None:
        self._log_record(
            final, container=self.name, image=self.plan.args.image, runtime=self.executor.runtime, prestarted=True
        )
