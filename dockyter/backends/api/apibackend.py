"""The HTTP API backend: each request is one ``POST {api_url}/execute`` (see docs/api.md).

It speaks the original contract (JSON ``{cmd, args}`` in, JSON ``{stdout, stderr}`` out) to
any server, and negotiates the extensions with ``Accept: application/x-ndjson``: a server
that can stream answers with one JSON event per line, which we copy to the sink as it
arrives. An interrupt, a timeout or a broken stream closes the connection and asks the
server to cancel the execution by id (when it gave one), so its container stops.

Time limits: a short connect timeout; an idle limit on a stream (heartbeats keep it from
firing); no limit on the total duration unless the request has a timeout, which the server
is told about and which we also enforce ourselves in case the server ignores it.

This module, :mod:`~dockyter.backends.api_call` (one ``/execute`` call) and
:mod:`~dockyter.backends.api_replies` (answers in words) are the only ones that import
``requests``: they load when the backend is chosen.
"""

from __future__ import annotations

import json
import os
import shlex
from typing import TYPE_CHECKING, Any

import requests

from ...errors import BackendError
from ...output import OutputSink
from ...wire.contract import DEFAULT_SHELL, NDJSON, SECRET_HEADER
from ..base import Backend, BackendStatus, RunRequest, RunResult
from ..settings import BackendSettings, api_url_problem
from .call import ExecuteCall
from .credential import HUB_TOKEN_VARIABLE, Credential, choose_credential
from .replies import json_or_none, reason, refusal_of_health, speaks_plain_http

if TYPE_CHECKING:
    from ...wire.dockerargs import RunArgs
    from .remotesession import RemoteSession

HEALTH_TIMEOUT = 10.0
URL_HINT = "set Dockyter.api_url or use %docker_backend api URL"


class _Bearer(requests.auth.AuthBase):
    """``Authorization: Bearer ...`` as requests auth, so a ~/.netrc entry cannot replace it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        prepared.headers["Authorization"] = f"Bearer {self._token}"
        return prepared

    def __repr__(self) -> str:
        return "_Bearer(<hidden>)"


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

    def credential(self) -> Credential:
        """The token the next request sends, and where it came from (:mod:`.credential`)."""
        return choose_credential(self.settings)

    def scrub(self, text: str) -> str:
        """``text`` with the tokens blanked out (a server may echo one back in a message)."""
        for token in (self.settings.api_token, os.environ.get(HUB_TOKEN_VARIABLE, "")):
            if token:
                text = text.replace(token, "<token>")
        return text

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
        token: str | None = None,
    ) -> requests.Response:
        """One HTTP request with our auth, headers, TLS and timeouts; transport failures become BackendError.

        ``token``: another than ``api_token`` (a session is deleted with the token that started it).
        ``requests.ReadTimeout`` is left to the caller, which knows what the wait meant.
        """
        settings = self.settings
        token = self.credential().token if token is None else token
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
        if isinstance(error, requests.exceptions.SSLError) and speaks_plain_http(error):
            base = settings.api_url.strip().rstrip("/")
            plain = "http:" + base.removeprefix("https:")
            return f"the server at {base} does not speak TLS (it answered in plain HTTP): set api_url to {plain}"
        if isinstance(error, requests.exceptions.SSLError):
            return (
                f"TLS verification of {url} failed ({reason(error)}): set Dockyter.api_ca_bundle to the CA "
                "that signed its certificate (or Dockyter.api_verify = False, for testing only)"
            )
        if isinstance(error, requests.exceptions.ProxyError):
            return f"the HTTP proxy could not reach {url} ({reason(error)}): check $HTTPS_PROXY / $NO_PROXY"
        if isinstance(error, requests.ConnectTimeout):
            return (
                f"{url} did not accept a connection within {settings.api_connect_timeout:g} s "
                "(Dockyter.api_connect_timeout): check api_url and the network"
            )
        if isinstance(error, requests.ConnectionError):
            text = str(error)
            # "Connection aborted." is urllib3's word for a connection that was made and then
            # closed or reset before an answer; a reset (ECONNRESET, unlike a refusal) also needs
            # a connection: both are the server hanging up.
            hung_up = ("RemoteDisconnected", "without response", "Connection aborted", "reset by peer")
            if any(sign in text for sign in hung_up):
                return f"the API at {url} closed the connection without answering"
            return f"nothing answers at {url} ({reason(error)}): check api_url and that the service is running"
        return f"cannot send the request to {url}: {reason(error)}"

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

    def open_session(self, name: str, args: RunArgs) -> RemoteSession:
        from .remotesession import RemoteSession

        return RemoteSession.open(self, name, args)

    def run(self, request: RunRequest, sink: OutputSink) -> RunResult:
        url = self.base_url() + "/execute"
        execution = ExecuteCall(self, request, sink)
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
        credential = self.credential()
        facts = {"api_url": base, "token": credential.describe()}
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
                return BackendStatus(self.name, False, self.scrub(refusal_of_health(response, base)), facts)
            health = json_or_none(response)
        return self._healthy(base, health if isinstance(health, dict) else {}, facts, credential)

    def _healthy(
        self, base: str, health: dict[str, Any], facts: dict[str, str], credential: Credential
    ) -> BackendStatus:
        detail = f"{base} answers"
        if isinstance(health.get("version"), str):
            facts["server version"] = health["version"]
            detail += f" (version {health['version']})"
        features = health.get("features")
        if isinstance(features, list):
            facts["server features"] = ", ".join(str(f) for f in features) or "(none)"
        prestarted = health.get("prestarted")
        if isinstance(prestarted, dict):  # this token's containers the server keeps ready
            ready, starting = prestarted.get("ready"), prestarted.get("starting")
            facts["prestarted (server)"] = f"{ready} ready" + (f", {starting} starting" if starting else "")
        verdict = health.get("token")
        if credential.token:
            said = credential.describe()
            if verdict == "accepted":
                facts["token"] = f"{said}: accepted" if credential.from_hub else "accepted"
            elif verdict == "rejected":
                facts["token"] = f"{said}: rejected" if credential.from_hub else "rejected"
                detail += f", but it rejects the token: {credential.hint()}"
            else:
                facts["token"] = f"{said} (this server does not say whether it accepts it)"
        facts.update(_who(health))
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
        credential = self.credential()
        if credential.token:
            # Double quotes: the user's shell expands the variable; the token itself is never written.
            words += ["-H", f'"Authorization: Bearer ${credential.variable()}"']
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


def _who(health: dict[str, Any]) -> dict[str, str]:
    """The status rows for what the server says of the caller: its name for them, the groups whose policy applied."""
    facts = {}
    user = health.get("user")
    if isinstance(user, str) and user:
        facts["known to the server as"] = user
    groups = health.get("groups")
    if isinstance(groups, list):
        facts["policy groups"] = ", ".join(str(group) for group in groups) or "(none)"
    return facts
