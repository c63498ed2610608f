"""The API backend against examples/minimal_server.py: a server that knows only the original contract.

The server is started as its own process on 127.0.0.1 and runs real containers; the client
is driven through the magics in a real InteractiveShell, as a notebook user would.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import dockyter_containers, wait_until
from IPython.utils.capture import capture_output
from IPython.utils.text import SList

from dockyter.errors import Interrupted

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minimal_server.py"


@pytest.fixture(scope="module")
def minimal_server() -> Iterator[str]:
    """The example server on a free port; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    match = re.search(r"http://[\d.]+:\d+", banner)
    assert match, f"the example server did not start: {banner!r}"
    yield match.group(0)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def api_cell(ip, cell, minimal_server):
    """``cell`` with the API backend pointed at the minimal server."""
    with capture_output():
        ip.run_line_magic("docker_backend", f"api {minimal_server}")
    return cell


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


# -- the example itself ---------------------------------------------------------------------------------


def test_health_and_errors(minimal_server):
    with urllib.request.urlopen(minimal_server + "/health", timeout=10) as answer:
        assert answer.status == 200
    assert post(minimal_server + "/execute", b"not json") == (
        422,
        {"detail": 'expected JSON {"cmd": "...", "args": "..."}'},
    )
    assert post(minimal_server + "/nowhere", b"{}")[0] == 404


@pytest.mark.docker
def test_original_contract_reply(minimal_server, test_image):
    body = json.dumps({"cmd": "echo out; echo err >&2; exit 3", "args": f"-e X=1 {test_image}"}).encode()
    assert post(minimal_server + "/execute", body) == (200, {"stdout": "out\n", "stderr": "err\n"})


# -- the client through the magics ----------------------------------------------------------------------------


@pytest.mark.docker
def test_cell_output_and_stderr(api_cell, test_image):
    run = api_cell(
        f"%%docker -e 'GREETING=hello there' {test_image}\ncd /tmp\necho \"$GREETING from $(pwd)\"\necho oops >&2"
    )
    assert run.error is None
    assert run.stdout == "hello there from /tmp\n"
    assert run.stderr == "oops\n"


@pytest.mark.docker
def test_exit_status_is_taken_as_zero(api_cell, ip, test_image):
    # The original contract has no exit code: a failing command cannot be told from a success.
    run = api_cell(f"%%docker {test_image}\necho before; exit 3")
    assert run.error is None
    assert ip.user_ns["_exit_code"] == 0
    assert run.stdout == "before\n"


@pytest.mark.docker
def test_out_and_err_variables(api_cell, ip, test_image):
    run = api_cell(f"%%docker --out o --err e {test_image}\necho kept; echo oops >&2")
    assert (ip.user_ns["o"], ip.user_ns["e"]) == ("kept\n", "oops\n")
    assert (run.stdout, run.stderr) == ("", "")  # captured instead of shown, as %%bash does


@pytest.mark.docker
def test_bang_and_captured_bang(api_cell, ip, test_image):
    api_cell(f"%docker {test_image}")
    run = api_cell("!echo via bang; echo err >&2")
    assert (run.stdout, run.stderr) == ("via bang\n", "err\n")
    assert ip.user_ns["_exit_code"] == 0
    api_cell("x = !echo one; echo two >&2; echo three")
    # An old server returns the streams apart: the client appends stderr after stdout.
    assert isinstance(ip.user_ns["x"], SList)
    assert list(ip.user_ns["x"]) == ["one", "three", "two"]


@pytest.mark.docker
def test_status(ip, minimal_server):
    with capture_output() as captured:
        ip.run_line_magic("docker_backend", f"api {minimal_server}")
    shown = str(captured.outputs[0].data["text/plain"]) if captured.outputs else captured.stdout
    assert re.search(r"available\s+yes: http://127\.0\.0\.1:\d+ answers", shown)
    assert "token" in shown and "not set" in shown


@pytest.mark.docker
def test_interrupt_can_only_close_the_connection(api_cell, ip, test_image):
    marker = f"test.api.run={uuid.uuid4().hex[:12]}"  # only this test's container carries it
    main = threading.main_thread().ident
    assert main is not None

    def interrupt_once_running() -> None:
        if wait_until(lambda: dockyter_containers(marker), timeout=20, interval=0.05):
            time.sleep(0.3)
            signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt_once_running, daemon=True).start()
    started = time.monotonic()
    run = api_cell(f"%%docker --label {marker} {test_image}\nsleep 3")
    assert time.monotonic() - started < 2.5  # the cell returns at once...
    assert isinstance(run.error, Interrupted)
    assert ip.user_ns["_exit_code"] == 130
    assert "gave no execution id to cancel" in run.stdout + run.stderr
    # ...while this server lets its container run to the end, as docs/api-backend.md says
    assert dockyter_containers(marker)
    assert wait_until(lambda: not dockyter_containers(marker), timeout=15)
