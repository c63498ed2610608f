"""What makes an ``api_url`` usable, checked the same way by the trait and by the API backend."""

from __future__ import annotations

from urllib.parse import urlsplit


def api_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an API base URL, or None when it can (empty is not checked here)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"api_url {url!r} is not an http:// or https:// URL"
    if parts.query or parts.fragment:
        return f"api_url {url!r} must not have a query or fragment"
    return None
