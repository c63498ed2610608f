"""Every ``dockyter-server`` setting, defined once and read from three places.

Each field of :class:`Settings` carries its help text and its command-line flag; from that
one definition come the ``argparse`` options (``dockyter-server --help``), the environment
variables (``DOCKYTER_SERVER_<NAME>``), the keys of the TOML config file and the settings
table in ``docs/server.md`` (``python -m dockyter.server.settings`` prints it; a test checks
that the page matches).

Precedence, lowest first: defaults < config file < environment < flags. A list given at a
higher level replaces the lower one; it is not merged.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "DOCKYTER_SERVER_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
MIN_TOKEN_LENGTH = 16

# How a setting's text form (flag or environment) becomes a value.
#   list:    comma-separated in the environment, one item per repeated flag
#   command: one string split like a shell would ("sudo docker"); a TOML array also works
KINDS = ("str", "int", "float", "bool", "list", "command")


class SettingsError(ValueError):
    """A setting has a bad value; the message names the setting and where it came from."""


def setting(
    default: Any, help: str, *, flag: str | None = None, metavar: str | None = None, kind: str | None = None
) -> Any:
    """A :class:`Settings` field with the metadata the parser and the docs need."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "kind": kind}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


DEFAULT_ALLOWED_FLAGS = [
    "--env",
    "--workdir",
    "--user",
    "--hostname",
    "--label",
    "--tmpfs",
    "--read-only",
    "--interactive",
    "--rm",
    "--init",
    "--volume",
    "--mount",
    "--network",
]
DEFAULT_SHELLS = ["bash -lc", "bash -c", "sh -lc", "sh -c"]


