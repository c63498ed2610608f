"""Hub groups choose the policy: what each group's table of the server's TOML grants, and what one user gets.

Under ``auth = "jupyterhub"`` the hub names each caller's groups. A ``[groups.NAME]`` table of the
server's TOML file says what members of the hub group ``NAME`` get on top of the server-wide
settings::

    [groups.gpu]
    allowed_flags = ["--gpus"]

    [groups.staff]
    allowed_mounts = ["/srv/shared:rw"]

    [groups.students]
    max_concurrent_per_token = 1
    sessions = false

A user gets the union of their groups' tables (:func:`grant_for`):

* the lists (``allowed_flags``, ``allowed_mounts``, ``allowed_images``, ``allowed_registries``,
  ``allowed_volumes``, ``allowed_networks``) add to the server-wide lists; each entry is checked
  when the file is read exactly as the server-wide entry would be, so an option that can never be
  allowed (``--privileged``, ``--device``...) is refused in a group too;
* each limit (``max_concurrent_per_token``, ``max_sessions_per_token``, ``max_timeout``,
  ``sessions``) is decided by the user's groups that set it, and the most generous of them wins
  (0, "no limit of its own", is the most generous of the ``_per_token`` limits; ``sessions = true``
  beats ``false``); when none of them sets it, the server-wide value applies. A group may lower a
  limit below the server-wide value (students: one execution, no sessions) or raise it; a user in
  two groups keeps the better of the two only where the other also says something.

A group without a table grants nothing; so does every group for a static token's caller. What a
group grants is never more than an operator may allow server-wide: everything here still goes
through the same policy and the same check of what the engine made.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .allowlist import check_flag_names, parse_allowed_mounts
from .registries import check_patterns

LISTS = (
    "allowed_flags",
    "allowed_mounts",
    "allowed_images",
    "allowed_registries",
    "allowed_volumes",
    "allowed_networks",
)
MAX_GROUP_NAME = 255


@dataclass(frozen=True)
class GroupGrant:
    """What one group's table grants (or, from :func:`grant_for`, what one user's groups grant together)."""

    groups: tuple[str, ...] = ()  # the groups whose tables this is, sorted
    allowed_flags: tuple[str, ...] = ()  # canonical long names
    allowed_mounts: tuple[str, ...] = ()  # entries as written: PATH, PATH:ro, PATH:rw
    allowed_images: tuple[str, ...] = ()
    allowed_registries: tuple[str, ...] = ()
    allowed_volumes: tuple[str, ...] = ()
    allowed_networks: tuple[str, ...] = ()
    # None: this grant does not say; the server-wide value applies
    max_concurrent_per_token: int | None = None
    max_sessions_per_token: int | None = None
    max_timeout: float | None = None
    sessions: bool | None = None

    @property
    def is_empty(self) -> bool:
        return not self.groups

    def describe(self) -> str:
        """One line of what it grants, for the start-up log."""
        said = [f"{name} += {', '.join(getattr(self, name))}" for name in LISTS if getattr(self, name)]
        said += [f"{name} = {value}" for name, value in self.limits().items()]
        return "; ".join(said) or "nothing"

    def limits(self) -> dict[str, Any]:
        """The limits it sets, by setting name."""
        names = ("max_concurrent_per_token", "max_sessions_per_token", "max_timeout", "sessions")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


class GroupTableError(ValueError):
    """A ``[groups.NAME]`` table the server cannot use; the message names the group and the key."""


def read_group_tables(tables: Mapping[str, Any], where: str) -> dict[str, GroupGrant]:
    """The ``groups`` table of the server's TOML file (``where`` names it), checked: grants by group name."""
    if not isinstance(tables, Mapping):
        raise GroupTableError(f"groups in {where} must be a table of [groups.NAME] tables")
    grants = {}
    for name, table in tables.items():
        if not (0 < len(name) <= MAX_GROUP_NAME and name.isprintable()):
            raise GroupTableError(
                f"[groups.{name!r}] in {where}: a hub group's name is printable, at most 255 characters"
            )
        if not isinstance(table, Mapping):
            raise GroupTableError(f"groups.{name} in {where} must be a table, like [groups.{name}]")
        grants[name] = _read_one(name, table, f"[groups.{name}] in {where}")
    return grants


def _read_one(name: str, table: Mapping[str, Any], where: str) -> GroupGrant:
    known = {f.name for f in fields(GroupGrant)} - {"groups"}
    values: dict[str, Any] = {"groups": (name,)}
    for key, value in table.items():
        if key not in known:
            raise GroupTableError(f"{where}: unknown key {key!r} (a group may set {', '.join(sorted(known))})")
        values[key] = _checked(key, value, where)
    return GroupGrant(**values)


def _checked(key: str, value: Any, where: str) -> Any:
    """``value`` of ``key`` as the server-wide setting of that name would accept it, or GroupTableError."""
    if key in LISTS:
        if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise GroupTableError(f"{where}: {key} must be an array of strings")
        try:
            if key == "allowed_flags":
                return tuple(check_flag_names(value))
            if key == "allowed_mounts":
                parse_allowed_mounts(value)
            if key == "allowed_registries":
                return tuple(check_patterns(value))
        except ValueError as error:
            raise GroupTableError(f"{where}: {error}") from None
        return tuple(value)
    if key == "sessions":
        if not isinstance(value, bool):
            raise GroupTableError(f"{where}: sessions must be true or false")
        return value
    if key == "max_timeout":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise GroupTableError(f"{where}: max_timeout must be a number of seconds greater than 0")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GroupTableError(f"{where}: {key} must be an integer, 0 or more (0: no limit of its own)")
    return value


def grant_for(grants: Mapping[str, GroupGrant], groups: Iterable[str]) -> GroupGrant:
    """What a member of ``groups`` gets: the union of those groups' grants (empty when none has a table)."""
    mine = [grants[group] for group in sorted(set(groups)) if group in grants]
    if not mine:
        return GroupGrant()
    combined: dict[str, Any] = {"groups": tuple(grant.groups[0] for grant in mine)}
    for name in LISTS:
        combined[name] = tuple(dict.fromkeys(item for grant in mine for item in getattr(grant, name)))
    for name in ("max_concurrent_per_token", "max_sessions_per_token"):
        said = [getattr(grant, name) for grant in mine if getattr(grant, name) is not None]
        # 0 is no limit of the user's own: the most generous
        combined[name] = (0 if 0 in said else max(said)) if said else None
    timeouts = [grant.max_timeout for grant in mine if grant.max_timeout is not None]
    combined["max_timeout"] = max(timeouts) if timeouts else None
    sessions = [grant.sessions for grant in mine if grant.sessions is not None]
    combined["sessions"] = any(sessions) if sessions else None
    return GroupGrant(**combined)
