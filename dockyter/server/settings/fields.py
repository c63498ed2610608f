"""The definition of every ``dockyter-server`` setting, and the checks a value must pass.

Each field of :class:`Settings` carries its help text and its command-line flag; the sources
(:mod:`.sources`) and the documentation table (:mod:`.table`) are derived from these
definitions. A :class:`Settings` is checked when constructed, and the forms the server works
with (the token table, canonical option names, parsed mounts, the environment of the container
CLI) are derived then, once, without changing what the operator wrote.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..engine.engineenv import engine_environment
from ..engine.expected import size_in_bytes
from ..policy.allowlist import AllowedMount, check_flag_names, parse_allowed_mounts
from ..policy.groupgrants import GroupGrant, GroupTableError, read_group_tables
from ..policy.registries import check_patterns
from ..swarm.loopbackcheck import program_problem
from .tokens import MIN_TOKEN_LENGTH, read_token_table

ENV_PREFIX = "DOCKYTER_SERVER_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"


class SettingsError(ValueError):
    """A setting has a bad value; the message names the setting and where it came from."""


def setting(
    default: Any, help: str, *, flag: str | None = None, metavar: str | None = None, kind: str | None = None
) -> Any:
    """A :class:`Settings` field with the metadata the parser and the docs need."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "kind": kind}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


