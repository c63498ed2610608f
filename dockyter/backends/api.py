"""The HTTP API backend: each request is one ``POST {api_url}/execute`` (see docs/api.md).

It speaks the original contract (JSON ``{cmd, args}`` in, JSON ``{stdout, stderr}`` out) to
any server, and negotiates the extensions with ``Accept: application/x-ndjson``: a server
that can stream answers with one JSON event per line, which we copy to the sink as it
arrives. An interrupt, a timeout or a broken stream closes the connection and asks the
server to cancel the execution by id (when it gave one), so its container stops.

Time limits: a short connect timeout; an idle limit on a stream (heartbeats keep it from
firing); no limit on the total duration unless the request has a timeout, which the server
is told about and which we also enforce ourselves in case the server ignores it.

This is the only module that imports ``requests``: it is loaded when the backend is chosen.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import ReadTimeoutError

from ..contract import DEFAULT_SHELL, EXIT_INTERRUPTED, EXIT_TIMEOUT, NDJSON, READ_SIZE, SECRET_HEADER
from ..errors import BackendError
from ..output import OutputSink
from .base import Backend, BackendStatus, RunRequest, RunResult
from .settings import BackendSettings, api_url_problem

ACCEPT = f"{NDJSON}, application/json;q=0.9"
TIMEOUT_GRACE = 2.0  # seconds a server gets to report its own timeout before we stop waiting
CANCEL_TIMEOUT = 10.0  # seconds for the cancel request: the server stops and removes the container
HEALTH_TIMEOUT = 10.0
EXCERPT_LENGTH = 200
URL_HINT = "set Dockyter.api_url or use %docker_backend api URL"
TOKEN_HINT = "set Dockyter.api_token or $DOCKYTER_API_TOKEN"


class _Bearer(requests.auth.AuthBase):
    """``Authorization: Bearer ...`` as requests auth, so a ~/.netrc entry cannot replace it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        prepared.headers["Authorization"] = f"Bearer {self._token}"
        return prepared

    def __repr__(self) -> str:
        return "_Bearer(<hidden>)"


class _DeadlineReached(Exception):
    """The request's timeout (plus the server's grace) passed on our side."""


