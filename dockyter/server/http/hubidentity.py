"""Whose a bearer token is, asked of JupyterHub: the identity behind ``auth = "jupyterhub"``.

A request's token is a JupyterHub API token (a single-user server's ``$JUPYTERHUB_API_TOKEN``,
which its kernels send). :meth:`HubIdentity.identify` asks the hub the one question
``jupyterhub.services.auth.HubAuth.user_for_token`` asks: ``GET {hub_api_url}/user`` with
``Authorization: token <the caller's token>``. The hub names the token's user and their groups
(every token may identify its own user) and lists the token's scopes; the caller may use this
service when those scopes grant ``access:services!service=<this service>`` (or every service),
as ``HubAuth.check_scopes`` decides. This service's own token is not sent for that: it is
asked only once, at start-up, to check that the hub knows it as the service named here
(:meth:`HubIdentity.service_problem`).

The hub's answers, yes and no alike, are kept ``cache_seconds``: the bound within which a token
the hub revoked (by its user, an admin, or because its server stopped) stops working here. The
cache is keyed by a keyed digest of the token, never by the token, and counts from when the
question was asked, so an answer is never used longer than that after the hub gave it.
Questions about one token asked at once share one request; at most ``MAX_LOOKUPS`` go to the
hub together. A hub that cannot be reached, is too slow or answers an error is
:class:`HubUnavailable`: one line, said to the caller as a 503.

The hub is asked directly (never through ``$HTTP_PROXY``), and a redirect is an error, not
followed: the caller's token goes to ``hub_api_url`` and nowhere else. Plain ``urllib`` in a
worker thread: importing ``jupyterhub.services.auth`` would load the whole hub (SQLAlchemy,
tornado, about 1.6 s) into the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from ..servererrors import HubUnavailable

log = logging.getLogger("dockyter.server")

MAX_LOOKUPS = 8  # questions to the hub in flight at once
MAX_CACHED = 4096  # answers kept; beyond that the oldest go first
MAX_TOKEN_LENGTH = 512  # longer "tokens" are refused without asking the hub
MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class HubUser:
    """A hub user, as the hub named them for one of their tokens."""

    name: str
    groups: tuple[str, ...]
    token_id: str  # the hub's id of the token ("a7"): what a log may say instead of the token
    may_use_service: bool  # the token's scopes grant access to this service


@dataclass(frozen=True)
class _Answer:
    user: HubUser | None  # None: the hub does not know the token (unknown, revoked, expired)
    until: float  # time.monotonic() after which it is asked again


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the caller's token to wherever it points: refuse it instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HubIdentity:
    """Asks the hub at ``api_url`` whose tokens are, for the hub service named ``service``."""

    def __init__(self, api_url: str, service: str, cache_seconds: float, timeout: float, api_token: str = "") -> None:
        self.api_url = api_url.rstrip("/")
        self.service = service
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._api_token = api_token
        self._access = {"access:services", f"access:services!service={service}"}
        self._key = secrets.token_bytes(32)  # the digests mean nothing outside this process
        self._answers: dict[bytes, _Answer] = {}
        self._asking: dict[bytes, asyncio.Future[HubUser | None]] = {}
        self._lookups = asyncio.Semaphore(MAX_LOOKUPS)
        handlers = [urllib.request.ProxyHandler({}), _NoRedirect()]
        if api_url.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context()))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"<HubIdentity {self.api_url} service={self.service!r}>"

    # -- a caller's token --------------------------------------------------------------------------

    async def identify(self, token: str) -> HubUser | None:
        """The hub user ``token`` belongs to, or None when the hub does not know it; HubUnavailable otherwise."""
        if not _could_be_a_token(token):
            return None
        digest = hmac.new(self._key, token.encode(), hashlib.sha256).digest()
        known = self._answers.get(digest)
        if known is not None and known.until > time.monotonic():
            return known.user
        asking = self._asking.get(digest)
        if asking is None:
            asking = asyncio.ensure_future(self._ask_and_keep(digest, token))
            self._asking[digest] = asking
            asking.add_done_callback(lambda done: self._asked(digest, done))
        # shield: one caller that goes away does not cancel the question the others wait for
        return await asyncio.shield(asking)

    def _asked(self, digest: bytes, done: asyncio.Future[HubUser | None]) -> None:
        self._asking.pop(digest, None)
        if not done.cancelled():
            done.exception()  # retrieved here too: every caller may have gone away meanwhile

    async def _ask_and_keep(self, digest: bytes, token: str) -> HubUser | None:
        asked = time.monotonic()
        model = await self._ask(token)
        user = self._user_of(model) if model is not None else None
        self._keep(digest, _Answer(user, asked + self.cache_seconds))
        return user

    def _keep(self, digest: bytes, answer: _Answer) -> None:
        if len(self._answers) >= MAX_CACHED:
            now = time.monotonic()
            for old in [key for key, kept in self._answers.items() if kept.until <= now]:
                del self._answers[old]
            while len(self._answers) >= MAX_CACHED:
                del self._answers[next(iter(self._answers))]
        self._answers.pop(digest, None)  # re-inserted last: the dict's order is the eviction order
        self._answers[digest] = answer

    def forget(self) -> None:
        """Drop every cached answer (the next request of each token asks the hub again)."""
        self._answers.clear()

    def _user_of(self, model: dict[str, Any]) -> HubUser | None:
        """The user in the hub's model of a token; None for what is not a usable user's token."""
        name = model.get("name")
        if model.get("kind") != "user" or not _usable_name(name):
            log.warning("the hub named a token's owner %r of kind %r: refused", name, model.get("kind"))
            return None
        assert isinstance(name, str)
        groups = model.get("groups")
        scopes = model.get("scopes")
        return HubUser(
            name=name,
            groups=tuple(sorted(g for g in groups if _usable_name(g))) if isinstance(groups, list) else (),
            token_id=str(model.get("token_id") or ""),
            may_use_service=isinstance(scopes, list) and not self._access.isdisjoint(scopes),
        )

    # -- this service's own token --------------------------------------------------------------------

    def service_problem(self) -> str | None:
        """The start-up check, before serving: None when the hub knows this service's own token as the service
        named here (or there is no token to check), else the one line that says what is wrong.
        HubUnavailable when the hub cannot say."""
        if not self._api_token:
            return None
        model = self._ask_now(self._api_token)
        if model is None:
            return f"the hub at {self.api_url} does not accept the service's own token (hub_api_token)"
        if model.get("kind") != "service" or model.get("name") != self.service:
            return (
                f"the hub at {self.api_url} knows the service's own token as the {model.get('kind')} "
                f"{model.get('name')!r}, not as the service {self.service!r} (hub_service)"
            )
        return None

    async def still_valid(self, token: str) -> bool | None:
        """Whether ``token`` still names a user who may use this service; None when the hub cannot say.

        Asked of each session opened with a hub user's token, every ``cache_seconds`` or so.
        """
        try:
            user = await self.identify(token)
        except HubUnavailable:
            return None
        return user is not None and user.may_use_service

    # -- one question to the hub ---------------------------------------------------------------------

    async def _ask(self, token: str) -> dict[str, Any] | None:
        """The hub's model for ``token``, None when the hub refuses it (401, 403); else HubUnavailable."""
        async with self._lookups:
            try:
                # The timeout bounds each read; this bounds a hub that trickles its answer.
                return await asyncio.wait_for(asyncio.to_thread(self._ask_now, token), 2 * self.timeout)
            except TimeoutError:
                raise HubUnavailable(f"the hub at {self.api_url} cannot be reached: no answer in time") from None

    def _ask_now(self, token: str) -> dict[str, Any] | None:
        url = f"{self.api_url}/user"
        request = urllib.request.Request(
            url, headers={"Authorization": f"token {token}", "Accept": "application/json"}, method="GET"
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read(1024 * 1024)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code in (401, 403):
                return None
            raise HubUnavailable(f"the hub at {self.api_url} answered {error.code} when asked who a token is") from None
        except (urllib.error.URLError, HTTPException, OSError) as error:
            why = getattr(error, "reason", None) or error
            raise HubUnavailable(f"the hub at {self.api_url} cannot be reached: {_one_line(why)}") from None
        try:
            model = json.loads(body)
        except ValueError:
            model = None
        if not isinstance(model, dict):
            raise HubUnavailable(f"the hub at {self.api_url} answered {url} with something other than a JSON object")
        return model


def _could_be_a_token(token: str) -> bool:
    """What a hub could have issued: printable ASCII, no spaces, not absurdly long (nothing else reaches it)."""
    return 0 < len(token) <= MAX_TOKEN_LENGTH and token.isascii() and token.isprintable() and " " not in token


def _usable_name(name: object) -> bool:
    """A name that can be logged, compared and labelled as it is: no control characters, not too long."""
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH and name.isprintable()


def _one_line(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        reason = reason.strerror  # "Connection refused", not "[Errno 111] Connection refused"
    text = " ".join(str(reason).split())
    if isinstance(reason, TimeoutError) or "timed out" in text:
        return "no answer in time"
    return text or type(reason).__name__
