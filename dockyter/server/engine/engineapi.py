"""Reading the Docker Engine API straight from its unix socket: one request, no CLI process.

The Swarm executor polls the state of every task several times a second. Through the CLI,
``docker service ps`` costs a process and, for N services, about N+2 API calls (it resolves
each service and node by name): seconds on a busy manager. When ``docker_command`` plainly
names a unix socket (``docker -H unix:///...``, or ``docker`` with ``DOCKER_HOST`` or the
default socket), the executor asks the API directly instead; otherwise it keeps the CLI
(:func:`dockyter.wire.enginesocket.socket_path` says which, for the kernel's side too).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ...wire.enginesocket import API_VERSION


class EngineAPIError(Exception):
    """The socket could not be read, or answered something else than a 2xx with JSON."""


async def get_json(
    socket: str, path: str, filters: Mapping[str, list[str]] | None = None, timeout: float = 10.0
) -> Any:
    """``GET /<version><path>`` with ``filters``; the decoded JSON body. Raises :class:`EngineAPIError`."""
    target = f"/{API_VERSION}{path}"
    if filters:
        target += "?filters=" + quote(json.dumps(filters), safe="")
    return await _request(socket, f"GET {target} HTTP/1.0\r\nHost: docker\r\n\r\n".encode(), target, timeout)


async def post_json(socket: str, path: str, body: Any, timeout: float = 10.0) -> Any:
    """``POST /<version><path>`` with ``body`` as JSON; the decoded JSON answer. Raises :class:`EngineAPIError`."""
    target = f"/{API_VERSION}{path}"
    data = json.dumps(body).encode()
    head = f"POST {target} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return await _request(socket, head.encode() + data, target, timeout)


async def _request(socket: str, request: bytes, target: str, timeout: float) -> Any:
    """Send one HTTP/1.0 ``request`` on the socket; the JSON body of a 2xx answer."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket), timeout)
    except (OSError, TimeoutError) as error:
        raise EngineAPIError(f"cannot reach {socket}: {error}") from None
    try:
        # HTTP/1.0: the engine closes the connection after the reply, which is then not chunked.
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, TimeoutError) as error:
        raise EngineAPIError(f"no answer from {socket}: {error}") from None
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
        answer = json.loads(body)
    except (IndexError, ValueError):
        raise EngineAPIError(f"{target}: not an HTTP reply with JSON") from None
    if not 200 <= status < 300:
        message = answer.get("message") if isinstance(answer, dict) else None
        raise EngineAPIError(f"{target}: {status} {message or ''}".strip())
    return answer
