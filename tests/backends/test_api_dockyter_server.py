"""The API backend against dockyter-server running real containers: the full contract, end to end.

One server (servers.start_server, real uvicorn on 127.0.0.1) serves the module;
tests that need other server settings start their own with the ``dockyter_server`` factory.
Every container a test starts carries a label unique to that test, so "it is gone" is
checked on exactly that container, whatever else shares the engine.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from helpers import dockyter_containers, wait_until
from IPython.utils.capture import capture_output
from IPython.utils.text import SList
from servers import RunningServer, start_server
from sinks import TimedSink

from dockyter.backends.api.apibackend import APIBackend
from dockyter.backends.base import RunRequest
from dockyter.backends.settings import StaticSettings
from dockyter.errors import BackendError, ContainerExitError, Interrupted
from dockyter.output import OutputSink
from dockyter.wire.contract import EXIT_INTERRUPTED
from dockyter.wire.dockerargs import parse_run_args

pytest.importorskip("fastapi", reason="dockyter-server needs the 'server' extra")
pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start_server(heartbeat_interval=0.5)
    yield running
    running.stop()


# -- helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def marker() -> str:
    """A label only this test's containers carry: ``--label MARKER``."""
    return f"test.api.run={uuid.uuid4().hex[:12]}"


def containers(marker: str) -> list[str]:
    return dockyter_containers(marker)


@pytest.fixture
def api(ip, server):
    """The shell's Dockyter on the API backend, at dockyter-server, with its token."""
    ip.run_line_magic("config", f"Dockyter.api_token = {server.token!r}")
    with capture_output() as captured:
        ip.run_line_magic("docker_backend", f"api {server.url}")
    return captured


def shown(captured) -> str:
    return captured.stdout + captured.stderr + "".join(str(o.data) for o in captured.outputs)


def interrupt_when(condition) -> None:
    """SIGINT to the main thread (as Ctrl-C would) once ``condition()`` holds."""
    main = threading.main_thread().ident
    assert main is not None

    def fire() -> None:
        if wait_until(condition, timeout=20, interval=0.05):
            time.sleep(0.3)
            signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=fire, daemon=True).start()


# -- through the magics ------------------------------------------------------------------------------


def test_status_says_the_token_is_accepted(api, server):
    text = shown(api)
    assert re.search(rf"yes: {re.escape(server.url)} answers \(version [\w.]+\)", text)
    assert "accepted" in text and "stream" in text
    assert server.token not in text


def test_cell_output_and_exit_status(api, cell, ip, test_image):
    run = cell(
        f"%%docker -e 'GREETING=hello there' {test_image}\ncd /tmp\necho \"$GREETING from $(pwd)\"\necho oops >&2"
    )
    assert run.error is None
    assert (run.stdout, run.stderr) == ("hello there from /tmp\n", "oops\n")
    assert ip.user_ns["_exit_code"] == 0
    run = cell(f"%%docker {test_image}\necho before; exit 3")
    assert isinstance(run.error, ContainerExitError) and run.error.returncode == 3
    assert ip.user_ns["_exit_code"] == 3
    assert "exited with status 3" in run.stdout
    assert cell(f"%%docker --no-raise-error {test_image}\nexit 4").error is None
    assert ip.user_ns["_exit_code"] == 4


def test_out_and_err(api, cell, ip, test_image):
    run = cell(f"%%docker --out o --err e {test_image}\necho kept; echo oops >&2")
    assert (ip.user_ns["o"], ip.user_ns["e"]) == ("kept\n", "oops\n")
    assert (run.stdout, run.stderr) == ("", "")  # captured instead of shown, as %%bash does


def test_bang_and_captured_bang(api, cell, ip, test_image):
    cell(f"%docker {test_image}")
    run = cell("!echo via bang; echo err >&2; exit 2")
    assert (run.stdout, run.stderr) == ("via bang\n", "err\n")
    assert ip.user_ns["_exit_code"] == 2
    run = cell("x = !echo one; echo two >&2; echo three")
    assert run.stdout == ""
    assert isinstance(ip.user_ns["x"], SList)
    assert list(ip.user_ns["x"]) == ["one", "two", "three"]  # merged by the server, in order


def test_timeout_stops_the_container(api, cell, ip, test_image, marker):
    started = time.monotonic()
    # 3 s: the timeout counts from the request, and a container may take a second to start on a busy engine.
    run = cell(f"%%docker --timeout 3 --label {marker} {test_image}\necho started; sleep 60; echo never")
    assert time.monotonic() - started < 20
    assert run.stdout.startswith("started\n") and "never" not in run.stdout
    assert ip.user_ns["_exit_code"] == 124
    assert isinstance(run.error, ContainerExitError)
    assert "timed out" in str(run.error)
    assert wait_until(lambda: not containers(marker), timeout=10)


