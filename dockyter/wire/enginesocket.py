"""Asking the Docker Engine API a question straight on its unix socket: about 1 ms, no CLI process.

A prestarted container must be checked against the image its tag names *now*, before every
command it runs: through the CLI (``docker image inspect``) that is a process of 20 ms or more;
on the socket, with one kept-alive connection, about a millisecond. That is only possible when
``docker_command`` plainly names a unix socket (``docker -H unix:///...``, or ``docker`` with
``DOCKER_HOST`` or the default socket) that this process may open; otherwise the caller keeps
the CLI (podman, ``sudo docker``, a context, TLS).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

API_VERSION = "v1.41"  # Docker 20.10
DEFAULT_SOCKET = "/var/run/docker.sock"


class EngineSocketError(Exception):
    """The socket could not be read, or did not answer with JSON."""


def socket_path(docker_command: Sequence[str], environ: Mapping[str, str] | None = None) -> str | None:
    """The unix socket ``docker_command`` talks to, or None when that is not plain to see."""
    environ = os.environ if environ is None else environ
    if not docker_command or os.path.basename(docker_command[0]) != "docker":
        return None
    host = None
    words = list(docker_command[1:])
    while words:
        word = words.pop(0)
        if word in ("-H", "--host") and words:
            host = words.pop(0)
        elif word.startswith(("-H=", "--host=")):
            host = word.split("=", 1)[1]
        else:
            return None  # --context, --config, --tls...: leave it to the CLI
    if host is None:
        if environ.get("DOCKER_CONTEXT"):
            return None
        host = environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    return host[len("unix://") :] if host.startswith("unix://") else None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class EngineSocket:
    """One kept-alive connection to the engine's socket, for short GETs from any thread (one at a time)."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._connection: _UnixConnection | None = None
        self._lock = threading.Lock()

    def get(self, path: str) -> Any:
        """``GET /<version><path>``: the decoded JSON, or None for a 404. Raises :class:`EngineSocketError`."""
        target = f"/{API_VERSION}{quote(path, safe='/:@')}"
        with self._lock:
            for attempt in (1, 2):  # a kept-alive connection the engine closed meanwhile: once more
                if self._connection is None:
                    self._connection = _UnixConnection(self.path, self.timeout)
                try:
                    self._connection.request("GET", target)
                    response = self._connection.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as error:
                    self._connection.close()
                    self._connection = None
                    if attempt == 2:
                        raise EngineSocketError(f"{self.path}: {error}") from None
                    continue
                if response.status == 404:
                    return None
                if not 200 <= response.status < 300:
                    raise EngineSocketError(f"{target}: HTTP {response.status}")
                try:
                    return json.loads(body)
                except ValueError:
                    raise EngineSocketError(f"{target}: not JSON") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
