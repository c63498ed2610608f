"""One ``POST /execute`` of the API backend: the request, its reply live into the sink, and its cancel.

The reply is either an NDJSON stream (one event per line, copied to the sink as it arrives)
or the original contract's plain JSON. Reads are bounded one by one: an idle limit while the
stream is silent, and the request's own deadline. An interrupt, a timeout or a broken stream
closes the connection and asks the server to cancel the execution by id, when it gave one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import quote

import requests
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import ReadTimeoutError

from ...errors import BackendError
from ...output import OutputSink, ProgressLine
from ...wire.contract import EXIT_INTERRUPTED, EXIT_TIMEOUT, NDJSON, READ_SIZE
from ...wire.pull import progress_line, summary_line
from ..base import RunRequest, RunResult
from ..settings import APISettings
from .credential import Credential
from .replies import excerpt, reason, refusal

ACCEPT = f"{NDJSON}, application/json;q=0.9"
TIMEOUT_GRACE = 2.0  # seconds a server gets to report its own timeout before we stop waiting
CANCEL_TIMEOUT = 10.0  # seconds for the cancel request: the server stops and removes the container


class Sender(Protocol):
    """What a call needs of the API backend (:class:`~dockyter.backends.api.apibackend.APIBackend`):
    its settings, its one way of sending a request, and its words for a failure."""

    @property
    def settings(self) -> APISettings: ...

    def send(
        self,
        method: str,
        url: str,
        *,
        read_timeout: float | None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        token: str | None = None,
    ) -> requests.Response: ...

    def request_body(self, request: RunRequest) -> dict[str, Any]: ...

    def fail(self, message: str) -> BackendError: ...

    def scrub(self, text: str) -> str: ...

    def credential(self) -> Credential: ...

    def health_note(self, base: str) -> str: ...


class _DeadlineReached(Exception):
    """The request's timeout (plus the server's grace) passed on our side."""


class ExecuteCall:
    """One ``/execute`` call: sends it, pumps the reply into the sink, cancels it when told to stop."""

    def __init__(self, backend: Sender, request: RunRequest, sink: OutputSink) -> None:
        self.backend = backend
        self.request = request
        self.sink = sink
        self.response: requests.Response | None = None
        self.execution_id: str | None = None
        self.deadline = time.monotonic() + request.timeout + TIMEOUT_GRACE if request.timeout else None

    def run(self, url: str, base: str | None = None) -> RunResult:
        """POST to ``url`` (``/execute``, or a session's); ``base`` is the API's root, for cancel."""
        base = base or url.rsplit("/", 1)[0]
        finished = False
        try:
            result = self._call(url, base)
            finished = True
            return result
        except KeyboardInterrupt:
            finished = True
            return RunResult(EXIT_INTERRUPTED, "interrupted", f"interrupted: {self._stop(base)}")
        except _DeadlineReached:
            finished = True
            timeout = self.request.timeout or 0
            return RunResult(EXIT_TIMEOUT, "timeout", f"timed out after {timeout:g} s: {self._stop(base)}")
        finally:
            if not finished:  # a broken stream or a bad reply: never leave the execution running
                self._stop(base)

    # -- the request and its reply --------------------------------------------------------------

    def _call(self, url: str, base: str) -> RunResult:
        backend = self.backend
        try:
            # No read limit while waiting for the answer to begin: a server that does not
            # stream answers only when the command is done, however long it takes.
            self.response = backend.send(
                "POST",
                url,
                body=backend.request_body(self.request),
                # identity: a compressed stream would be held back by the decompressor.
                headers={"Accept": ACCEPT, "Accept-Encoding": "identity"},
                read_timeout=self._remaining(),
                stream=True,
            )
        except requests.ReadTimeout:
            raise _DeadlineReached from None
        response = self.response
        self._set_read_timeout(backend.settings.api_idle_timeout)  # from here on, silence is suspicious
        if not 200 <= response.status_code < 300:
            message = refusal(response, url, base, backend.credential())
            if response.status_code >= 500:
                message += backend.health_note(base)
            raise backend.fail(message)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == NDJSON:
            return self._follow_stream(base)
        return self._read_json_reply(url)

    def _follow_stream(self, base: str) -> RunResult:
        merge = self.request.merge_stderr
        progress = ProgressLine()  # the server's pull of the image, if it pulls
        for line in self._lines():
            self.sink.tick()  # a batch of output due to be shown
            event = self._parse_event(line)
            kind = event.get("event")
            if kind == "pull":
                if self.request.timeout:  # the timeout counts from the run, not from the server's pull
                    self.deadline = time.monotonic() + self.request.timeout + TIMEOUT_GRACE
                if event.get("done") is True:
                    progress.finish(summary_line(event))
                else:
                    progress.update(progress_line(event))
                continue
            if progress.shown:  # the pull ended without its summary (failed, cancelled)
                progress.finish(f"pulling {self.request.args.image} ended")
            if kind in ("stdout", "stderr"):
                data = event.get("data")
                if isinstance(data, str):
                    # merge asked for and not honoured: everything goes to stdout all the same
                    self.sink.write("stdout" if merge else kind, data)
            elif kind == "start":
                self.execution_id = str(event.get("id")) if event.get("id") is not None else None
            elif kind == "exit":
                return self._exit_result(event)
            elif kind == "error":
                message = event.get("message") or "no reason given"
                self.execution_id = None  # nothing is left to cancel
                raise self.backend.fail(f"the API could not run the command: {message}")
            # heartbeats, and events a newer server may add, only prove the stream is alive
        raise self.backend.fail("the API stream ended before the command finished" + self.backend.health_note(base))

    def _exit_result(self, event: dict[str, Any]) -> RunResult:
        self.execution_id = None
        code = event.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise self.backend.fail(f"the API sent an exit event without an integer code: {excerpt(json.dumps(event))}")
        reason = event.get("reason") if isinstance(event.get("reason"), str) else None
        message = event.get("message") if isinstance(event.get("message"), str) else None
        if reason == "timeout" and not message and self.request.timeout:
            message = f"timed out after {self.request.timeout:g} s"
        return RunResult(code, reason, self.backend.scrub(message) if message else None)

    def _read_json_reply(self, url: str) -> RunResult:
        """The original contract's answer: the whole output at once, in JSON."""
        raw = b"".join(self._chunks())
        try:
            reply = json.loads(raw)
        except ValueError:
            reply = None
        fields = ("stdout", "stderr")
        if not isinstance(reply, dict) or not any(name in reply for name in fields):
            raise self.backend.fail(
                f"the API answered {url} with something other than the expected JSON "
                f'{{"stdout": ..., "stderr": ...}}: {excerpt(raw.decode("utf-8", "replace")) or "(empty body)"}'
            )
        stdout, stderr = (reply.get(name) or "" for name in fields)
        if not isinstance(stdout, str) or not isinstance(stderr, str):
            raise self.backend.fail(f"the API answered {url} with stdout/stderr that are not strings")
        if self.request.merge_stderr:  # a server that does not know merge_stderr kept them apart
            stdout, stderr = stdout + stderr, ""
        self.sink.write("stdout", stdout)
        self.sink.write("stderr", stderr)
        code = reply.get("exit_code")
        if not isinstance(code, int) or isinstance(code, bool):
            code = 0  # the original contract has no exit code: the command is taken to have succeeded
        reason = reply.get("reason") if isinstance(reply.get("reason"), str) else None
        message = reply.get("message") if isinstance(reply.get("message"), str) else None
        return RunResult(code, reason, self.backend.scrub(message) if message else None)

    def _parse_event(self, line: bytes) -> dict[str, Any]:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            text = line.decode("utf-8", "replace")
            raise self.backend.fail(f"the API stream sent a line that is not a JSON event: {excerpt(text)}")
        return event

    # -- reading, live and within the time limits ----------------------------------------------

    def _lines(self) -> Iterator[bytes]:
        buffer = bytearray()
        for chunk in self._chunks():
            buffer += chunk
            start = 0
            while (end := buffer.find(b"\n", start)) >= 0:
                line = bytes(buffer[start:end]).strip()
                start = end + 1
                if line:
                    yield line
            del buffer[:start]
        if buffer.strip():
            yield bytes(buffer).strip()

    def _chunks(self) -> Iterator[bytes]:
        """The body as it arrives: each read returns whatever the socket has (``read1``), at once."""
        assert self.response is not None
        raw = self.response.raw
        if not hasattr(raw, "read1"):  # urllib3 1.x: no way to read what has arrived without waiting for more
            raise self.backend.fail("the api backend needs urllib3 2.2 or newer: pip install -U urllib3")
        encoding = self.response.headers.get("Content-Encoding", "identity").lower()
        decode = encoding not in ("", "identity")
        idle = self.backend.settings.api_idle_timeout
        while True:
            self._check_deadline()
            remaining = self._remaining()
            deadline_first = remaining is not None and remaining < idle
            self._set_read_timeout(remaining if deadline_first else idle)  # type: ignore[arg-type]
            try:
                data = raw.read1(READ_SIZE, decode_content=decode)
            except ReadTimeoutError:
                if deadline_first:
                    raise _DeadlineReached from None
                raise self.backend.fail(
                    f"the API sent nothing for {idle:g} s (no output, no heartbeat): the run was abandoned; "
                    "raise Dockyter.api_idle_timeout if the server is just slow"
                ) from None
            except TransportError as error:
                raise self.backend.fail(
                    f"the API stream ended before the command finished (connection broken: {reason(error)})"
                ) from None
            if not data:
                return
            yield data

    def _remaining(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.01)

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise _DeadlineReached

    def _set_read_timeout(self, seconds: float) -> None:
        """Bound the next socket read: requests fixes one read timeout per request, we need it per read."""
        connection = getattr(self.response.raw, "connection", None) if self.response is not None else None
        sock = getattr(connection, "sock", None)
        if sock is not None:
            sock.settimeout(seconds)

    # -- stopping ----------------------------------------------------------------------------------

    def _stop(self, base: str) -> str:
        """Close the connection, then ask the server to cancel; says what was done. Best effort."""
        if self.response is not None:
            self.response.close()
        if self.execution_id is None:
            return (
                "connection closed; this server gave no execution id to cancel, "
                "so whether its container stops is up to the server"
            )
        execution_id, self.execution_id = self.execution_id, None
        try:
            url = f"{base}/executions/{quote(execution_id, safe='')}/cancel"
            answer = self.backend.send("POST", url, read_timeout=CANCEL_TIMEOUT)
            answer.close()
        except KeyboardInterrupt:  # a second Ctrl-C skips the cancel request, not the result
            return f"connection closed; cancelling execution {execution_id} was skipped"
        except (BackendError, requests.RequestException) as error:
            return self.backend.scrub(f"connection closed, but cancelling execution {execution_id} failed: {error}")
        if answer.ok:
            return f"execution {execution_id} cancelled"
        if answer.status_code == 404:  # it had ended already, or this server cannot cancel
            return f"connection closed; the API has no running execution {execution_id} to cancel"
        return f"connection closed, but the API answered {answer.status_code} to cancelling execution {execution_id}"
