"""The grammar of a magic's line, declared once per magic: the tables are in :mod:`~dockyter.ipython.magiclines`.

As IPython's ``magic_arguments`` reads its decorators, everything about a line comes from its
table: parsing (:meth:`Grammar.parse`), the usage (``--help``, the magic's docstring, the
usage line of an error) and tab completion (:mod:`~dockyter.ipython.completion`). A line is the
magic's options, then either a verb and its words (``%docker_session stop NAME``) or the magic's
own words (``%docker_backend NAME [URL]``), then, for the magics that run something, the docker
arguments as after ``docker run``.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Literal

from ..errors import BadUsage
from ..wire.dockerargs import split_line

# What completes a value, read at each TAB from what is in memory (completion.Sources).
Source = Literal["images", "profiles", "sessions", "jobs", "backends"]
WIDTH = 92  # of the usage text: the same in every terminal, notebook and docstring
HELP_WORDS = ("--help", "help")  # either asks a magic with verbs for its usage


@dataclass(frozen=True)
class Option:
    """One of a magic's own options, before everything else on the line."""

    name: str  # "--timeout"
    help: str
    metavar: str | None = None  # what its value is called; None: a switch
    values: Source | None = None  # what completes its value
    alone: bool = False  # a form of the line of its own: nothing else may come with it

    @property
    def synopsis(self) -> str:
        return f"{self.name} {self.metavar}" if self.metavar else self.name


@dataclass(frozen=True)
class Word:
    """A word of the line after the options (or after the verb), by position."""

    metavar: str  # "NAME", "URL"
    values: Source | None = None  # what completes it
    optional: bool = False
    instead: tuple[str, ...] = ()  # literal words accepted in its place ("--all", "--off")

    @property
    def synopsis(self) -> str:
        text = " | ".join([self.metavar, *self.instead])
        return f"[{text}]" if self.optional else text


@dataclass(frozen=True)
class Verb:
    """What the first word of a line with verbs chooses, and the words it takes."""

    name: str
    help: str
    words: tuple[Word, ...] = ()
    docker: bool = False  # then docker arguments, ending with the image
    options: tuple[Option, ...] = ()  # switches of its own, after its words (before docker's)

    @property
    def synopsis(self) -> str:
        return " ".join(
            [
                self.name,
                *(word.synopsis for word in self.words),
                *(f"[{option.synopsis}]" for option in self.options),
                *([DOCKER_ARGS] if self.docker else []),
            ]
        )

    def option(self, name: str) -> Option | None:
        return next((option for option in self.options if option.name == name), None)


DOCKER_ARGS = "[DOCKER ARGS...] IMAGE"
HELP = Option("--help", "show this help and run nothing")


@dataclass
class Parsed:
    """A line as its grammar reads it."""

    given: list[tuple[Option, str | None]] = field(default_factory=list)  # options in order, with values
    verb: str | None = None
    words: dict[str, str] = field(default_factory=dict)  # by metavar
    docker: list[str] = field(default_factory=list)  # the docker arguments, as after `docker run`
    explicit_end: bool = False  # `--` ended the options: what follows is docker's, whatever it looks like

    @property
    def help(self) -> bool:
        return any(option is HELP for option, _ in self.given)

    def value(self, name: str) -> str | None:
        """The value of the option ``name`` (the last one given), or None."""
        values = [value for option, value in self.given if option.name == name]
        return values[-1] if values else None


