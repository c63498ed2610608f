"""Tab completion of Dockyter's magics, through IPython's own completer and a real kernel."""

from __future__ import annotations

import textwrap
import threading
import time

import pytest
from helpers import docker, wait_until
from IPython.core.completer import provisionalcompleter
from IPython.utils.capture import capture_output

from dockyter.ipython.completion import docker_flags
from dockyter.ipython.magiclines import CELL
from dockyter.wire.images import LocalImages


def offered(shell, code: str) -> set[str]:
    """The words IPython's completions would make, cursor at the end of ``code``'s first line.

    IPython replaces only its own token (which stops at '/' and ':'), so each completion is
    put back together with the start of the word it completes.
    """
    cursor = len(code.split("\n")[0])
    before = code[:cursor]
    word_start = len(before) - len(before.split()[-1]) if before[-1:].strip() else len(before)
    with provisionalcompleter():
        completions = list(shell.Completer.completions(code, cursor))
    return {before[word_start : c.start] + c.text for c in completions if c.start >= word_start}


def ordered(shell, code: str) -> list[str]:
    """The completions of ``code`` (cursor at the end), whole words, in the order offered."""
    word_start = len(code) - len(code.split()[-1]) if code[-1:].strip() else len(code)
    with provisionalcompleter():
        completions = list(shell.Completer.completions(code, len(code)))
    return [code[word_start : c.start] + c.text for c in completions if c.start >= word_start]


def test_options_offer_dockyters_own_and_docker_run_flags(ip):
    assert {"--timeout"} <= offered(ip, "%%docker --ti")
    assert {"--no-raise-error", "--no-healthcheck"} <= offered(ip, "%%docker --timeout 3 --no")
    # once a docker flag was given, Dockyter's options cannot follow: only docker's are offered
    after_docker_flag = offered(ip, "%%docker -e X=1 --")
    assert "--volume" in after_docker_flag and "--timeout" not in after_docker_flag
    # %docker (for `!`) takes docker arguments only
    line = offered(ip, "%docker --")
    assert "--workdir" in line and "--timeout" not in line


@pytest.mark.docker
def test_the_image_position_offers_the_engines_local_images(engine_shell, engine_image):
    # podman lists an image that came from no registry as localhost/NAME: offered as NAME, which
    # is what a user types and podman runs
    ip, test_image = engine_shell, engine_image
    backend = ip._dockyter.active_backend
    wait_until(lambda: backend.images.names(), timeout=20)
    assert backend.images.known(test_image)
    repository = test_image.split(":")[0]
    assert test_image in offered(ip, f"%%docker {repository[:5]}")
    # after a flag and its value, and with a '/' inside the word (IPython's token stops there)
    assert test_image in offered(ip, f"%%docker -v /a:/b {repository}")
    assert test_image in offered(ip, f"%docker -w /tmp {repository[:-2]}\n")
    # in a cell, only the magic line completes like this
    assert test_image in offered(ip, f"%%docker {repository[:5]}\necho hi")


def test_a_tab_never_waits_for_the_engine(ip):
    """A lister as slow as an engine that hangs: the names come back at once, refreshed later."""
    release = threading.Event()
    calls: list[float] = []

    def slow_lister() -> list[str]:
        calls.append(time.monotonic())
        release.wait(10)
        return ["slow/image:1"]

    cache = LocalImages(slow_lister, max_age=0)
    started = time.monotonic()
    assert cache.names() == []
    assert cache.names() == []  # a second TAB while the first listing runs starts no other
    assert time.monotonic() - started < 0.5
    assert len(calls) == 1
    release.set()
    wait_until(lambda: cache.names() == ["slow/image:1"], timeout=5)


def test_values_of_a_few_flags_and_of_profiles(ip, isolated_home):
    (isolated_home / "dockyter.toml").write_text(
        textwrap.dedent("""
        [profiles]
        posix = "dockyter-test/sh:1"
        [profiles.pythonic]
        args = "dockyter-test/python:1"
    """)
    )
    ip.run_line_magic("docker_config", "reload")
    assert {"always", "missing", "never"} <= offered(ip, "%%docker --pull ")
    assert {"posix", "pythonic", "--off"} <= offered(ip, "%docker_profile ")
    assert offered(ip, "%docker_profile py") >= {"pythonic"}
    assert {"posix", "pythonic"} <= offered(ip, "%%docker --profile ")
    assert {"api", "docker"} <= offered(ip, "%docker_backend ")
    assert "docker" in offered(ip, "%docker_backend do")


def test_verbs_come_first_where_the_grammar_wants_a_verb(ip):
    assert ordered(ip, "%docker_session ") == ["start", "stop", "restart"]
    assert ordered(ip, "%docker_session st") == ["start", "stop"]
    assert ordered(ip, "%docker_config ") == ["reload"]
    assert ordered(ip, "docker_session ") == ["start", "stop", "restart"]  # as typed with automagic
    assert ordered(ip, "%docker_session stop ") == ["--all"]  # no sessions yet


