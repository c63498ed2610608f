"""The API backend against a scripted HTTP server on 127.0.0.1: the wire, the stream, every failure.

No container engine needed: the server answers with canned replies (see scripted_server.py),
so each test can make it misbehave exactly as it wants.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from helpers import wait_until
from scripted_server import (
    CUT,
    Reply,
    ScriptedServer,
    event,
    heartbeats,
    json_reply,
    stream,
)
from sinks import TimedSink
from traitlets import TraitError

from dockyter.backends.api.apibackend import APIBackend
from dockyter.backends.base import RunRequest, RunResult
from dockyter.backends.settings import StaticSettings
from dockyter.core import Dockyter
from dockyter.errors import BackendError
from dockyter.output import OutputSink
from dockyter.wire.contract import EXIT_INTERRUPTED, EXIT_TIMEOUT
from dockyter.wire.dockerargs import parse_run_args

TOKEN = "tok-Sup3rSecret-4711"


# -- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


@pytest.fixture
def settings(server: ScriptedServer) -> StaticSettings:
    """Backend settings as plain values (no IPython, no traits), pointed at the scripted server."""
    return StaticSettings(api_url=server.url)


@pytest.fixture
def backend(settings: StaticSettings) -> Iterator[APIBackend]:
    api = APIBackend(settings)
    yield api
    api.close()


def request(command: str = "echo hi", args: str = "-e X=1 img:1", **fields) -> RunRequest:
    return RunRequest(args=parse_run_args(args), command=command, **fields)


def run(backend: APIBackend, **fields) -> tuple[RunResult, TimedSink]:
    sink = TimedSink()
    return backend.run(request(**fields), sink), sink


def failure(backend: APIBackend, **fields) -> str:
    with pytest.raises(BackendError) as caught:
        run(backend, **fields)
    message = str(caught.value)
    assert "\n" not in message  # one line
    return message


def interrupt_when(condition: Callable[[], object]) -> threading.Thread:
    """Deliver SIGINT to the main thread (as Ctrl-C would) once ``condition()`` is true.

    pthread_kill, not os.kill: the signal must interrupt the main thread's blocking socket read.
    """
    main = threading.main_thread().ident
    assert main is not None

    def fire() -> None:
        if wait_until(condition, timeout=10, interval=0.02):
            signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the streamed reply ------------------------------------------------------------------------------


def test_streamed_output_reaches_the_sink(server, backend):
    server.routes["POST", "/execute"] = stream(
        event("start", id="x1"),
        event("stdout", data="out 1\n"),
        event("heartbeat"),
        event("stderr", data="warn\n"),
        event("stdout", data="out 2\n"),
        event("exit", code=0, reason=None, message=None),
    )
    result, sink = run(backend)
    assert result == RunResult(0, None, None)
    assert sink.text("stdout") == "out 1\nout 2\n"
    assert sink.text("stderr") == "warn\n"
    assert server.requests_to("/executions/x1/cancel") == []  # a finished run is not cancelled


def test_the_first_line_arrives_while_the_command_still_runs(server, backend):
    server.routes["POST", "/execute"] = stream(
        event("start", id="x1"),
        event("stdout", data="first\n"),
        1.5,
        event("stdout", data="second\n"),
        event("exit", code=0),
    )
    started = time.monotonic()
    result, sink = run(backend)
    finished = time.monotonic()
    assert result.exit_code == 0
    (first_at, first), (second_at, second) = sink.arrivals
    assert (first, second) == ("first\n", "second\n")
    assert first_at - started < 0.7  # not held back until the stream ended
    assert finished - first_at >= 1.4


def test_request_keeps_the_original_fields_and_negotiates_a_stream(server, backend):
    server.routes["POST", "/execute"] = stream(event("start", id="a"), event("exit", code=0))
    run(backend, command="echo 'a b'\nls", args="-v /d:/data -e 'X=a b' img:1")
    (sent,) = server.requests_to("/execute")
    assert sent.body == {"cmd": "echo 'a b'\nls", "args": "-v /d:/data -e 'X=a b' img:1"}
    assert sent.headers["accept"] == "application/x-ndjson, application/json;q=0.9"
    assert sent.headers["accept-encoding"] == "identity"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers


def test_optional_fields_are_sent_when_they_apply(server, backend):
    server.routes["POST", "/execute"] = stream(event("start", id="a"), event("exit", code=0))
    run(backend, timeout=30.0, shell=("sh", "-c"), merge_stderr=True)
    (sent,) = server.requests_to("/execute")
    assert sent.body["timeout"] == 30.0
    assert sent.body["shell"] == ["sh", "-c"]
    assert sent.body["merge_stderr"] is True


def test_token_and_extra_headers(server, backend, settings):
    settings.api_token = TOKEN
    settings.api_headers = {"X-Team": "data"}
    server.routes["POST", "/execute"] = stream(event("start", id="a"), event("exit", code=0))
    run(backend)
    (sent,) = server.requests_to("/execute")
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["x-team"] == "data"


def test_the_token_defaults_to_the_environment(server, monkeypatch):
    monkeypatch.setenv("DOCKYTER_API_TOKEN", TOKEN)
    backend = APIBackend(Dockyter(api_url=server.url))  # the trait's default, read by the backend
    server.routes["POST", "/execute"] = json_reply({"stdout": "", "stderr": ""})
    run(backend)
    assert server.requests_to("/execute")[0].headers["authorization"] == f"Bearer {TOKEN}"
    backend.close()


def test_exit_event_carries_code_reason_and_message(server, backend):
    server.routes["POST", "/execute"] = stream(
        event("start", id="a"), event("exit", code=124, reason="timeout", message="timed out after 5 s")
    )
    assert run(backend, timeout=5.0)[0] == RunResult(124, "timeout", "timed out after 5 s")
    server.routes["POST", "/execute"] = stream(event("start", id="a"), event("exit", code=3))
    assert run(backend)[0] == RunResult(3, None, None)


def test_merge_not_honoured_by_a_streaming_server(server, backend):
    server.routes["POST", "/execute"] = stream(
        event("start", id="a"), event("stdout", data="one\n"), event("stderr", data="two\n"), event("exit", code=0)
    )
    _, sink = run(backend, merge_stderr=True)
    assert (sink.text("stdout"), sink.text("stderr")) == ("one\ntwo\n", "")


def test_error_event_is_one_line(server, backend):
    server.routes["POST", "/execute"] = stream(event("start", id="a"), event("error", message="engine unreachable"))
    assert failure(backend) == "the API could not run the command: engine unreachable"
    assert server.requests_to("/executions/a/cancel") == []  # nothing left to cancel


# -- the plain JSON reply (the original contract) ------------------------------------------------------


def test_plain_json_reply(server, backend):
    server.routes["POST", "/execute"] = json_reply({"stdout": "out\n", "stderr": "err\n"})
    result, sink = run(backend)
    assert result == RunResult(0, None, None)  # no exit_code: taken as success
    assert (sink.text("stdout"), sink.text("stderr")) == ("out\n", "err\n")


def test_plain_json_reply_with_extra_fields(server, backend):
    server.routes["POST", "/execute"] = json_reply(
        {"stdout": "", "stderr": "boom\n", "exit_code": 2, "execution_id": "e", "reason": None, "message": None}
    )
    assert run(backend)[0] == RunResult(2, None, None)


def test_old_server_merge(server, backend):
    server.routes["POST", "/execute"] = json_reply({"stdout": "out\n", "stderr": "err\n"})
    _, sink = run(backend, merge_stderr=True)
    assert (sink.text("stdout"), sink.text("stderr")) == ("out\nerr\n", "")


# -- failures: one clear line each ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, token, expected",
    [
        (
            json_reply({"detail": "no token"}, 401),
            "",
            "the API needs a token: set Dockyter.api_token or $DOCKYTER_API_TOKEN",
        ),
        (
            json_reply({"detail": "bad"}, 401),
            TOKEN,
            "the API refused the token: set Dockyter.api_token or $DOCKYTER_API_TOKEN",
        ),
        (
            json_reply({"detail": "--privileged is not allowed"}, 403),
            TOKEN,
            "the API refused the request: --privileged is not allowed",
        ),
        (
            json_reply({"detail": "Not Found"}, 404),
            "",
            "no Dockyter API at {url} (POST /execute answered 404): check api_url",
        ),
        (
            json_reply({"detail": "body over 1 MiB"}, 413),
            "",
            "the API refused the request as too large (413): body over 1 MiB",
        ),
        (
            json_reply({"detail": "12 executions running"}, 429, **{"Retry-After": "7"}),
            "",
            "the API is busy; retry in 7 s (12 executions running)",
        ),
        (Reply(429, {}, [b"busy"]), "", "the API is busy; retry later (busy)"),
        (
            json_reply({"detail": "cannot reach the container engine"}, 503),
            "",
            "the API answered 503 Service Unavailable: cannot reach the container engine",
        ),
        (
            json_reply({"detail": [{"loc": ["body", "cmd"], "msg": "Field required"}]}, 422),
            "",
            "the API answered 422 Unprocessable Entity: cmd: Field required",
        ),
        (
            Reply(
                502,
                {"Content-Type": "text/html"},
                [b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"],
            ),
            "",
            "the API answered 502 Bad Gateway: 502 Bad Gateway",
        ),
        (
            Reply(307, {"Location": "https://elsewhere.example/execute"}),
            "",
            "the API at {url}/execute redirects to https://elsewhere.example/execute: set api_url to the service's real address",
        ),
    ],
    ids=[
        "401-no-token",
        "401-bad-token",
        "403",
        "404",
        "413",
        "429-retry-after",
        "429",
        "503",
        "422",
        "502-html",
        "307",
    ],
)
def test_http_refusals(server, backend, settings, reply, token, expected):
    settings.api_token = token
    server.routes["POST", "/execute"] = reply
    server.routes["GET", "/health"] = json_reply({"status": "ok"})
    assert failure(backend) == expected.format(url=server.url)


def test_a_5xx_message_says_whether_the_service_still_answers(server, backend):
    server.routes["POST", "/execute"] = json_reply({"detail": "internal error"}, 500)
    assert failure(backend) == "the API answered 500 Internal Server Error: internal error (and /health answers 404)"


@pytest.mark.parametrize(
    "body, excerpt",
    [
        (b"<html>hello</html>", "<html>hello</html>"),
        (b"", "(empty body)"),
        (b'{"result": "done"}', '{"result": "done"}'),
        (b"[1, 2]", "[1, 2]"),
    ],
)
def test_a_2xx_body_that_is_not_the_expected_json(server, backend, body, excerpt):
    server.routes["POST", "/execute"] = Reply(200, {"Content-Type": "application/json"}, [body] if body else [])
    message = failure(backend)
    assert message.startswith(f"the API answered {server.url}/execute with something other than the expected JSON")
    assert message.endswith(excerpt)


def test_a_stream_line_that_is_not_json(server, backend):
    server.routes["POST", "/execute"] = stream(event("start", id="a"), b"Traceback (most recent call last):\n")
    assert failure(backend) == "the API stream sent a line that is not a JSON event: Traceback (most recent call last):"
    assert wait_until(lambda: server.requests_to("/executions/a/cancel"), timeout=5)  # and it is cancelled


def test_a_stream_that_ends_without_an_exit_event(server, backend):
    server.routes["POST", "/execute"] = stream(event("start", id="a"), event("stdout", data="partial\n"))
    server.routes["GET", "/health"] = json_reply({"status": "ok"})
    server.routes["POST", "/executions/a/cancel"] = json_reply({"id": "a", "cancelled": True})
    assert failure(backend) == "the API stream ended before the command finished"
    assert server.requests_to("/executions/a/cancel")


def test_a_stream_cut_in_the_middle(server, backend):
    server.routes["POST", "/execute"] = stream(event("start", id="a"), event("stdout", data="partial\n"), CUT)
    message = failure(backend)
    assert message.startswith("the API stream ended before the command finished")


def test_a_lost_stream_says_when_the_service_is_gone_too(server, backend):
    def answer_then_die(_):
        threading.Thread(target=server.stop, daemon=True).start()
        reply = stream(event("start", id="a"), 1.5)
        reply.headers["Connection"] = "close"  # or the client could ask /health on this same connection
        return reply

    server.routes["POST", "/execute"] = answer_then_die
    message = failure(backend)
    assert message.startswith("the API stream ended before the command finished")
    assert message.endswith("(and the service no longer answers /health: it may have restarted or gone down)")


def test_unreachable_host(backend, settings):
    url = f"http://127.0.0.1:{free_port()}"
    settings.api_url = url
    assert failure(backend) == (
        f"nothing answers at {url}/execute (Connection refused): check api_url and that the service is running"
    )


def test_unknown_host_name(backend, settings):
    settings.api_url = "http://no-such-host.invalid:8000"
    message = failure(backend)
    assert message.startswith("nothing answers at http://no-such-host.invalid:8000/execute (")


def test_a_server_that_hangs_up_without_answering(backend, settings):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def hang_up() -> None:
            connection, _ = listener.accept()
            connection.recv(65536)
            connection.close()

        threading.Thread(target=hang_up, daemon=True).start()
        settings.api_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert failure(backend) == f"the API at {settings.api_url}/execute closed the connection without answering"


def test_a_server_that_resets_the_connection_without_answering(backend, settings):
    # SO_LINGER 0 makes close() send a reset at once, as a server that hangs up on unread data does.
    # Depending on timing the client sees the reset or a plain end of stream: both read the same.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def reset() -> None:
            connection, _ = listener.accept()
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()

        threading.Thread(target=reset, daemon=True).start()
        settings.api_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert failure(backend) == f"the API at {settings.api_url}/execute closed the connection without answering"


def test_an_empty_api_url_is_explained(backend, settings):
    settings.api_url = ""
    expected = "no api_url set: set Dockyter.api_url or use %docker_backend api URL"
    assert failure(backend) == expected
    assert backend.status().available is False
    assert backend.status().detail == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        ("ftp://example.org", "api_url 'ftp://example.org' is not an http:// or https:// URL"),
        ("localhost:8000", "api_url 'localhost:8000' is not an http:// or https:// URL"),
        ("http://h/?x=1", "api_url 'http://h/?x=1' must not have a query or fragment"),
    ],
)
def test_a_bad_api_url_is_refused_by_the_trait(server, url, expected):
    settings = Dockyter(api_url=server.url)
    before = settings.api_url
    with pytest.raises(TraitError, match=re.escape(expected)):
        settings.api_url = url
    assert settings.api_url == before


def test_a_trailing_slash_is_fine(server, backend, settings):
    settings.api_url = server.url + "/"
    server.routes["POST", "/execute"] = json_reply({"stdout": "ok\n", "stderr": ""})
    assert run(backend)[1].text("stdout") == "ok\n"


# -- time -------------------------------------------------------------------------------------------------


def test_idle_stream_is_abandoned_and_cancelled(server, backend, settings):
    settings.api_idle_timeout = 1.0
    server.routes["POST", "/execute"] = stream(event("start", id="quiet"), 5.0, event("exit", code=0))
    server.routes["POST", "/executions/quiet/cancel"] = json_reply({"id": "quiet", "cancelled": True})
    started = time.monotonic()
    message = failure(backend)
    assert time.monotonic() - started < 3
    assert message == (
        "the API sent nothing for 1 s (no output, no heartbeat): the run was abandoned; "
        "raise Dockyter.api_idle_timeout if the server is just slow"
    )
    assert server.requests_to("/executions/quiet/cancel")


def test_heartbeats_keep_a_quiet_run_alive(server, backend, settings):
    settings.api_idle_timeout = 1.0
    server.routes["POST", "/execute"] = stream(
        event("start", id="a"), *heartbeats(0.3, 8), event("stdout", data="done\n"), event("exit", code=0)
    )
    result, sink = run(backend)
    assert result.exit_code == 0 and sink.text("stdout") == "done\n"


def test_no_total_time_limit_while_a_plain_server_works(server, backend, settings):
    # An original-contract server answers only at the end: the idle limit must not cut it short.
    settings.api_idle_timeout = 1.0
    server.routes["POST", "/execute"] = Reply(
        200, {"Content-Type": "application/json"}, [b'{"stdout": "late\\n", "stderr": ""}'], delay=2.0
    )
    result, sink = run(backend)
    assert result.exit_code == 0 and sink.text("stdout") == "late\n"


def test_timeout_is_enforced_when_a_streaming_server_ignores_it(server, backend):
    server.routes["POST", "/execute"] = stream(
        event("start", id="slow"), event("stdout", data="started\n"), *heartbeats(0.2, 100)
    )
    server.routes["POST", "/executions/slow/cancel"] = json_reply({"id": "slow", "cancelled": True})
    started = time.monotonic()
    result, sink = run(backend, timeout=0.5)
    assert time.monotonic() - started < 4.5
    assert result == RunResult(EXIT_TIMEOUT, "timeout", "timed out after 0.5 s: execution slow cancelled")
    assert sink.text("stdout") == "started\n"
    assert server.requests_to("/executions/slow/cancel")


def test_timeout_while_a_plain_server_is_still_working(server, backend):
    server.routes["POST", "/execute"] = Reply(200, {}, [b'{"stdout": "", "stderr": ""}'], delay=10.0)
    started = time.monotonic()
    result, _ = run(backend, timeout=0.5)
    assert time.monotonic() - started < 4.5
    assert result.exit_code == EXIT_TIMEOUT and result.reason == "timeout"
    assert result.message.startswith("timed out after 0.5 s: connection closed; this server gave no execution id")


# -- interrupt ----------------------------------------------------------------------------------------------


def test_interrupt_closes_the_stream_and_cancels(server, backend, settings):
    settings.api_token = TOKEN
    server.routes["POST", "/execute"] = stream(
        event("start", id="run-1"), event("stdout", data="started\n"), *heartbeats(0.1, 300)
    )
    server.routes["POST", "/executions/run-1/cancel"] = json_reply({"id": "run-1", "cancelled": True})
    sink = TimedSink()
    interrupt_when(lambda: sink.arrivals)
    started = time.monotonic()
    result = backend.run(request(), sink)
    assert time.monotonic() - started < 5
    assert result == RunResult(EXIT_INTERRUPTED, "interrupted", "interrupted: execution run-1 cancelled")
    (cancel,) = server.requests_to("/executions/run-1/cancel")
    assert cancel.headers["authorization"] == f"Bearer {TOKEN}"
    assert wait_until(lambda: "/execute" in server.disconnects, timeout=5)  # the stream was closed


def test_interrupt_against_a_server_without_cancel(server, backend):
    server.routes["POST", "/execute"] = stream(
        event("start", id="run-2"), event("stdout", data="started\n"), *heartbeats(0.1, 300)
    )
    sink = TimedSink()
    interrupt_when(lambda: sink.arrivals)
    result = backend.run(request(), sink)
    assert result.reason == "interrupted"
    assert result.message == "interrupted: connection closed; the API has no running execution run-2 to cancel"


def test_interrupt_against_an_original_contract_server(server, backend):
    server.routes["POST", "/execute"] = Reply(200, {}, [b"{}"], delay=30.0)
    interrupt_when(lambda: server.received)
    started = time.monotonic()
    result = backend.run(request(), TimedSink())
    assert time.monotonic() - started < 5
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.message == (
        "interrupted: connection closed; this server gave no execution id to cancel, "
        "so whether its container stops is up to the server"
    )
    assert [r.path for r in server.received] == ["/execute"]


# -- status, describe, and the token -------------------------------------------------------------------------


def test_status_of_a_dockyter_server(server, backend, settings):
    settings.api_token = TOKEN
    server.routes["GET", "/health"] = json_reply(
        {"status": "ok", "version": "0.4.0", "features": ["stream", "cancel"], "token": "accepted"}
    )
    status = backend.status()
    assert status.available is True
    assert status.detail == f"{server.url} answers (version 0.4.0)"
    assert status.facts["token"] == "accepted"
    assert status.facts["server features"] == "stream, cancel"
    assert server.requests_to("/health")[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_status_when_the_token_is_rejected(server, backend, settings):
    settings.api_token = TOKEN
    server.routes["GET", "/health"] = json_reply({"status": "ok", "token": "rejected"})
    status = backend.status()
    assert status.available is True
    assert status.detail.endswith("but it rejects the token: set Dockyter.api_token or $DOCKYTER_API_TOKEN")
    assert status.facts["token"] == "rejected"


def test_status_of_an_original_contract_server(server, backend):
    server.routes["GET", "/health"] = Reply(200, {"Content-Type": "text/plain"}, [b"ok"])
    status = backend.status()
    assert (status.available, status.detail, status.facts["token"]) == (True, f"{server.url} answers", "not set")
    assert "authorization" not in server.requests_to("/health")[0].headers


def test_status_when_unavailable(server, backend, settings):
    server.routes["GET", "/health"] = json_reply({"detail": "draining"}, 503)
    assert (backend.status().available, backend.status().detail) == (
        False,
        f"{server.url}/health answered 503: draining",
    )
    settings.api_url = f"http://127.0.0.1:{free_port()}"
    status = backend.status()
    assert status.available is False
    assert status.detail.startswith(f"nothing answers at {settings.api_url}/health (Connection refused)")


def test_describe_is_a_curl_command_that_works(server, backend, settings, tmp_path):
    settings.api_token = TOKEN
    server.routes["POST", "/execute"] = stream(
        event("start", id="c"), event("stdout", data="from curl\n"), event("exit", code=0)
    )
    line = backend.describe(request(command='echo "it\'s" $HOME', timeout=9.0))
    assert TOKEN not in line
    assert '-H "Authorization: Bearer $DOCKYTER_API_TOKEN"' in line
    answer = subprocess.run(
        ["bash", "-c", line],
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "DOCKYTER_API_TOKEN": TOKEN},
    )
    assert '"data": "from curl\\n"' in answer.stdout
    (sent,) = server.requests_to("/execute")
    assert sent.body == {"cmd": 'echo "it\'s" $HOME', "args": "-e X=1 img:1", "timeout": 9.0}
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"


def test_the_token_never_shows(server, backend, settings):
    settings.api_token = TOKEN
    settings.api_headers = {"X-Api-Key": "also-secret", "X-Team": "data"}
    server.routes["POST", "/execute"] = json_reply({"detail": f"token {TOKEN} is not allowed to use --privileged"}, 403)
    server.routes["GET", "/health"] = json_reply({"status": f"hello {TOKEN}", "version": TOKEN})
    texts = [failure(backend), repr(backend), backend.describe(request())]
    status = backend.status()
    texts += [status.detail, *status.facts.values()]
    assert not [text for text in texts if TOKEN in text]
    assert "the API refused the request: token <token> is not allowed to use --privileged" in texts
    assert "also-secret" not in texts[2] and "X-Team: data" in texts[2]


def test_connect_timeout(backend, settings):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: one connection fills the queue, the next one hangs
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            settings.api_url = f"http://127.0.0.1:{port}"
            settings.api_connect_timeout = 0.5
            started = time.monotonic()
            message = failure(backend)
    assert time.monotonic() - started < 3
    assert message == (
        f"http://127.0.0.1:{port}/execute did not accept a connection within 0.5 s "
        "(Dockyter.api_connect_timeout): check api_url and the network"
    )


class CountingSink(OutputSink):
    def __init__(self) -> None:
        super().__init__(show=False, capture=False)
        self.characters = 0

    def write(self, stream: str, text: str) -> None:  # type: ignore[override]
        self.characters += len(text)


def test_large_output_streams_in_flat_memory(server, backend):
    import tracemalloc

    chunk = "x" * 32767 + "\n"
    count = 640  # 20 MiB
    line = event("stdout", data=chunk)
    server.routes["POST", "/execute"] = stream(event("start", id="big"), *[line] * count, event("exit", code=0))
    sink = CountingSink()
    tracemalloc.start()
    try:
        result = backend.run(request(), sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0
    assert sink.characters == len(chunk) * count
    assert peak < 2 * 1024 * 1024  # a few events' worth, not the 20 MiB that went through


def test_a_compressed_stream_is_still_read(server, backend):
    # We ask for identity (a compressor holds output back), but a proxy may gzip anyway.
    import gzip

    body = gzip.compress(event("start", id="z") + event("stdout", data="zipped\n") + event("exit", code=0))
    server.routes["POST", "/execute"] = Reply(
        200, {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}, [body]
    )
    result, sink = run(backend)
    assert (result.exit_code, sink.text("stdout")) == (0, "zipped\n")


def test_requests_is_imported_only_with_the_api_backend():
    code = (
        "import sys, dockyter.ipython.magics, dockyter.ipython.extension, dockyter.backends.docker.dockerbackend; before = 'requests' in sys.modules; "
        "from dockyter.backends.registry import backend_class; backend_class('api'); print(before, 'requests' in sys.modules)"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert answer.stdout.split() == ["False", "True"]


@pytest.fixture
def tls_server(tmp_path, monkeypatch) -> Iterator[tuple[ScriptedServer, str]]:
    """An https:// scripted server with a fresh self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", key, "-out", cert,
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    scripted = ScriptedServer(tls=(cert, key))
    scripted.routes["POST", "/execute"] = json_reply({"stdout": "over tls\n", "stderr": ""})
    yield scripted, cert
    scripted.stop()


