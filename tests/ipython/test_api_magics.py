"""The magics over the API backend, in a real InteractiveShell, against a scripted server.

The server's ``/execute`` reads the cell as a tiny script instead of running a container
(no engine needed), so these tests check what the magics make of each reply: output,
``_exit_code``, raising, ``--timeout``, ``--out/--err``, ``!`` and ``x = !cmd``, interrupts,
and one clear line for each failure. The same behaviours against real containers are in
test_api_minimal_server.py and test_api_dockyter_server.py.

The script, one instruction per line or ``;``: ``out TEXT``, ``err TEXT``, ``sleep SECONDS``,
``exit CODE`` (default 0).
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator

import pytest
from helpers import wait_until
from IPython.utils.capture import capture_output
from IPython.utils.text import SList
from scripted_server import Part, Received, Reply, ScriptedServer, event, heartbeats, json_reply, stream

from dockyter.errors import BackendError, ContainerExitError, Interrupted

TOKEN = "tok-Magic-Secret-0042"
IMAGE = "img:1"


def play(received: Received) -> Reply:
    """Turn the cell into a stream of events, as a streaming server running it would."""
    body = received.body
    parts: list[Part] = [event("start", id="run-1")]
    code = 0
    for instruction in re.split(r"[;\n]", body["cmd"]):
        verb, _, rest = instruction.strip().partition(" ")
        if verb == "out" or (verb == "err" and body.get("merge_stderr")):
            parts.append(event("stdout", data=rest + "\n"))
        elif verb == "err":
            parts.append(event("stderr", data=rest + "\n"))
        elif verb == "sleep":
            parts += heartbeats(0.1, int(float(rest) * 10))
        elif verb == "exit":
            code = int(rest)
    return stream(*parts, event("exit", code=code, reason=None, message=None))


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    scripted.routes["POST", "/execute"] = play
    scripted.routes["GET", "/health"] = json_reply({"status": "ok", "version": "test", "token": "accepted"})
    scripted.routes["POST", "/executions/run-1/cancel"] = json_reply({"id": "run-1", "cancelled": True})
    yield scripted
    scripted.stop()


@pytest.fixture
def api(ip, server) -> None:
    """The shell's Dockyter on the API backend, at the scripted server."""
    with capture_output():
        ip.run_line_magic("docker_backend", f"api {server.url}")


def everything(run) -> str:
    return run.stdout + run.stderr


def test_cell_runs_through_the_api(api, cell, ip, server):
    run = cell(f"%%docker -e 'X=a b' {IMAGE}\nout hello\nerr oops")
    assert run.error is None
    assert (run.stdout, run.stderr) == ("hello\n", "oops\n")
    assert ip.user_ns["_exit_code"] == 0
    (sent,) = server.requests_to("/execute")
    assert sent.body == {"cmd": "out hello\nerr oops\n", "args": f"-e 'X=a b' {IMAGE}"}  # the original mapping


def test_non_zero_exit_raises(api, cell, ip):
    run = cell(f"%%docker {IMAGE}\nout before\nexit 3")
    assert isinstance(run.error, ContainerExitError)
    assert run.error.returncode == 3
    assert ip.user_ns["_exit_code"] == 3
    assert "exited with status 3" in run.stdout
    assert "Traceback" not in everything(run)


def test_no_raise_error(api, cell, ip):
    run = cell(f"%%docker --no-raise-error {IMAGE}\nexit 4")
    assert run.error is None
    assert ip.user_ns["_exit_code"] == 4


def test_out_and_err(api, cell, ip):
    run = cell(f"%%docker --out o --err e {IMAGE}\nout kept\nerr oops")
    assert (ip.user_ns["o"], ip.user_ns["e"]) == ("kept\n", "oops\n")
    assert (run.stdout, run.stderr) == ("", "")  # captured instead of shown, as %%bash does


def test_timeout_is_sent_and_enforced(api, cell, ip, server):
    # This server ignores the timeout it is sent: the client stops the run itself.
    run = cell(f"%%docker --timeout 0.5 {IMAGE}\nout started\nsleep 30")
    assert server.requests_to("/execute")[0].body["timeout"] == 0.5
    assert ip.user_ns["_exit_code"] == 124
    assert isinstance(run.error, ContainerExitError)
    assert "timed out after 0.5 s: execution run-1 cancelled" in str(run.error)
    assert run.stdout.startswith("started\n")
    assert server.requests_to("/executions/run-1/cancel")