@pytest.mark.docker
def test_the_sessions_of_the_kernel_are_offered(no_leftover_containers, ip, test_image):
    assert "train" not in offered(ip, "%%docker --session ")
    with capture_output():
        ip.run_line_magic("docker_session", f"start train {test_image}")
        ip.run_line_magic("docker_session", f"start eval {test_image}")
    assert ordered(ip, "%docker_session stop ") == ["eval", "train", "--all"]
    assert ordered(ip, "%docker_session restart t") == ["train"]
    assert ordered(ip, "%%docker --session ") == ["eval", "train"]
    assert ordered(ip, "%docker --session e") == ["eval"]
    assert not {"train", "eval"} & set(offered(ip, "%docker_session start "))  # a new name there


def test_unloading_removes_the_completers(ip):
    assert "--timeout" in offered(ip, "%%docker --ti")
    ip.run_line_magic("unload_ext", "dockyter")
    assert "--timeout" not in offered(ip, "%%docker --ti")


def complete_in(kernel, code: str) -> dict:
    """What Jupyter's TAB asks for: a complete_request on the shell channel, the cursor at the end."""
    msg_id = kernel.client.complete(code, len(code))
    while True:
        reply = kernel.client.get_shell_msg(timeout=60)  # a first completion loads jedi: slow under load
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


@pytest.mark.docker
@pytest.mark.kernel
def test_completion_through_a_kernel(kernel, test_image):
    kernel.run(f"%%docker {test_image}\ntrue")  # by now the image cache has been filled
    reply = complete_in(kernel, "%%docker --no-raise-e")
    assert "--no-raise-error" in reply["matches"]
    code = f"%%docker {test_image[:8]}"
    reply = complete_in(kernel, code)
    start = reply["cursor_start"]
    assert any(code[:start] + match == f"%%docker {test_image}" for match in reply["matches"]), reply


@pytest.mark.docker
@pytest.mark.kernel
def test_verbs_and_session_names_through_a_kernel(no_leftover_containers, kernel, test_image):
    """The verbs first, in their order, where %docker_session wants one; the names of the kernel's
    own sessions where a session is named."""
    assert complete_in(kernel, "%docker_session ")["matches"] == ["start", "stop", "restart"]
    for name in ("train", "eval"):
        assert kernel.run(f"%docker_session start {name} {test_image}").reply["status"] == "ok"
    assert complete_in(kernel, "%docker_session ")["matches"] == ["start", "stop", "restart"]
    assert complete_in(kernel, "%docker_session stop ")["matches"] == ["eval", "train", "--all"]
    code = "%%docker --session tr"
    reply = complete_in(kernel, code)
    assert reply["matches"] == ["train"] and code[: reply["cursor_start"]] == "%%docker --session "
    assert complete_in(kernel, "%docker --session ")["matches"] == ["eval", "train"]
    kernel.run("%docker_session stop --all")
    assert complete_in(kernel, "%docker_session stop ")["matches"] == ["--all"]


def images_starting(prefix: str) -> list[str]:
    """The engine's images whose name starts with ``prefix``, as the completion lists them."""
    listing = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    return sorted({name for name in listing if name.startswith(prefix) and "<none>" not in name})


@pytest.mark.docker
@pytest.mark.kernel
def test_a_magic_line_offers_dockyters_matches_only_through_a_kernel(kernel, test_image):
    """On a Dockyter magic line the kernel answers with our matches alone, in our order: no
    Python names, even where we have nothing to offer; after -v, IPython's paths."""
    kernel.run(f"%%docker {test_image}\ntrue")  # by now the image cache has been filled
    own = [option.name for option in CELL.options]
    assert own[:3] == ["--no-raise-error", "--raise-error", "--timeout"]
    flags = complete_in(kernel, "%%docker --")["matches"]
    assert flags == own + [flag for flag in docker_flags() if flag.startswith("--") and flag not in own]
    assert complete_in(kernel, "%%docker --ti")["matches"] == ["--timeout"]
    for code in (
        "%%docker --timeout ",  # a number of seconds
        "%%docker --out ",  # a new variable
        "%docker_session start ",  # a new session's name
        "%docker_session stop zz",  # no such session
        "%%docker -e ",  # an environment variable
        f"%%docker {test_image} ",  # nothing comes after the image
        "%docker_status ",  # takes nothing
        "%docker nosuch-registry.example/",  # no image of that name
    ):
        assert complete_in(kernel, code)["matches"] == [], code
    # after a '/': the images whose names start so, whole, in order
    code = "%docker dockyter-test/"
    reply = complete_in(kernel, code)
    assert [code[: reply["cursor_start"]] + match for match in reply["matches"]] == [
        f"%docker {name}" for name in images_starting("dockyter-test/")
    ]
    assert test_image in reply["matches"] or test_image.split("/")[0] != "dockyter-test"
    code = f"%%docker --timeout 5 {test_image[:-2]}"
    reply = complete_in(kernel, code)
    assert code[: reply["cursor_start"]] + reply["matches"][0] == f"%%docker --timeout 5 {test_image}"
    # a host path after -v: IPython's file matcher, and only that
    reply = complete_in(kernel, "%%docker -v /tm")
    assert reply["matches"] == ["/tmp/"]
    assert [item["type"] for item in reply["metadata"]["_jupyter_types_experimental"]] == ["path"]
    # not a magic line: Python names as ever
    assert "abs" in complete_in(kernel, "ab")["matches"]
