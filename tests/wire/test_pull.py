"""Pulling an image shows one progress line that ends as a summary: cells, `!`, a real kernel.

A real registry on 127.0.0.1 (the ``registry`` fixture of tests/conftest.py) holds an image with a layer of its
own, removed locally, so each test sees a real pull through the engine. The pulls from a cell,
a `!` command, a session and a kernel run on every engine (``fresh_image``): podman, without its
API service, pulls with ``podman pull``, whose lines count layers but say neither sizes nor which
layers were new.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from helpers import docker, wait_until
from scripted_server import ScriptedServer, event, stream

from dockyter.wire.pull import PullProgress, summary_line

pytestmark = pytest.mark.docker

SUMMARY = re.compile(r"Dockyter: pulled (\S+): (\d+) layers \(1 new\), 3\.\d MB in \d+\.\d s")
PODMAN_SUMMARY = re.compile(r"Dockyter: pulled (\S+): (\d+) layers in \d+\.\d s")


def summary(engine) -> re.Pattern[str]:
    """The summary line a pull on ``engine`` ends with."""
    return PODMAN_SUMMARY if engine.is_podman else SUMMARY


@pytest.fixture
def fresh_image(engine, registry):
    """``fresh_image(megabytes=3)``: an image only the registry has; removed from the engine after the test."""
    made: list[str] = []

    def make(megabytes: int = 3) -> str:
        made.append(registry.push_fresh_image(megabytes))
        return made[-1]

    yield make
    if made:
        engine.run("rmi", "-f", *made)


def test_a_cell_pulls_with_one_line_updated_in_place(engine, engine_cell, engine_shell, fresh_image):
    image = fresh_image()
    run = engine_cell(f"%%docker {image}\nwc -c < /blob")
    assert run.error is None, run.stderr
    assert run.stdout == "3000000\n"
    # each update starts with a carriage return; the summary ends the line
    pulled = [line for line in run.stderr.split("\n") if "pull" in line]
    assert len(pulled) == 1, run.stderr
    assert pulled[0].startswith("\rDockyter: pulling ")
    last = pulled[0].rsplit("\r", 1)[1].rstrip()
    assert summary(engine).fullmatch(last) and summary(engine).fullmatch(last).group(1) == image, last
    # the image is here now: the next cell starts without pulling, and TAB offers it at once
    again = engine_cell(f"%%docker {image}\necho again")
    assert again.stdout == "again\n" and "pull" not in again.stderr
    assert image in engine_shell._dockyter.active_backend.images.names()


def test_bang_commands_pull_with_progress_too(engine, engine_cell, fresh_image):
    image = fresh_image()
    engine_cell(f"%docker {image}")
    run = engine_cell("!wc -c < /blob")
    assert run.stdout.strip() == "3000000"
    assert summary(engine).search(run.stderr), run.stderr


@pytest.fixture
def podman_service(tmp_path):
    """podman's API service (as Fedora's podman.socket starts it) on a socket of the test's own: its URL."""
    socket = tmp_path / "podman.sock"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(socket.exists, timeout=20), "podman system service did not start"
        yield f"unix://{socket}"
    finally:
        service.terminate()
        service.wait(timeout=30)


@pytest.mark.parametrize("engine", ["podman"], indirect=True)
def test_through_podmans_api_service_a_pull_says_which_layers_are_new(
    engine_shell, engine_cell, fresh_image, podman_service
):
    # The engine's own progress, through `podman system dial-stdio`: podman's compatible API says
    # which layers are new ("Download complete"), counts the image's config as one of them, and
    # sends no byte counts.
    engine_shell.run_line_magic("config", f"Dockyter.docker_command = ['podman', '--url', {podman_service!r}]")
    image = fresh_image()
    run = engine_cell(f"%%docker {image}\nwc -c < /blob")
    assert run.stdout == "3000000\n", run.stderr
    last = run.stderr.rsplit("\r", 1)[1].rstrip()
    assert re.fullmatch(rf"Dockyter: pulled {re.escape(image)}: \d+ layers \(2 new\) in \d+\.\d s", last), last


