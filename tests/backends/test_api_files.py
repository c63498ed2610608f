"""The API backend's side of files and receipts, against a scripted server that may be hostile.

What a server sends after the output (``file``, ``files_omitted``) becomes the run's files; its
``receipt`` becomes the run's facts; the kernel's own limits hold whatever the server claims, and
a server that sends none of it (the original contract) still works. Through a real IPython shell,
the same events become rich outputs and ``Dockyter:`` lines.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from scripted_server import ScriptedServer, event, json_reply, stream
from sinks import TimedSink

from dockyter.backends.api.apibackend import APIBackend
from dockyter.backends.base import RunRequest
from dockyter.backends.settings import StaticSettings
from dockyter.receipts import RunFacts
from dockyter.wire.dockerargs import parse_run_args
from dockyter.wire.outfolder import DEFAULT_LIMITS, FileLimits, FoundFile

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
RECEIPT = {
    "image": "img:1",
    "digest": "img@sha256:" + "a" * 64,
    "image_id": "sha256:" + "b" * 64,
    "argv": ["--env=X=1", "img:1", "bash", "-lc"],
    "runtime": "runsc",
    "node": "engine-1",
}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


@pytest.fixture
def backend(server: ScriptedServer) -> Iterator[APIBackend]:
    api = APIBackend(StaticSettings(api_url=server.url))
    yield api
    api.close()


def run(backend: APIBackend, files: FileLimits | None = DEFAULT_LIMITS):
    request = RunRequest(args=parse_run_args("-e X=1 img:1"), command="plot", files=files)
    return backend.run(request, TimedSink())


def file_event(name: str, data: bytes, **extra) -> bytes:
    return event(
        "file", name=name, media_type="image/png", size=len(data), data=base64.b64encode(data).decode(), **extra
    )


def test_files_and_the_receipt_come_back_with_the_result(server, backend):
    server.routes["POST", "/execute"] = stream(
        event("start", id="e1"),
        event("receipt", **RECEIPT),
        event("stdout", data="plotted\n"),
        file_event("plot.png", PNG),
        event("file", name="link", media_type="application/octet-stream", size=0, problem="a symbolic link: not read"),
        event("files_omitted", count=3, message="3 more entries not read (max_files = 2)"),
        event("exit", code=0),
    )
    result = run(backend)
    assert result.exit_code == 0
    assert result.files is not None
    assert result.files.files == [
        FoundFile("plot.png", len(PNG), data=PNG),
        FoundFile("link", 0, problem="a symbolic link: not read"),
    ]
    assert (result.files.omitted, result.files.omitted_note) == (3, "3 more entries not read (max_files = 2)")
    assert result.facts == RunFacts(
        digest=RECEIPT["digest"],
        image_id=RECEIPT["image_id"],
        argv=tuple(RECEIPT["argv"]),
        runtime="runsc",
        node="engine-1",
    )


def test_the_limits_are_sent_only_when_they_are_not_the_defaults_and_false_turns_the_folder_off(server, backend):
    server.routes["POST", "/execute"] = stream(event("start", id="e1"), event("exit", code=0))
    run(backend)
    run(backend, files=FileLimits(1000, 5, 4000))
    run(backend, files=None)
    bodies = [received.body for received in server.requests_to("/execute")]
    assert "files" not in bodies[0]
    assert bodies[1]["files"] == {"max_file_bytes": 1000, "max_files": 5, "max_files_bytes": 4000}
    assert bodies[2]["files"] is False


def test_a_server_that_sends_more_than_the_kernel_allows_gets_one_problem_each(server, backend):
    big = b"\x89PNG\r\n\x1a\n" + b"x" * 5000
    server.routes["POST", "/execute"] = stream(
        event("start", id="e1"),
        file_event("big.png", big),  # over the kernel's 1000 bytes a file
        file_event("\x1b[2J\x1b]0;owned\x07", PNG),  # a name that would drive a terminal
        event("file", name="x.png", data="@@not base64@@"),
        event("receipt", image=7, digest=["not", "text"], argv="rm -rf /", runtime=None),
        event("exit", code=0),
    )
    result = run(backend, files=FileLimits(1000, 10, 10_000))
    assert [(f.name, f.data is not None, f.problem) for f in result.files.files] == [
        ("big.png", False, "over this kernel's limits (1.0 KB left): not kept"),
        ("\\x1b[2J\\x1b]0;owned\\x07", True, None),
        ("x.png", False, "the server sent data that is not base64: not kept"),
    ]
    assert result.facts == RunFacts()  # nothing of the wrong types is believed


def test_an_event_line_longer_than_the_kernel_keeps_is_dropped_unread_and_said(server, backend, monkeypatch):
    import dockyter.backends.api.call as call

    monkeypatch.setattr(call, "MIN_LINE", 100_000)
    server.routes["POST", "/execute"] = stream(
        event("start", id="e1"),
        file_event("huge.png", b"\x89PNG\r\n\x1a\n" + b"y" * 3_000_000),  # about 4 MB of base64 on one line
        file_event("small.png", PNG),
        event("exit", code=0),
    )
    result = run(backend, files=FileLimits(1000, 10, 10_000))
    assert [(f.name, f.problem) for f in result.files.files] == [
        ("(an event)", "longer than this kernel's limits: dropped"),
        ("small.png", None),
    ]


def test_a_server_of_the_original_contract_still_works_and_sends_no_files(server, backend):
    server.routes["POST", "/execute"] = json_reply({"stdout": "hi\n", "stderr": ""})
    result = run(backend)
    assert (result.exit_code, result.files, result.facts) == (0, None, None)


def test_a_plain_json_reply_may_carry_files_and_a_receipt(server, backend):
    server.routes["POST", "/execute"] = json_reply(
        {
            "stdout": "",
            "stderr": "",
            "exit_code": 0,
            "receipt": RECEIPT,
            "files": [json.loads(file_event("plot.png", PNG))],
        }
    )
    result = run(backend)
    assert result.files.read() == [FoundFile("plot.png", len(PNG), data=PNG)]
    assert result.facts.digest == RECEIPT["digest"]


def test_through_a_shell_the_files_are_outputs_and_the_receipt_is_the_servers(server, ip):
    from IPython.utils.capture import capture_output

    server.routes["POST", "/execute"] = stream(
        event("start", id="e1"),
        event("receipt", **RECEIPT),
        file_event("plot.png", PNG),
        event(
            "file", name="pipe", media_type="application/octet-stream", size=0, problem="a named pipe (FIFO): not read"
        ),
        event("exit", code=0),
    )
    ip.run_line_magic("config", "Dockyter.api_token = 'tok'")
    ip.run_line_magic("docker_backend", f"api {server.url}")
    with capture_output() as captured:
        ip.run_cell("%%docker -e X=1 img:1\nplot")
    (output,) = captured.outputs
    assert base64.b64decode(output.data["image/png"]) == PNG
    receipt = output.metadata["dockyter"]["receipt"]
    assert (receipt["backend"], receipt["digest"], receipt["node"], receipt["runtime"]) == (
        "api",
        RECEIPT["digest"],
        "engine-1",
        "runsc",
    )
    assert captured.stderr == "Dockyter: $DOCKYTER_OUT/pipe: a named pipe (FIFO): not read\n"
