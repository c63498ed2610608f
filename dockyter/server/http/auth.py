"""Bearer-token authentication over one or more named tokens.

Tokens are compared in constant time (:func:`hmac.compare_digest`) against every accepted
token, without stopping at the first match, so the answer's timing tells nothing about
which token, or how much of one, was right. Only the token's *name* is ever logged.
"""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..servererrors import Unauthenticated
from .appstate import app_state

ANONYMOUS = "anonymous"  # who runs executions when authentication is off

# How a 401 answer tells the client to authenticate (RFC 6750).
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dockyter"'}
INVALID = {"WWW-Authenticate": 'Bearer realm="dockyter", error="invalid_token"'}

_bearer = HTTPBearer(auto_error=False, description="One of the server's tokens: `Authorization: Bearer TOKEN`.")


def match_token(given: str, tokens: dict[str, str]) -> str | None:
    """The name of the token equal to ``given``, or None; constant time for equal lengths."""
    given_bytes = given.encode("utf-8", "surrogateescape")
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(given_bytes, token.encode("utf-8")):
            found = name
    return found


def token_status(request: Request, tokens: dict[str, str]) -> str | None:
    """For /health: "accepted" or "rejected" when the request carries credentials, else None."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    accepted = scheme.lower() == "bearer" and match_token(token.strip(), tokens) is not None
    return "accepted" if accepted else "rejected"


async def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> str:
    """The FastAPI dependency of every route that needs a token: who is calling (a token name).

    Reads the application's settings and token table (:mod:`.appstate`); raises
    :class:`~dockyter.server.servererrors.Unauthenticated` (401, with its challenge) unless
    authentication is off (then everyone is :data:`ANONYMOUS`).
    """
    state = app_state(request)
    if not state.settings.auth:
        return ANONYMOUS
    if credentials is None:
        if "authorization" in request.headers:
            raise Unauthenticated("the Authorization header must be 'Bearer TOKEN'", CHALLENGE)
        raise Unauthenticated("a token is required: send 'Authorization: Bearer TOKEN'", CHALLENGE)
    name = match_token(credentials.credentials, state.tokens)
    if name is None:
        raise Unauthenticated("the token is not accepted by this server", INVALID)
    return name
