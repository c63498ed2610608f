"""Who is calling: a bearer token of the server's own, or (``auth = "jupyterhub"``) a hub user's.

The server's own tokens are compared in constant time (:func:`hmac.compare_digest`) against
every accepted token, without stopping at the first match, so the answer's timing tells nothing
about which token, or how much of one, was right. Only the token's *name* is ever logged.

With ``auth = "jupyterhub"``, a token that is none of them goes to the hub
(:mod:`.hubidentity`): a hub user's token makes the caller ``hub:NAME`` (no token name can
contain ``:``, so no hub user can pass for a static token's holder), with what their groups'
tables grant (:mod:`~dockyter.server.policy.groupgrants`). The server's own tokens never go
to the hub.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..policy.groupgrants import GroupGrant, grant_for
from ..servererrors import HubUnavailable, NoServiceAccess, Unauthenticated
from .appstate import app_state

ANONYMOUS = "anonymous"  # who runs executions when authentication is off
HUB_PREFIX = "hub:"  # a hub user's principal: hub:NAME

# How a 401 answer tells the client to authenticate (RFC 6750).
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dockyter"'}
INVALID = {"WWW-Authenticate": 'Bearer realm="dockyter", error="invalid_token"'}

_bearer = HTTPBearer(
    auto_error=False,
    description="One of the server's tokens, or with auth jupyterhub a JupyterHub API token: `Authorization: Bearer TOKEN`.",
)


@dataclass(frozen=True)
class Caller:
    """Who a request comes from, and what that lets them do beyond the server-wide settings."""

    who: str  # the principal runs and sessions belong to: a token's name, hub:NAME, or ANONYMOUS
    name: str = ""  # how the caller is known to themselves: the hub user's name, else the token's name
    groups: tuple[str, ...] = ()  # the hub groups whose tables applied
    grant: GroupGrant = field(default_factory=GroupGrant)
    # For a hub user: whether the token of this request still works (True, False, None: the hub cannot say).
    token_check: Callable[[], Awaitable[bool | None]] | None = field(default=None, compare=False, repr=False)


def match_token(given: str, tokens: dict[str, str]) -> str | None:
    """The name of the token equal to ``given``, or None; constant time for equal lengths."""
    given_bytes = given.encode("utf-8", "surrogateescape")
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(given_bytes, token.encode("utf-8")):
            found = name
    return found


async def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> Caller:
    """The FastAPI dependency of every route that needs a token: who is calling.

    Reads the application's settings, token table and hub (:mod:`.appstate`); raises
    :class:`~dockyter.server.servererrors.Unauthenticated` (401, with its challenge),
    :class:`~dockyter.server.servererrors.NoServiceAccess` (403) for a hub token without access
    to this service, and :class:`~dockyter.server.servererrors.HubUnavailable` (503) when the hub
    cannot say. Without authentication everyone is :data:`ANONYMOUS`.
    """
    state = app_state(request)
    if not state.settings.authenticates:
        return Caller(ANONYMOUS, ANONYMOUS)
    if credentials is None:
        if "authorization" in request.headers:
            raise Unauthenticated("the Authorization header must be 'Bearer TOKEN'", CHALLENGE)
        raise Unauthenticated("a token is required: send 'Authorization: Bearer TOKEN'", CHALLENGE)
    found = await identify(request, credentials.credentials)
    if found is None:
        raise Unauthenticated("the token is not accepted by this server", INVALID)
    return found


async def identify(request: Request, token: str) -> Caller | None:
    """The caller ``token`` makes, or None when it is no one's."""
    state = app_state(request)
    name = match_token(token, state.tokens)
    if name is not None:
        return Caller(name, name)
    hub = state.hub
    if hub is None:
        return None
    user = await hub.identify(token)
    if user is None:
        return None
    if not user.may_use_service:
        raise NoServiceAccess(
            f"this JupyterHub token may not access the service {hub.service} "
            f"(it lacks access:services!service={hub.service})"
        )
    grant = grant_for(state.settings.groups, user.groups)

    async def token_check() -> bool | None:
        return await hub.still_valid(token)

    return Caller(HUB_PREFIX + user.name, user.name, grant.groups, grant, token_check)


async def health_of_token(request: Request) -> tuple[dict[str, object], Caller | None]:
    """For /health: ``token`` (accepted, rejected, or unknown while the hub cannot say) when the request
    carries credentials, and for an accepted one ``user`` and the ``groups`` whose tables applied; with
    the caller an accepted token makes (else None)."""
    header = request.headers.get("authorization")
    if header is None:
        return {}, None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return {"token": "rejected"}, None
    try:
        found = await identify(request, token.strip())
    except NoServiceAccess:
        return {"token": "rejected"}, None
    except HubUnavailable as error:
        return {"token": "unknown", "problem": str(error)}, None
    if found is None:
        return {"token": "rejected"}, None
    return {"token": "accepted", "user": found.name, "groups": list(found.groups)}, found


# What a route declares to get its caller: ``by: CallerOf``.
CallerOf = Annotated[Caller, Depends(caller)]
