"""The environment of every container CLI process the server starts: small, fixed at start-up.

The docker CLI reads its environment: a value-less ``-e NAME`` (in ``docker run`` and
``docker service create`` alike) is filled from it, and ``DOCKER_*`` variables choose the
engine, its TLS keys and the registry credentials. The server's own environment holds its
tokens (``DOCKYTER_SERVER_TOKENS``) and whatever its service manager put there; none of that
is the CLI's business. So every CLI process (executions, sessions, pulls, Swarm services, the
short control commands, ``docker info``) gets :func:`engine_environment` of the server's
environment as it was when the settings were made, and nothing else:

* ``PATH`` and ``HOME`` (the CLI finds its plugins and ``~/.docker`` there);
* every ``DOCKER_*`` variable: how the operator points the CLI at its engine
  (``DOCKER_HOST``, ``DOCKER_CONTEXT``, ``DOCKER_CONFIG``, ``DOCKER_CERT_PATH``,
  ``DOCKER_TLS_VERIFY``, ``DOCKER_API_VERSION``...);
* what podman reads, rootless podman in particular: ``CONTAINER_*`` and ``CONTAINERS_*``
  (``CONTAINER_HOST``, ``CONTAINER_CONNECTION``, ``CONTAINERS_CONF``...),
  ``REGISTRY_AUTH_FILE``, ``XDG_RUNTIME_DIR``, ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME``,
  ``DBUS_SESSION_BUS_ADDRESS`` and ``TMPDIR``;
* ``SSH_AUTH_SOCK``, for an engine reached over ``ssh://``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Variables passed by name, and by prefix.
PASSED_NAMES = (
    "PATH",
    "HOME",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "DBUS_SESSION_BUS_ADDRESS",
    "REGISTRY_AUTH_FILE",
    "TMPDIR",
    "SSH_AUTH_SOCK",
)
PASSED_PREFIXES = ("DOCKER_", "CONTAINER_", "CONTAINERS_")


def engine_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a container CLI process gets, taken from the server's ``environ``."""
    chosen = {name: environ[name] for name in PASSED_NAMES if name in environ}
    chosen.update((name, value) for name, value in environ.items() if name.startswith(PASSED_PREFIXES))
    chosen.setdefault("PATH", os.defpath)
    return chosen
