"""The grammar tables of the magics: one declaration per magic, read for parsing and usage alike."""

from __future__ import annotations

import re

import pytest

from dockyter.errors import BadUsage
from dockyter.ipython.magiclines import BACKEND, CONFIG, GRAMMARS, LINE, PROFILE, SESSION
from dockyter.wire.dockerargs import DockerArgsError


def test_verbs_and_their_words():
    stop = SESSION.parse("stop --all  # every one")
    assert (stop.verb, stop.words, stop.docker) == ("stop", {"NAME": "--all"}, [])
    start = SESSION.parse("start s -e A=1 img:1")
    assert (start.verb, start.words["NAME"], start.docker) == ("start", "s", ["-e", "A=1", "img:1"])
    assert SESSION.parse("").verb is None
    assert SESSION.parse("help").help and SESSION.parse("--help").help


@pytest.mark.parametrize(
    "grammar, line, message",
    [
        (SESSION, "start s", "usage: %docker_session start NAME [--here] [--as-me] [DOCKER ARGS...] IMAGE"),
        (SESSION, "restart a b", "usage: %docker_session restart NAME"),
        (
            SESSION,
            "launch x",
            "unknown %docker_session action 'launch'; usage: %docker_session [start|stop|restart] ...",
        ),
        (CONFIG, "relaod", "unknown %docker_config action 'relaod'; usage: %docker_config [reload]"),
        (BACKEND, "", "usage: %docker_backend NAME [URL]"),
        (BACKEND, "api http://a b", "usage: %docker_backend NAME [URL]"),
        (PROFILE, "a b", "usage: %docker_profile [NAME | --off]"),
        (LINE, "--session", "usage: %docker --session NAME"),
        (LINE, "--session s img", "usage: %docker --session NAME"),
        (SESSION, "stop 'unbalanced", "cannot split"),
    ],
)
def test_what_does_not_fit_is_one_line(grammar, line, message):
    with pytest.raises((BadUsage, DockerArgsError), match="^" + re.escape(message)):
        grammar.parse(line)


def test_options_then_the_rest():
    parsed = LINE.parse("--session=s")
    assert parsed.value("--session") == "s" and parsed.docker == []
    parsed = LINE.parse("-e A=1 -- img")
    assert parsed.docker == ["-e", "A=1", "--", "img"] and parsed.value("--session") is None
    assert LINE.parse("-- -e A=1 img").docker == ["-e", "A=1", "img"]
    assert PROFILE.parse("--off").words == {"NAME": "--off"}


def test_every_usage_starts_with_its_forms_and_every_magic_has_one():
    assert len({grammar.magic for grammar in GRAMMARS}) == len(GRAMMARS) == 11
    for grammar in GRAMMARS:
        usage = grammar.usage()
        assert usage.startswith(f"usage: {grammar.magic}"), usage
        assert all(option.name in usage for option in grammar.options)
        assert all(verb.synopsis in usage and verb.help in usage for verb in grammar.verbs)
