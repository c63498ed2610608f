"""Words that say what happened: nothing ran is not an exit status; https to a plain-HTTP server."""

from __future__ import annotations

import pytest
from scripted_server import ScriptedServer


@pytest.fixture
def plain_server():
    server = ScriptedServer()
    yield server
    server.stop()


def test_https_to_a_plain_http_server_says_it_does_not_speak_tls(cell, ip, plain_server):
    plain = plain_server.url
    tls = "https:" + plain.removeprefix("http:")
    cell(f"%docker_backend api {tls}")
    run = cell("%%docker img:1\necho never")
    message = str(run.error)
    assert message == f"the server at {tls} does not speak TLS (it answered in plain HTTP): set api_url to {plain}"
    status = cell("%docker_status").shown
    assert f"does not speak TLS (it answered in plain HTTP): set api_url to {plain}" in status


@pytest.mark.docker
def test_a_container_the_engine_refuses_did_not_start(cell, ip, test_image):
    run = cell(f"%%docker --runtime no-such-runtime {test_image}\necho never")
    assert ip.user_ns["_exit_code"] == 125
    assert str(run.error) == "the container did not start: Unknown runtime specified no-such-runtime"
    # a command that itself exits 125 is the command's status, not a refusal
    own = cell(f"%%docker {test_image}\nexit 125")
    assert str(own.error) == "the command exited with status 125"
    # the same words for `!`, captured or not
    cell(f"%docker --runtime no-such-runtime {test_image}")
    bang = cell("!echo never")
    assert "Dockyter: the container did not start: Unknown runtime specified no-such-runtime" in bang.stderr
    captured = cell("x = !echo never")
    assert "Dockyter: the container did not start: Unknown runtime specified no-such-runtime" in captured.stderr
    cell("%docker_off")


@pytest.mark.docker
def test_an_unreachable_engine_did_not_start(cell, ip, test_image, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    run = cell(f"%%docker {test_image}\necho never")
    message = str(run.error)
    assert message.startswith("the container did not start: Cannot connect to the Docker daemon at unix://"), message
    assert message.endswith("(no container engine answers: start the Docker daemon, or check DOCKER_HOST)")
