"""Where each ``Dockyter`` value comes from, and ``dockyter.toml`` applied in its place among them.

The layers, lowest first: trait defaults < ``ipython_config.py`` (any IPython config: site or
user profile, command line) < ``dockyter.toml`` < run time (``%config``, ``%docker``,
``%docker_profile``...). traitlets applies the IPython config when the ``Dockyter`` instance is
created; :meth:`Layers.load_file` then applies the file on top, and an observer marks every
later change as run time.

Reloading re-reads the file and recomputes every value that was *not* changed at run time, so
what the user did in this kernel wins over the file, and a value removed from the file falls
back to the lower layers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from traitlets import TraitError
from traitlets.utils.bunch import Bunch

from ..errors import BadUsage, say
from .profiles import Profile, applied_for_one_cell, apply, find_profile
from .tomlfile import FileConfig, Problem, candidates, find_toml_file, read_toml_file
from .tomlvalues import TOKEN_VARIABLE, masked
from .traits import DockyterTraits

DEFAULT = "default"
IPYTHON = "ipython_config.py"
RUN_TIME = "run time"


@dataclass(frozen=True)
class ActiveProfile:
    """The profile ``%docker_profile`` applied, and what each value it set was before."""

    name: str
    label: str  # the origin its values are recorded with
    underneath: dict[str, tuple[Any, str]]  # trait -> (value, origin) before the profile


class Layers:
    """The layered configuration of one ``Dockyter`` instance and the provenance of each value."""

    def __init__(self, settings: DockyterTraits) -> None:
        """Call at the end of the instance's ``__init__``: traitlets has just applied the IPython config.

        ``settings`` is the ``Dockyter`` core; the values its traits refused while loading the
        IPython config are in its ``refused_config``, and are never applied.
        """
        self.settings = settings
        self.traits = settings.class_traits(config=True)
        section = settings.config.get(type(settings).__name__) or {}
        refused = getattr(settings, "refused_config", {})  # values the traits refused: never applied
        self.ipython_values = {
            name: deepcopy(getattr(settings, name)) for name in self.traits if name in section and name not in refused
        }
        self.origin = {name: IPYTHON if name in self.ipython_values else DEFAULT for name in self.traits}
        self.file = FileConfig()
        self.problems: list[Problem] = []
        self.active_profile: ActiveProfile | None = None  # set by %docker_profile NAME
        self._source: str | None = RUN_TIME  # what a change is recorded as; None: not recorded
        settings.observe(self._record, names=list(self.traits))

    def _record(self, change: Bunch) -> None:
        if self._source is not None:
            self.origin[change["name"]] = self._source

    @contextmanager
    def source(self, label: str | None) -> Iterator[None]:
        """Record changes made in the block as coming from ``label`` (None: leave provenance alone)."""
        previous, self._source = self._source, label
        try:
            yield
        finally:
            self._source = previous

    # -- the file ------------------------------------------------------------------------------

    def load_file(self, announce: Callable[[list[Problem]], None] | None = None) -> list[Problem]:
        """Find and read ``dockyter.toml`` and apply it over the lower layers; say what was wrong.

        Run-time values are kept. Each problem is one line on stderr (or handed to ``announce``),
        and everything else in the file (and every other layer) still applies.
        """
        path, problems = find_toml_file()
        self.file = read_toml_file(path, self.traits) if path else FileConfig()
        problems += self.file.problems + self._apply_layers()
        if announce is not None:
            announce(problems)
        else:
            for problem in problems:
                say(problem)
        self.problems = problems
        return problems

    def reload(self) -> tuple[list[str], list[str]]:
        """Re-read the file; return (names whose value changed, names kept because set at run time)."""
        before = {name: deepcopy(getattr(self.settings, name)) for name in self.traits}
        self.load_file()
        changed = [name for name in self.traits if getattr(self.settings, name) != before[name]]
        kept = [name for name in self.traits if self.origin[name].startswith(RUN_TIME)]
        return changed, kept

    def _apply_layers(self) -> list[Problem]:
        """Give each trait not changed at run time the value of the highest layer that sets it."""
        problems = []
        path = str(self.file.path)
        # backend last, so that "api" can be checked against the api_url finally in force
        for name in sorted(self.traits, key=lambda n: n == "backend"):
            if self.origin[name].startswith(RUN_TIME):
                continue
            setting = self.file.settings.get(name)
            if setting is not None:
                if name == "backend" and setting.value == "api" and not self.settings.api_url:
                    problems.append(
                        Problem(
                            "error",
                            f'{path}: {setting.key} = "api" needs api_url ([backend] '
                            f"api_url or [Dockyter] api_url); the backend stays {self.settings.backend!r}",
                        )
                    )
                else:
                    try:
                        self._set(name, setting.value, path)
                        continue
                    except TraitError as error:
                        problems.append(Problem("error", f"{path}: {setting.key}: {error}; not applied"))
            if name in self.ipython_values:
                self._set(name, self.ipython_values[name], IPYTHON)
            else:
                self._set(name, self.settings.trait_defaults(name), DEFAULT)
        return problems

    def _set(self, name: str, value: Any, label: str) -> None:
        with self.source(label):
            setattr(self.settings, name, deepcopy(value))
        self.origin[name] = label  # also when the value did not change (no notification then)

    # -- what the magics show ------------------------------------------------------------------

    def file_label(self) -> str:
        """The file read, or that none was found."""
        return str(self.file.path) if self.file.path else "none found (%docker_config says where it looks)"

    def origin_of(self, name: str) -> str:
        """Where the effective value of ``name`` came from, in words."""
        if name == "api_token" and self.origin[name] == DEFAULT and os.environ.get(TOKEN_VARIABLE):
            return f"environment (${TOKEN_VARIABLE})"
        return self.origin[name]

    def rows(self) -> list[tuple[str, str]]:
        """``%docker_config``: the file, its problems, each value (secrets masked) with its origin, profiles."""
        if self.file.path:
            rows = [("file", str(self.file.path))]
        else:
            rows = [("file", "none found; looked for " + ", ".join(map(str, candidates())))]
        rows += [("problem", str(problem)) for problem in self.problems]
        for name in sorted(self.traits):
            rows.append((name, f"{masked(name, getattr(self.settings, name))}   from {self.origin_of(name)}"))
        rows.append(("profiles", ", ".join(sorted(self.file.profiles)) or "(none)"))
        return rows

    # -- profiles ------------------------------------------------------------------------------

    def profile(self, name: str) -> Profile:
        """The profile ``name`` from the file, or a BadUsage listing them with the closest match."""
        if self.file.path is None:
            raise BadUsage(f"unknown profile {name!r}: no dockyter.toml was found, so there are no profiles")
        return find_profile(name, self.file.profiles, self.file.broken_profiles, str(self.file.path))

    def profile_rows(self) -> list[tuple[str, str]]:
        """``%docker_profile`` alone: each profile with what it sets (secrets masked)."""
        rows = [(name, profile.summary()) for name, profile in sorted(self.file.profiles.items())]
        rows += [(name, f"cannot be used: {why}") for name, why in sorted(self.file.broken_profiles.items())]
        return rows

    def use_profile(self, name: str) -> Profile:
        """``%docker_profile NAME``: apply the profile for good and turn ``!`` redirection on.

        A profile already active is dropped first, so its overrides do not outlive it; what
        the new one replaces is remembered, for :meth:`drop_profile`.
        """
        profile = self.profile(name)
        self.drop_profile()
        label = f"{RUN_TIME} (%docker_profile {name})"
        names = [*profile.values(), "redirect"]
        underneath = {key: (deepcopy(getattr(self.settings, key)), self.origin[key]) for key in names}
        with self.source(label):
            apply(self.settings, profile)
            self.settings.redirect = True
        self.origin.update(dict.fromkeys(names, label))
        self.active_profile = ActiveProfile(name, label, underneath)
        return profile

    def drop_profile(self) -> list[str]:
        """Undo the active profile: each value it set goes back to what it was before.

        A value changed since (``%config``, ``%docker``) is the user's and stays. Returns
        the names put back; nothing when no profile is active.
        """
        active, self.active_profile = self.active_profile, None
        if active is None:
            return []
        restored = [key for key in active.underneath if self.origin[key] == active.label]
        for key in restored:  # one at a time: each change is recorded with its own origin
            value, origin = active.underneath[key]
            self._set(key, value, origin)
        return restored

    @contextmanager
    def one_cell(self, name: str | None) -> Iterator[None]:
        """``%%docker --profile NAME``: the profile applies inside the block only (None: no profile)."""
        if name is None:
            yield
            return
        profile = self.profile(name)
        with self.source(None), applied_for_one_cell(self.settings, profile):
            yield