def test_interrupt_cancels_and_the_container_is_gone(api, cell, ip, test_image, marker):
    interrupt_when(lambda: containers(marker))
    started = time.monotonic()
    run = cell(f"%%docker --label {marker} {test_image}\necho started; sleep 60")
    assert time.monotonic() - started < 15
    assert isinstance(run.error, Interrupted)
    assert ip.user_ns["_exit_code"] == 130
    text = run.stdout + run.stderr
    assert re.search(
        r"interrupted: (execution \S+ cancelled|connection closed; the API has no running execution)", text
    )
    assert wait_until(lambda: not containers(marker), timeout=10)
    assert cell(f"%%docker {test_image}\necho alive").stdout == "alive\n"  # the shell goes on


def test_policy_refusal_is_one_line(api, cell, ip, test_image, server):
    run = cell(f"%%docker --privileged {test_image}\necho never")
    assert isinstance(run.error, BackendError)
    assert "Dockyter: the API refused the request: --privileged is not allowed" in run.stdout
    assert "never" not in run.stdout and "Traceback" not in run.stdout + run.stderr
    assert server.token not in run.stdout + run.stderr


def test_wrong_and_missing_token(ip, cell, server, test_image):
    with capture_output() as captured:
        ip.run_line_magic("docker_backend", f"api {server.url}")
        ip.run_line_magic("config", "Dockyter.api_token = 'not-the-right-token-at-all'")
        ip.run_line_magic("docker_status", "")
    assert "rejects the token" in shown(captured)
    run = cell(f"%%docker {test_image}\necho never")
    assert "Dockyter: the API refused the token: set Dockyter.api_token or $DOCKYTER_API_TOKEN" in run.stdout
    assert "not-the-right-token-at-all" not in run.stdout + run.stderr + shown(captured)
    ip.run_line_magic("config", "Dockyter.api_token = ''")
    run = cell(f"%%docker {test_image}\necho never")
    assert "Dockyter: the API needs a token: set Dockyter.api_token or $DOCKYTER_API_TOKEN" in run.stdout


def test_too_large_a_cell(api, cell, test_image):
    run = cell(f"%%docker {test_image}\n" + "# padding\n" * 200_000)
    assert "Dockyter: the API refused the request as too large (413)" in run.stdout


# -- the backend directly ------------------------------------------------------------------------------


@pytest.fixture
def backend(server) -> Iterator[APIBackend]:
    settings = StaticSettings(api_url=server.url, api_token=server.token)
    api = APIBackend(settings)
    yield api
    api.close()


def test_output_is_live(backend, test_image):
    sink = TimedSink()
    request = RunRequest(parse_run_args(test_image), "echo first; sleep 2; echo second")
    result = backend.run(request, sink)
    finished = time.monotonic()
    assert result.exit_code == 0
    assert sink.text("stdout") == "first\nsecond\n"
    first_at = sink.arrivals[0][0]
    assert finished - first_at >= 1.5  # the first line came while the command was still sleeping


def test_interrupt_of_the_backend_run(backend, test_image, marker):
    sink = TimedSink()
    interrupt_when(lambda: sink.arrivals)
    request = RunRequest(parse_run_args(["--label", marker, test_image]), "echo started; sleep 60")
    result = backend.run(request, sink)
    assert result.exit_code == EXIT_INTERRUPTED and result.reason == "interrupted"
    assert wait_until(lambda: not containers(marker), timeout=10)


def test_busy_server_says_when_to_retry(dockyter_server, test_image, marker):
    busy = dockyter_server(max_concurrent=1, retry_after=7)
    settings = StaticSettings(api_url=busy.url, api_token=busy.token)
    first, second = APIBackend(settings), APIBackend(settings)
    outcome: dict[str, object] = {}

    def occupy() -> None:
        request = RunRequest(parse_run_args(["--label", marker, test_image]), "sleep 3")
        outcome["first"] = first.run(request, OutputSink(show=False))

    occupant = threading.Thread(target=occupy)
    occupant.start()
    try:
        assert wait_until(lambda: containers(marker), timeout=20)
        with pytest.raises(BackendError) as caught:
            second.run(RunRequest(parse_run_args(test_image), "true"), OutputSink(show=False))
        assert str(caught.value).startswith("the API is busy; retry in 7 s")
    finally:
        occupant.join(30)
        first.close()
        second.close()
    assert outcome["first"].exit_code == 0  # type: ignore[union-attr]
