"""Tab completion of every magic's line, read from its grammar table (:mod:`~dockyter.ipython.magiclines`).

A magic's options complete where options may come, their values from what names them
(``--profile`` the profiles of dockyter.toml, ``--session`` the kernel's sessions); verbs first
where the grammar wants a verb (``%docker_session <TAB>``: start, stop, restart), then each
verb's words; docker arguments as ``docker run`` reads them: its flags, a few flags' values,
and at the image's place the engine's local images (from
:class:`~dockyter.wire.images.LocalImages`, a cache refreshed in the background, so a TAB never
waits for the engine).

One matcher of IPython's completer (Matcher API v2, in ``shell.Completer.custom_matchers``)
answers for every magic line, and its answer is the only one there: what it offers, in the
order given, and nothing else (no Python names, no other magics), even where it has nothing to
offer (a ``--timeout`` value, a new session's name, after the image). The one exception is a
path on this machine (after ``-v``, ``--env-file``...): there IPython's file matcher adds the
paths it finds. It only reads what is already in memory: anything slow happens elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from IPython.core.completer import CompletionContext, SimpleCompletion, SimpleMatcherResult, completion_matcher

from ..wire.dockerargs import ALIASES, BOOL_FLAGS, SHORT_FLAGS, VALUE_FLAGS
from .grammar import DOCKER_ARGS, Grammar, Source, Verb, Word
from .magiclines import GRAMMARS

IDENTIFIER = "dockyter.magic_lines"  # our matcher's, among the shell completer's custom matchers
FILE_MATCHER = "IPCompleter.file_matcher"  # IPython's matcher of paths, by its identifier
# docker run flags whose value is a path on this machine, where IPython's paths may help.
PATH_FLAGS = frozenset({"--volume", "--env-file", "--label-file", "--cidfile"})
# A few flags whose values are a short fixed list worth offering.
FLAG_VALUES: dict[str, tuple[str, ...]] = {
    "--pull": ("always", "missing", "never"),
    "--network": ("none", "host", "bridge"),
    "--restart": ("no",),
    "--rm": ("true", "false"),
}


@dataclass(frozen=True)
class Offer:
    """What may replace the word at the cursor on a magic line, in the order offered."""

    words: list[str]
    paths: bool = False  # a path on this machine goes here: IPython's file matcher may add its own


@dataclass
class Sources:
    """Where the names a completion offers come from; each callable returns what is in memory now."""

    images: Callable[[], list[str]]
    profiles: Callable[[], list[str]]
    sessions: Callable[[], list[str]]
    jobs: Callable[[], list[str]]
    backends: Callable[[], list[str]]

    def of(self, source: Source | None) -> list[str]:
        return getattr(self, source)() if source is not None else []


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


def complete(grammar: Grammar, words: list[str], current: str, sources: Sources) -> Offer:
    """What may replace ``current`` after ``words`` (the line's words before it, the magic's name
    left out), in the order offered."""
    position = 0
    while position < len(words):  # the magic's own options
        word = words[position]
        name, has_value, _ = word.partition("=")
        option = grammar.option(name)
        if word == "--" and grammar.docker is not None:
            return _docker_arguments(words[position + 1 :], current, sources)
        if option is None or (has_value and option.metavar is None):
            break
        if option.metavar is not None and not has_value:
            if position + 1 == len(words):  # the cursor is on its value
                return Offer(sources.of(option.values))
            position += 1
        position += 1
    rest = words[position:]
    offered: Offer
    if grammar.verbs:
        verb = grammar.verb(rest[0]) if rest else None
        if not rest:
            offered = Offer([verb.name for verb in grammar.verbs])
        elif verb is None:
            offered = Offer([])
        else:
            offered = _verb_words(verb, rest[1:], current, sources)
    else:
        offered = _words(rest, current, grammar.words, sources, grammar.docker)
    if current.startswith("-") and not rest:  # options may still come
        return Offer([*(option.name for option in grammar.options), *offered.words], offered.paths)
    return offered


def _verb_words(verb: Verb, rest: list[str], current: str, sources: Sources) -> Offer:
    """After a verb: its words, then its own switches (those not given yet) with docker's arguments."""
    given = rest[len(verb.words) :]
    switches = [word for word in given if verb.option(word) is not None]
    rest = [*rest[: len(verb.words)], *given[len(switches) :]] if given[: len(switches)] == switches else rest
    offered = _words(rest, current, verb.words, sources, DOCKER_ARGS if verb.docker else None)
    if len(rest) == len(verb.words) and current.startswith("-"):  # the verb's switches may still come
        own = [option.name for option in verb.options if option.name not in switches]
        return Offer([*own, *offered.words], offered.paths)
    return offered


