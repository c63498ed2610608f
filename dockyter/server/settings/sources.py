"""Where ``dockyter-server`` settings come from: flags, ``DOCKYTER_SERVER_<NAME>`` and a TOML file.

Precedence, lowest first: defaults < config file < environment < flags. A list given at a
higher level replaces the lower one; it is not merged. With ``auth = "jupyterhub"``, what the
hub tells a managed service (``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``,
``JUPYTERHUB_SERVICE_NAME``, ``JUPYTERHUB_SERVICE_URL``) comes just above the defaults. The
``[groups.NAME]`` tables come from the config file only. Every bad value is a
:class:`~.fields.SettingsError` naming the setting and where it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..policy.groupgrants import GroupTableError, read_group_tables
from .fields import (
    CONFIG_ENV,
    ENV_PREFIX,
    Settings,
    SettingsError,
    auth_mode,
    default_of,
    definitions,
    env_of,
    flag_of,
    kind_of,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``dockyter-server`` argument parser: one option per setting, plus ``--config``."""
    parser = argparse.ArgumentParser(
        prog="dockyter-server",
        description=(
            "Run Dockyter executions in containers behind an HTTP API (docs/api.md). "
            f"Every option can also be set as an environment variable {ENV_PREFIX}<NAME> "
            "(lists comma-separated) or as a key of the TOML file given by --config; "
            "flags win over the environment, which wins over the file. With --auth jupyterhub, one [groups.NAME] "
            "table per hub group in the file grants its members more or less (docs/jupyterhub.md)."
        ),
        argument_default=argparse.SUPPRESS,  # only flags actually given override the lower layers
    )
    parser.add_argument(
        "--config", metavar="PATH", help=f"TOML file of settings (keys as in docs/server.md); also {CONFIG_ENV}."
    )
    for definition in definitions():
        kind = kind_of(definition)
        default = default_of(definition)
        if kind == "table":  # a table of the config file: no flag, no variable
            continue
        help_text = f"{definition.metadata['help']} [env {env_of(definition)}]"
        flag = flag_of(definition)
        if kind == "auth":
            parser.add_argument(
                flag, dest=definition.name, metavar=definition.metadata.get("metavar"),
                help=help_text + f" (default: {default})",
            )  # fmt: skip
            parser.add_argument(
                "--no-auth", dest=definition.name, action="store_const", const="none", help="--auth none"
            )
        elif kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text + f" (default: {default})")
        elif kind == "list":
            shown = ", ".join(default) if default else "none"
            parser.add_argument(
                flag, dest=definition.name, action="append", metavar=definition.metadata.get("metavar"),
                help=help_text + f"; repeat for several (default: {shown})",
            )  # fmt: skip
        else:
            shown = shlex.join(default) if kind == "command" else default
            shown = "none" if shown == "" else shown
            parser.add_argument(
                flag,
                dest=definition.name,
                metavar=definition.metadata.get("metavar"),
                help=help_text + f" (default: {shown!s})",
            )
    return parser


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags ``argv``, the environment and the config file they name.

    Raises :class:`SettingsError` for a bad value; ``argparse`` exits for a bad flag.
    """
    environ = os.environ if environ is None else environ
    namespace = vars(build_parser().parse_args(argv))
    config_path = namespace.pop("config", None) or environ.get(CONFIG_ENV)
    values: dict[str, Any] = {}
    if config_path:
        values.update(read_config_file(config_path))
    values.update(read_environment(environ))
    for name, raw in namespace.items():
        values[name] = convert(_definition(name), raw, f"option {flag_of(_definition(name))}")
    if values.get("auth") == "jupyterhub":
        values = {**from_the_hub(environ), **values}
    settings = make_settings(values)
    settings.config_file = config_path or ""  # a secret of the server: never mounted
    return settings


def from_the_hub(environ: Mapping[str, str]) -> dict[str, Any]:
    """What the environment JupyterHub gives a managed service says: the hub's API, this service's own token
    and name there, and where the hub expects it to listen. Below every other source: each only fills a
    setting nothing else set."""
    values: dict[str, Any] = {}
    for name, variable in HUB_VARIABLES.items():
        if environ.get(variable):
            values[name] = environ[variable]
    service_url = environ.get("JUPYTERHUB_SERVICE_URL", "")
    if service_url:
        parts = urlsplit(service_url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != "http" or not parts.hostname or port is None:
            raise SettingsError(
                f"environment variable JUPYTERHUB_SERVICE_URL: {service_url!r} is not an http://HOST:PORT URL "
                "this server can listen at (set host and port)"
            )
        values.update(host=parts.hostname, port=port)
    return values


# The settings a managed hub service's environment fills, from JupyterHub's variables.
HUB_VARIABLES = {
    "hub_api_url": "JUPYTERHUB_API_URL",
    "hub_api_token": "JUPYTERHUB_API_TOKEN",
    "hub_service": "JUPYTERHUB_SERVICE_NAME",
}


def make_settings(values: Mapping[str, Any]) -> Settings:
    """:class:`Settings` from already converted ``values``, with type errors as :class:`SettingsError`."""
    try:
        return Settings(**values)
    except TypeError as error:
        raise SettingsError(str(error)) from None


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``DOCKYTER_SERVER_<NAME>`` variables."""
    values = {}
    variables = [d for d in definitions() if kind_of(d) != "table"]
    for definition in variables:
        name = env_of(definition)
        if name in environ:
            values[definition.name] = convert(definition, environ[name], f"environment variable {name}")
    known = {env_of(d) for d in variables} | {CONFIG_ENV}
    unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise SettingsError(f"unknown environment variable {unknown[0]} (known: see dockyter-server --help)")
    return values


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings of a TOML file: top-level keys named like the settings."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise SettingsError(f"cannot read the config file {str(path)!r}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"the config file {str(path)!r} is not valid TOML: {error}") from None
    values = {}
    names = {d.name for d in definitions()}
    for key, raw in data.items():
        if key not in names:
            raise SettingsError(f"unknown setting {key!r} in the config file {str(path)!r}")
        values[key] = convert(_definition(key), raw, f"{key!r} in {str(path)!r}")
    return values


def convert(definition: dataclasses.Field[Any], raw: Any, where: str) -> Any:
    """Turn ``raw`` (text from a flag or the environment, or a TOML value) into the setting's type."""
    kind = kind_of(definition)
    if kind == "auth":
        return auth_mode(raw, where)
    if kind == "table":
        try:
            return read_group_tables(raw, where)
        except GroupTableError as error:
            raise SettingsError(str(error)) from None
    try:
        if kind in ("list", "command"):
            if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
                # Repeated flags or a TOML array; a flag given as "a,b" still means two items.
                return [part for item in raw for part in (_split_list(item) if kind == "list" else [item])]
            if isinstance(raw, str):
                return _split_list(raw) if kind == "list" else shlex.split(raw)
            raise TypeError
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _BOOLEANS:
                return _BOOLEANS[raw.strip().lower()]
            raise TypeError
        if kind == "int":
            if isinstance(raw, bool):
                raise TypeError
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise TypeError
            return float(raw)
        if not isinstance(raw, str):
            raise TypeError
        return raw
    except (TypeError, ValueError):
        expected = {
            "list": "a comma-separated list (or an array of strings)",
            "command": "a command line (or an array of strings)",
            "bool": "true or false",
            "int": "an integer",
            "float": "a number",
            "str": "a string",
        }[kind]
        raise SettingsError(f"{where}: expected {expected}, got {raw!r}") from None


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _definition(name: str) -> dataclasses.Field[Any]:
    return next(d for d in definitions() if d.name == name)
