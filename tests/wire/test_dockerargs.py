"""Splitting `[DOCKER ARGS...] IMAGE` like docker itself: quoting, every flag spelling, clear errors."""

import re

import pytest

from dockyter.wire.dockerargs import DockerArgsError, parse_options, parse_run_args, split_line


def options(line: str) -> list[tuple[str, str | None]]:
    return [(o.name, o.value) for o in parse_run_args(line).options]


def test_image_alone():
    parsed = parse_run_args("ubuntu:24.04")
    assert parsed.image == "ubuntu:24.04"
    assert parsed.options == ()


@pytest.mark.parametrize(
    "line, image",
    [
        ("-v /a:/b img", "img"),
        ("-e MSG=hi -w /work registry.example.org:5000/team/tool:1.2", "registry.example.org:5000/team/tool:1.2"),
        ("--rm -it busybox", "busybox"),
        ("--network=none --memory 512m python:3.12-slim", "python:3.12-slim"),
        ("-u 1000:1000 --entrypoint '' alpine@sha256:" + "a" * 64, "alpine@sha256:" + "a" * 64),
        ("--init=false img", "img"),
    ],
)
def test_image_is_found_whatever_flags_precede_it(line, image):
    assert parse_run_args(line).image == image


def test_shell_quoting_is_honoured():
    parsed = parse_run_args('-e MSG="a b" -v "/path with space:/data" img')
    assert options('-e MSG="a b" -v "/path with space:/data" img') == [
        ("--env", "MSG=a b"),
        ("--volume", "/path with space:/data"),
    ]
    assert parsed.argv() == ["-e", "MSG=a b", "-v", "/path with space:/data", "img"]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("-v /a:/b img", [("--volume", "/a:/b")]),
        ("-v=/a:/b img", [("--volume", "/a:/b")]),
        ("-v/a:/b img", [("--volume", "/a:/b")]),
        ("--volume /a:/b img", [("--volume", "/a:/b")]),
        ("--volume=/a:/b img", [("--volume", "/a:/b")]),
        ("--net host img", [("--network", "host")]),
        ("--privileged=true img", [("--privileged", "true")]),
        ("-it img", [("--interactive", None), ("--tty", None)]),
        ("-itv /a:/b img", [("--interactive", None), ("--tty", None), ("--volume", "/a:/b")]),
        ("-tev=1 img", [("--tty", None), ("--env", "v=1")]),
        ("-d=false img", [("--detach", "false")]),
    ],
)
def test_every_spelling_means_the_same(line, expected):
    assert options(line) == expected


def test_argv_keeps_what_docker_needs():
    assert parse_run_args("-tev=1 --name=x img").argv() == ["-t", "-ev=1", "--name=x", "img"]


def test_switch_state():
    parsed = parse_run_args("--rm=false --init img")
    assert not parsed.has("--rm")
    assert parsed.has("--init")


def test_double_dash_before_image():
    assert parse_run_args("-e A=1 -- img").image == "img"


@pytest.mark.parametrize(
    "line, message",
    [
        ("", "no image given"),
        ("-v /a:/b", "no image given"),
        ("-v", "needs a value"),
        ("img extra words", "unexpected 'extra words' after the image"),
        ("--frobnicate img", "unknown docker run option '--frobnicate'"),
        ("-Z img", "unknown docker run option '-Z'"),
        ("--rm=maybe img", "takes no value"),
        ('"unclosed', "no closing quotation"),
        ("img;", "not a valid image reference"),
        ("'$(touch /tmp/x)'", "not a valid image reference"),
        ("Upper:case", "not a valid image reference"),
    ],
)
def test_bad_input_gets_a_clear_message(line, message):
    with pytest.raises(DockerArgsError, match=re.escape(message)):
        parse_run_args(line)


def test_unknown_flag_with_inline_value_passes_through():
    # runtimes such as podman have flags docker lacks; the inline form is unambiguous
    assert options("--tz=UTC img") == [("--tz", "UTC")]


def test_command_after_image_only_when_allowed():
    assert parse_run_args("img ls -l", allow_command=True).image == "img"


def test_parse_options_leaves_the_rest():
    opts, rest = parse_options(split_line("-e A=1 img cmd"))
    assert [o.name for o in opts] == ["--env"]
    assert rest == ["img", "cmd"]


@pytest.mark.parametrize(
    "line, tokens",
    [
        ("-v /d:/d img  # a note", ["-v", "/d:/d", "img"]),
        ("img #note", ["img"]),
        ("-e MSG=a#b img", ["-e", "MSG=a#b", "img"]),
        ("-e 'X=# not a comment' img", ["-e", "X=# not a comment", "img"]),
        ('-e "X=\\"#\\"" img # c', ["-e", 'X="#"', "img"]),
        ("-e X=\\#1 img", ["-e", "X=#1", "img"]),
        ("# all comment", []),
    ],
)
def test_comments_on_magic_lines(line, tokens):
    assert split_line(line, comments=True) == tokens


def test_comments_are_kept_unless_asked_for():
    # the server's `args` keep '#' as text: "img #c" is then an image followed by a stray token
    assert split_line("img #c") == ["img", "#c"]
