"""The settings a backend reads, typed: what ``Dockyter`` hands each backend instead of itself.

Backends read these at each run, so a ``%config`` change applies to the next command. The
``Dockyter`` configurable satisfies :class:`BackendSettings` with its traits; tests, benchmarks
and other programs use :class:`StaticSettings`, a plain dataclass with the traits' defaults, and
need no IPython at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit


class DockerSettings(Protocol):
    """What the docker backend reads."""

    @property
    def docker_command(self) -> Sequence[str]: ...
    @property
    def base_run_args(self) -> Sequence[str]: ...
    @property
    def stop_grace(self) -> float: ...
    @property
    def prestart(self) -> int: ...
    @property
    def prestart_limit(self) -> int: ...
    @property
    def prestart_idle(self) -> float: ...


class APISettings(Protocol):
    """What the API backend reads."""

    @property
    def api_url(self) -> str: ...
    @property
    def api_token(self) -> str: ...
    @property
    def api_headers(self) -> Mapping[str, str]: ...
    @property
    def api_verify(self) -> bool: ...
    @property
    def api_ca_bundle(self) -> str: ...
    @property
    def api_connect_timeout(self) -> float: ...
    @property
    def api_idle_timeout(self) -> float: ...
    @property
    def site_api_url(self) -> str:
        """The ``api_url`` the IPython configuration set (the site profile's): the only one that gets the
        JupyterHub token (:mod:`.api.credential`); empty when it set none."""
        ...


class BackendSettings(DockerSettings, APISettings, Protocol):
    """Everything any built-in backend reads."""


@dataclass
class StaticSettings:
    """Backend settings as plain values, with the defaults of the ``Dockyter`` traits."""

    docker_command: list[str] = field(default_factory=lambda: ["docker"])
    base_run_args: list[str] = field(default_factory=lambda: ["--log-driver", "none"])
    stop_grace: float = 2.0
    prestart: int = 1
    prestart_limit: int = 4
    prestart_idle: float = 600.0
    api_url: str = ""
    api_token: str = ""
    api_headers: dict[str, str] = field(default_factory=dict)
    api_verify: bool = True
    api_ca_bundle: str = ""
    api_connect_timeout: float = 5.0
    api_idle_timeout: float = 60.0
    site_api_url: str = ""


def api_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an API base URL, or None when it can (empty is not checked here).

    The ``api_url`` trait and the API backend check it the same way.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"api_url {url!r} is not an http:// or https:// URL"
    if parts.query or parts.fragment:
        return f"api_url {url!r} must not have a query or fragment"
    return None
