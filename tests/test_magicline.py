"""Dockyter's own %%docker options come first and never swallow docker's."""

import pytest

from dockyter.dockerargs import DockerArgsError
from dockyter.magicline import parse_cell_line


def test_options_then_docker_args():
    options = parse_cell_line("--no-raise-error --timeout 2.5 --out o --err=e -v /a:/b img")
    assert options.raise_on_error is False
    assert options.timeout == 2.5
    assert (options.out, options.err) == ("o", "e")
    assert options.docker_tokens == ["-v", "/a:/b", "img"]


def test_double_dash_ends_dockyter_options():
    options = parse_cell_line("--out log -- --timeout img")
    assert options.out == "log"
    assert options.docker_tokens == ["--timeout", "img"]


def test_no_options():
    options = parse_cell_line("-e X=1 img")
    assert options.raise_on_error is None and options.timeout is None
    assert options.docker_tokens == ["-e", "X=1", "img"]


def test_profile_option():
    assert parse_cell_line("--profile ml").profile == "ml"


@pytest.mark.parametrize(
    "line, message",
    [
        ("--timeout", "--timeout needs a value"),
        ("--timeout soon img", "number of seconds"),
        ("--timeout -1 img", "positive"),
        ("--timeout 0 img", "positive"),
        ("--timeout nan img", "positive"),
        ("--out 1x img", "Python variable name"),
        ("--err class img", "Python variable name"),
    ],
)
def test_bad_options(line, message):
    with pytest.raises(DockerArgsError, match=message):
        parse_cell_line(line)
