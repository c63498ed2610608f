"""The request-size cap, as plain ASGI middleware: 413 before any parsing or auth runs.

The body is read here, at most ``max_bytes`` of it, and handed on to the application, so a
huge or endless body never reaches the JSON parser. A body over the cap is drained (up to a
bound) before answering, so that the client, still sending, does read the 413.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DRAIN_LIMIT = 16 * 1024 * 1024  # bytes of an oversized body read (and dropped) before answering


class BodyLimit:
    """Answer 413 to HTTP requests whose body is larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._drain(receive, int(declared))
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # the client went away: let the application see it
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._drain(receive, DRAIN_LIMIT, more=message.get("more_body", False))
                await self._refuse(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message = first or {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return whole
            return await receive()  # after the body: only the disconnect is left to hear

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, limit: int, more: bool = True) -> None:
        drained = 0
        while more and drained < min(limit, DRAIN_LIMIT):
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            more = message.get("more_body", False)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"the request body is larger than {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
