"""Sessions through the api backend: the magics against a real dockyter-server, and against a
server that has no sessions (the original-contract example server)."""

from __future__ import annotations

import _thread
import re
import secrets
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

ANSI = re.compile(r"\x1b\[[0-9;]*m")
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

    # measured in the background: the listing shows "…" until the first figure
    assert wait_until(lambda: re.fullmatch(r"\d+(\.\d+)?(B|KiB|MiB)", memory()), timeout=15), memory()
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
    kept = cell("%%docker --session remote --no-raise-error\nexit 3")  # ends the cell, as in %%bash
    assert kept.error is None and ip.user_ns["_exit_code"] == 3
    ended = cell("%%docker --session remote\nbuiltin exit 4")  # ends the shell itself
    assert "session 'remote' is dead: its shell exited with status 4" in str(ended.error)
    assert ip.user_ns["_exit_code"] == 4
    cell("%docker_session restart remote")
    assert cell("%%docker --session remote\necho back").stdout == "back\n"
    wait_until(lambda: not session_containers(server), timeout=15)  # the server's idle limit
    dropped = cell("%%docker --session remote\ntrue")
    assert "the server does not know it now (404: it ended at the server's idle or lifetime limit" in str(dropped.error)
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


@pytest.mark.kernel
def test_a_refused_request_does_not_make_a_session_gone(dockyter_server, kernel, test_image):
    """A 404 after a token change leaves the session usable, and `stop` deletes it with the token that
    started it; a session the server really dropped is never said to be "stopped"."""
    first, second = "first-" + secrets.token_urlsafe(16), "second-" + secrets.token_urlsafe(16)
    server = dockyter_server(tokens=[f"alice:{first}", f"bob:{second}"], session_idle_timeout=4)
    kernel.run(f"%config Dockyter.api_token = {first!r}")
    kernel.run(f"%docker_backend api {server.url}")
    assert kernel.run(f"%docker_session start s {test_image}").reply["status"] == "ok"
    kernel.run("%%docker --session s\nexport KEPT=yes")
    kernel.run(f"%config Dockyter.api_token = {second!r}")  # another token: the server does not know s
    refused = kernel.run("%%docker --session s\necho $KEPT")
    [line] = [ANSI.sub("", text) for error in refused.of_type("error") for text in error["content"]["traceback"]]
    assert line == (
        "Dockyter: session 's': the server does not know it now (404: the token has changed since it started, and "
        "a session belongs to its token); %docker_session restart s starts a new one, %docker_session stop s "
        "deletes it if the server still has it"
    )
    [listing] = kernel.run("%docker_session").of_type("display_data")
    assert "unknown: the server does not know it now" in listing["content"]["data"]["text/plain"]
    assert len(session_containers(server)) == 1  # still there, and still ours
    kernel.run(f"%config Dockyter.api_token = {first!r}")
    assert kernel.run("%%docker --session s\necho $KEPT").stdout == "yes\n"  # it was never gone
    kernel.run(f"%config Dockyter.api_token = {second!r}")
    stopped = kernel.run("%docker_session stop s")
    assert stopped.stdout == "Dockyter: session 's' stopped\n"  # deleted with the token that started it
    assert wait_until(lambda: not session_containers(server), timeout=15)
    # one the server dropped (its idle limit): the cell says so, and stop does not claim to stop it
    kernel.run(f"%config Dockyter.api_token = {first!r}")
    kernel.run(f"%docker_session start idle {test_image}")
    assert wait_until(lambda: not session_containers(server), timeout=30)
    gone = kernel.run("%%docker --session idle\ntrue")
    assert "the server does not know it now (404: it ended at the server's idle or lifetime limit" in gone.stderr + str(
        gone.of_type("error")
    )
    forgotten = kernel.run("%docker_session stop idle")
    assert forgotten.stdout == (
        "Dockyter: session 'idle' forgotten here, not stopped: the server does not know it (404: it ended at the "
        "server's idle or lifetime limit or a restart, or the request reached a server that does not have it)\n"
    )