def test_an_image_the_registry_lacks_did_not_start_in_one_line(engine_cell, engine_shell, registry):
    image = f"{registry.host}/dockyter-pull/missing:1"
    run = engine_cell(f"%%docker {image}\necho never")
    assert engine_shell.user_ns["_exit_code"] == 125
    message = str(run.error)
    assert message.startswith(f"the container did not start: cannot pull {image}: "), message
    assert "manifest unknown" in message
    assert "exited with status" not in message
    assert "Traceback" not in run.stdout + run.stderr


def test_pull_never_is_left_to_docker(cell, ip, registry):
    image = registry.push_fresh_image(megabytes=1)
    run = cell(f"%%docker --pull never {image}\necho never")
    assert ip.user_ns["_exit_code"] == 125
    assert "Dockyter: pull" not in run.stderr
    assert str(run.error) == f"the container did not start: No such image: {image}"
    assert docker("image", "inspect", image).returncode != 0


def test_progress_counts_layers_and_bytes_from_the_engines_messages():
    """The engine's own message shapes (as /images/create streams them), counted."""
    progress = PullProgress("example/image:1")
    for message in [
        {"status": "Pulling from example/image", "id": "1"},
        {"status": "Already exists", "id": "aaa"},
        {"status": "Pulling fs layer", "id": "bbb"},
        {"status": "Downloading", "id": "bbb", "progressDetail": {"current": 500_000, "total": 2_000_000}},
    ]:
        progress.feed(message)
    assert progress.line() == "pulling example/image:1: 1/2 layers, 0.5/2.0 MB"
    progress.feed({"status": "Download complete", "id": "bbb"})
    progress.feed({"status": "Pull complete", "id": "bbb"})
    assert progress.line() == "pulling example/image:1: 2/2 layers, 2.0/2.0 MB"
    final = progress.event(done=True)
    assert final == {
        "event": "pull", "image": "example/image:1", "layers_done": 2, "layers": 2,
        "bytes_done": 2_000_000, "bytes_total": 2_000_000, "done": True, "layers_new": 1,
        "seconds": final["seconds"],
    }  # fmt: skip
    assert summary_line(final).startswith("pulled example/image:1: 2 layers (1 new), 2.0 MB in ")


@pytest.mark.kernel
def test_a_pull_in_a_kernel_streams_its_progress_line(engine, engine_kernel, fresh_image):
    image = fresh_image()
    run = engine_kernel.run(f"%%docker {image}\nwc -c < /blob")
    assert run.reply["status"] == "ok", run.reply
    assert run.stdout == "3000000\n"
    assert run.stderr.startswith("\rDockyter: pulling ")
    assert summary(engine).search(run.stderr.rsplit("\r", 1)[1]), run.stderr


@pytest.fixture
def server(dockyter_server, registry):
    pytest.importorskip("fastapi", reason="dockyter-server needs the 'server' extra")
    # The test servers default to never (no registry is reachable), and a registry on 127.0.0.1
    # is pulled from only when named.
    return dockyter_server(pull="missing", allowed_registries=["docker.io", registry.host])


def test_the_api_stream_carries_the_servers_pull_progress(server, registry):
    image = registry.push_fresh_image()
    with server.stream({"cmd": "wc -c < /blob", "args": image}) as events:
        seen = list(events)
    kinds = [event["event"] for event in seen]
    assert kinds[0] == "start" and kinds[-1] == "exit", kinds
    pulls = [event for event in seen if event["event"] == "pull"]
    # progress before the output, and one final event with the totals
    assert pulls and kinds.index("pull") < kinds.index("stdout")
    final = pulls[-1]
    assert final["done"] is True and final["image"] == image
    assert final["layers_done"] == final["layers"] and final["layers_new"] == 1
    assert final["bytes_total"] == final["bytes_done"] and 3_000_000 <= final["bytes_total"] < 3_100_000
    assert "".join(event["data"] for event in seen if event["event"] == "stdout") == "3000000\n"
    # a plain JSON client sees none of it
    second = registry.push_fresh_image(megabytes=1)
    reply = server.execute({"cmd": "echo plain", "args": second}).json()
    assert reply["stdout"] == "plain\n" and reply["exit_code"] == 0


