"""A request's ``docker run`` options as ``docker service create`` options, for the Swarm executor.

The policy checks a request in ``docker run`` terms (:mod:`.policy`); the Swarm executor
then has to say the same thing to ``docker service create``, whose flags differ
(``--label`` is ``--container-label``, ``-v`` is ``--mount``, ``--memory`` is
``--limit-memory``...). This module is that table. An option with no Swarm equivalent is a
:class:`SwarmArgsError` naming it: the run is refused rather than run with less than it
asked for. Options that only matter to an attached ``docker run`` (``--rm``, ``-i``) are
dropped: a service is always removed by the server and never has a terminal.

Every option is written as one token, ``--flag=value``, and every ``--mount`` value this
module builds is written by :func:`~dockyter.server.policy.mountspec.write_fields`, so that ``docker service create``
reads the paths the policy checked as the same fields (a comma in a container path stays in it).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable

from ...wire.dockerargs import DockerOption
from ..policy.mountspec import read_fields, write_fields

# docker run option -> docker service create option taking the same value.
SAME_VALUE: dict[str, str] = {
    "--env": "--env",
    "--workdir": "--workdir",
    "--user": "--user",
    "--hostname": "--hostname",
    "--label": "--container-label",
    "--network": "--network",
    "--memory": "--limit-memory",
    "--cpus": "--limit-cpu",
    "--pids-limit": "--limit-pids",
    "--cap-drop": "--cap-drop",
    "--sysctl": "--sysctl",
    "--ulimit": "--ulimit",
    "--stop-signal": "--stop-signal",
    "--group-add": "--group",
    "--dns": "--dns",
    "--dns-option": "--dns-option",
    "--dns-search": "--dns-search",
    "--add-host": "--host",
    "--mount": "--mount",  # the same key=value syntax (anonymous volumes refused: _mount)
}
SWITCHES: dict[str, str] = {"--read-only": "--read-only", "--init": "--init", "--tty": "--tty"}
DROPPED = {"--rm", "--interactive"}  # the server removes every service; a service has no stdin

# `-v` modes and the --mount keys they become.
_PROPAGATION = {"private", "rprivate"}
_CONSISTENCY = {"consistent", "cached", "delegated"}


# An anonymous volume is removed with its container by `docker run --rm`; a service's would
# stay on the node for ever, one more each time a request asks for one.
_ANONYMOUS = "{written} is not allowed: an anonymous volume would outlive the task on its node (use --tmpfs)"


class SwarmArgsError(ValueError):
    """An option the Swarm executor cannot express; the message names it."""


def translatable(name: str) -> bool:
    """Whether the ``docker run`` option ``name`` (canonical long name) can run on Swarm."""
    return name in SAME_VALUE or name in SWITCHES or name in DROPPED or name in ("--tmpfs", "--volume")


def check_names(names: Iterable[str]) -> None:
    """Raise :class:`SwarmArgsError` for the first option in ``names`` Swarm cannot express."""
    for name in names:
        if not translatable(name):
            raise SwarmArgsError(f"{name} has no equivalent for Swarm services, so the swarm executor cannot allow it")


def service_options(options: Iterable[DockerOption]) -> list[str]:
    """The ``docker service create`` arguments for parsed ``docker run`` ``options``."""
    argv: list[str] = []
    for option in options:
        argv += _translate(option)
    return argv


def _translate(option: DockerOption) -> list[str]:
    name, value = option.name, option.value
    written = option.as_written
    if name in DROPPED:
        return []
    if name in SWITCHES:
        return [SWITCHES[name]] if option.enabled else []
    if value is None:
        raise SwarmArgsError(f"{written}: a value is missing")
    if name == "--mount":
        return ["--mount=" + _mount(written, value)]
    if name in SAME_VALUE:
        return [f"{SAME_VALUE[name]}={value}"]
    if name == "--tmpfs":
        return ["--mount=" + _tmpfs(written, value)]
    if name == "--volume":
        return ["--mount=" + _volume(written, value)]
    raise SwarmArgsError(f"{written} is not allowed: the swarm executor cannot express {name} for a service")


def _tmpfs(written: str, spec: str) -> str:
    """``--tmpfs PATH[:size=N,mode=M]`` as ``type=tmpfs,target=PATH,tmpfs-size=N,tmpfs-mode=M``."""
    target, _, options = spec.partition(":")
    fields = ["type=tmpfs", f"target={target}"]
    for item in filter(None, options.split(",")):
        key, _, val = item.partition("=")
        if key == "size":
            fields.append(f"tmpfs-size={val}")
        elif key == "mode":
            fields.append(f"tmpfs-mode={val}")
        elif key in ("rw", "noexec", "nosuid", "nodev", "exec", "suid", "dev"):
            continue  # Swarm mounts tmpfs rw, nosuid, nodev already; the rest it cannot set
        else:
            raise SwarmArgsError(
                f"{written} is not allowed: the tmpfs option {key!r} cannot be given to a Swarm service"
            )
    return write_fields(fields)


def binds_host_paths(options: Iterable[DockerOption]) -> bool:
    """Whether ``options`` bind-mount a path of the host (of the node, on a Swarm)."""
    for option in options:
        if option.name == "--mount" and option.value and _mount_keys(option.value).get("type") == "bind":
            return True
        if option.name == "--volume" and option.value and option.value.startswith("/") and ":" in option.value:
            return True
    return False


def mount_targets(options: Iterable[DockerOption]) -> list[str]:
    """Where in the container ``options`` mount something (bind, volume or tmpfs)."""
    targets = []
    for option in options:
        if option.value is None:
            continue
        if option.name == "--mount":
            keys = _mount_keys(option.value)
            targets += [keys[key] for key in ("target", "dst", "destination") if key in keys]
        elif option.name == "--volume":
            parts = option.value.split(":")
            targets.append(parts[1] if len(parts) > 1 else parts[0])
        elif option.name == "--tmpfs":
            targets.append(option.value.partition(":")[0])
    return targets


def _mount_keys(spec: str) -> dict[str, str]:
    """``type=bind,"source=/a,b",...`` as keys (lower case) and values, quoted as the engine reads them."""
    try:
        fields = read_fields(spec)
    except csv.Error:  # a line break outside quotes: docker's reader would end the record there
        raise SwarmArgsError(f"--mount {spec!r} is not allowed: it holds a line break") from None
    return {key.strip().lower(): value for key, _, value in (field.partition("=") for field in fields)}


def _mount(written: str, spec: str) -> str:
    """``--mount SPEC`` as it is, unless it is an anonymous volume (a volume with no source)."""
    keys = _mount_keys(spec)
    if keys.get("type", "volume") == "volume" and not (keys.get("source") or keys.get("src")):
        raise SwarmArgsError(_ANONYMOUS.format(written=written))
    return spec


def _volume(written: str, spec: str) -> str:
    """``-v SOURCE:TARGET[:MODES]`` as the equivalent ``--mount``."""
    parts = spec.split(":")
    if len(parts) == 1:
        raise SwarmArgsError(_ANONYMOUS.format(written=written))
    source, target = parts[0], parts[1]
    modes = [mode for mode in (parts[2].split(",") if len(parts) > 2 else []) if mode]
    kind = "bind" if source.startswith("/") else "volume"
    fields = [f"type={kind}", f"source={source}", f"target={target}"]
    for mode in modes:
        if mode == "ro":
            fields.append("readonly=true")
        elif mode == "rw":
            continue
        elif mode == "nocopy" and kind == "volume":
            fields.append("volume-nocopy=true")
        elif mode in _PROPAGATION and kind == "bind":
            fields.append(f"bind-propagation={mode}")
        elif mode in _CONSISTENCY:
            fields.append(f"consistency={mode}")
        else:
            raise SwarmArgsError(f"{written} is not allowed: the mode {mode!r} has no Swarm equivalent")
    return write_fields(fields)
