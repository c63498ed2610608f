"""Tab completion of Dockyter's magics, through IPython's own completer and a real kernel."""

from __future__ import annotations

import textwrap
import threading
import time

import pytest
from helpers import wait_until
from IPython.core.completer import provisionalcompleter
from IPython.utils.capture import capture_output

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
def test_the_image_position_offers_the_engines_local_images(ip, test_image):
    backend = ip._dockyter.active_backend
    wait_until(lambda: backend.images.names(), timeout=20)
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


@pytest.mark.docker
def test_the_sessions_of_the_kernel_are_offered(no_leftover_containers, ip, test_image):
    assert "train" not in offered(ip, "%docker_session ")
    with capture_output():
        ip.run_line_magic("docker_session", f"start train {test_image}")
    assert "train" in offered(ip, "%docker_session ")
    assert "train" in offered(ip, "%docker_session tr")


def test_unloading_removes_the_completers(ip):
    assert "--timeout" in offered(ip, "%%docker --ti")
    ip.run_line_magic("unload_ext", "dockyter")
    assert "--timeout" not in offered(ip, "%%docker --ti")


@pytest.mark.docker
@pytest.mark.kernel
def test_completion_through_a_kernel(kernel, test_image):
    """What Jupyter's TAB asks for: complete_request on the shell channel."""
    kernel.run(f"%%docker {test_image}\ntrue")  # by now the image cache has been filled

    def matches(code: str) -> dict:
        msg_id = kernel.client.complete(code, len(code))
        while True:
            reply = kernel.client.get_shell_msg(timeout=60)  # a first completion loads jedi: slow under load
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]

    reply = matches("%%docker --no-raise-e")
    assert "--no-raise-error" in reply["matches"]
    code = f"%%docker {test_image[:8]}"
    reply = matches(code)
    start = reply["cursor_start"]
    assert any(code[:start] + match == f"%%docker {test_image}" for match in reply["matches"]), reply