def test_a_cell_through_the_api_backend_shows_the_servers_pull(server, registry, cell, ip):
    ip.run_line_magic("config", f"Dockyter.api_token = {server.token!r}")
    cell(f"%docker_backend api {server.url}")
    image = registry.push_fresh_image()
    run = cell(f"%%docker {image}\nwc -c < /blob")
    assert run.error is None, run.stderr
    assert run.stdout == "3000000\n"
    assert SUMMARY.search(run.stderr.rsplit("\r", 1)[1]), run.stderr
    missing = f"{registry.host}/dockyter-pull/missing:1"
    run = cell(f"%%docker {missing}\necho never")
    assert str(run.error).startswith(f"the container did not start: cannot pull {missing}: not found"), run.error


def test_a_servers_long_pull_is_one_line_and_does_not_count_against_the_timeout(cell, ip):
    """A scripted server (the pace is the point here): a pull longer than the cell's --timeout."""
    server = ScriptedServer()
    pull = {"image": "img:1", "layers": 2, "bytes_total": 2_000_000}
    server.routes["POST", "/execute"] = stream(
        event("start", id="run-1"),
        event("pull", layers_done=0, bytes_done=0, done=False, **pull),
        1.3,
        event("pull", layers_done=1, bytes_done=1_000_000, done=False, **pull),
        1.3,
        event("pull", layers_done=2, bytes_done=2_000_000, done=False, **pull),
        1.3,
        event("pull", layers_done=2, bytes_done=2_000_000, done=True, layers_new=2, seconds=3.9, **pull),
        event("stdout", data="ran\n"),
        event("exit", code=0, reason=None, message=None),
    )
    try:
        cell(f"%docker_backend api {server.url}")
        run = cell("%%docker --timeout 1 img:1\necho ran")
        assert run.error is None, run.error
        assert run.stdout == "ran\n"
        assert run.stderr.startswith("\rDockyter: pulling img:1: 0/2 layers, 0.0/2.0 MB")
        assert run.stderr.endswith("\rDockyter: pulled img:1: 2 layers (2 new), 2.0 MB in 3.9 s\n")
        assert run.stderr.count("\n") == 1
    finally:
        server.stop()


@pytest.mark.kernel
def test_interrupting_a_pull_stops_it_and_nothing_runs(engine_kernel, fresh_image):
    kernel = engine_kernel
    image = fresh_image(megabytes=100)  # big enough to be caught mid-pull
    msg_id = kernel.submit(f"%%docker {image}\necho never")
    kernel.collect(msg_id, until="Dockyter: pulling")
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=60)
    assert run.reply["status"] == "error" and run.reply["ename"] == "Interrupted", run.reply
    [error] = run.of_type("error")
    assert f"interrupted while pulling {image}; nothing ran" in error["content"]["traceback"][0]
    assert "never" not in run.stdout
    assert kernel.run("print(_exit_code)").stdout == "130\n"

    # no pull is left behind in the kernel: its dial-stdio (or `podman pull`) child is gone. (Where
    # the engine has no plain socket, as podman's, the prestart pool asks `image inspect` through the
    # CLI in the background: a child that ends by itself.)
    def children() -> str:
        return subprocess.run(["pgrep", "-a", "-P", str(kernel.pid)], capture_output=True, text=True).stdout

    assert wait_until(lambda: children() == "", timeout=10), children()


def test_a_session_start_pulls_with_the_same_progress_line(engine, engine_cell, fresh_image, registry):
    image = fresh_image()
    run = engine_cell(f"%docker_session start pulled {image}")
    assert run.error is None, run.stderr
    assert summary(engine).search(run.stderr), run.stderr
    assert engine_cell("%%docker --session pulled\nwc -c < /blob").stdout == "3000000\n"
    missing = engine_cell(f"%docker_session start lacking {registry.host}/dockyter-pull/missing:1")
    assert "could not start" in str(missing.error) and "manifest unknown" in str(missing.error), missing.error
    assert "Traceback" not in missing.stdout + missing.stderr
    engine_cell("%docker_session stop --all")
