"""Tab completion for Dockyter's magics, as IPython custom completers.

``%%docker --<TAB>`` offers Dockyter's options and ``docker run`` flags; the image position
offers the engine's local images (from :class:`~dockyter.wire.images.LocalImages`, a cache
refreshed in the background, so a TAB never waits for the engine); ``%docker_profile`` the
profiles of dockyter.toml, ``%docker_backend`` the backends, ``%docker_session`` the sessions.

A completer only reads what is already in memory: anything slow happens elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from IPython.core.error import TryNext

from ..backends.registry import known_backends
from ..wire.dockerargs import ALIASES, BOOL_FLAGS, SHORT_FLAGS, VALUE_FLAGS

HOOK = "complete_command"
# A few flags whose values are a short fixed list worth offering.
FLAG_VALUES: dict[str, tuple[str, ...]] = {
    "--pull": ("always", "missing", "never"),
    "--network": ("none", "host", "bridge"),
    "--restart": ("no",),
    "--rm": ("true", "false"),
}


@dataclass
class Sources:
    """Where completions come from; each callable returns what is in memory now."""

    own_value_options: Callable[[], Sequence[str]]  # Dockyter's options that take a value
    own_switches: Callable[[], Sequence[str]]  # Dockyter's options that do not
    images: Callable[[], list[str]]
    profiles: Callable[[], list[str]]
    sessions: Callable[[], list[str]] = field(default=lambda: [])
    own_option_values: Callable[[str], list[str]] = field(default=lambda option: [])


def docker_flags() -> list[str]:
    """Every ``docker run`` flag we know, long forms first."""
    return sorted({*VALUE_FLAGS, *BOOL_FLAGS, *ALIASES}) + sorted(f"-{letter}" for letter in SHORT_FLAGS)


def _takes_value(token: str) -> bool:
    """Whether the docker flag ``token`` (as written, without ``=``) consumes the next word."""
    if token.startswith("--"):
        return ALIASES.get(token, token) in VALUE_FLAGS
    if token.startswith("-") and len(token) >= 2:
        # a group of switches ending with a value flag: -it is all switches, -itv takes a value
        return all(SHORT_FLAGS.get(letter) in BOOL_FLAGS for letter in token[1:-1]) and (
            SHORT_FLAGS.get(token[-1]) in VALUE_FLAGS
        )
    return False


def _canonical(token: str) -> str:
    if token.startswith("--"):
        return ALIASES.get(token, token)
    return SHORT_FLAGS.get(token[1:], token) if len(token) == 2 else token


class CellLine:
    """Where the cursor is on a ``%%docker`` / ``%docker`` line: what the word being typed can be."""

    def __init__(self, words: list[str], own_value_options: Iterable[str], own_switches: Iterable[str], own: bool):
        self.own_value_options = set(own_value_options)
        self.own_switches = set(own_switches)
        self.own_phase = own  # Dockyter's options may still come
        self.after_image = False
        self.value_for: str | None = None  # the option whose value is being typed
        for word in words:
            self._step(word)

    def _step(self, word: str) -> None:
        if self.value_for is not None:
            self.value_for = None
            return
        if self.after_image:
            return
        name = word.split("=", 1)[0]
        if self.own_phase and word == "--":
            self.own_phase = False
            return
        if self.own_phase and name in self.own_switches:
            return
        if self.own_phase and name in self.own_value_options:
            self.value_for = None if "=" in word else name
            return
        self.own_phase = False
        if word.startswith("-"):
            if "=" not in word and _takes_value(word):
                self.value_for = _canonical(word if word.startswith("--") else f"-{word[-1]}")
            return
        self.after_image = True


def _split(event: SimpleNamespace) -> tuple[list[str], str]:
    """The words before the one under the cursor (magic name dropped), and that word."""
    text = event.text_until_cursor
    words = text.split()
    current = "" if not words or text[-1:].isspace() else words.pop()
    return words[1:], current


def _relative(candidates: Iterable[str], word: str, symbol: str) -> list[str]:
    """Candidates for ``word``, cut to replace only IPython's token ``symbol``.

    IPython's token stops at ``/`` and ``:``, so for ``dockyter-test/ba`` it is ``ba``: a
    completion must then be ``bash:1``, not the whole name.
    """
    cut = len(word) - len(symbol)
    if cut < 0:
        return []
    return [candidate[cut:] for candidate in candidates if candidate.startswith(word)]


def _run_line(sources: Sources, event: SimpleNamespace, own: bool) -> list[str]:
    words, current = _split(event)
    value_options = sources.own_value_options() if own else ()
    switches = sources.own_switches() if own else ()
    line = CellLine(words, value_options, switches, own)
    if line.value_for is not None:
        if line.value_for == "--profile":
            return _relative(sources.profiles(), current, event.symbol)
        if line.value_for in value_options:
            return _relative(sources.own_option_values(line.value_for), current, event.symbol)
        values = FLAG_VALUES.get(line.value_for)
        if values:
            return _relative(values, current, event.symbol)
        raise TryNext  # a path for -v, a name for -e...: IPython's own completers may know
    if line.after_image:
        raise TryNext
    if current.startswith("-"):
        offered = [*value_options, *switches] if line.own_phase else []
        return _relative([*offered, *docker_flags()], current, event.symbol)
    return _relative(sources.images(), current, event.symbol)


def _first_argument(candidates: Callable[[], Iterable[str]]) -> Callable[[Any, SimpleNamespace], list[str]]:
    """A completer that offers ``candidates`` for the first word after the magic's name."""

    def complete(shell: Any, event: SimpleNamespace) -> list[str]:
        words, current = _split(event)
        if words:
            raise TryNext
        return _relative(candidates(), current, event.symbol)

    return complete


def completers(sources: Sources) -> dict[str, Callable[[Any, SimpleNamespace], list[str]]]:
    """The completer of each magic, keyed as IPython's dispatcher sees the line's first word."""
    return {
        "%%docker": lambda shell, event: _run_line(sources, event, own=True),
        "%docker": lambda shell, event: _run_line(sources, event, own=False),
        "%docker_profile": _first_argument(lambda: [*sources.profiles(), "--off"]),
        "%docker_backend": _first_argument(known_backends),
        "%docker_session": _first_argument(sources.sessions),
    }


def install(shell: Any, sources: Sources) -> None:
    """Register the completers on ``shell`` (replacing ours from an earlier load)."""
    uninstall(shell)
    for key, completer in completers(sources).items():
        shell.set_hook(HOOK, completer, str_key=key)


def uninstall(shell: Any) -> None:
    """Remove our completers; other completers of the shell are left alone."""
    dispatcher = getattr(shell, "strdispatchers", {}).get(HOOK)
    if dispatcher is None:
        return
    for key in ("%%docker", "%docker", "%docker_profile", "%docker_backend", "%docker_session"):
        dispatcher.strs.pop(key, None)
