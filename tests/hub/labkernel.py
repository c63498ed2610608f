"""A notebook's kernel in a hub user's single-user server, reached as JupyterLab reaches it.

JupyterLab opens a notebook by creating a session (``POST /api/sessions``), then talks to the
session's kernel over one websocket, ``/api/kernels/ID/channels?session_id=...``, in the
``v1.kernel.websocket.jupyter.org`` protocol, and interrupts it with
``POST /api/kernels/ID/interrupt``. So does this client, with the user's token where JupyterLab
sends its cookie. The v1 framing is written out here from the protocol's description, not
taken from jupyter_server, so that the two ends are not one piece of code.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import websocket
from kernels import Execution

from .hubserver import User

PROTOCOL = "v1.kernel.websocket.jupyter.org"


def encode(channel: str, message: dict[str, Any]) -> bytes:
    """One message in the v1 framing: a count of offsets, the offsets, the channel, then the parts."""
    parts = [json.dumps(message[key]).encode() for key in ("header", "parent_header", "metadata", "content")]
    pieces = [channel.encode(), *parts]
    offsets = [8 * (1 + len(pieces) + 1)]  # the count, one offset per piece and one for the end
    for piece in pieces:
        offsets.append(offsets[-1] + len(piece))
    head = b"".join(n.to_bytes(8, "little") for n in [len(offsets), *offsets])
    return head + b"".join(pieces)


def decode(frame: bytes) -> tuple[str, dict[str, Any]]:
    """The channel and the message (header, parent_header, metadata, content) of one v1 frame."""
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    pieces = [frame[start:end] for start, end in zip(offsets, offsets[1:], strict=False)]
    channel = pieces[0].decode()
    keys = ("header", "parent_header", "metadata", "content")
    message = {key: json.loads(piece) for key, piece in zip(keys, pieces[1:5], strict=False)}
    message["msg_type"] = message["header"]["msg_type"]
    return channel, message


class LabKernel:
    """A notebook session of ``user``'s server at ``path``, with its kernel's channels open."""

    def __init__(self, user: User, path: str, timeout: float = 60) -> None:
        self.user = user
        answer = user.server(
            "POST",
            "/api/sessions",
            json={"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}},
        )
        if answer.status_code != 201:
            raise AssertionError(f"{user.name}: creating a notebook session: {answer.status_code} {answer.text}")
        self.session_id: str = answer.json()["id"]
        self.kernel_id: str = answer.json()["kernel"]["id"]
        self.client_session = uuid.uuid4().hex  # the websocket's session_id, as JupyterLab makes one
        url = user.server_url.replace("http://", "ws://", 1)
        self.ws = websocket.create_connection(
            f"{url}/api/kernels/{self.kernel_id}/channels?session_id={self.client_session}",
            header=[f"Authorization: token {user.token}"],
            subprotocols=[PROTOCOL],
            timeout=timeout,
        )
        if self.ws.getsubprotocol() != PROTOCOL:
            raise AssertionError(f"the server chose the protocol {self.ws.getsubprotocol()!r}, not {PROTOCOL}")
        self.request("kernel_info_request", {}, channel="shell", timeout=timeout)

    def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.client_session,
            "username": self.user.name,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "version": "5.3",
        }
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        self.ws.send(encode(channel, message), opcode=websocket.ABNF.OPCODE_BINARY)
        return msg_id

    def request(self, msg_type: str, content: dict[str, Any], channel: str, timeout: float) -> dict[str, Any]:
        """Send a request and return its reply's content (other messages are dropped)."""
        msg_id = self.send(msg_type, content, channel)
        deadline = time.monotonic() + timeout
        while True:
            got_channel, message = self.receive(deadline)
            if got_channel == channel and message["parent_header"].get("msg_id") == msg_id:
                content_: dict[str, Any] = message["content"]
                return content_

    def receive(self, deadline: float) -> tuple[str, dict[str, Any]]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{self.user.name}'s kernel sent nothing more in time")
        self.ws.settimeout(remaining)
        frame = self.ws.recv()
        if isinstance(frame, str):
            raise AssertionError(f"a text frame in the {PROTOCOL} protocol: {frame[:200]!r}")
        return decode(frame)

    def submit(self, code: str) -> str:
        return self.send(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": False,
            },
        )

    def collect(self, msg_id: str, timeout: float = 60, until: str | None = None) -> Execution:
        """Messages of ``msg_id`` until the kernel is idle again and has replied (or a stream shows ``until``)."""
        execution = Execution(reply={})
        deadline = time.monotonic() + timeout
        idle = False
        while not (idle and execution.reply):
            channel, message = self.receive(deadline)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if channel == "shell":
                execution.reply = message["content"]
                continue
            if channel != "iopub":
                continue
            execution.messages.append((time.monotonic(), message))
            if until is not None and message["msg_type"] == "stream" and until in message["content"]["text"]:
                return execution
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                idle = True
        return execution

    def run(self, code: str, timeout: float = 60) -> Execution:
        return self.collect(self.submit(code), timeout)

    def interrupt(self) -> None:
        """What JupyterLab's interrupt button does."""
        answer = self.user.server("POST", f"/api/kernels/{self.kernel_id}/interrupt")
        if answer.status_code != 204:
            raise AssertionError(f"interrupting {self.user.name}'s kernel: {answer.status_code} {answer.text}")

    def close(self) -> None:
        """Close the channels and shut the session (and its kernel) down, as closing the notebook's kernel does."""
        self.ws.close()
        self.user.server("DELETE", f"/api/sessions/{self.session_id}")
