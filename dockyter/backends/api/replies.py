"""The API's answers in one line each: refusals, error details, transport failures.

Everything here reads a ``requests`` response or exception and returns words a user can act
on; nothing sends anything.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests

from .credential import Credential

EXCERPT_LENGTH = 200


def refusal(response: requests.Response, url: str, base: str, credential: Credential) -> str:
    """One line for a non-2xx answer to ``/execute``, given the ``credential`` that was sent."""
    status = response.status_code
    detail = detail_of(response)
    if 300 <= status < 400:
        where = response.headers.get("Location", "elsewhere")
        return f"the API at {url} redirects to {where}: set api_url to the service's real address"
    if status == 401:
        if credential.from_hub:
            return f"the API refused your JupyterHub token: {credential.hint()}"
        return f"the API {'refused the token' if credential.token else 'needs a token'}: {credential.hint()}"
    if status == 403:
        return f"the API refused the request: {detail or 'forbidden (403)'}"
    if status == 404:
        return f"no Dockyter API at {base} (POST /execute answered 404): check api_url"
    if status == 413:
        return f"the API refused the request as too large (413){': ' + detail if detail else ''}"
    if status == 429:
        retry = retry_after(response)
        return f"the API is busy; retry {retry or 'later'}" + (f" ({detail})" if detail else "")
    return f"the API answered {status} {response.reason or ''}".rstrip() + (f": {detail}" if detail else "")


def refusal_of_health(response: requests.Response, base: str) -> str:
    status = response.status_code
    if 300 <= status < 400:
        return (
            f"{base}/health redirects to {response.headers.get('Location', 'elsewhere')}: set api_url to that address"
        )
    if status == 404:
        return f"no Dockyter API at {base} (GET /health answered 404): check api_url"
    detail = detail_of(response)
    return f"{base}/health answered {status}" + (f": {detail}" if detail else "")


def detail_of(response: requests.Response) -> str:
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
                return excerpt(value)
            if isinstance(value, list) and value:  # FastAPI 422: [{"loc": [...], "msg": ...}, ...]
                first = value[0]
                if isinstance(first, dict) and "msg" in first:
                    where = ".".join(str(part) for part in first.get("loc", []) if part != "body")
                    return excerpt(f"{where}: {first['msg']}" if where else str(first["msg"]))
                return excerpt(str(first))
    title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    return excerpt(title.group(1) if title else text)


def retry_after(response: requests.Response) -> str | None:
    """'in 30 s' or 'after <HTTP date>' from Retry-After, if the server gave one."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return f"in {int(value)} s"
    return f"after {value}" if value else None


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, requests.RequestException):
        return None


def excerpt(text: str) -> str:
    """The text on one line, cut to a readable length."""
    line = " ".join(text.split())
    return line if len(line) <= EXCERPT_LENGTH else line[: EXCERPT_LENGTH - 3] + "..."


def speaks_plain_http(error: BaseException) -> bool:
    """Whether a TLS handshake failed because the server answered in plain HTTP."""
    text = str(error).lower()
    return "wrong_version_number" in text or "wrong version number" in text or "http_request" in text


def reason(error: BaseException) -> str:
    """The last words of a nested transport error: 'Connection refused', not a pool's life story."""
    text = str(error)
    errno: list[str] = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno[-1].strip()
    ssl: list[str] = re.findall(r"\[SSL: [A-Z0-9_]+\] ([^('\"]+)", text)  # "[SSL: X] what (_ssl.c:1006)"
    if ssl:
        return ssl[-1].strip()
    for known in ("Name or service not known", "Connection refused", "timed out", "certificate verify failed"):
        if known in text:
            return known
    return excerpt(text.split("(Caused by ")[-1].strip("()\"' ")) or type(error).__name__