AUTH_MODES = ("tokens", "jupyterhub", "none")


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
    max_connections: int = setting(
        512,
        "HTTP connections open at once. A new one beyond it takes the place of the oldest that is still sending "
        "its request; when every one is busy with a request, it is answered 503. Lowered at start-up to what "
        "the open-file limit allows.",
        metavar="N",
    )
    header_timeout: float = setting(
        10.0,
        "Seconds a client has to send a request's line and headers, counted from connecting or from the end of "
        "its previous response; then its connection is closed.",
        metavar="SECONDS",
    )
    body_timeout: float = setting(
        60.0,
        "Seconds a client has to send a request's body once its headers arrived; then its connection is closed.",
        metavar="SECONDS",
    )

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
        "File of accepted tokens, one `NAME:TOKEN` or `TOKEN` per line; blank lines and `#` comments are skipped.",
        metavar="PATH",
    )
    auth: str = setting(
        "tokens",
        "Who may run anything: `tokens` (a bearer token of `tokens` or `token_file`), `jupyterhub` (also the "
        "JupyterHub API token of a hub user, whom the hub at hub_api_url names: each hub user runs as themselves; "
        "docs/jupyterhub.md) or `none` (anyone: refused unless host is a loopback address). "
        "--no-auth is --auth none; true and false mean tokens and none.",
        metavar="MODE",
        kind="auth",
    )
    hub_api_url: str = setting(
        "",
        "With auth `jupyterhub`: the hub's REST API as this server reaches it, e.g. `http://127.0.0.1:8081/hub/api`. "
        "Run as the hub's managed service, the server takes $JUPYTERHUB_API_URL when this is not set.",
        metavar="URL",
    )
    hub_api_token: str = setting(
        "",
        "With auth `jupyterhub`: this service's own token at the hub (its `api_token` in c.JupyterHub.services), "
        "with which the server checks at start-up that the hub knows it as hub_service; not needed to identify "
        "users. A managed service takes $JUPYTERHUB_API_TOKEN when this is not set. Never logged.",
        metavar="TOKEN",
    )
    hub_service: str = setting(
        "dockyter",
        "With auth `jupyterhub`: this service's name at the hub. A hub user's token must grant "
        "`access:services!service=NAME` (or `access:services`). A managed service takes $JUPYTERHUB_SERVICE_NAME "
        "when this is not set.",
        metavar="NAME",
    )
    hub_cache_seconds: float = setting(
        30.0,
        "With auth `jupyterhub`: seconds the hub's answer about a token (whose it is, or that it is unknown) is "
        "kept: a token the hub revoked, or whose server stopped, is refused at most this long after, and a "
        "session opened with it is ended then. Each active user costs the hub one question per period (0: one "
        "per request).",
        metavar="SECONDS",
    )
    hub_timeout: float = setting(
        5.0,
        "With auth `jupyterhub`: seconds to wait for the hub's answer; a request it cannot answer gets a 503.",
        metavar="SECONDS",
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
    mount_constraints: list[str] = setting(
        [],
        "With executor `swarm`: placement constraints (`node.labels.storage==shared`) given to every service "
        "that bind-mounts a host path, so that such tasks run only on nodes that have the allowed paths; "
        "see docs/scaling.md.",
        flag="--mount-constraint",
        metavar="EXPR",
    )
    swarm_isolation: str = setting(
        "overlay",
        "With executor `swarm`: how a task that gets no network is kept from every other. `overlay`: it joins "
        "its token's `--internal` overlay network (works on any swarm; the node takes about a second per task to "
        "attach it). `nodes`: it joins none, so it gets what its node gives a container without a network, which "
        "is a loopback interface only when the node's dockerd runs with `--bridge none`; the program "
        "`loopback_check` runs first in each task and refuses the cell (exit 125) otherwise. See docs/scaling.md.",
        metavar="MODE",
    )
    loopback_check: str = setting(
        "",
        "The loopback check program that swarm_isolation `nodes` runs first in each task, built with "
        "`python -m dockyter.server.swarm.loopbackcheck PATH`; it reaches the nodes as a Swarm config. "
        "Unused with other settings (the server image sets it).",
        metavar="PATH",
    )
    server_name: str = setting(
        "dockyter",
        "Names this deployment in the io.dockyter.server label of its containers. At start-up, containers "
        "labelled with this name by an earlier run are removed, so servers sharing one engine need distinct names.",
        metavar="NAME",
    )

    runtime: str = setting(
        "",
        "OCI runtime of every container (docker run --runtime), for example `runsc` (gVisor) to keep users' "
        "code off the host kernel; requests cannot choose one. The engine must know it: checked at start-up. "
        "Empty: the engine's default runtime.",
        metavar="RUNTIME",
    )

    # -- policy: what a request may ask for ------------------------------------------------
    allowed_images: list[str] = setting(
        ["*"],
        "Image patterns a request may use (shell-style: `python:3.*`, `registry.example/team/*`). "
        "An image without tag also matches as `IMAGE:latest`.",
        flag="--allow-image",
        metavar="PATTERN",
    )
    allowed_registries: list[str] = setting(
        ["docker.io"],
        "Registries the engine may pull a request's image from, each `HOST[:PORT]`; `docker.io` is Docker Hub, "
        "where an image without a registry comes from. An entry written out allows that registry wherever it is "
        "(`10.213.0.2:5000`, a private one); with the wildcards `*` and `?` an entry allows public registries only, "
        "never localhost or a loopback, private or link-local address, nor a name that resolves to one.",
        flag="--allow-registry",
        metavar="HOST[:PORT]",
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
        "`PATH:rw` (writable too). Below a read-only entry, any existing real sub-path may be mounted; a writable "
        "entry only as a whole. Engine sockets and directories and kernel file systems are never mountable.",
        flag="--allow-mount",
        metavar="PATH[:rw]",
    )
    secret_paths: list[str] = setting(
        ["/etc/dockyter", "/run/secrets"],
        "Host paths that hold the server's secrets besides those it knows of (an EnvironmentFile of its "
        "systemd unit, say): never mounted, nor anything inside them or containing them. The token file, "
        "the config file, the container CLI's configuration (DOCKER_CONFIG or ~/.docker: registry "
        "credentials), its TLS keys and ~/.ssh are protected in any case.",
        flag="--secret-path",
        metavar="PATH",
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
        "Networks a request may join with --network, besides `none`. `host` and `container:...` are always refused.",
        flag="--allow-network",
        metavar="NETWORK",
    )
    allowed_shells: list[str] = setting(
        DEFAULT_SHELLS,
        "Shells a request may ask to run its cmd with (the `shell` field), each written like `bash -lc`.",
        flag="--allow-shell",
        metavar="SHELL",
    )
    groups: dict[str, GroupGrant] = setting(
        {},
        "With auth `jupyterhub`: one `[groups.NAME]` table per hub group (config file only) granting its members "
        "more (or less) than the settings above: `allowed_flags`, `allowed_mounts`, `allowed_images`, "
        "`allowed_registries`, `allowed_volumes`, `allowed_networks` add to those lists; "
        "`max_concurrent_per_token`, `max_sessions_per_token`, `max_timeout` and `sessions` (false: none) set "
        "those limits. A user gets the union of their groups' tables, and of each limit the most generous value "
        "among their groups that set it (docs/jupyterhub.md).",
        kind="table",
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
        "More `docker run` options put on every container, trusted and not checked by the policy, e.g. "
        "`--ulimit nofile=1024`. An option whose effect the check of what the engine made compares "
        "(`--cap-add`, `--env`, `--memory`, `-v`, ...) makes every container differ from its plan: refused.",
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
    max_concurrent: int = setting(4, "Executions running at once; more are answered 429 with Retry-After.", metavar="N")
    max_concurrent_per_token: int = setting(
        2,
        "Executions one token may run at once, within max_concurrent, so that one user cannot take every slot; "
        "more are answered 429 with Retry-After (0: only max_concurrent limits them). With auth `jupyterhub`, per hub "
        "user. Not applied with --no-auth, "
        "where every request is the same user's.",
        metavar="N",
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

    # -- prestarted containers (an execution's container, ready before its request) --------
    prestart: int = setting(
        1,
        "Containers prestarted for each token and approved plan: created, checked against the plan and "
        "started before the request comes, each used for one execution, so that an execution starts in "
        "milliseconds. Every request is checked by the policy first, as always. 0: none. Engine executor only.",
        metavar="N",
    )
    prestart_max: int = setting(8, "Prestarted containers waiting at once, every token's together.", metavar="N")
    prestart_per_token: int = setting(
        2,
        "Prestarted containers one token may have waiting (0: only prestart_max limits them); a token's "
        "requests use only its own, so that one token cannot drain another's.",
        metavar="N",
    )
    prestart_memory: str = setting(
        "4g",
        "The memory limits of the waiting prestarted containers together may not exceed this (docker "
        "sizes; empty: no limit); with a limit, a container without a memory limit is never prestarted.",
        metavar="SIZE",
    )
    prestart_idle: float = setting(
        300.0, "Seconds a prestarted container may wait unused before it is removed (0: never).", metavar="SECONDS"
    )

    # -- sessions (containers that keep their state between commands) ---------------------
    max_sessions: int = setting(8, "Sessions alive at once on this server; more are answered 429.", metavar="N")
    max_sessions_per_token: int = setting(
        2, "Sessions one token may have at once (0: only max_sessions limits them).", metavar="N"
    )
    session_idle_timeout: float = setting(
        900.0, "Seconds a session may stay without a command before it is removed (0: never).", metavar="SECONDS"
    )
    session_max_lifetime: float = setting(
        8 * 3600.0, "Seconds a session may live, busy or not, before it is removed (0: no limit).", metavar="SECONDS"
    )

    def __post_init__(self) -> None:
        self.auth = auth_mode(self.auth, "auth")
        if not all(isinstance(grant, GroupGrant) for grant in self.groups.values()):  # tables not read yet
            try:
                self.groups = read_group_tables(self.groups, "the settings")
            except GroupTableError as error:
                raise SettingsError(str(error)) from None
        self._token_table, self._flag_names, self._mount_rules = _check(self)
        # Of the process as it is now, at start-up: what every container CLI process gets.
        self._engine_environment = engine_environment(os.environ)
        self.config_file = ""  # the TOML file these settings were read from, if any (load_settings says)

    @property
    def authenticates(self) -> bool:
        """Whether a request needs a token (``auth`` is not ``none``)."""
        return self.auth != "none"

    @property
    def hub_identity(self) -> bool:
        """Whether the hub names the callers whose token is none of the server's own (``auth = "jupyterhub"``)."""
        return self.auth == "jupyterhub"

    def token_table(self) -> dict[str, str]:
        """Accepted tokens by name (read once, from ``tokens`` and ``token_file``)."""
        return dict(self._token_table)

    def flag_names(self) -> tuple[str, ...]:
        """``allowed_flags`` by canonical long name (``env`` and ``-e`` are ``--env``)."""
        return self._flag_names

    def mount_rules(self) -> tuple[AllowedMount, ...]:
        """``allowed_mounts``, parsed (once, here)."""
        return self._mount_rules

    def engine_environment(self) -> dict[str, str]:
        """The environment of every container CLI process (:mod:`~dockyter.server.engine.engineenv`), fixed when the settings were made."""
        return dict(self._engine_environment)


# -- the definition, seen from outside -------------------------------------------------


def definitions() -> list[dataclasses.Field[Any]]:
    """The fields of :class:`Settings`, in order."""
    return list(dataclasses.fields(Settings))


def auth_mode(value: Any, where: str) -> str:
    """``auth`` as one of :data:`AUTH_MODES`: booleans (and their words) mean ``tokens`` and ``none``."""
    if isinstance(value, bool):
        return "tokens" if value else "none"
    if isinstance(value, str):
        word = value.strip().lower()
        if word in AUTH_MODES:
            return word
        if word in ("1", "true", "yes", "on"):
            return "tokens"
        if word in ("0", "false", "no", "off"):
            return "none"
    raise SettingsError(f"{where}: expected tokens, jupyterhub or none, got {value!r}")


def kind_of(definition: dataclasses.Field[Any]) -> str:
    kind = definition.metadata.get("kind")
    if kind:
        return str(kind)
    return {"str": "str", "int": "int", "float": "float", "bool": "bool", "list[str]": "list"}[str(definition.type)]


def flag_of(definition: dataclasses.Field[Any]) -> str:
    return definition.metadata.get("flag") or "--" + definition.name.replace("_", "-")


def env_of(definition: dataclasses.Field[Any]) -> str:
    return ENV_PREFIX + definition.name.upper()


def default_of(definition: dataclasses.Field[Any]) -> Any:
    if definition.default is not dataclasses.MISSING:
        return definition.default
    return definition.default_factory()  # type: ignore[operator]


# -- checking ---------------------------------------------------------------------------

_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_RUNTIME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+/-]{0,127}")
# A Swarm placement constraint: ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE (node.labels.x==y, node.role!=manager).
_CONSTRAINT = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127} *[!=]= *[A-Za-z0-9_.:/-]{1,128}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check(settings: Settings) -> tuple[dict[str, str], tuple[str, ...], tuple[AllowedMount, ...]]:
    """Raise :class:`SettingsError` for any bad value; return the token table, flag names and mounts."""
    s = settings
    if not 0 <= s.port <= 65535:
        raise SettingsError(f"port must be between 0 and 65535, not {s.port}")
    if not _SERVER_NAME.fullmatch(s.server_name):
        raise SettingsError(f"server_name {s.server_name!r} must be letters, digits, '_', '.', '-' (at most 63)")
    if not s.docker_command:
        raise SettingsError("docker_command must not be empty")
    if s.runtime and not _RUNTIME.fullmatch(s.runtime):
        raise SettingsError(f"runtime {s.runtime!r} must be a runtime name like runsc (letters, digits, '_.+/-')")
    for name in ("max_timeout", "heartbeat_interval", "reap_interval", "header_timeout", "body_timeout"):
        if not getattr(s, name) > 0:
            raise SettingsError(f"{name} must be greater than 0, not {getattr(s, name)}")
    minimums = {
        "max_output_bytes": 1, "max_concurrent": 1, "retry_after": 1, "max_request_bytes": 1024, "max_connections": 4,
    }  # fmt: skip
    for name, least in minimums.items():
        if getattr(s, name) < least:
            raise SettingsError(f"{name} must be at least {least}, not {getattr(s, name)}")
    if s.shutdown_timeout < 0 or s.pids_limit < 0:
        raise SettingsError("shutdown_timeout and pids_limit must not be negative")
    for name in (
        "max_concurrent_per_token", "max_sessions", "max_sessions_per_token", "session_idle_timeout",
        "session_max_lifetime", "prestart", "prestart_max", "prestart_per_token", "prestart_idle",
    ):  # fmt: skip
        if getattr(s, name) < 0:
            raise SettingsError(f"{name} must not be negative, not {getattr(s, name)}")
    if s.executor not in ("engine", "swarm"):
        raise SettingsError(f"executor must be engine or swarm, not {s.executor!r}")
    if s.executor == "swarm":
        _check_swarm(s)
    elif s.mount_constraints:
        raise SettingsError("mount_constraints place Swarm services: they need executor swarm")
    elif s.swarm_isolation != "overlay":
        raise SettingsError("swarm_isolation isolates Swarm tasks: it needs executor swarm")
    for constraint in s.mount_constraints:
        if not _CONSTRAINT.fullmatch(constraint):
            raise SettingsError(
                f"mount constraint {constraint!r} must be a Swarm placement constraint like node.labels.storage==shared"
            )
    if size_in_bytes(s.prestart_memory) is None:
        raise SettingsError(f"prestart_memory {s.prestart_memory!r} must be a size like 4g or 512m")
    if s.pull not in ("", "missing", "never", "always"):
        raise SettingsError(f"pull must be missing, never, always or empty, not {s.pull!r}")
    if s.network == "host" or s.network.startswith("container:"):
        raise SettingsError(f"network {s.network!r} would share a namespace with the host or another container")
    if s.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"log_level must be debug, info, warning or error, not {s.log_level!r}")
    for shell in s.allowed_shells:
        if not shlex.split(shell):
            raise SettingsError("allowed_shells must not contain an empty shell")
    for path in s.secret_paths:
        if not path.startswith("/"):
            raise SettingsError(f"secret_paths: {path!r} must be an absolute path")
    try:
        flag_names = tuple(check_flag_names(s.allowed_flags))
        mount_rules = tuple(parse_allowed_mounts(s.allowed_mounts))
        check_patterns(s.allowed_registries)
        tokens = read_token_table(s.tokens, s.token_file)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    if s.auth == "tokens" and not tokens:
        raise SettingsError(
            f"no tokens: give --token-file or {ENV_PREFIX}TOKENS, --auth jupyterhub to let a JupyterHub name the "
            "callers, or --no-auth to run without authentication (on a loopback address only)"
        )
    if not s.authenticates and not is_loopback(s.host):
        raise SettingsError(
            f"--no-auth is refused on {s.host!r}: anyone who can reach it could run containers; "
            "bind to 127.0.0.1 or configure tokens"
        )
    if s.hub_identity:
        _check_hub(s)
    elif s.groups:
        raise SettingsError('groups choose the policy of JupyterHub users: they need auth = "jupyterhub"')
    return tokens, flag_names, mount_rules


