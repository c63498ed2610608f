"""Dockyter's own %%docker options come first and never swallow docker's."""

import pytest

from dockyter.errors import BadUsage
from dockyter.ipython.cellline import parse_cell_line


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
        ("--timeout -1 img", "0: no limit"),
        ("--timeout nan img", "0: no limit"),
        ("--out 1x img", "Python variable name"),
        ("--err class img", "Python variable name"),
    ],
)
def test_bad_options(line, message):
    with pytest.raises(BadUsage, match=message):
        parse_cell_line(line)


def test_timeout_zero_means_no_limit_for_this_cell():
    assert parse_cell_line("--timeout 0 img").timeout == 0.0


def test_typos_and_misplaced_options():
    with pytest.raises(BadUsage, match=r"did you mean --no-raise-error \(a %%docker option\)\?"):
        parse_cell_line("--no-raise-eror img")
    with pytest.raises(BadUsage, match="put it before the docker arguments"):
        parse_cell_line("-v /a:/b --out o img")
    # a value that looks like an option is left alone, and so is everything after `--`
    assert parse_cell_line("-e --timeout=3 img").docker_tokens == ["-e", "--timeout=3", "img"]
    assert parse_cell_line("-- --timeot img").docker_tokens == ["--timeot", "img"]
