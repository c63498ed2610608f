"""A real Jupyter kernel (ipykernel through jupyter_client); the ``kernel`` fixture is in conftest.py.

Messages are collected with the time they arrived, so tests can tell output that streamed
live from output that came at the end.
"""

from __future__ import annotations

import os
import queue
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import docker
from jupyter_client.manager import KernelManager


@dataclass
class Execution:
    """What one execute request produced on the kernel's channels."""

    reply: dict[str, Any]
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (arrival, iopub msg)

    def streams(self, name: str) -> str:
        return "".join(
            m["content"]["text"] for _, m in self.messages if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    @property
    def stdout(self) -> str:
        return self.streams("stdout")

    @property
    def stderr(self) -> str:
        return self.streams("stderr")

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m["msg_type"] == msg_type]

    def arrival(self, text: str) -> float:
        """When the stream chunk containing ``text`` arrived."""
        for at, m in self.messages:
            if m["msg_type"] == "stream" and text in m["content"]["text"]:
                return at
        raise AssertionError(f"{text!r} never arrived")


class Kernel:
    """A started kernel with a blocking client."""

    def __init__(self, manager: KernelManager) -> None:
        self.manager = manager
        self.client = manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    @property
    def pid(self) -> int:
        return self.manager.provisioner.process.pid  # type: ignore[union-attr]

    def submit(self, code: str) -> str:
        return self.client.execute(code, stop_on_error=False)

    def collect(self, msg_id: str, timeout: float = 60, until: str | None = None) -> Execution:
        """Read iopub until the kernel is idle after ``msg_id`` (or until a stream shows ``until``)."""
        execution = Execution(reply={})
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle status for {msg_id} within {timeout} s: {execution.messages}")
            try:
                message = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            execution.messages.append((time.monotonic(), message))
            if until is not None and message["msg_type"] == "stream" and until in message["content"]["text"]:
                return execution
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                break
        execution.reply = self._reply_to(msg_id)
        return execution

    def _reply_to(self, msg_id: str) -> dict[str, Any]:
        # wait_for_ready may leave extra kernel_info replies queued: skip whatever is not ours
        while True:
            message = self.client.get_shell_msg(timeout=10)
            if message["parent_header"].get("msg_id") == msg_id:
                return message["content"]

    def run(self, code: str, timeout: float = 60) -> Execution:
        return self.collect(self.submit(code), timeout)

    def shutdown(self) -> None:
        self.client.stop_channels()
        if self.manager.is_alive():
            self.manager.shutdown_kernel(now=True)


def start_kernel(
    cwd: Path, env: dict[str, str] | None = None, *, drop: tuple[str, ...] = (), stderr: Any = None
) -> Kernel:
    """A kernel in ``cwd`` with this process's environment plus ``env``.

    ``drop``: prefixes of variables not passed on (e.g. ``("DOCKYTER_",)``), for tests that must
    not see the caller's configuration. ``stderr``: a file for the kernel's log (default: ours).
    """
    base = {k: v for k, v in os.environ.items() if not (drop and k.startswith(drop))}
    manager = KernelManager(kernel_name="python3")
    extra = {"stderr": stderr} if stderr is not None else {}
    manager.start_kernel(cwd=str(cwd), env={**base, **(env or {})}, **extra)
    return Kernel(manager)


def containers_of(pid: int, running_only: bool = False) -> list[str]:
    """Dockyter containers started by the process ``pid`` on this host."""
    args = ["ps", "--filter", "label=io.dockyter.owner", "--format", '{{.Names}} {{.Label "io.dockyter.owner"}}']
    if not running_only:
        args.insert(1, "-a")
    prefix = f"{socket.gethostname()}:{pid}:"
    for _ in range(5):  # under load, `docker ps` racing other runs' removals can fail for a moment
        listing = docker(*args)
        if listing.returncode == 0:
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(f"docker ps failed: {listing.stderr.strip()}")
    rows = [line.split(" ", 1) for line in listing.stdout.splitlines() if " " in line]
    return [name for name, owner in rows if owner.startswith(prefix)]