def test_tls_verification(tls_server, monkeypatch):
    import warnings

    server, cert = tls_server
    settings = StaticSettings(api_url=server.url)
    backend = APIBackend(settings)
    try:
        message = failure(backend)
        assert message.startswith(f"TLS verification of {server.url}/execute failed (")
        assert message.count("(") == message.count(")"), message
        assert message.endswith(
            "set Dockyter.api_ca_bundle to the CA that signed its certificate (or Dockyter.api_verify = False, for testing only)"
        )
        settings.api_ca_bundle = cert
        assert run(backend)[1].text("stdout") == "over tls\n"
        assert backend.status().facts["tls"] == f"verified with {cert}"
        settings.api_ca_bundle = "/nonexistent/ca.pem"
        assert failure(backend).startswith("cannot use Dockyter.api_ca_bundle = '/nonexistent/ca.pem': ")
        settings.api_ca_bundle = ""
        settings.api_verify = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning: deliberate here
            assert run(backend)[1].text("stdout") == "over tls\n"
        assert "--insecure" in backend.describe(request())
    finally:
        backend.close()


def test_a_remote_sessions_memory_is_the_figure_the_server_reports(server, backend):
    """``memory_bytes`` in the session's reply (GET /sessions/{id}), shown as docker stats writes it;
    without it, or when the server does not answer, there is no figure. dockyter-server does not
    report it yet (test_session_api.py checks the "-" it gets): a scripted server stands for one that does."""
    server.routes[("GET", "/health")] = json_reply({"status": "ok", "features": ["sessions"]})
    server.routes[("POST", "/sessions")] = json_reply({"id": "abc", "name": "s", "container": "c1"}, 201)
    server.routes[("GET", "/sessions/abc")] = json_reply({"id": "abc", "memory_bytes": 13107200})
    session = backend.open_session("s", parse_run_args("img:1"))
    assert session.memory() == "12.5MiB"
    for reply in ({"id": "abc"}, {"memory_bytes": "12MiB"}, {"memory_bytes": True}, {"memory_bytes": -1}):
        server.routes[("GET", "/sessions/abc")] = json_reply(reply)
        assert session.memory() is None, reply
    server.routes[("GET", "/sessions/abc")] = json_reply({"detail": "Not Found"}, 404)
    assert session.memory() is None