def _words(rest: list[str], current: str, words: tuple[Word, ...], sources: Sources, docker: str | None) -> Offer:
    """The word at ``len(rest)`` among ``words``, or the docker arguments once they are all given."""
    if len(rest) < len(words):
        word = words[len(rest)]
        return Offer([*sources.of(word.values), *word.instead])
    if docker is not None:
        return _docker_arguments(rest[len(words) :], current, sources)
    return Offer([])


def _docker_arguments(tokens: list[str], current: str, sources: Sources) -> Offer:
    """``docker run``'s flags, a few of their values, the local images at the image's place."""
    value_for: str | None = None
    for token in tokens:
        if value_for is not None:
            value_for = None
        elif not token.startswith("-"):
            return Offer([])  # after the image: nothing more goes on a magic line
        elif "=" not in token and _takes_value(token):
            value_for = _canonical(token if token.startswith("--") else f"-{token[-1]}")
    if value_for is not None:  # a few values are worth offering; a host path is IPython's to find
        return Offer(list(FLAG_VALUES.get(value_for, ())), paths=value_for in PATH_FLAGS)
    if current.startswith("-"):
        return Offer(docker_flags())
    return Offer(sources.images())


def _relative(candidates: Iterable[str], word: str, token: str) -> list[str]:
    """Candidates for ``word``, cut to replace only IPython's ``token``.

    IPython's token stops at ``/`` and ``:``, so for ``dockyter-test/ba`` it is ``ba``: a
    completion must then be ``bash:1``, not the whole name.
    """
    cut = len(word) - len(token)
    if cut < 0:
        return []
    return [candidate[cut:] for candidate in dict.fromkeys(candidates) if candidate.startswith(word)]


def grammar_of(word: str) -> Grammar | None:
    """The grammar of the magic a line starts with (``docker_session`` too, for automagic)."""
    for grammar in GRAMMARS:
        if word == grammar.magic or (not word.startswith("%") and f"%{word}" == grammar.magic):
            return grammar
    return None


class Claim(list[SimpleCompletion]):
    """No completion, and still the only answer on a magic line.

    IPython drops the other matchers' answers only when the matcher asking for it has
    completions (``has_any_completions`` reads ``len()``), so a place where Dockyter has nothing
    to offer would fill with Python names. This empty list counts itself as one completion: the
    others are suppressed, and it yields nothing (tests/ipython/test_completion.py checks it
    through a real kernel).
    """

    def __len__(self) -> int:
        return 1


def matcher(sources: Sources) -> Callable[[CompletionContext], SimpleMatcherResult]:
    """The matcher of every magic line, reading ``sources`` at each TAB."""

    def complete_magic_line(context: CompletionContext) -> SimpleMatcherResult:
        text = context.text_until_cursor
        words = text.split()
        grammar = grammar_of(words[0]) if words else None
        typing_the_name = len(words) == 1 and not text[-1:].isspace()
        if grammar is None or typing_the_name:
            return {"completions": []}  # not ours: a magic's name is IPython's to complete
        current = "" if text[-1:].isspace() else words.pop()
        offered = complete(grammar, words[1:], current, sources) if takes_words(grammar) else Offer([])
        found = [SimpleCompletion(word) for word in _relative(offered.words, current, context.token)]
        result: SimpleMatcherResult = {"completions": found or Claim(), "suppress": True, "ordered": True}
        if offered.paths:
            result["do_not_suppress"] = {FILE_MATCHER}
        return result

    mark: Any = completion_matcher(identifier=IDENTIFIER, api_version=2)  # IPython's decorator is untyped
    return cast(Callable[[CompletionContext], SimpleMatcherResult], mark(complete_magic_line))


def takes_words(grammar: Grammar) -> bool:
    return bool(grammar.options or grammar.verbs or grammar.words or grammar.docker)


def install(shell: Any, sources: Sources) -> None:
    """Add our matcher to the shell's completer (replacing ours from an earlier load)."""
    uninstall(shell)
    shell.Completer.custom_matchers.append(matcher(sources))


def uninstall(shell: Any) -> None:
    """Remove our matcher; the completer's other matchers are left alone."""
    matchers = shell.Completer.custom_matchers
    matchers[:] = [m for m in matchers if getattr(m, "matcher_identifier", None) != IDENTIFIER]
