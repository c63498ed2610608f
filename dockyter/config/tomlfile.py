"""Finding and reading ``dockyter.toml``: the file a user or a project keeps next to their notebooks.

The first file that exists wins: ``$DOCKYTER_CONFIG``; ``./dockyter.toml``; ``~/.dockyter.toml``;
``$XDG_CONFIG_HOME/dockyter/config.toml`` (``~/.config/dockyter/config.toml`` by default).

Two spellings are accepted in one file. The original format::

    [backend]
    mode = "api"                         # the backend trait
    api_url = "http://127.0.0.1:8000"
    [docker]
    default_args = "-v /tmp:/tmp ubuntu:22.04"
    [profiles]
    local = "-v /tmp:/tmp ubuntu:22.04"

and a ``[Dockyter]`` table that sets any trait by its own name, as ``c.Dockyter.<name>`` does in
``ipython_config.py``. Reading never raises for bad input: every problem becomes one
:class:`Problem` line, and whatever else the file says is still used. Whether a value is
acceptable beyond its type (a known backend, a parseable image...) is decided by the trait
itself when the value is applied (see :mod:`dockyter.config.layers`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import TraitType

from .profiles import Profile, read_profiles
from .tomlvalues import SECRET_TRAITS, TOKEN_VARIABLE, closest, describe, did_you_mean, type_mismatch

TRAITS_TABLE = "Dockyter"

# The original format's tables: key in the file -> trait it sets.
LEGACY_TABLES: dict[str, dict[str, str]] = {
    "backend": {"mode": "backend", "api_url": "api_url", "api_token": "api_token"},
    "docker": {"default_args": "default_args"},
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file, as the single line a user sees."""

    level: str  # "warning": ignored or suspicious; "error": a value that was not applied
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


@dataclass(frozen=True)
class Setting:
    """A trait value from the file, with where it was written (for messages)."""

    trait: str
    value: Any
    key: str  # e.g. "[backend] mode"


@dataclass
class FileConfig:
    """What one ``dockyter.toml`` says, already checked against the traits' types."""

    path: Path | None = None
    settings: dict[str, Setting] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    broken_profiles: dict[str, str] = field(default_factory=dict)  # name -> why it cannot be used
    problems: list[Problem] = field(default_factory=list)

    def add(self, level: str, message: str) -> None:
        """Note a problem found in this file."""
        self.problems.append(Problem(level, f"{self.path}: {message}"))


# -- finding the file ----------------------------------------------------------------------------


