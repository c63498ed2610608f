"""Serving the application with uvicorn, so that shutting down stops the containers first.

uvicorn waits for open connections before it runs the application's shutdown; a stream
whose command runs for an hour would hold it that long. :class:`Server` stops every running
execution, and every command running in a session, as soon as shutdown begins (each stream
then ends with its ``exit`` event, reason ``cancelled``), and only then lets uvicorn close
the connections; the sessions themselves are removed by the application's shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import time
from typing import Any

import uvicorn
from fastapi import FastAPI

from ..sessions.sessionregistry import SessionRegistry
from ..settings.fields import Settings
from .appstate import app_state_of
from .connections import ConnectionGuard, GuardedH11Protocol, budget
from .executors import ExecutorLike


class Server(uvicorn.Server):
    """uvicorn's server, with the executions stopped at the start of shutdown."""

    def __init__(self, config: uvicorn.Config, executor: ExecutorLike, sessions: SessionRegistry | None = None) -> None:
        super().__init__(config)
        self.executor = executor
        self.sessions = sessions

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        stopping = [self.executor.stop_all("the server is shutting down: container stopped and removed")]
        if self.sessions is not None:
            stopping.append(self.sessions.stop_commands("the server is shutting down: the command was stopped"))
        await asyncio.gather(*stopping)
        await super().shutdown(sockets)


def make_server(app: FastAPI, settings: Settings, *, log_config: Any = None) -> Server:
    """A :class:`Server` for ``app`` on ``settings.host``/``settings.port``.

    It speaks HTTP/1.1 through :class:`~.connections.GuardedH11Protocol`: connections are
    capped, and each request must arrive in time (:mod:`.connections`).
    """
    room = budget(settings.max_connections, runs=settings.max_concurrent + settings.max_sessions)
    guard = ConnectionGuard(room.connections, settings.header_timeout, settings.body_timeout)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=log_config,
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,  # type: ignore[arg-type]  # a float works too
        http=GuardedH11Protocol.guarded_by(guard),
        ws="none",  # no route takes a WebSocket
        backlog=room.backlog,
    )
    state = app_state_of(app)
    return Server(config, state.executor, state.sessions)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; an execution record's fields are merged in, not nested."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        execution = getattr(record, "execution", None)
        if isinstance(execution, dict):
            line.update(execution)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the server's own log and uvicorn's."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