@dataclass
class Settings:
    """The resolved settings of one ``dockyter-server``; checked when constructed."""

    # -- listening -----------------------------------------------------------------------
    host: str = setting(
        "127.0.0.1",
        "Address to listen on. Anything but loopback should sit behind a TLS reverse proxy.",
        metavar="ADDRESS",
    )
    port: int = setting(8000, "TCP port to listen on (0: any free port).", metavar="PORT")

    # -- authentication ------------------------------------------------------------------
    tokens: list[str] = setting(
        [],
        "Accepted bearer tokens, each `NAME:TOKEN` (the name is logged, never the token) or a bare "
        f"`TOKEN` (named token-1, token-2, ...); at least {MIN_TOKEN_LENGTH} characters. "
        "Prefer the environment or --token-file: flags show in process listings.",
        flag="--token",
        metavar="NAME:TOKEN",
    )
    token_file: str = setting(
        "",
        "File of accepted tokens, one `NAME:TOKEN` or `TOKEN` per line; "
        "blank lines and `#` comments are skipped.",
        metavar="PATH",
    )
    auth: bool = setting(
        True,
        "Require a bearer token on /execute and cancel. --no-auth turns that off, "
        "and is refused unless --host is a loopback address.",
    )

    # -- the container engine ------------------------------------------------------------
    docker_command: list[str] = setting(
        ["docker"],
        "The container CLI, split like a shell would: `docker`, `podman`, `sudo docker`.",
        kind="command",
        metavar="COMMAND",
    )
    executor: str = setting(
        "engine",
        "Where executions run: `engine` (one `docker run` per execution on the engine docker_command reaches) "
        "or `swarm` (one service per execution on the Docker Swarm whose manager docker_command reaches; "
        "see docs/scaling.md).",
        metavar="NAME",
    )
    server_name: str = setting(
        "dockyter",
        "Names this deployment in the io.dockyter.server label of its containers. At start-up, containers "
        "labelled with this name by an earlier run are removed, so servers sharing one engine need distinct names.",
        metavar="NAME",
    )

    # -- policy: what a request may ask for ------------------------------------------------
    allowed_images: list[str] = setting(
        ["*"],
        "Image patterns a request may use (shell-style: `python:3.*`, `registry.example/team/*`). "
        "An image without tag also matches as `IMAGE:latest`.",
        flag="--allow-image",
        metavar="PATTERN",
    )
    allowed_flags: list[str] = setting(
        DEFAULT_ALLOWED_FLAGS,
        "docker run options a request may use, by long name (`env`, or `--allow-flag=--env`); their values "
        "are still checked (mounts, networks, namespaces, labels). Options that open the host (`--privileged`, "
        "`--cap-add`, `--device`, ...) or break the container's lifecycle (`--name`, `--detach`, ...) "
        "can never be allowed.",
        flag="--allow-flag",
        metavar="FLAG",
    )
    allowed_mounts: list[str] = setting(
        [],
        "Host directories a request may bind-mount, each `PATH` or `PATH:ro` (read-only mounts only) or "
        "`PATH:rw` (writable too); sub-directories are included. The container engine's socket is never mountable.",
        flag="--allow-mount",
        metavar="PATH[:rw]",
    )
    allowed_volumes: list[str] = setting(
        [],
        "Named volumes a request may mount (shell-style patterns). "
        "Anonymous volumes and tmpfs mounts are always allowed.",
        flag="--allow-volume",
        metavar="PATTERN",
    )
    allowed_networks: list[str] = setting(
        [],
        "Networks a request may join with --network, besides `none`. "
        "`host` and `container:...` are always refused.",
        flag="--allow-network",
        metavar="NETWORK",
    )
    allowed_shells: list[str] = setting(
        DEFAULT_SHELLS,
        "Shells a request may ask to run its cmd with (the `shell` field), each written like `bash -lc`.",
        flag="--allow-shell",
        metavar="SHELL",
    )

    # -- defaults put on every container -------------------------------------------------
    network: str = setting(
        "none", "Network of a container whose request gives none (empty: the engine's default).", metavar="NETWORK"
    )
    memory: str = setting("512m", "Memory limit of every container (docker --memory; empty: none).", metavar="SIZE")
    cpus: str = setting("1", "CPU limit of every container (docker --cpus; empty: none).", metavar="CPUS")
    pids_limit: int = setting(
        256, "Process-count limit of every container (docker --pids-limit; 0: none).", metavar="N"
    )
    drop_capabilities: bool = setting(True, "Drop every Linux capability (--cap-drop ALL).")
    forbid_new_privileges: bool = setting(
        True, "Forbid gaining privileges through setuid binaries (--security-opt no-new-privileges)."
    )
    pull: str = setting(
        "missing",
        "When the engine pulls the image: `missing`, `never` or `always` (docker --pull; empty: leave it out).",
        metavar="POLICY",
    )
    extra_run_args: list[str] = setting(
        [],
        "More `docker run` options put on every container, trusted and not checked, e.g. `--ulimit nofile=1024`.",
        kind="command",
        metavar="ARGS",
    )

    # -- limits --------------------------------------------------------------------------
    max_timeout: float = setting(
        600.0,
        "Wall-clock limit of an execution in seconds; a request may ask for less, never more.",
        metavar="SECONDS",
    )
    max_output_bytes: int = setting(
        16 * 1024 * 1024,
        "Output (stdout and stderr together) an execution may produce; over it, its container is stopped.",
        metavar="BYTES",
    )
    max_concurrent: int = setting(
        4, "Executions running at once; more are answered 429 with Retry-After.", metavar="N"
    )
    retry_after: int = setting(
        5, "Seconds the Retry-After header of a 429 answer asks clients to wait.", metavar="SECONDS"
    )
    max_request_bytes: int = setting(
        1024 * 1024, "Largest request body accepted; larger ones are answered 413.", metavar="BYTES"
    )
    heartbeat_interval: float = setting(
        5.0, "Seconds of silence after which a stream gets a heartbeat event.", metavar="SECONDS"
    )

    # -- lifecycle -----------------------------------------------------------------------
    shutdown_timeout: float = setting(
        10.0,
        "Seconds a shutdown waits for connections to close after stopping the running containers.",
        metavar="SECONDS",
    )
    reap_interval: float = setting(
        60.0,
        "Seconds between sweeps that remove this server's containers no execution owns any more.",
        metavar="SECONDS",
    )
    log_level: str = setting("info", "Logging level: debug, info, warning or error.", metavar="LEVEL")

    def __post_init__(self) -> None:
        self._token_table = _check(self)

    def token_table(self) -> dict[str, str]:
        """Accepted tokens by name (read once, from ``tokens`` and ``token_file``)."""
        return dict(self._token_table)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)


