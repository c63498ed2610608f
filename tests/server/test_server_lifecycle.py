"""A container the server starts is a container it removes: cancel, disconnect, shutdown, crash.

What a client can do to an execution (cancel it, cancel another's, disconnect, flood) and
shutdown hold on both executors (``@under_each_executor``); cancel, disconnect and shutdown
also run under runc and under gVisor's runsc (``@under_each_place``). On a Swarm the node
deletes a removed task's container a few seconds after it stopped it: the tests check that
the work stops, and the Swarm fixture that nothing at all is left after the test.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from helpers import docker, wait_until
from servers import container_exists, under_each_executor, under_each_place

pytestmark = pytest.mark.docker

GONE_WITHIN = 10.0  # seconds: "within seconds"


def first_output(events) -> dict:
    """Read events up to the first output line (so the container is surely running); return the start event."""
    start = next(events)
    assert start["event"] == "start"
    for event in events:
        if event["event"] == "stdout":
            return start
        assert event["event"] == "node", event  # a Swarm server says where the task landed
    raise AssertionError("the stream ended before any output")


@under_each_place
def test_cancel_stops_and_removes_the_container(dockyter_server, run_image):
    server = dockyter_server()
    with server.stream({"cmd": "echo ready; sleep 60", "args": run_image}) as events:
        start = first_output(events)
        assert server.exists(start["id"])
        started = time.monotonic()
        answer = httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(), timeout=60)
        assert answer.status_code == 200
        assert answer.json() == {"id": start["id"], "cancelled": True}
        assert not server.exists(start["id"])  # the container (or service) is gone before the answer
        assert wait_until(lambda: not server.runs(start["id"]), timeout=GONE_WITHIN)
        assert time.monotonic() - started < GONE_WITHIN
        rest = list(events)
    assert rest[-1]["event"] == "exit"
    assert (rest[-1]["code"], rest[-1]["reason"]) == (130, "cancelled")
    # Cancelled once: there is nothing left to cancel.
    again = httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers())
    assert again.status_code == 404


def test_cancel_of_a_plain_json_request(dockyter_server, test_image):
    server = dockyter_server()
    replies = []
    thread = threading.Thread(
        target=lambda: replies.append(server.execute({"cmd": "echo so far; sleep 60", "args": test_image}))
    )
    thread.start()
    assert wait_until(lambda: server.executor.running, timeout=30)
    (execution_id,) = list(server.executor.running)
    wait_until(lambda: server.executor.running[execution_id].bytes_out > 0, timeout=30)
    assert (
        httpx.post(f"{server.url}/executions/{execution_id}/cancel", headers=server.headers(), timeout=60).status_code
        == 200
    )
    thread.join(30)
    reply = replies[0].json()
    assert (reply["stdout"], reply["exit_code"], reply["reason"]) == ("so far\n", 130, "cancelled")


@under_each_executor
def test_only_the_token_that_started_an_execution_can_cancel_it(dockyter_server, run_image):
    alice, bob = "alice-" + uuid.uuid4().hex, "bob-" + uuid.uuid4().hex
    server = dockyter_server(tokens=[f"alice:{alice}", f"bob:{bob}"])
    with server.stream({"cmd": "echo ready; sleep 60", "args": run_image}) as events:  # as alice, the first token
        start = first_output(events)
        answer = httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(bob))
        assert answer.status_code == 404
        assert server.exists(start["id"])
        answer = httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(alice), timeout=60)
        assert answer.status_code == 200


@under_each_place
def test_a_client_that_disconnects_mid_stream_takes_its_container_with_it(
    dockyter_server, run_image, caplog, oci_runtime
):
    server = dockyter_server()
    caplog.set_level("INFO", logger="dockyter.server")
    with server.stream({"cmd": "echo ready; sleep 60", "args": run_image}) as events:
        start = first_output(events)
        assert server.exists(start["id"])
    closed = time.monotonic()  # leaving the block closes the connection
    assert wait_until(lambda: not server.runs(start["id"]), timeout=GONE_WITHIN)
    assert time.monotonic() - closed < GONE_WITHIN
    assert wait_until(lambda: not server.executor.running)
    records = [r.execution for r in caplog.records if hasattr(r, "execution")]
    # On a Swarm the runtime is "the nodes' default": a service cannot choose one.
    assert (records[-1]["reason"], records[-1]["runtime"]) == ("disconnected", oci_runtime or server.executor.runtime)


@under_each_executor
def test_a_client_that_disconnects_from_a_json_request_takes_its_container_with_it(dockyter_server, run_image):
    server = dockyter_server()
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({"cmd": "sleep 60", "args": run_image}).encode()
    connection = socket.create_connection((host, int(port)))
    connection.sendall(
        f"POST /execute HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert wait_until(lambda: server.executor.running, timeout=30)
    (execution_id,) = list(server.executor.running)
    assert wait_until(lambda: server.exists(execution_id), timeout=30)
    connection.close()
    assert wait_until(lambda: not server.runs(execution_id), timeout=GONE_WITHIN)


@under_each_place
def test_shutdown_stops_running_containers_and_ends_their_streams(dockyter_server, run_image):
    server = dockyter_server()
    with server.stream({"cmd": "echo ready; sleep 60", "args": run_image}) as events:
        start = first_output(events)
        stopper = threading.Thread(target=server.stop)
        started = time.monotonic()
        stopper.start()
        rest = list(events)
        stopper.join(60)
    assert time.monotonic() - started < 20
    assert rest[-1]["event"] == "exit" and rest[-1]["reason"] == "cancelled"
    assert "shutting down" in rest[-1]["message"]
    assert not server.exists(start["id"])
    assert wait_until(lambda: not server.runs(start["id"]), timeout=GONE_WITHIN)


def test_sigterm_to_the_command_stops_running_containers(test_image, tmp_path):
    """The real `dockyter-server` process: SIGTERM while a JSON request waits on a container.

    Engine only: the signal path is the same code for both executors, and shutdown on a Swarm is
    tested above (and a killed replica in test_swarm_lifecycle.py).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = "test-" + uuid.uuid4().hex[:8]
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "dockyter.server", "--no-auth", "--port", str(port), "--pull", "never", "--server-name", name],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _answers(url), timeout=30), (tmp_path / "server.log").read_text()
        replies = []
        thread = threading.Thread(
            target=lambda: replies.append(
                httpx.post(url + "/execute", json={"cmd": "sleep 60", "args": test_image}, timeout=60)
            )
        )
        thread.start()
        assert wait_until(lambda: _server_containers(name), timeout=30)
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: the usual exit for a service.
        assert process.wait(30) in (0, -signal.SIGTERM)
        thread.join(30)
        reply = replies[0].json()
        assert (reply["exit_code"], reply["reason"]) == (130, "cancelled")
        assert not _server_containers(name)
        lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()]
        executions = [line for line in lines if line.get("event") == "execution"]
        assert executions[0]["reason"] == "cancelled" and executions[0]["who"] == "anonymous"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        docker("rm", "-f", *_server_containers(name)) if _server_containers(name) else None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _server_containers(server_name: str) -> list[str]:
    answer = docker(
        "ps", "-a", "--filter", "label=io.dockyter.server", "--format", '{{.Names}} {{.Label "io.dockyter.server"}}'
    )
    return [line.split()[0] for line in answer.stdout.splitlines() if line.split()[1].startswith(server_name + ":")]