def candidates(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where a file is looked for, in order (``$DOCKYTER_CONFIG`` first when it is set)."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("HOME") or Path.home())
    xdg = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    paths = [Path.cwd() / "dockyter.toml", home / ".dockyter.toml", xdg / "dockyter" / "config.toml"]
    explicit = environ.get("DOCKYTER_CONFIG")
    return ([Path(explicit).expanduser().absolute()] if explicit else []) + paths


def find_toml_file(environ: Mapping[str, str] | None = None) -> tuple[Path | None, list[Problem]]:
    """The first candidate that exists, and a warning if ``$DOCKYTER_CONFIG`` names nothing."""
    environ = os.environ if environ is None else environ
    problems = []
    explicit = environ.get("DOCKYTER_CONFIG")
    if explicit and not Path(explicit).expanduser().is_file():
        # Set on purpose, so silently looking elsewhere would hide a typo.
        problems.append(Problem("warning", f"$DOCKYTER_CONFIG names {explicit}, which is not a file; looking further"))
    for path in candidates(environ):
        if path.is_file():
            return path, problems
    return None, problems


def is_project_file(path: Path) -> bool:
    """Whether ``path`` is the working directory's ``dockyter.toml`` (likely under version control)."""
    return path.resolve() == (Path.cwd() / "dockyter.toml").resolve()


# -- reading it ----------------------------------------------------------------------------------


def read_toml_file(path: Path, traits: Mapping[str, TraitType[Any, Any]]) -> FileConfig:
    """Read ``path`` against the configurable ``traits`` (name -> trait). Never raises for bad input."""
    result = FileConfig(path=path)
    try:
        text = path.read_bytes().decode("utf-8")
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # The message ends "(at line N, column M)", or "(at end of document)": say which line that is.
        message = str(error).replace("(at end of document)", f"(at the end, after line {len(text.splitlines())})")
        result.problems.append(Problem("error", f"{path} is not valid TOML, so none of it is used: {message}"))
        return result
    except (OSError, UnicodeDecodeError) as error:
        result.problems.append(Problem("error", f"cannot read {path}: {error}"))
        return result

    for table, content in document.items():
        known_table = table in LEGACY_TABLES or table in (TRAITS_TABLE, "profiles")
        if not known_table:
            kind = "table" if isinstance(content, dict) else "key"
            result.add("warning", f"unknown {kind} {table!r} ignored; {_suggest_table(table, traits)}")
        elif not isinstance(content, dict):
            result.add("error", f"{table!r} must be a table ([{table}]), found {describe(content)}")
        elif table == "profiles":
            profiles, broken, messages = read_profiles(content, traits)
            result.profiles.update(profiles)
            result.broken_profiles.update(broken)
            for level, message in messages:
                result.add(level, message)
        else:
            for key, value in content.items():
                _read_setting(result, traits, table, key, value)

    if is_project_file(path):
        _warn_about_secrets(result)
    return result


def _read_setting(
    result: FileConfig, traits: Mapping[str, TraitType[Any, Any]], table: str, key: str, value: Any
) -> None:
    """One ``key = value`` of ``[table]`` (``[Dockyter]`` or an original-format table)."""
    known = LEGACY_TABLES.get(table) or {name: name for name in traits}
    where = f"[{table}] {key}"
    if key not in known:
        result.add("warning", f"unknown key {where} ignored; {_suggest_key(key, table, known, traits)}")
        return
    name = known[key]
    mismatch = type_mismatch(traits[name], value, secret=name in SECRET_TRAITS)
    if mismatch:
        result.add("error", f"{where}: {mismatch}; not applied")
        return
    if name in result.settings:  # e.g. [docker] default_args and [Dockyter] default_args
        earlier = result.settings[name].key
        winner = where if table == TRAITS_TABLE else earlier
        result.add("warning", f"{earlier} and {where} both set {name}; {winner} is used")
        if table != TRAITS_TABLE:
            return
    result.settings[name] = Setting(name, value, where)


def _warn_about_secrets(result: FileConfig) -> None:
    """A project's file is easily committed and shared: a token does not belong there."""
    secrets = sorted(s.key for s in result.settings.values() if s.trait in SECRET_TRAITS)
    secrets += [
        f"[profiles.{p.name}] {name}" for p in result.profiles.values() for name in p.overrides if name in SECRET_TRAITS
    ]
    if secrets:
        result.add(
            "warning",
            f"{', '.join(secrets)}: a secret in a project's dockyter.toml is easily committed "
            f"and shared; it belongs in ${TOKEN_VARIABLE} or your own ~/.dockyter.toml (used this time)",
        )


def _suggest_key(key: str, table: str, known: Iterable[str], traits: Mapping[str, TraitType[Any, Any]]) -> str:
    if table != TRAITS_TABLE and key in traits:
        return f"did you mean to set it in [{TRAITS_TABLE}]?"
    hint = did_you_mean(key, known)
    trait = closest(key, traits) if table != TRAITS_TABLE else None
    if hint is None and trait:
        hint = f"did you mean [{TRAITS_TABLE}] {trait}?"
    return hint or f"known keys: {', '.join(sorted(known))}"


def _suggest_table(name: str, traits: Mapping[str, TraitType[Any, Any]]) -> str:
    if name in traits:
        return f"did you mean [{TRAITS_TABLE}] {name}?"
    tables = [*LEGACY_TABLES, "profiles", TRAITS_TABLE]
    return did_you_mean(name, tables) or f"known tables: {', '.join(tables)}"
