"""Every error answer is ``{"detail": "one line"}``: the handlers registered on the application.

A :class:`~dockyter.server.servererrors.ServerError`, whatever part of the server raised it,
becomes its ``status`` and ``headers`` through one handler (:func:`server_error`). The others
answer what the framework itself finds: a body that is not the JSON of docs/api.md (422, or 400
when only a text check refused it), an unknown path or method, and a bug (500, logged with its
traceback, never shown).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..servererrors import ServerError
from .models import TEXT_REFUSED

log = logging.getLogger("dockyter.server")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(ServerError, server_error)  # type: ignore[arg-type]  # starlette types it for Exception
    app.add_exception_handler(RequestValidationError, invalid_body)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal_error)


async def server_error(request: Request, error: ServerError) -> JSONResponse:
    """The one answer to every error of the server's own: its status, its headers, its line."""
    return JSONResponse({"detail": str(error)}, status_code=error.status, headers=error.headers or None)


async def invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = list(error.errors())
    if errors and all(problem.get("type") == TEXT_REFUSED for problem in errors):
        # Well-formed JSON whose text no process may receive: a 400, as for args that cannot be understood.
        return JSONResponse({"detail": _text_refusal(errors[0])}, status_code=400)
    return JSONResponse({"detail": _one_line(errors)}, status_code=422)


async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """The framework's own answers (no such path, method not allowed), as one line."""
    detail = error.detail if isinstance(error.detail, str) else json.dumps(error.detail)
    return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)


async def internal_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": f"internal server error: {type(error).__name__}"}, status_code=500)


def _text_refusal(error: Any) -> str:
    """``name contains U+000A (line feed): ...``: the field (``shell[1]`` for an item) and the problem."""
    field = ""
    for part in error.get("loc", ()):
        if part == "body":
            continue
        field += f"[{part}]" if isinstance(part, int) else ("." if field else "") + str(part)
    return f"{field or 'body'} {error.get('msg', 'is not accepted')}"


def _one_line(errors: Any) -> str:
    """``cmd: Field required (and 1 more problem)`` from pydantic's list of errors."""
    errors = list(errors)
    if not errors:
        return "the request body is not valid"
    first = errors[0]
    if first.get("type") == "json_invalid":
        text = "the body is not valid JSON"
    elif tuple(first.get("loc", ())) == ("body",):
        text = 'the body must be a JSON object like {"cmd": "...", "args": "IMAGE"}, sent as application/json'
    else:
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
        text = f"{where}: {first.get('msg', 'invalid')}"
    more = len(errors) - 1
    if more:
        text += f" (and {more} more problem{'s' if more > 1 else ''})"
    return text.replace("\n", " ")