# -- the definition, seen from outside -------------------------------------------------


def definitions() -> list[dataclasses.Field[Any]]:
    """The fields of :class:`Settings`, in order."""
    return list(dataclasses.fields(Settings))


def kind_of(definition: dataclasses.Field[Any]) -> str:
    kind = definition.metadata.get("kind")
    if kind:
        return kind
    return {"str": "str", "int": "int", "float": "float", "bool": "bool", "list[str]": "list"}[str(definition.type)]


def flag_of(definition: dataclasses.Field[Any]) -> str:
    return definition.metadata.get("flag") or "--" + definition.name.replace("_", "-")


def env_of(definition: dataclasses.Field[Any]) -> str:
    return ENV_PREFIX + definition.name.upper()


def default_of(definition: dataclasses.Field[Any]) -> Any:
    if definition.default is not dataclasses.MISSING:
        return definition.default
    return definition.default_factory()  # type: ignore[misc]


# -- reading ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``dockyter-server`` argument parser: one option per setting, plus ``--config``."""
    parser = argparse.ArgumentParser(
        prog="dockyter-server",
        description=(
            "Run Dockyter executions in containers behind an HTTP API (docs/api.md). "
            f"Every option can also be set as an environment variable {ENV_PREFIX}<NAME> "
            "(lists comma-separated) or as a key of the TOML file given by --config; "
            "flags win over the environment, which wins over the file."
        ),
        argument_default=argparse.SUPPRESS,  # only flags actually given override the lower layers
    )
    parser.add_argument(
        "--config", metavar="PATH", help=f"TOML file of settings (keys as in docs/server.md); also {CONFIG_ENV}."
    )
    for definition in definitions():
        kind = kind_of(definition)
        default = default_of(definition)
        help_text = f"{definition.metadata['help']} [env {env_of(definition)}]"
        flag = flag_of(definition)
        if kind == "bool":
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, help=help_text + f" (default: {default})"
            )
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
    return make_settings(values)


