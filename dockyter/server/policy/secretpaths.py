"""The server's own secrets, as host paths no bind mount may expose, whatever the allowed roots.

A container started as root owns root's files, so a read-only mount of the token file is every
user's token. The server knows where its secrets are because it was given them:

* its **token file** and its **configuration file** (``--config``);
* the **container CLI's configuration**, which holds registry credentials and contexts:
  ``$DOCKER_CONFIG`` or ``~/.docker``, and a ``--config DIR`` in ``docker_command``; podman's
  ``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers`` and ``~/.config/containers``;
  root's ``~/.docker`` too when the command runs through ``sudo`` or ``doas``;
* the CLI's **TLS and SSH keys**: ``$DOCKER_CERT_PATH``, ``--tlscacert``, ``--tlscert`` and
  ``--tlskey`` in ``docker_command``, podman's ``--identity`` and ``$CONTAINER_SSHKEY``, and ``~/.ssh``;
* whatever the operator lists in ``secret_paths`` (by default ``/etc/dockyter`` and
  ``/run/secrets``), such as the EnvironmentFile of a systemd unit, which the server cannot see.

The environment read here is the container CLI's (:mod:`~dockyter.server.engine.engineenv`): where the CLI looks is
where its secrets are. :mod:`.hostview` refuses a mount that is one of these paths, lies inside
one, or contains one, and the policy also refuses a mount source that is the same file or
directory as one of them under another name (a hard link, a bind mount on the host).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence

from .hostview import normalise, option_values


def server_secrets(
    *,
    token_file: str,
    config_file: str,
    listed: Sequence[str],
    docker_command: Sequence[str],
    environment: Mapping[str, str],
) -> dict[str, str]:
    """Each secret path (normalised, and resolved too when it is a link) with what it is."""
    found: dict[str, str] = {}

    def add(path: str, what: str) -> None:
        if path and "\0" not in path:  # a relative path is relative to the server's directory, as it was read
            for form in (normalise(os.path.abspath(path)), normalise(os.path.realpath(path))):
                found.setdefault(form, what)

    add(token_file, "the server's token file")
    add(config_file, "the server's configuration file")
    for path in listed:
        add(path, "a secret path of the server (secret_paths)")
    home = environment.get("HOME", "")
    add(environment.get("DOCKER_CONFIG", ""), "the container CLI's configuration")
    if home:
        add(posixpath.join(home, ".docker"), "the container CLI's configuration")
        add(posixpath.join(home, ".ssh"), "the server's SSH keys")
    add(environment.get("DOCKER_CERT_PATH", ""), "the container CLI's TLS keys")
    add(environment.get("REGISTRY_AUTH_FILE", ""), "podman's registry credentials")
    add(environment.get("CONTAINER_SSHKEY", ""), "podman's SSH key")
    if environment.get("XDG_RUNTIME_DIR"):
        add(posixpath.join(environment["XDG_RUNTIME_DIR"], "containers"), "podman's registry credentials")
    config_home = environment.get("XDG_CONFIG_HOME") or (posixpath.join(home, ".config") if home else "")
    if config_home:
        add(posixpath.join(config_home, "containers"), "podman's configuration")
    if docker_command and posixpath.basename(docker_command[0]) in ("sudo", "doas"):
        add("/root/.docker", "the container CLI's configuration")
        add("/root/.ssh", "the container CLI's SSH keys")
    flags = option_values(list(docker_command[1:]))
    for flag, what in (
        ("--config", "the container CLI's configuration"),
        ("--tlscacert", "the container CLI's TLS keys"),
        ("--tlscert", "the container CLI's TLS keys"),
        ("--tlskey", "the container CLI's TLS keys"),
        ("--identity", "podman's SSH key"),
    ):
        for path in flags.get(flag, []):
            add(path, what)
    return found