def test_start_up_removes_what_a_crashed_run_of_the_same_server_left(dockyter_server, test_image):
    # Engine only: it plants containers; a Swarm server removes services (test_swarm_lifecycle.py).
    name = "test-" + uuid.uuid4().hex[:8]
    other = "test-" + uuid.uuid4().hex[:8]
    leftover, unrelated = "dockyter-leftover-" + uuid.uuid4().hex[:8], "dockyter-unrelated-" + uuid.uuid4().hex[:8]
    for container, server_name in ((leftover, name), (unrelated, other)):
        started = docker(
            "run", "-d", "--init", "--name", container, "--label", "io.dockyter.managed=1",
            "--label", f"io.dockyter.server={server_name}:deadbeef0000", test_image, "sleep", "600",
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
    try:
        dockyter_server(server_name=name)
        assert not container_exists(leftover)
        assert container_exists(unrelated)  # another deployment's: not ours to touch
    finally:
        docker("rm", "-f", leftover, unrelated)


@under_each_executor
def test_the_sweep_removes_containers_no_execution_owns(dockyter_server, run_image):
    server = dockyter_server(reap_interval=0.5)
    orphan = "dockyter-orphan-" + uuid.uuid4().hex[:8]
    labels = {"io.dockyter.managed": "1", "io.dockyter.server": server.executor.label}
    if server.cluster is None:
        flags = [token for key, value in labels.items() for token in ("--label", f"{key}={value}")]
        started = docker("run", "-d", "--init", "--name", orphan, *flags, run_image, "sleep", "600")

        def exists() -> bool:
            return container_exists(orphan)

        def remove() -> None:
            docker("rm", "-f", orphan)
    else:  # a service of this instance that no execution owns, its container labelled too
        flags = [
            token for key, value in labels.items() for flag in ("--label", "--container-label")
            for token in (flag, f"{key}={value}")
        ]  # fmt: skip
        started = server.cluster.docker(
            "service", "create", "--detach", "--quiet", "--name", orphan, "--restart-condition", "none",
            *flags, run_image, "sleep", "600",
        )  # fmt: skip

        def exists() -> bool:
            return server.cluster.docker("service", "inspect", orphan).returncode == 0

        def remove() -> None:
            server.cluster.docker("service", "rm", orphan)

    assert started.returncode == 0, started.stderr
    try:
        # Executions running meanwhile are owned, and left alone.
        with server.stream({"cmd": "echo ready; sleep 3; echo still here", "args": run_image}) as events:
            first_output(events)
            assert wait_until(lambda: not exists(), timeout=GONE_WITHIN)
            rest = list(events)
        assert rest[-2]["data"] == "still here\n" and rest[-1]["code"] == 0
    finally:
        if exists():
            remove()


@under_each_executor
def test_the_session_leaves_nothing_behind_after_a_burst(dockyter_server, run_image, executor_kind):
    """Many short runs, some cancelled by disconnect: afterwards none of the server's containers remains."""
    server = dockyter_server(max_concurrent=8, max_concurrent_per_token=0)
    # On a Swarm each run costs seconds: one cancelled and one disconnected run keep it within CI's time.
    for index in range(6 if executor_kind == "engine" else 2):
        with server.stream({"cmd": "echo ready; sleep 30", "args": run_image}) as events:
            start = first_output(events)
            if index % 2:
                continue  # disconnect
            answer = httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(), timeout=60)
            assert answer.status_code == 200
    # A Swarm node deletes a stopped task's container seconds after the service went.
    assert wait_until(lambda: not server.containers(), timeout=2 * GONE_WITHIN)
    assert wait_until(lambda: not server.executor.running)
