"""What a request may ask ``dockyter-server`` for: an allowlist over the parsed arguments.

``args`` is parsed with the client's own ``docker run`` flag table
(:func:`dockyter.wire.dockerargs.parse_run_args`), so every spelling of an option
(``--net host``, ``--net=host``, ``--network host``, ``-v/:/h``, ``-dit``...) reaches the same
check under its canonical name. Then:

* options that open the host or break the container's lifecycle are refused whatever their
  value (:data:`.allowlist.NEVER_ALLOWED`), even if an operator lists them;
* namespace options are refused with ``host`` or ``container:...`` values;
* every other option must be in the operator's ``allowed_flags``, and its value is checked
  where it matters: mounts (host paths, named volumes), networks, labels;
* a bind mount's source is walked on the host without following links
  (:mod:`.mountpath`), must not expose what :mod:`.hostview` finds (engine sockets and
  directories, kernel pseudo file systems, the server's own secrets), and reaches the engine
  rewritten as ``--mount type=bind,source=REAL,...``, which fails rather than creates a missing
  source; every mount's target in the container must be absolute and normalised;
* ``--env`` needs a value: the docker CLI fills a bare ``-e NAME`` from its own environment;
* the image must match ``allowed_images``, its registry ``allowed_registries`` (:mod:`.registries`:
  never an internal host unless named), and the shell ``allowed_shells``.

No argument holding a control character gets as far as the options (:mod:`.textcheck`). What
the policy approves reaches the engine as options it spelled itself, one token each
(``--env=X=1``, ``--mount=type=bind,...``; :meth:`~dockyter.wire.dockerargs.DockerOption.spelled`),
never as the tokens the request wrote, so that the docker CLI's flag parser reads exactly what
was checked. A refusal is a :class:`PolicyError` whose message names the argument as it was written.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shlex
from fnmatch import fnmatchcase
from typing import NoReturn

from ...wire.contract import DEFAULT_SHELL
from ...wire.dockerargs import (
    FALSE_WORDS,
    TRUE_WORDS,
    DockerArgsError,
    DockerOption,
    RunArgs,
    parse_run_args,
    split_line,
)
from ..servererrors import ArgsUnreadable, PolicyError
from ..settings.fields import Settings
from .allowlist import NEVER_ALLOWED, AllowedMount, parse_allowed_mounts
from .groupgrants import GroupGrant
from .hostview import HostSurvey, HostView, normalise, within
from .mountpath import PathRefused, resolve_source, trusted_links
from .mountspec import mount_value, read_fields
from .plan import Plan, PlannedMount
from .registries import RegistryRules
from .secretpaths import server_secrets
from .textcheck import CONTROL, token_problem

log = logging.getLogger("dockyter.server")


# Switches the server always sets: turning them off would leave containers behind or unmanaged.
LIFECYCLE_SWITCHES = {"--rm", "--init"}

# Namespace options, refused with a value that shares a namespace with the host or a container.
NAMESPACE_FLAGS: dict[str, str] = {
    "--network": "network",
    "--pid": "process",
    "--ipc": "IPC",
    "--uts": "UTS (host name)",
    "--userns": "user",
    "--cgroupns": "cgroup",
}

VOLUME_MODES = {"ro", "rw", "nocopy", "private", "rprivate", "consistent", "cached", "delegated"}
MOUNT_KEYS = {
    "type", "source", "src", "target", "destination", "dst", "readonly", "ro", "consistency",
    "bind-propagation", "volume-nocopy", "tmpfs-size", "tmpfs-mode",
}  # fmt: skip
BIND_KEYS = {"type", "source", "target", "readonly", "consistency", "bind-propagation"}
MOUNT_KEY_ALIASES = {"src": "source", "destination": "target", "dst": "target", "ro": "readonly"}
VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]+")


class Policy:
    """The checks of one server's settings; :meth:`check` turns a request into a :class:`Plan`."""

    def __init__(self, settings: Settings) -> None:
        self.images = list(settings.allowed_images)
        self.registries = RegistryRules(settings.allowed_registries)
        self.flags = set(settings.flag_names())
        self.mounts = list(settings.mount_rules())
        self.volumes = list(settings.allowed_volumes)
        self.networks = {"none", *settings.allowed_networks}
        self.shells = [tuple(shlex.split(shell)) for shell in settings.allowed_shells]
        # Resolved once, at start-up: a root that is a link stays where it pointed then.
        self.roots = [(mount, normalise(os.path.realpath(mount.path))) for mount in self.mounts]
        self.trusted = trusted_links(mount.path for mount in self.mounts)
        secrets = server_secrets(
            token_file=settings.token_file,
            config_file=settings.config_file,
            listed=settings.secret_paths,
            docker_command=settings.docker_command,
            environment=settings.engine_environment(),
        )
        self.survey = HostSurvey(settings.docker_command, settings.engine_environment(), secrets)
        try:
            self.survey.view()  # at start-up: `docker info` is asked once, not during a request
        except Exception:  # noqa: BLE001 - bind mounts are then refused, with a log line each
            log.exception("could not read which host paths no mount may expose")
        if self.mounts:
            self.warn_about_roots()
        # What each hub group's table adds ([groups.NAME]), resolved now as the server-wide mounts are.
        self.grants = dict(settings.groups)
        self._group_roots = {
            name: [
                (mount, normalise(os.path.realpath(mount.path)))
                for mount in parse_allowed_mounts(list(grant.allowed_mounts))
            ]
            for name, grant in self.grants.items()
        }
        self._by_groups: dict[tuple[str, ...], Policy] = {}
        for name, roots in self._group_roots.items():
            if roots:
                self.for_grant(self.grants[name]).warn_about_roots([mount for mount, _ in roots], f"group {name}")

    def for_grant(self, grant: GroupGrant) -> Policy:
        """This policy with what ``grant`` (a caller's groups' tables together) adds; made once per set of groups.

        It shares this policy's view of the host; the roots of its mounts were resolved at start-up.
        """
        if grant.is_empty:
            return self
        known = self._by_groups.get(grant.groups)
        if known is not None:
            return known
        granted = copy.copy(self)
        granted._by_groups = {}
        granted.images = [*self.images, *grant.allowed_images]
        granted.registries = RegistryRules([*self.registries.patterns, *grant.allowed_registries])
        granted.flags = self.flags | set(grant.allowed_flags)
        granted.volumes = [*self.volumes, *grant.allowed_volumes]
        granted.networks = self.networks | set(grant.allowed_networks)
        granted.roots = [*self.roots, *(root for group in grant.groups for root in self._group_roots.get(group, []))]
        granted.mounts = [mount for mount, _ in granted.roots]
        granted.trusted = {**self.trusted, **trusted_links(mount.path for mount, _ in granted.roots)}
        self._by_groups[grant.groups] = granted
        return granted

    def check(self, args: str, shell: list[str] | None = None) -> Plan:
        """Parse and check a request.

        Raises :class:`~dockyter.server.servererrors.ArgsUnreadable` (400) when ``args``
        cannot be understood and :class:`~dockyter.server.servererrors.PolicyError` (403) when
        the policy refuses it.
        """
        try:
            tokens = split_line(args)
            for token in tokens:  # before any option is parsed (the request's model checked them too)
                problem = token_problem(token)
                if problem:
                    raise DockerArgsError(problem)
            run_args = parse_run_args(tokens)
        except DockerArgsError as error:
            raise ArgsUnreadable(f"args: {error}") from None
        checked = [self._check_option(option) for option in run_args.options]
        options = tuple(
            _respelled(approved, option) for (approved, _), option in zip(checked, run_args.options, strict=True)
        )
        self._check_image(run_args.image)
        has_network = any(option.name == "--network" for option in run_args.options)
        return Plan(
            RunArgs(options, run_args.image),
            self._check_shell(shell),
            has_network=has_network,
            mounts=tuple(mount for _, mount in checked if mount is not None),
        )

    # -- options ----------------------------------------------------------------------------

    def _check_option(self, option: DockerOption) -> tuple[DockerOption, PlannedMount | None]:
        """Refuse ``option``, or return it as the engine should get it (bind mounts rewritten), and the mount it makes."""
        written = option.as_written
        name = option.name
        if name in NEVER_ALLOWED:
            _refuse(written, NEVER_ALLOWED[name])
        if name in LIFECYCLE_SWITCHES and not option.enabled:
            _refuse(written, f"the server always runs containers with {name}")
        if name in NAMESPACE_FLAGS and option.value is not None:
            value = option.value.strip().lower()
            if value == "host" or value.startswith("container:"):
                _refuse(written, f"it shares the {NAMESPACE_FLAGS[name]} namespace of the host or another container")
        if name not in self.flags:
            raise PolicyError(f"{written} is not allowed by this server's policy")
        value = option.value or ""
        if name == "--network" and value not in self.networks:
            _refuse(written, f"allowed networks are {', '.join(sorted(self.networks))}")
        if name == "--label" and value.split("=", 1)[0].strip().lower().startswith("io.dockyter"):
            _refuse(written, "io.dockyter.* labels belong to the server")
        if name == "--env":
            _check_env(written, value)
        if name == "--volume":
            return self._check_volume(written, option)
        if name == "--mount":
            return self._check_mount(written, option)
        if name == "--tmpfs":
            _check_target(written, value.partition(":")[0])
        return option, None

    # -- mounts -----------------------------------------------------------------------------

    def _check_volume(self, written: str, option: DockerOption) -> tuple[DockerOption, PlannedMount]:
        """``-v [SOURCE:]TARGET[:MODES]``: a bind mount, a named volume or an anonymous volume."""
        parts = (option.value or "").split(":")
        if len(parts) == 1:
            _check_target(written, parts[0])
            # An anonymous volume: created for this container and removed with it.
            return option, PlannedMount("volume", "", parts[0], readonly=False)
        if len(parts) > 3 or not parts[0] or not parts[1]:
            _refuse(written, "expected SOURCE:TARGET[:MODES]")
        source, target = parts[0], parts[1]
        _check_target(written, target)
        modes = [mode for mode in (parts[2].split(",") if len(parts) == 3 else []) if mode]
        for mode in modes:
            if mode not in VOLUME_MODES:
                allowed = ", ".join(sorted(VOLUME_MODES))
                _refuse(written, f"the mount mode {mode!r} is not (allowed: {allowed})")
        readonly = "ro" in modes and "rw" not in modes
        if not source.startswith("/"):
            self._check_volume_name(written, source)
            return option, PlannedMount("volume", source, target, readonly)
        if "nocopy" in modes:
            _refuse(written, "nocopy applies to named volumes, not to bind mounts")
        fields = {"target": target}
        propagation = [mode for mode in modes if mode in ("private", "rprivate")]
        consistency = [mode for mode in modes if mode in ("consistent", "cached", "delegated")]
        if propagation:
            fields["bind-propagation"] = propagation[-1]
        if consistency:
            fields["consistency"] = consistency[-1]
        return self._bind(written, source, readonly, fields)

    def _check_mount(self, written: str, option: DockerOption) -> tuple[DockerOption, PlannedMount]:
        """``--mount type=...,source=...,target=...``: the same rules as ``-v``, key by key."""
        spec = option.value or ""
        if '"' in spec or CONTROL.search(spec):
            _refuse(written, "quotes and control characters in --mount are not")
        fields = read_fields(spec)
        values: dict[str, str | None] = {}
        for item in fields:
            key, equals, value = item.partition("=")
            key = key.strip().lower()
            if key not in MOUNT_KEYS:
                _refuse(written, f"the --mount key {key!r} is not")
            key = MOUNT_KEY_ALIASES.get(key, key)
            if key in values:
                _refuse(written, f"{key!r} is given twice")
            values[key] = value if equals else None
        kind = (values.get("type") or "volume").lower()
        source = values.get("source")
        _check_target(written, values.get("target") or "")
        if "bind-propagation" in values and values["bind-propagation"] not in ("private", "rprivate"):
            _refuse(written, "only private bind propagation is")
        # As docker reads `readonly=WORD` (strconv.ParseBool): any other word fails there, so it is refused here.
        readonly_word = values.get("readonly")
        if readonly_word is not None and readonly_word not in TRUE_WORDS | FALSE_WORDS:
            _refuse(written, f"readonly={readonly_word} is neither true nor false")
        readonly = "readonly" in values and (readonly_word is None or readonly_word in TRUE_WORDS)
        if "type" in values:
            values["type"] = kind
        target = values.get("target") or ""
        if kind == "tmpfs":
            if source:
                _refuse(written, "a tmpfs mount takes no source")
            return _mount_option(values), PlannedMount("tmpfs", "", target, readonly)
        if kind == "bind":
            if not source or not source.startswith("/"):
                _refuse(written, "a bind mount needs an absolute source path")
            for key in values.keys() - BIND_KEYS:
                _refuse(written, f"the key {key!r} does not apply to a bind mount")
            kept = {
                key: value or "" for key, value in values.items() if key in BIND_KEYS - {"type", "source", "readonly"}
            }
            return self._bind(written, source, readonly, kept)
        if kind == "volume":
            if source:
                if "/" in source:
                    _refuse(written, "a volume source is a volume name, not a path")
                self._check_volume_name(written, source)
            return _mount_option(values), PlannedMount("volume", source or "", target, readonly)
        _refuse(written, f"the mount type {kind!r} is not (allowed: bind, volume, tmpfs)")

    def _check_volume_name(self, written: str, source: str) -> None:
        if not VOLUME_NAME.fullmatch(source):
            _refuse(written, f"{source!r} is neither an absolute host path nor a volume name")
        # Named volumes outlive the container and are shared by every user of the engine.
        if not any(fnmatchcase(source, pattern) for pattern in self.volumes):
            _refuse(written, f"the named volume {source!r} is not in this server's allowed volumes")

    def _bind(
        self, written: str, source: str, readonly: bool, fields: dict[str, str]
    ) -> tuple[DockerOption, PlannedMount]:
        """Check a bind source and return the ``--mount`` the engine runs (the real path, checked) and its reading.

        ``--mount type=bind`` fails on a missing source where ``-v`` would create it, so a
        source removed between this check and the engine's mount creates nothing either.
        """
        real = self._check_bind(written, source, readonly)
        mount: dict[str, str | None] = {"type": "bind", "source": real, **fields}
        if readonly:
            mount["readonly"] = "true"
        return _mount_option(mount), PlannedMount("bind", real, fields.get("target", ""), readonly)

    def _check_bind(self, written: str, source: str, readonly: bool) -> str:
        """The real path to mount for ``source``; refuses (403) anything that is not safe to."""
        try:
            view = self.survey.view()
        except Exception:  # a bug reading the host must not become a 500, nor let a mount through
            log.exception("could not read which host paths no mount may expose")
            _refuse(written, "the server cannot tell which host paths are safe to mount right now")
        path = normalise(source)
        # First what the path says, before touching the host: no probing outside the allowed roots.
        self._check_place(written, path, view)
        try:
            real = resolve_source(source, self.trusted)
        except PathRefused as error:
            _refuse(written, str(error))
        if real != path:
            self._check_place(written, real, view)
        try:
            info = os.stat(real)
        except OSError as error:
            _refuse(written, f"{real} cannot be checked: {error.strerror}")
        alias = view.secret_ids.get((info.st_dev, info.st_ino))
        if alias:
            _refuse(written, f"it is {alias} under another name, which no container may see")
        rule = self._mount_rule(real)
        if rule is not None and not rule.writable and not readonly:
            _refuse(written, f"{rule.path} may only be mounted read-only (add :ro or readonly)")
        return real

    def _check_place(self, written: str, path: str, view: HostView) -> None:
        """Refuse ``path`` for where it is: a host-sensitive place, outside the roots, below a writable root."""
        exposed = view.exposed_by(path)
        if exposed:
            _refuse(written, exposed)
        if self._mount_rule(path) is None:
            allowed = ", ".join(m.path + ("" if m.writable else " (read-only)") for m in self.mounts) or "none"
            _refuse(written, f"{path} is not under an allowed host path (allowed: {allowed})")
        # The server's secrets only now: a path outside the roots learns nothing of where they are.
        secret = view.secret_exposed_by(path)
        if secret:
            _refuse(written, secret)
        for mount, real in self.roots:
            if mount.writable and any(path != root and within(path, root) for root in (mount.path, real)):
                _refuse(
                    written,
                    f"{path} is inside the writable directory {mount.path}, which containers can change: "
                    f"mount {mount.path} itself and work below it",
                )

    def _mount_rule(self, path: str) -> AllowedMount | None:
        """The most specific allowed mount ``path`` is at or below (as configured, or resolved at start-up)."""
        matches = [
            (len(root), mount) for mount, real in self.roots for root in (mount.path, real) if within(path, root)
        ]
        return max(matches, key=lambda match: match[0])[1] if matches else None

    def warn_about_roots(self, only: list[AllowedMount] | None = None, whose: str = "") -> None:
        """At start-up, a warning for each allowed root (of ``only``, when given) that cannot be mounted as
        the operator may expect; ``whose`` names the group whose table allows it."""
        try:
            view = self.survey.view()
        except Exception:  # noqa: BLE001 - already logged by __init__
            return
        for mount, real in self.roots:
            if only is not None and mount not in only:
                continue
            if not os.path.isdir(real):
                log.warning(
                    "allowed mount %s%s is not a directory on this host", mount.path, f" ({whose})" if whose else ""
                )
            for root in dict.fromkeys((mount.path, real)):
                exposed = view.exposed_by(root)
                if exposed:
                    log.warning(
                        "allowed mount %s holds what no mount may expose (%s): such mounts are refused",
                        mount.path,
                        exposed,
                    )
            for secret, what in sorted(view.secrets.items()):
                if any(within(secret, root) or within(root, secret) for root in (mount.path, real)):
                    log.warning(
                        "allowed mount %s overlaps %s %s, which is never mounted, nor anything inside it or holding it",
                        mount.path, what, secret,
                    )  # fmt: skip
            for other, other_real in self.roots:
                inside = any(a != b and within(a, b) for a, b in ((real, other_real), (mount.path, other.path)))
                if other.writable and inside:
                    log.warning(
                        "allowed mount %s is inside the writable allowed mount %s: containers can change it, "
                        "so it is never mounted",
                        mount.path, other.path,
                    )  # fmt: skip

    # -- image and shell --------------------------------------------------------------------

    def _check_image(self, image: str) -> None:
        # IMAGE and IMAGE:latest are the same image: either matches a pattern written either way.
        candidates = [image, image.removesuffix(":latest")]
        if "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
            candidates.append(image + ":latest")
        if not any(fnmatchcase(candidate, pattern) for candidate in candidates for pattern in self.images):
            raise PolicyError(f"the image {image!r} is not allowed (allowed: {', '.join(self.images) or 'none'})")
        if refusal := self.registries.refusal(image):  # before the engine sends anything to the registry
            raise PolicyError(refusal)

    def _check_shell(self, shell: list[str] | None) -> tuple[str, ...]:
        if shell is None:
            # Clients of the original contract send no shell: bash -lc, or the operator's first choice.
            if DEFAULT_SHELL in self.shells or not self.shells:
                return DEFAULT_SHELL
            return self.shells[0]
        if tuple(shell) not in self.shells:
            allowed = ", ".join(shlex.join(s) for s in self.shells) or "none"
            raise PolicyError(f"the shell {shlex.join(shell)!r} is not allowed (allowed: {allowed})")
        return tuple(shell)