def _check_hub(settings: Settings) -> None:
    """What auth ``jupyterhub`` needs: a hub to ask, and sane bounds on asking it."""
    url = settings.hub_api_url
    if not url:
        raise SettingsError(
            "auth jupyterhub needs hub_api_url, the hub's API (e.g. http://127.0.0.1:8081/hub/api); the hub gives "
            "its managed services $JUPYTERHUB_API_URL"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(f"hub_api_url {url!r} must be an http:// or https:// URL, without query or fragment")
    if not _SERVICE_NAME.fullmatch(settings.hub_service):
        raise SettingsError(
            f"hub_service {settings.hub_service!r} must be a hub service's name (letters, digits, '_.-')"
        )
    if settings.hub_api_token and not (settings.hub_api_token.isascii() and settings.hub_api_token.isprintable()):
        raise SettingsError("hub_api_token must be printable ASCII")
    if settings.hub_cache_seconds < 0:
        raise SettingsError(f"hub_cache_seconds must not be negative, not {settings.hub_cache_seconds}")
    if not settings.hub_timeout > 0:
        raise SettingsError(f"hub_timeout must be greater than 0, not {settings.hub_timeout}")


def _check_swarm(settings: Settings) -> None:
    """Refuse, at start-up, what a Swarm service could not carry out."""
    from ...wire.dockerargs import DockerArgsError, parse_run_args
    from ..swarm.swarmargs import SwarmArgsError, check_names, service_options

    if settings.runtime:
        # A service cannot choose its runtime: it is each node's default-runtime (daemon.json).
        raise SettingsError(
            f"executor swarm: runtime {settings.runtime!r} cannot be set per service; "
            "make it the nodes' default-runtime in their daemon.json and leave runtime empty"
        )
    try:
        check_names(settings.allowed_flags)
        for grant in settings.groups.values():
            check_names(list(grant.allowed_flags))
        service_options(parse_run_args(shlex.join([*settings.extra_run_args, "image"])).options)
    except (SwarmArgsError, DockerArgsError) as error:
        raise SettingsError(f"executor swarm: {error}") from None
    if settings.swarm_isolation not in ("overlay", "nodes"):
        raise SettingsError(f"swarm_isolation must be overlay or nodes, not {settings.swarm_isolation!r}")
    if settings.swarm_isolation == "nodes":
        if not settings.loopback_check:
            raise SettingsError(
                "swarm_isolation nodes needs loopback_check: build it with python -m dockyter.server.swarm.loopbackcheck PATH"
            )
        problem = program_problem(Path(settings.loopback_check))
        if problem:
            raise SettingsError(problem)
