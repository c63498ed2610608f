"""Named profiles from ``[profiles]`` in ``dockyter.toml``.

A profile is docker arguments ending with the image, written either as a string (the original
format) or as a table with ``args`` and any ``Dockyter`` trait it overrides::

    [profiles]
    local = "-v /tmp:/tmp ubuntu:22.04"
    [profiles.alpine]
    args = "alpine:3"
    shell = ["sh", "-c"]
    timeout = 600

``%docker_profile NAME`` applies one for good (like ``%docker ARGS IMAGE``); ``%%docker --profile
NAME`` applies one to a single cell and then restores every value it changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from traitlets import HasTraits, TraitError, TraitType

from ..errors import BadUsage
from ..wire.dockerargs import DockerArgsError, parse_run_args
from .tomlvalues import SECRET_TRAITS, describe, did_you_mean, masked, type_mismatch

# Set by the profile itself or by applying it, never as overrides: why, for the warning.
NOT_OVERRIDABLE = {
    "default_args": "a profile's docker arguments are its args",
    "redirect": "%docker_profile turns redirection on, %%docker --profile does not need it",
}


@dataclass(frozen=True)
class Profile:
    """Docker arguments and trait overrides under one name."""

    name: str
    args: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        """Every trait the profile sets, ``default_args`` included."""
        return {"default_args": self.args, **self.overrides}

    def summary(self) -> str:
        """One line for listings, secrets masked: ``alpine:3; shell=['sh', '-c']``."""
        extra = [f"{name}={masked(name, value)}" for name, value in self.overrides.items()]
        return "; ".join([self.args, *extra])


def read_profiles(
    table: Mapping[str, Any], traits: Mapping[str, TraitType[Any, Any]]
) -> tuple[dict[str, Profile], dict[str, str], list[tuple[str, str]]]:
    """Profiles from a ``[profiles]`` table: (usable ones, broken ones with why, (level, message) lines).

    A profile with a wrong value is broken as a whole, so it never runs half of what it says.
    """
    profiles: dict[str, Profile] = {}
    broken: dict[str, str] = {}
    messages: list[tuple[str, str]] = []
    for name, entry in table.items():
        where = f"[profiles.{name}]" if isinstance(entry, dict) else f"[profiles] {name}"
        outcome = _read_profile(name, entry, traits, where, messages)
        if isinstance(outcome, Profile):
            profiles[name] = outcome
        else:
            broken[name] = outcome
            messages.append(("error", f"{where} cannot be used: {outcome}"))
    return profiles, broken, messages


def _read_profile(
    name: str, entry: Any, traits: Mapping[str, TraitType[Any, Any]], where: str, messages: list[tuple[str, str]]
) -> Profile | str:
    """One profile, or why it cannot be used; unknown keys are warned about and skipped."""
    entry = {"args": entry} if isinstance(entry, str) else entry
    if not isinstance(entry, dict):
        return f"expected a string of docker arguments or a table, found {describe(entry)}"
    if "args" not in entry:
        return "no args (the docker arguments ending with the image)"
    allowed = {"args": traits["default_args"]} | {n: t for n, t in traits.items() if n not in NOT_OVERRIDABLE}
    overrides: dict[str, Any] = {}
    for key, value in entry.items():
        if key in NOT_OVERRIDABLE:
            messages.append(("warning", f"{where}: {key} ignored: {NOT_OVERRIDABLE[key]}"))
            continue
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f"a profile takes {', '.join(sorted(allowed))}"
            messages.append(("warning", f"{where}: unknown key {key!r} ignored; {hint}"))
            continue
        mismatch = type_mismatch(allowed[key], value, secret=key in SECRET_TRAITS)
        if mismatch:
            return f"{key}: {mismatch}"
        if key != "args":
            overrides[key] = value
    try:
        parse_run_args(entry["args"])
    except DockerArgsError as error:
        return f"args: {error}"
    return Profile(name, entry["args"], overrides)


def find_profile(name: str, profiles: Mapping[str, Profile], broken: Mapping[str, str], source: str) -> Profile:
    """The profile ``name``, or a BadUsage that lists the profiles and names the closest one."""
    if name in profiles:
        return profiles[name]
    if name in broken:
        raise BadUsage(f"profile {name!r} in {source} cannot be used: {broken[name]}")
    if not profiles:
        raise BadUsage(f"unknown profile {name!r}: {source} defines no profiles")
    hint = did_you_mean(name, profiles)
    listing = ", ".join(sorted(profiles))
    raise BadUsage(f"unknown profile {name!r}{'; ' + hint if hint else ''} (profiles in {source}: {listing})")


def apply(settings: HasTraits, profile: Profile) -> dict[str, Any]:
    """Set every value of ``profile`` on ``settings``, all or nothing; return the values replaced.

    A value its trait refuses (an unknown backend, a negative timeout) becomes a BadUsage and
    nothing is changed: ``hold_trait_notifications`` rolls back what was already set.
    """
    values = profile.values()
    previous = {name: getattr(settings, name) for name in values}
    try:
        with settings.hold_trait_notifications():
            for name, value in values.items():
                setattr(settings, name, value)
    except TraitError as error:
        raise BadUsage(f"profile {profile.name!r}: {error}") from None
    return previous


@contextmanager
def applied_for_one_cell(settings: HasTraits, profile: Profile) -> Iterator[None]:
    """``profile`` applied while the block runs; every value it replaced is restored after."""
    previous = apply(settings, profile)
    try:
        yield
    finally:
        with settings.hold_trait_notifications():
            for name, value in previous.items():
                setattr(settings, name, value)
