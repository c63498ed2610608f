"""Backends by name. A backend is imported only when it is first chosen, so loading the
extension never imports ``requests`` (the API backend's dependency) for docker users.

Adding a backend is one new module with a :class:`~dockyter.backends.base.Backend`
subclass and one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Backend

# name -> "module:class"
REGISTRY: dict[str, str] = {
    "docker": "dockyter.backends.docker.dockerbackend:DockerBackend",
    "api": "dockyter.backends.api.apibackend:APIBackend",
}


def known_backends() -> list[str]:
    return sorted(REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name``; ``KeyError`` if there is none."""
    module_name, class_name = REGISTRY[name].split(":")
    found: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return found