def make_settings(values: Mapping[str, Any]) -> Settings:
    """:class:`Settings` from already converted ``values``, with type errors as :class:`SettingsError`."""
    try:
        return Settings(**values)
    except TypeError as error:
        raise SettingsError(str(error)) from None


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``DOCKYTER_SERVER_<NAME>`` variables."""
    values = {}
    for definition in definitions():
        name = env_of(definition)
        if name in environ:
            values[definition.name] = convert(definition, environ[name], f"environment variable {name}")
    known = {env_of(d) for d in definitions()} | {CONFIG_ENV}
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


# -- checking ---------------------------------------------------------------------------

_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check(settings: Settings) -> dict[str, str]:
    """Raise :class:`SettingsError` for any bad value; return the token table."""
    from .policy import check_flag_names, parse_allowed_mounts  # the policy owns its vocabulary

    s = settings
    if not 0 <= s.port <= 65535:
        raise SettingsError(f"port must be between 0 and 65535, not {s.port}")
    if not _SERVER_NAME.fullmatch(s.server_name):
        raise SettingsError(f"server_name {s.server_name!r} must be letters, digits, '_', '.', '-' (at most 63)")
    if not s.docker_command:
        raise SettingsError("docker_command must not be empty")
    for name in ("max_timeout", "heartbeat_interval", "reap_interval"):
        if not getattr(s, name) > 0:
            raise SettingsError(f"{name} must be greater than 0, not {getattr(s, name)}")
    minimums = {"max_output_bytes": 1, "max_concurrent": 1, "retry_after": 1, "max_request_bytes": 1024}
    for name, least in minimums.items():
        if getattr(s, name) < least:
            raise SettingsError(f"{name} must be at least {least}, not {getattr(s, name)}")
    if s.shutdown_timeout < 0 or s.pids_limit < 0:
        raise SettingsError("shutdown_timeout and pids_limit must not be negative")
    if s.executor not in ("engine", "swarm"):
        raise SettingsError(f"executor must be engine or swarm, not {s.executor!r}")
    if s.pull not in ("", "missing", "never", "always"):
        raise SettingsError(f"pull must be missing, never, always or empty, not {s.pull!r}")
    if s.network == "host" or s.network.startswith("container:"):
        raise SettingsError(f"network {s.network!r} would share a namespace with the host or another container")
    if s.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"log_level must be debug, info, warning or error, not {s.log_level!r}")
    for shell in s.allowed_shells:
        if not shlex.split(shell):
            raise SettingsError("allowed_shells must not contain an empty shell")
    try:
        s.allowed_flags = check_flag_names(s.allowed_flags)
        parse_allowed_mounts(s.allowed_mounts)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    if s.executor == "swarm":
        _check_swarm(s)
    tokens = _token_table(s)
    if s.auth and not tokens:
        raise SettingsError(
            f"no tokens: give --token-file or {ENV_PREFIX}TOKENS, or --no-auth to run without "
            "authentication (on a loopback address only)"
        )
    if not s.auth and not is_loopback(s.host):
        raise SettingsError(
            f"--no-auth is refused on {s.host!r}: anyone who can reach it could run containers; "
            "bind to 127.0.0.1 or configure tokens"
        )
    return tokens


def _check_swarm(settings: Settings) -> None:
    """Refuse, at start-up, options that a Swarm service could not carry out."""
    from ..dockerargs import DockerArgsError, parse_run_args
    from .swarmargs import SwarmArgsError, check_names, service_options

    try:
        check_names(settings.allowed_flags)
        service_options(parse_run_args(shlex.join([*settings.extra_run_args, "image"])).options)
    except (SwarmArgsError, DockerArgsError) as error:
        raise SettingsError(f"executor swarm: {error}") from None


def _token_table(settings: Settings) -> dict[str, str]:
    entries = list(settings.tokens)
    if settings.token_file:
        try:
            text = Path(settings.token_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise SettingsError(f"cannot read the token file {settings.token_file!r}: {error}") from None
        entries += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    table: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        name, colon, token = entry.partition(":")
        if not colon:
            name, token = f"token-{number}", entry
        if not _TOKEN_NAME.fullmatch(name):
            raise SettingsError(f"token name {name!r} must be letters, digits, '_', '.', '@', '-'")
        if len(token) < MIN_TOKEN_LENGTH or not (token.isascii() and token.isprintable()) or " " in token:
            raise SettingsError(
                f"the token named {name!r} must be at least {MIN_TOKEN_LENGTH} "
                "printable ASCII characters without spaces"
            )
        if name in table:
            raise SettingsError(f"two tokens are named {name!r}")
        table[name] = token
    return table


# -- documentation ----------------------------------------------------------------------


def settings_markdown() -> str:
    """The settings table of ``docs/server.md``."""
    rows = [
        "| setting (config file key) | flag | environment variable | default | meaning |",
        "| --- | --- | --- | --- | --- |",
        f"| — | `--config PATH` | `{CONFIG_ENV}` | none | TOML file of settings, keys as in the first column |",
    ]
    for definition in definitions():
        kind = kind_of(definition)
        default = default_of(definition)
        if kind == "bool":
            flag = f"`{flag_of(definition)}` / `--no-{flag_of(definition)[2:]}`"
            shown = "true" if default else "false"
        else:
            flag = f"`{flag_of(definition)} {definition.metadata.get('metavar') or 'VALUE'}`"
            if kind == "list":
                flag += " (repeatable)"
            if kind == "list":
                shown = ", ".join(f"`{item}`" for item in default) or "none"
            elif kind == "command":
                shown = f"`{shlex.join(default)}`" if default else "none"
            else:
                shown = f"`{default}`" if default != "" else "empty"
        help_text = definition.metadata["help"].replace("|", "\\|")
        rows.append(f"| `{definition.name}` | {flag} | `{env_of(definition)}` | {shown} | {help_text} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m dockyter.server.settings: the docs table
    print(settings_markdown(), end="")