def _check_env(written: str, value: str) -> None:
    """``--env NAME=VALUE``: a bare ``NAME`` would be filled from the docker CLI's own environment."""
    name, equals, _ = value.partition("=")
    if not equals:
        _refuse(written, "a variable without a value is copied from the server's environment: write NAME=VALUE")
    if not name:
        _refuse(written, "a variable needs a name (NAME=VALUE)")


def _check_target(written: str, target: str) -> None:
    """Where a mount goes in the container: an absolute path written as the engine will read it."""
    if not target.startswith("/"):
        _refuse(written, f"the container path {target!r} must be absolute")
    if CONTROL.search(target) or target != target.strip():
        _refuse(written, f"the container path {target!r} must not hold control characters or surrounding spaces")
    if normalise(target) != target:
        _refuse(written, f"the container path {target!r} must be written normalised, as {normalise(target)}")


def _mount_option(keys: dict[str, str | None]) -> DockerOption:
    """A ``--mount`` option of ``keys``, its value written by :func:`.mountspec.mount_value`."""
    return DockerOption("--mount", mount_value(keys), ())


def _respelled(approved: DockerOption, requested: DockerOption) -> DockerOption:
    """``approved`` as the engine gets it: the one token the policy spells; the request's tokens kept for messages."""
    return DockerOption(approved.name, approved.value, (approved.spelled(),), requested.written)


def _refuse(written: str, why: str) -> NoReturn:
    """Refuse the argument ``written`` (as the user wrote it), saying ``why``."""
    raise PolicyError(f"{written} is not allowed: {why}")