@dataclass(frozen=True)
class Grammar:
    """What one magic's line may hold, and what each part means."""

    magic: str  # "%docker_session", "%%docker"
    description: str  # what the magic does, after the usage lines
    options: tuple[Option, ...] = ()
    verbs: tuple[Verb, ...] = ()  # the first word after the options chooses one
    no_verb: str = ""  # with verbs: what the magic does when the line has none
    words: tuple[Word, ...] = ()  # without verbs: the words after the options
    docker: str | None = None  # how the docker arguments after the rest are written, when they follow
    epilog: str = ""

    def option(self, name: str) -> Option | None:
        return next((option for option in self.options if option.name == name), None)

    def verb(self, name: str) -> Verb | None:
        return next((verb for verb in self.verbs if verb.name == name), None)

    # -- parsing -----------------------------------------------------------------------------

    def parse(self, line: str) -> Parsed:
        """Read ``line``: BadUsage (one line, a usage line where it helps) for what does not fit."""
        tokens = split_line(line, comments=True)  # `%docker_session  # note` as in a shell
        parsed = Parsed()
        position = self._take_options(tokens, parsed)
        rest = tokens[position:]
        alone = next((option for option, _ in parsed.given if option.alone), None)
        if parsed.help:
            return parsed
        if alone is not None and (len(parsed.given) > 1 or rest):
            raise BadUsage(f"usage: {self.magic} {alone.synopsis}")
        if self.verbs:
            self._take_verb(rest, parsed)
        else:
            usage = f"usage: {self.forms()[0][0]}"
            rest = self._take_words(rest, self.words, parsed, usage)
            if rest and self.docker is None:
                raise BadUsage(usage)
            parsed.docker = rest
        return parsed

    def _take_options(self, tokens: list[str], parsed: Parsed) -> int:
        """Read the leading options into ``parsed``; the position of the first token after them."""
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == "--" and self.docker is not None:
                parsed.explicit_end = True
                return position + 1
            name, has_value, inline = token.partition("=")
            option = self.option(name)
            if option is None or (has_value and option.metavar is None):
                break  # a word, or docker's: the options end here
            if option.metavar is None:
                parsed.given.append((option, None))
                position += 1
            elif has_value:
                parsed.given.append((option, inline))
                position += 1
            elif position + 1 < len(tokens):
                parsed.given.append((option, tokens[position + 1]))
                position += 2
            else:
                raise BadUsage(f"usage: {self.magic} {option.synopsis}" if option.alone else f"{name} needs a value")
        return position

    def _take_verb(self, rest: list[str], parsed: Parsed) -> None:
        if not rest:
            return
        if rest[0] in HELP_WORDS:
            parsed.given.append((HELP, None))
            return
        verb = self.verb(rest[0])
        if verb is None:
            raise BadUsage(f"unknown {self.magic} action {rest[0]!r}; usage: {self.verb_synopsis()}")
        parsed.verb = verb.name
        usage = f"usage: {self.magic} {verb.synopsis}"
        rest = self._take_words(rest[1:], verb.words, parsed, usage)
        while rest and (option := verb.option(rest[0])) is not None:  # its switches, in any order
            parsed.given.append((option, None))
            rest = rest[1:]
        if bool(rest) != verb.docker:  # docker arguments missing, or words too many
            raise BadUsage(usage)
        parsed.docker = rest

    @staticmethod
    def _take_words(rest: list[str], words: tuple[Word, ...], parsed: Parsed, usage: str) -> list[str]:
        for word in words:
            if not rest:
                if not word.optional:
                    raise BadUsage(usage)
                break
            parsed.words[word.metavar] = rest[0]
            rest = rest[1:]
        return rest

    # -- the usage ---------------------------------------------------------------------------

    def forms(self) -> list[tuple[str, str]]:
        """The forms of the line, each with what it does ("" when the description says it)."""
        if self.verbs:
            return [(self.magic, self.no_verb), *((f"{self.magic} {verb.synopsis}", verb.help) for verb in self.verbs)]
        together = [option for option in self.options if not option.alone and option is not HELP]
        main = " ".join(
            [
                self.magic,
                *(["[OPTIONS]"] if together else []),
                *(word.synopsis for word in self.words),
                *([self.docker] if self.docker else []),
            ]
        )
        return [(main, ""), *((f"{self.magic} {option.synopsis}", "") for option in self.options if option.alone)]

    def verb_synopsis(self) -> str:
        """``%docker_config [reload]``: the verbs in one line."""
        takes_more = any(verb.words or verb.docker for verb in self.verbs)
        return f"{self.magic} [{'|'.join(verb.name for verb in self.verbs)}]" + (" ..." if takes_more else "")

    def usage(self) -> str:
        """The whole usage: the forms, the description, the options, the epilog."""
        forms = self.forms()
        width = max(len(form) for form, _ in forms)
        lines = [f"{form.ljust(width)}  {what}".rstrip() for form, what in forms]
        text = "\n".join(("usage: " if index == 0 else "       ") + line for index, line in enumerate(lines))
        text += "\n\n" + self.description.strip() + "\n"
        if self.options:
            text += "\noptions:\n" + "\n".join(_describe(option) for option in self.options) + "\n"
        for verb in self.verbs:
            if verb.options:
                text += f"\noptions of {verb.name}:\n" + "\n".join(_describe(option) for option in verb.options) + "\n"
        if self.epilog:
            text += "\n" + self.epilog.strip() + "\n"
        return text


def _describe(option: Option) -> str:
    """``  --timeout SECONDS  stop the container after ...``, wrapped as argparse would."""
    head = f"  {option.synopsis}"
    indent = 24
    lines = textwrap.wrap(option.help, WIDTH - indent)
    if len(head) + 2 > indent:
        return "\n".join([head, *(" " * indent + line for line in lines)])
    return "\n".join((head.ljust(indent) if index == 0 else " " * indent) + line for index, line in enumerate(lines))
