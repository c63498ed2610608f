"""The one scanner of shell quoting: it reads a line exactly as shlex.split does, and its two readers."""

from __future__ import annotations

import shlex

from hypothesis import example, given
from hypothesis import strategies as st

from dockyter.linechecks import eaten_backslashes
from dockyter.wire.dockerargs import split_line, strip_comment
from dockyter.wire.shellchars import shell_chars


def words(line: str) -> list[str]:
    """The words of ``line`` rebuilt from the scanner's roles: what a split keeps, cut at plain spaces."""
    found: list[str] = []
    current: list[str] | None = None
    for _, char, role in shell_chars(line):
        if role == "plain" and char.isspace():
            if current is not None:
                found.append("".join(current))
            current = None
            continue
        current = [] if current is None else current
        if role in ("plain", "escaped", "quoted"):
            current.append(char)
    if current is not None:
        found.append("".join(current))
    return found


def test_roles():
    line = 'a\\ b \'c d\' "e\\"f\\x"'  # a\ b 'c d' "e\"f\x"
    assert [(char, role) for _, char, role in shell_chars(line)] == [
        ("a", "plain"), ("\\", "escape"), (" ", "escaped"), ("b", "plain"), (" ", "plain"),
        ("'", "quote"), ("c", "quoted"), (" ", "quoted"), ("d", "quoted"), ("'", "quote"), (" ", "plain"),
        ('"', "quote"), ("e", "quoted"), ("\\", "escape"), ('"', "quoted"), ("f", "quoted"),
        ("\\", "quoted"), ("x", "quoted"), ('"', "quote"),
    ]  # fmt: skip
    assert words(line) == shlex.split(line) == ["a b", "c d", 'e"f\\x']


@given(st.text(alphabet="ab #'\"\\$\t", max_size=24))
@example('"\\$"')  # "\$": shlex keeps this backslash (bash would not)
@example('"\\\\" "\\"" \'\\\' a\\ b "" \'\'')  # "\\" "\"" '\' a\ b "" ''
def test_the_scanner_reads_a_line_as_shlex_split_does(line):
    try:
        expected = shlex.split(line)
    except ValueError:  # an unbalanced quote or a trailing backslash: no split to agree with
        return
    assert words(line) == expected


def test_a_comment_starts_an_unquoted_word():
    assert split_line("img  # a note", comments=True) == ["img"]
    assert split_line("-e MSG=a#b img", comments=True) == ["-e", "MSG=a#b", "img"]
    assert split_line("-e 'MSG= #b' img", comments=True) == ["-e", "MSG= #b", "img"]
    assert strip_comment("-e A=\\ #b img") == "-e A=\\ #b img"  # an escaped space does not start a word


def test_a_backslash_a_split_eats_is_said():
    assert "C:Usersmedata" in (eaten_backslashes("-v C:\\Users\\me\\data:/data img") or "")
    assert eaten_backslashes("-v 'C:\\Users\\me\\data:/data' img") is None
    assert eaten_backslashes('-e "A=\\"quoted\\"" img') is None
