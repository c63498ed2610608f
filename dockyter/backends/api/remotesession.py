"""A session on a Dockyter server, driven over HTTP (docs/api.md, "Sessions").

``POST /sessions`` starts it, ``POST /sessions/{id}/execute`` runs each cell exactly as
``/execute`` does (the same :class:`~dockyter.backends.api.call.ExecuteCall`: live NDJSON,
cancel by id on interrupt or timeout, which stops the command and keeps the session), and
``DELETE /sessions/{id}`` ends it. A server whose ``/health`` does not list the ``sessions``
feature (an older ``dockyter-server``, or one that implements only the original contract) has
none, and the user is told so in one line before anything is sent.

A refused request does not make a session gone. After one, the server is asked
(``GET /sessions/{id}``); its ``404`` may mean the session ended (its idle or lifetime limit, a
restart), but also that the request carried another token or reached a server that never had
it. So the cell says what the server answered, and ``stop`` (or ``restart``) still sends
``DELETE``: only the server saying it ended the session, or deleting it, makes it gone, and
"stopped" is said only of a session the server stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

import requests

from ...errors import BackendError, SessionDead, SessionUnknown
from ...output import OutputSink
from ...wire.contract import CONTROL_TIMEOUT
from ..base import RunRequest, RunResult
from .call import ExecuteCall, Sender
from .replies import json_or_none, refusal

if TYPE_CHECKING:
    from ...wire.dockerargs import RunArgs

START_TIMEOUT = 300.0  # seconds for the server to start the container (an image pull included)
MEMORY_TIMEOUT = 5.0  # seconds for a listing's memory figure: a listing must not wait long for it


class SessionSender(Sender, Protocol):
    """What a session needs of the API backend: a call's needs, and the API's base URL."""

    def base_url(self) -> str: ...


class RemoteSession:
    """One session of this kernel on the API server."""

    def __init__(self, backend: SessionSender, name: str, args: RunArgs) -> None:
        self.backend = backend
        self.name = name
        self.args = args
        self.base = backend.base_url()
        self.id = ""
        self.container = ""
        self.ended: str | None = None  # why it is no longer usable from here (None: it is)
        self.over = False  # the server said it is gone: it ended it, or deleted it for us
        self.token = ""  # the token it was started with: a 404 under another one means little

    @classmethod
    def open(cls, backend: SessionSender, name: str, args: RunArgs) -> RemoteSession:
        session = cls(backend, name, args)
        session.start()
        return session

    @property
    def url(self) -> str:
        return f"{self.base}/sessions/{quote(self.id, safe='')}"

    def start(self) -> None:
        backend = self.backend
        if "sessions" not in self._features():
            raise BackendError(self._no_sessions("its /health does not list the 'sessions' feature"))
        url = self.base + "/sessions"
        try:
            response = backend.send(
                "POST", url, body={"args": str(self.args), "name": self.name}, read_timeout=START_TIMEOUT
            )
        except requests.ReadTimeout:
            raise BackendError(f"{url} did not answer within {START_TIMEOUT:g} s") from None
        with response:
            if response.status_code in (404, 405):
                raise BackendError(self._no_sessions(f"POST /sessions answered {response.status_code}"))
            if not response.ok:
                message = refusal(response, url, self.base, backend.credential())
                raise SessionDead(backend.scrub(message.replace("the API refused the request: ", "")))
            info = json_or_none(response)
        if not isinstance(info, dict) or not isinstance(info.get("id"), str):
            raise BackendError(f"the API answered {url} without a session id")
        self.id = info["id"]
        self.container = str(info.get("container") or self.id)
        self.token = backend.credential().token

    def _features(self) -> list[str]:
        try:
            response = self.backend.send("GET", self.base + "/health", read_timeout=CONTROL_TIMEOUT)
        except requests.ReadTimeout:
            raise BackendError(f"{self.base}/health did not answer within {CONTROL_TIMEOUT:g} s") from None
        with response:
            health = json_or_none(response) if response.ok else None
        features = health.get("features") if isinstance(health, dict) else None
        return [str(feature) for feature in features] if isinstance(features, list) else []

    def _no_sessions(self, why: str) -> str:
        return (
            f"the API server at {self.base} has no sessions ({why}): run cells without --session "
            "on this backend, or use a dockyter-server that has them"
        )

    # -- running ------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.ended is None

    def run(self, request: RunRequest, sink: OutputSink, stop_grace: float) -> RunResult:
        """One cell in the session; the server applies its own stop grace to an interrupt."""
        try:
            result = ExecuteCall(self.backend, request, sink).run(self.url + "/execute", base=self.base)
        except BackendError:
            if self._unknown():
                raise SessionUnknown(f"the server does not know it now (404: {self._unknown_because()})") from None
            raise
        finally:
            sink.close()
        if result.reason == "session_ended":
            self.ended = (result.message or "its shell ended").removeprefix("the session ended: ")
            self.over = True  # the server ended it and removed its container
            raise SessionDead(self.ended, result.exit_code)
        return result

    def _unknown(self) -> bool:
        """After a failed request: whether the server says it does not know the session (``404``).

        Not proof that it is gone (another token, another server): the session stays usable, and
        ``remove`` still asks to delete it.
        """
        try:
            response = self.backend.send("GET", self.url, read_timeout=CONTROL_TIMEOUT)
        except (BackendError, requests.RequestException):
            return False
        with response:
            return response.status_code == 404

    def _unknown_because(self) -> str:
        """Why a server may answer 404 for this session."""
        if self.token != self.backend.credential().token:
            return "the token has changed since it started, and a session belongs to its token"
        return (
            "it ended at the server's idle or lifetime limit or a restart, or the request reached "
            "a server that does not have it"
        )

    def memory(self) -> str | None:
        """The memory the server says the session's container uses: ``memory_bytes`` of
        ``GET /sessions/{id}``, when the server reports it (None otherwise, or when it does not answer)."""
        if not self.id or self.ended is not None:
            return None
        try:
            response = self.backend.send("GET", self.url, read_timeout=MEMORY_TIMEOUT)
        except (BackendError, requests.RequestException):
            return None
        with response:
            info = json_or_none(response) if response.ok else None
        used = info.get("memory_bytes") if isinstance(info, dict) else None
        if not isinstance(used, int) or isinstance(used, bool) or used < 0:
            return None
        return binary_size(used)

    def death_reason(self) -> str:
        return self.ended or "it is gone"

    def way_in(self) -> None:
        return None  # the container is on the server's machine

    def remove(self) -> str | None:
        """Delete it on the server (``DELETE``, unless the server ended it itself); None when the
        server deleted it, else why it was not (it did not know it, or did not answer)."""
        if not self.id or self.over:
            self.ended = self.ended or "stopped"
            return None
        try:  # with the token that started it: a session belongs to its token
            response = self.backend.send("DELETE", self.url, read_timeout=CONTROL_TIMEOUT, token=self.token)
        except requests.RequestException as error:
            return f"the server did not answer its DELETE ({type(error).__name__}); it ends at the server's idle limit"
        except BackendError as error:
            return f"{error}; it ends at the server's idle limit"
        with response:
            status = response.status_code
        if status == 404:
            self.over = True
            return (
                "the server does not know it (404: it ended at the server's idle or lifetime limit or a restart, "
                "or the request reached a server that does not have it)"
            )
        if status == 401:
            return "the server refused the token it was started with (401); it ends at the server's idle limit"
        if not 200 <= status < 300:
            return f"the server answered its DELETE with {status}; it ends at the server's idle limit"
        self.ended, self.over = "stopped", True
        return None


def binary_size(count: int) -> str:
    """Bytes as ``docker stats`` writes them: four significant digits and a binary unit (``12.5MiB``)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.4g}{unit}"
        value /= 1024
    return f"{value:.4g}TiB"
