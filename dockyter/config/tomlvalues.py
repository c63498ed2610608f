"""Values from a TOML file against the ``Dockyter`` traits, in words a user can act on.

``type_mismatch`` says "expected an array of strings, found a string ('sh -c')"; ``masked``
keeps secrets out of everything the magics print; ``did_you_mean`` names the closest key.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, cast

from traitlets import Bool, Dict, Float, Int, List, TraitType, Unicode

from ..wire.contract import SECRET_HEADER
from .argv import Argv

# Traits whose values are never shown, and which a project's own file should not hold.
SECRET_TRAITS = frozenset({"api_token"})
TOKEN_VARIABLE = "DOCKYTER_API_TOKEN"
# Every trait that masked() may change: the %config Dockyter listing masks these too.
MASKED_TRAITS = SECRET_TRAITS | {"api_headers"}


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` closest to ``word`` (ignoring case), if any is close enough."""
    by_lower = {choice.lower(): choice for choice in choices}
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """``"did you mean 'x'?"`` for the closest of ``choices``, or None."""
    match = closest(word, choices)
    return f"did you mean {match!r}?" if match else None


def expected(trait: TraitType[Any, Any]) -> tuple[str, Callable[[Any], bool]]:
    """What a TOML value for ``trait`` must be, in words, and a test for it."""
    if isinstance(trait, Bool):
        return "true or false", lambda v: isinstance(v, bool)
    if isinstance(trait, Int):
        return "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if isinstance(trait, Float):  # TOML writes 5 for 5.0; a bool is an int in Python, not here
        return "a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(trait, Unicode):
        return "a string", lambda v: isinstance(v, str)
    if isinstance(trait, List):
        item, test = expected(trait._trait) if trait._trait else ("a value", _anything)
        return f"an array of {_plural(item)}", lambda v: isinstance(v, list) and all(map(test, v))
    if isinstance(trait, Dict):
        values = cast("TraitType[Any, Any] | None", trait._value_trait)  # None: any value
        item, test = expected(values) if values else ("a value", _anything)
        return f"a table of {_plural(item)}", lambda v: isinstance(v, dict) and all(map(test, v.values()))
    return "a value", _anything  # other trait types check their values themselves when set


def type_mismatch(trait: TraitType[Any, Any], value: Any, secret: bool = False) -> str | None:
    """``"expected X, found Y"`` when ``value`` has the wrong type for ``trait``, else None."""
    words, test = expected(trait)
    return None if test(value) else f"expected {words}, found {describe(value, secret)}"


def describe(value: Any, secret: bool = False) -> str:
    """A TOML value in words, e.g. ``a string ('5s')``; a secret's content is never shown."""
    kinds = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
    ]
    kind = next((word for type_, word in kinds if isinstance(value, type_)), "a date or time")
    if secret:
        return kind
    text = repr(value)
    return f"{kind} ({text if len(text) <= 60 else text[:57] + '...'})"


def masked(name: str, value: Any) -> str:
    """How the magics show a trait value: its ``repr``, except for secrets."""
    if name in SECRET_TRAITS:
        return "(set, hidden)" if value else "(not set)"
    if name == "api_headers" and isinstance(value, dict):
        return repr({key: "(hidden)" if SECRET_HEADER.search(key) else text for key, text in value.items()})
    return repr(value)


def _anything(value: Any) -> bool:
    return True


def _plural(words: str) -> str:
    return {"a string": "strings", "a number": "numbers", "an integer": "integers", "true or false": "booleans"}.get(
        words, "values"
    )


def refusal_reason(trait: TraitType[Any, Any], value: Any, error: Exception) -> str:
    """Why ``trait`` refused ``value``, in a few words: a bound, a type, a length, or the message
    of Dockyter's own check (already in words), never traitlets' sentence about instances."""
    if isinstance(trait, Argv) and not isinstance(value, (list, tuple, str)):
        return f"expected a list of words (or one string, split as a shell would), found {describe(value)}"
    mismatch = None if isinstance(trait, Argv) else type_mismatch(trait, value)
    if mismatch is not None and not (isinstance(trait, Float) and isinstance(value, int)):
        return mismatch
    low, high = getattr(trait, "min", None), getattr(trait, "max", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and value < low:
            return f"it must be at least {low:g}"
        if high is not None and value > high:
            return f"it must be at most {high:g}"
    if isinstance(trait, List) and isinstance(value, list):
        shortest = getattr(trait, "_minlen", 0)
        if len(value) < shortest:
            return "it must not be empty" if shortest == 1 else f"it needs at least {shortest} items"
    text = str(error)
    return text if "trait of a" not in text else text.split(" trait of a ")[-1]
