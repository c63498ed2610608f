"""Sessions through the api backend: the magics against a real dockyter-server, and against a
server that has no sessions (the original-contract example server)."""

from __future__ import annotations

import _thread
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import wait_until
from IPython.utils.capture import capture_output
from servers import containers_with_label

from dockyter.errors import BackendError, Interrupted
from dockyter.sessionmanager import COLUMNS

pytest.importorskip("fastapi", reason="dockyter-server needs the 'server' extra")
pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "minimal_server.py"


def on_api(ip, url: str, token: str | None) -> None:
    ip.run_line_magic("config", f"Dockyter.api_token = {token or ''!r}")
    with capture_output():
        ip.run_line_magic("docker_backend", f"api {url}")


def session_containers(server) -> list[str]:
    return containers_with_label(f"io.dockyter.server-session={server.executor.label}")


def test_a_session_through_the_server(dockyter_server, ip, cell, test_image):
    server = dockyter_server()
    on_api(ip, server.url, server.token)
    assert cell(f"%docker_session start remote {test_image}").error is None
    assert len(session_containers(server)) == 1
    cell("%%docker --session remote\ncd /tmp; export X=1; f() { echo f$1; }")
    run = cell("%%docker --session remote --out out\npwd; echo $X; f 2; echo err >&2")
    # --out captures instead of showing, as %%bash does; stderr is still shown
    assert (run.stdout, run.stderr, ip.user_ns["out"]) == ("", "err\n", "/tmp\n1\nf2\n")
    cell("%docker --session remote")
    assert cell("!echo bang $X").stdout == "bang 1\n"
    cell("x = !echo captured; echo merged >&2")
    assert ip.user_ns["x"] == ["captured", "merged"]

    # The memory the server reads of the session's container (memory_bytes), as docker stats writes it.
    def memory() -> str:
        [row] = ip._dockyter.sessions.rows()
        return row[COLUMNS.index("memory")]

    assert wait_until(lambda: memory() != "-", timeout=15)
    assert re.fullmatch(r"\d+(\.\d+)?(B|KiB|MiB)", memory()), memory()
    listing = cell("%docker_session").shown
    assert "remote" in listing and "running" in listing
    assert re.search(r"\d+(\.\d+)?(B|KiB|MiB)", listing), listing
    ip.run_line_magic("unload_ext", "dockyter")
    assert wait_until(lambda: not session_containers(server), timeout=15)
    ip.run_line_magic("load_ext", "dockyter")


def test_interrupt_and_timeout_keep_the_remote_session(dockyter_server, ip, cell, test_image):
    server = dockyter_server()
    on_api(ip, server.url, server.token)
    cell(f"%docker_session start remote {test_image}")
    cell("%%docker --session remote\nKEPT=yes")
    threading.Timer(1.5, _thread.interrupt_main).start()
    interrupted = cell("%%docker --session remote\nsleep 60; echo never")
    assert isinstance(interrupted.error, Interrupted) and ip.user_ns["_exit_code"] == 130
    timed = cell("%%docker --session remote --timeout 1 --no-raise-error\nsleep 60")
    assert timed.error is None and ip.user_ns["_exit_code"] == 124
    after = cell("%%docker --session remote\necho $KEPT; ps -o comm | grep -c '^sleep' || true")
    assert after.stdout == "yes\n0\n"


def test_a_remote_session_that_ends_or_is_dropped(dockyter_server, ip, cell, test_image):
    server = dockyter_server(session_idle_timeout=2)
    on_api(ip, server.url, server.token)
    cell(f"%docker_session start remote {test_image}")
    ended = cell("%%docker --session remote\nexit 4")
    assert "session 'remote' is dead: its shell exited with status 4" in str(ended.error)
    assert ip.user_ns["_exit_code"] == 4
    cell("%docker_session restart remote")
    assert cell("%%docker --session remote\necho back").stdout == "back\n"
    wait_until(lambda: not session_containers(server), timeout=15)  # the server's idle limit
    dropped = cell("%%docker --session remote\ntrue")
    assert "the server no longer has it" in str(dropped.error)
    assert "Traceback" not in dropped.stdout + dropped.stderr


def test_the_policy_applies_to_sessions(dockyter_server, ip, cell, test_image, sh_image):
    server = dockyter_server()
    on_api(ip, server.url, server.token)
    refused = cell(f"%docker_session start p --privileged {test_image}")
    assert "--privileged is not allowed" in str(refused.error)
    no_bash = cell(f"%docker_session start q {sh_image}")
    assert "has no bash" in str(no_bash.error)


@pytest.fixture(scope="module")
def minimal_server():
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        banner = process.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+", banner)
        assert match, f"the example server did not start: {banner!r}"
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(10)


def test_a_server_without_sessions_says_so(minimal_server, ip, cell, test_image):
    on_api(ip, minimal_server, None)
    run = cell(f"%docker_session start s {test_image}")
    assert isinstance(run.error, BackendError)
    assert "has no sessions (its /health does not list the 'sessions' feature)" in str(run.error)
    assert cell(f"%%docker {test_image}\necho plain cells still work").stdout == "plain cells still work\n"
