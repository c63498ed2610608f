"""Asking the Docker Engine API a short question straight on its unix socket: a millisecond, no CLI process.

When the container command plainly names a unix socket (``docker``, ``docker -H unix:///...``,
with ``DOCKER_HOST`` or the default socket), one ``GET`` costs about a millisecond where a CLI
process costs tens; otherwise (podman, ``sudo docker``, a context, TLS, ssh) callers use the CLI.
Standard library only, synchronous: the kernel's docker backend reads an image's digest with it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

API_VERSION = "v1.41"  # Docker 20.10
DEFAULT_SOCKET = "/var/run/docker.sock"
MAX_ANSWER = 4 << 20  # bytes: an image's or the engine's description is far smaller


class EngineSocketError(Exception):
    """The socket could not be read, or answered something else than a 2xx with JSON."""


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


def get_json(path: str, target: str, timeout: float = 5.0) -> Any:
    """``GET /<version><target>`` on the socket at ``path``; the decoded JSON. Raises :class:`EngineSocketError`."""
    request = f"GET /{API_VERSION}{target} HTTP/1.0\r\nHost: docker\r\n\r\n".encode()
    chunks: list[bytes] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(path)
            connection.sendall(request)
            size = 0
            # HTTP/1.0: the engine closes the connection after the reply, which is then not chunked.
            while chunk := connection.recv(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER:
                    raise EngineSocketError(f"{target}: the answer is too large")
    except OSError as error:
        raise EngineSocketError(f"cannot ask {path}: {error}") from None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
        answer = json.loads(body)
    except (IndexError, ValueError):
        raise EngineSocketError(f"{target}: not an HTTP reply with JSON") from None
    if not 200 <= status < 300:
        message = answer.get("message") if isinstance(answer, dict) else None
        raise EngineSocketError(f"{target}: {status} {message or ''}".strip())
    return answer


def image_path(image: str) -> str:
    """The API path that describes ``image`` (its name keeps its ``/`` and ``:``)."""
    return f"/images/{quote(image, safe='/:@')}/json"