class APIBackend(Backend):
    """Runs each request through a Dockyter HTTP service at ``Dockyter.api_url``."""

    name = "api"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"<APIBackend {self.settings.api_url or '(no api_url)'}>"

    # -- settings, read at each use so %config applies to the next command ----------------------

    def base_url(self) -> str:
        """``api_url`` without its trailing slash; BackendError unless it is an http(s) URL."""
        url = self.settings.api_url.strip()
        if not url:
            raise BackendError(f"no api_url set: {URL_HINT}")
        problem = api_url_problem(url)
        if problem:
            raise BackendError(f"{problem}: {URL_HINT}")
        return url.rstrip("/")

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def scrub(self, text: str) -> str:
        """``text`` with the token blanked out (a server may echo it back in a message)."""
        token = self.settings.api_token
        return text.replace(token, "<token>") if token else text

    def fail(self, message: str) -> BackendError:
        return BackendError(self.scrub(message))

    def send(
        self,
        method: str,
        url: str,
        *,
        read_timeout: float | None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One HTTP request with our auth, headers, TLS and timeouts; transport failures become BackendError.

        ``requests.ReadTimeout`` is left to the caller, which knows what the wait meant.
        """
        settings = self.settings
        token = settings.api_token
        try:
            return self.session.request(
                method,
                url,
                json=body,
                headers={**settings.api_headers, **(headers or {})},
                auth=_Bearer(token) if token else None,
                verify=settings.api_ca_bundle or settings.api_verify,
                timeout=(settings.api_connect_timeout, read_timeout),
                stream=stream,
                # A redirected POST would silently become a GET: say where the API went instead.
                allow_redirects=False,
            )
        except requests.ReadTimeout:
            raise
        except requests.RequestException as error:
            raise self.fail(self._transport_message(error, url)) from None
        except OSError as error:  # requests: "Could not find a suitable TLS CA certificate bundle"
            raise self.fail(f"cannot use Dockyter.api_ca_bundle = {settings.api_ca_bundle!r}: {error}") from None
        except ValueError as error:  # a header (api_headers, the token) that HTTP cannot carry
            raise self.fail(
                f"cannot send the request to {url}: {error}; check Dockyter.api_headers and api_token"
            ) from None

    def _transport_message(self, error: requests.RequestException, url: str) -> str:
        settings = self.settings
        if isinstance(error, requests.exceptions.SSLError):
            return (
                f"TLS verification of {url} failed ({_reason(error)}): set Dockyter.api_ca_bundle to the CA "
                "that signed its certificate (or Dockyter.api_verify = False, for testing only)"
            )
        if isinstance(error, requests.exceptions.ProxyError):
            return f"the HTTP proxy could not reach {url} ({_reason(error)}): check $HTTPS_PROXY / $NO_PROXY"
        if isinstance(error, requests.ConnectTimeout):
            return (
                f"{url} did not accept a connection within {settings.api_connect_timeout:g} s "
                "(Dockyter.api_connect_timeout): check api_url and the network"
            )
        if isinstance(error, requests.ConnectionError):
            text = str(error)
            if "RemoteDisconnected" in text or "without response" in text:
                return f"the API at {url} closed the connection without answering"
            return f"nothing answers at {url} ({_reason(error)}): check api_url and that the service is running"
        return f"cannot send the request to {url}: {_reason(error)}"

    # -- running -------------------------------------------------------------------------------

    def request_body(self, request: RunRequest) -> dict[str, Any]:
        """The JSON for ``/execute``: the original two fields, plus the optional ones that apply."""
        body: dict[str, Any] = {"cmd": request.command, "args": request.args_text}
        if request.timeout:
            body["timeout"] = request.timeout
        if tuple(request.shell) != DEFAULT_SHELL:
            body["shell"] = list(request.shell)
        if request.merge_stderr:
            body["merge_stderr"] = True
        return body

    def run(self, request: RunRequest, sink: OutputSink) -> RunResult:
        url = self.base_url() + "/execute"
        execution = _Execution(self, request, sink)
        try:
            return execution.run(url)
        finally:
            sink.close()

    # -- status and description --------------------------------------------------------------------

    def status(self) -> BackendStatus:
        try:
            base = self.base_url()
        except BackendError as error:
            return BackendStatus(self.name, False, str(error))
        facts = {"api_url": base, "token": "set" if self.settings.api_token else "not set"}
        if base.startswith("https:"):
            facts["tls"] = self._tls_description()
        try:
            response = self.send("GET", base + "/health", read_timeout=HEALTH_TIMEOUT)
        except requests.ReadTimeout:
            return BackendStatus(self.name, False, f"{base}/health did not answer within {HEALTH_TIMEOUT:g} s", facts)
        except BackendError as error:
            return BackendStatus(self.name, False, str(error), facts)
        with response:
            if not response.ok:
                return BackendStatus(self.name, False, self.scrub(_refusal_of_health(response, base)), facts)
            health = _json_or_none(response)
        return self._healthy(base, health if isinstance(health, dict) else {}, facts)

    def _healthy(self, base: str, health: dict[str, Any], facts: dict[str, str]) -> BackendStatus:
        detail = f"{base} answers"
        if isinstance(health.get("version"), str):
            facts["server version"] = health["version"]
            detail += f" (version {health['version']})"
        features = health.get("features")
        if isinstance(features, list):
            facts["server features"] = ", ".join(str(f) for f in features) or "(none)"
        verdict = health.get("token")
        if self.settings.api_token:
            if verdict == "accepted":
                facts["token"] = "accepted"
            elif verdict == "rejected":
                facts["token"] = "rejected"
                detail += f", but it rejects the token: {TOKEN_HINT}"
            else:
                facts["token"] = "set (this server does not say whether it accepts it)"
        return BackendStatus(self.name, True, self.scrub(detail), {k: self.scrub(v) for k, v in facts.items()})

    def _tls_description(self) -> str:
        if self.settings.api_ca_bundle:
            return f"verified with {self.settings.api_ca_bundle}"
        return "verified" if self.settings.api_verify else "NOT verified (Dockyter.api_verify = False)"

    def describe(self, request: RunRequest) -> str:
        """The ``curl`` command that does what ``run`` would (the token as ``$DOCKYTER_API_TOKEN``)."""
        settings = self.settings
        url = (settings.api_url.strip().rstrip("/") or "<api_url>") + "/execute"
        words = ["curl", "-sS", "-N", shlex.quote(url), "-H", shlex.quote(f"Accept: {NDJSON}")]
        words += ["-H", shlex.quote("Content-Type: application/json")]
        if settings.api_token:
            # Double quotes: the user's shell expands the variable; the token itself is never written.
            words += ["-H", '"Authorization: Bearer $DOCKYTER_API_TOKEN"']
        for name, value in settings.api_headers.items():
            shown = "<hidden>" if SECRET_HEADER.search(name) else value
            words += ["-H", shlex.quote(f"{name}: {shown}")]
        if settings.api_ca_bundle:
            words += ["--cacert", shlex.quote(settings.api_ca_bundle)]
        elif not settings.api_verify:
            words.append("--insecure")
        words += ["--data-binary", shlex.quote(json.dumps(self.request_body(request)))]
        return self.scrub(" ".join(words))

    # -- after a failure ---------------------------------------------------------------------------

    def health_note(self, base: str) -> str:
        """A few words on whether the service still answers /health, to explain a failure."""
        try:
            response = self.send("GET", base + "/health", read_timeout=5.0)
        except (BackendError, requests.RequestException):
            return " (and the service no longer answers /health: it may have restarted or gone down)"
        response.close()
        return "" if response.ok else f" (and /health answers {response.status_code})"


class _Execution:
    """One ``/execute`` call: sends it, pumps the reply into the sink, cancels it when told to stop."""

    def __init__(self, backend: APIBackend, request: RunRequest, sink: OutputSink) -> None:
        self.backend = backend
        self.request = request
        self.sink = sink
        self.response: requests.Response | None = None
        self.execution_id: str | None = None
        self.deadline = time.monotonic() + request.timeout + TIMEOUT_GRACE if request.timeout else None

    def run(self, url: str) -> RunResult:
        base = url.rsplit("/", 1)[0]
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
            message = _refusal(response, url, base, bool(backend.settings.api_token))
            if response.status_code >= 500:
                message += backend.health_note(base)
            raise backend.fail(message)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == NDJSON:
            return self._follow_stream(base)
        return self._read_json_reply(url)

    def _follow_stream(self, base: str) -> RunResult:
        merge = self.request.merge_stderr
        for line in self._lines():
            event = self._parse_event(line)
            kind = event.get("event")
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
            raise self.backend.fail(
                f"the API sent an exit event without an integer code: {_excerpt(json.dumps(event))}"
            )
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
                f'{{"stdout": ..., "stderr": ...}}: {_excerpt(raw.decode("utf-8", "replace")) or "(empty body)"}'
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
            raise self.backend.fail(f"the API stream sent a line that is not a JSON event: {_excerpt(text)}")
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
                    f"the API stream ended before the command finished (connection broken: {_reason(error)})"
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


# -- reading error replies ---------------------------------------------------------------------------


def _refusal(response: requests.Response, url: str, base: str, has_token: bool) -> str:
    """One line for a non-2xx answer to ``/execute``."""
    status = response.status_code
    detail = _detail(response)
    if 300 <= status < 400:
        where = response.headers.get("Location", "elsewhere")
        return f"the API at {url} redirects to {where}: set api_url to the service's real address"
    if status == 401:
        return f"the API refused the token: {TOKEN_HINT}" if has_token else f"the API needs a token: {TOKEN_HINT}"
    if status == 403:
        return f"the API refused the request: {detail or 'forbidden (403)'}"
    if status == 404:
        return f"no Dockyter API at {base} (POST /execute answered 404): check api_url"
    if status == 413:
        return f"the API refused the request as too large (413){': ' + detail if detail else ''}"
    if status == 429:
        retry = _retry_after(response)
        return f"the API is busy; retry {retry or 'later'}" + (f" ({detail})" if detail else "")
    return f"the API answered {status} {response.reason or ''}".rstrip() + (f": {detail}" if detail else "")


def _refusal_of_health(response: requests.Response, base: str) -> str:
    status = response.status_code
    if 300 <= status < 400:
        return (
            f"{base}/health redirects to {response.headers.get('Location', 'elsewhere')}: set api_url to that address"
        )
    if status == 404:
        return f"no Dockyter API at {base} (GET /health answered 404): check api_url"
    detail = _detail(response)
    return f"{base}/health answered {status}" + (f": {detail}" if detail else "")


def _detail(response: requests.Response) -> str:
    """The server's own words: FastAPI's ``detail`` (string or validation list), else a body excerpt."""
    try:
        text = response.text
    except requests.RequestException:
        return ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return _excerpt(value)
            if isinstance(value, list) and value:  # FastAPI 422: [{"loc": [...], "msg": ...}, ...]
                first = value[0]
                if isinstance(first, dict) and "msg" in first:
                    where = ".".join(str(part) for part in first.get("loc", []) if part != "body")
                    return _excerpt(f"{where}: {first['msg']}" if where else str(first["msg"]))
                return _excerpt(str(first))
    title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    return _excerpt(title.group(1) if title else text)


def _retry_after(response: requests.Response) -> str | None:
    """'in 30 s' or 'after <HTTP date>' from Retry-After, if the server gave one."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return f"in {int(value)} s"
    return f"after {value}" if value else None


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, requests.RequestException):
        return None


def _excerpt(text: str) -> str:
    """The text on one line, cut to a readable length."""
    line = " ".join(text.split())
    return line if len(line) <= EXCERPT_LENGTH else line[: EXCERPT_LENGTH - 3] + "..."


def _reason(error: BaseException) -> str:
    """The last words of a nested transport error: 'Connection refused', not a pool's life story."""
    text = str(error)
    errno: list[str] = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno[-1].strip()
    for known in ("Name or service not known", "Connection refused", "timed out", "certificate verify failed"):
        if known in text:
            return known
    return _excerpt(text.split("(Caused by ")[-1].strip("()\"' ")) or type(error).__name__