def test_timeout_reported_by_the_server(api, cell, ip, server):
    server.routes["POST", "/execute"] = stream(
        event("start", id="t"),
        event("exit", code=124, reason="timeout", message="timed out after 2 s: container stopped"),
    )
    run = cell(f"%%docker --timeout 2 --no-raise-error {IMAGE}\nsleep 9")
    assert ip.user_ns["_exit_code"] == 124
    assert "exit status 124: timed out after 2 s: container stopped" in run.stderr


def test_bang_and_captured_bang(api, cell, ip, server):
    cell(f"%docker {IMAGE}")
    run = cell("!out via bang; err on stderr")
    assert (run.stdout, run.stderr) == ("via bang\n", "on stderr\n")
    cell("!exit 2")
    assert ip.user_ns["_exit_code"] == 2
    run = cell("x = !out one; err two; out three")
    assert run.stdout == ""
    assert isinstance(ip.user_ns["x"], SList) and list(ip.user_ns["x"]) == ["one", "two", "three"]
    assert server.requests_to("/execute")[-1].body["merge_stderr"] is True


def test_interrupt_cancels_and_the_shell_goes_on(api, cell, ip, server):
    main = threading.main_thread().ident
    assert main is not None

    def interrupt_once_started() -> None:
        if wait_until(lambda: server.requests_to("/execute"), timeout=10, interval=0.02):
            threading.Event().wait(0.3)
            signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt_once_started, daemon=True).start()
    run = cell(f"%%docker {IMAGE}\nout started\nsleep 30")
    assert isinstance(run.error, Interrupted)
    assert ip.user_ns["_exit_code"] == 130
    assert "interrupted: execution run-1 cancelled" in everything(run)
    assert server.requests_to("/executions/run-1/cancel")
    assert cell(f"%%docker {IMAGE}\nout alive").stdout == "alive\n"


def test_failures_are_one_line_and_never_show_the_token(api, cell, ip, server):
    ip.run_line_magic("config", f"Dockyter.api_token = {TOKEN!r}")
    server.routes["POST", "/execute"] = json_reply({"detail": f"{TOKEN} may not use --privileged"}, 403)
    run = cell(f"%%docker --privileged {IMAGE}\nout never")
    assert isinstance(run.error, BackendError)
    assert "Dockyter: the API refused the request: <token> may not use --privileged" in run.stdout
    assert "Traceback" not in everything(run)
    assert ip.user_ns["_exit_code"] == 125  # the run could not start, as docker says it
    cell(f"%docker {IMAGE}")
    run = cell("!out never")
    assert "Dockyter: the API refused the request" in run.stderr
    assert ip.user_ns["_exit_code"] == 125
    with capture_output() as captured:
        ip.run_line_magic("docker_status", "")
    shown = captured.stdout + "".join(str(o.data) for o in captured.outputs)
    assert "accepted" in shown and "curl" in shown
    for text in (everything(run), shown, repr(ip.user_ns.get("_exit_code"))):
        assert TOKEN not in text


def test_unreachable_service_is_one_line(ip, cell):
    with capture_output():
        ip.run_line_magic("docker_backend", "api http://127.0.0.1:9")
    run = cell(f"%%docker {IMAGE}\nout never")
    assert isinstance(run.error, BackendError)
    assert run.stdout.strip().endswith(
        "Dockyter: nothing answers at http://127.0.0.1:9/execute (Connection refused): "
        "check api_url and that the service is running\x1b[0m"
    )
    assert "Traceback" not in everything(run)


def test_status_when_the_backend_is_chosen(ip, server):
    with capture_output() as captured:
        ip.run_line_magic("docker_backend", f"api {server.url}")
    shown = captured.stdout + "".join(str(o.data) for o in captured.outputs)
    assert f"yes: {server.url} answers (version test)" in shown
    with capture_output() as captured:
        ip.run_cell("%docker_backend api ftp://example.org")
    assert "api_url 'ftp://example.org' is not an http:// or https:// URL" in captured.stderr
    assert ip._dockyter.api_url == server.url  # refused, unchanged
