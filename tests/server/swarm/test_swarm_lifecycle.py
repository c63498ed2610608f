"""A service the Swarm executor starts is a service it removes: cancel, timeout, output cap,
disconnect, shutdown, a crashed server, a dead node, and a cancel sent to another replica."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from helpers import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

GONE_WITHIN = 5.0  # seconds, as the issue asks


def first_output(events) -> dict:
    """Read up to the first output (the task surely runs); return the start event."""
    start = next(events)
    assert start["event"] == "start"
    for event in events:
        if event["event"] == "stdout":
            return start
    raise AssertionError("no output")


def service_exists(cluster, name: str) -> bool:
    return cluster.docker("service", "inspect", name).returncode == 0


def no_container_within(cluster, seconds: float, servers: tuple[str, ...] = ()) -> bool:
    """No task runs any more within ``seconds``; its stopped container is gone soon after.

    Removing a service has its node kill the task (SIGKILL) about 3 s later when the task has a
    network, and delete the container 2 s after that: the node's agent waits 2 s before each
    step (docs/scaling.md, Failures).
    """
    stopped = wait_until(lambda: not cluster.running(servers), timeout=max(seconds, 0.5), interval=0.2)
    return stopped and wait_until(lambda: not cluster.containers(servers), timeout=20, interval=0.5)


def test_cancel_removes_the_service_at_once(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server()
    with server.stream({"cmd": "echo ready; sleep 60", "args": swarm_image}) as events:
        start = first_output(events)
        name = "dockyter-" + start["id"]
        assert service_exists(swarm_cluster, name)
        started = time.monotonic()
        answer = httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(), timeout=60)
        assert answer.json() == {"id": start["id"], "cancelled": True}
        assert not service_exists(swarm_cluster, name)  # gone before the answer
        rest = list(events)
        assert no_container_within(
            swarm_cluster, GONE_WITHIN - (time.monotonic() - started), (server.settings.server_name,)
        )
    assert (rest[-1]["event"], rest[-1]["code"], rest[-1]["reason"]) == ("exit", 130, "cancelled")


def test_timeout_removes_the_service(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server(max_timeout=4)
    started = time.monotonic()
    reply = server.execute({"cmd": "echo begun; sleep 60", "args": swarm_image})
    body = reply.json()
    assert (body["exit_code"], body["reason"]) == (124, "timeout")
    assert body["stdout"] == "begun\n"
    assert time.monotonic() - started < 4 + GONE_WITHIN
    assert not service_exists(swarm_cluster, "dockyter-" + body["execution_id"])
    assert no_container_within(swarm_cluster, GONE_WITHIN, (server.settings.server_name,))


def test_output_over_the_cap_removes_the_service(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server(max_output_bytes=1000)
    reply = server.execute({"cmd": "yes | head -c 100000; sleep 60", "args": swarm_image})
    body = reply.json()
    assert (body["exit_code"], body["reason"]) == (137, "output_limit")
    assert len(body["stdout"]) == 1000
    assert not service_exists(swarm_cluster, "dockyter-" + body["execution_id"])
    assert no_container_within(swarm_cluster, GONE_WITHIN, (server.settings.server_name,))


def test_a_client_that_goes_away_takes_its_service_with_it(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server()
    with server.stream({"cmd": "echo ready; sleep 60", "args": swarm_image}) as events:
        start = first_output(events)
    # The connection is closed here.
    name = "dockyter-" + start["id"]
    assert wait_until(lambda: not service_exists(swarm_cluster, name), timeout=GONE_WITHIN)
    assert no_container_within(swarm_cluster, GONE_WITHIN, (server.settings.server_name,))


def test_shutdown_ends_every_stream_and_removes_every_service(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server()
    endings: list[dict] = []

    def run() -> None:
        with server.stream({"cmd": "echo ready; sleep 60", "args": swarm_image}) as events:
            endings.append(list(events)[-1])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: sum(e.bytes_out > 0 for e in server.executor.running.values()) == 2, timeout=60)
    started = time.monotonic()
    server.stop()
    for thread in threads:
        thread.join(30)
    assert [(e["code"], e["reason"]) for e in endings] == [(130, "cancelled")] * 2
    mine = (server.settings.server_name,)
    assert not swarm_cluster.services(mine)
    assert no_container_within(swarm_cluster, GONE_WITHIN + 5 - (time.monotonic() - started), mine)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("isolation", ["overlay", "nodes"])
def test_a_restarted_server_removes_the_services_its_crashed_predecessor_left(
    swarm_server, swarm_image, swarm_cluster, tmp_path, isolation, request
):
    name = "crash-" + secrets.token_hex(3)
    token = secrets.token_urlsafe(24)
    port = _free_port()
    env = {
        **os.environ,
        "DOCKYTER_SERVER_TOKENS": f"tester:{token}",
        "DOCKYTER_SERVER_EXECUTOR": "swarm",
        "DOCKYTER_SERVER_DOCKER_COMMAND": shlex.join(swarm_cluster.docker_command),
        "DOCKYTER_SERVER_SERVER_NAME": name,
        "DOCKYTER_SERVER_PULL": "never",
        "DOCKYTER_SERVER_ALLOWED_REGISTRIES": swarm_cluster.registry,
        "DOCKYTER_SERVER_SWARM_ISOLATION": isolation,
    }
    if isolation == "nodes":  # then the crash leaves the loopback check's config instead of a network
        env["DOCKYTER_SERVER_LOOPBACK_CHECK"] = str(request.getfixturevalue("loopback_program"))
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dockyter.server", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _answers(url), timeout=30), (tmp_path / "server.log").read_text()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/x-ndjson"}
        with httpx.stream(
            "POST", url + "/execute", json={"cmd": "echo ready; sleep 120", "args": swarm_image},
            headers=headers, timeout=60,
        ) as response:  # fmt: skip
            events = (json.loads(line) for line in response.iter_lines() if line)
            start = first_output(events)
            process.send_signal(signal.SIGKILL)  # a crash: no clean-up at all
            process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    service = "dockyter-" + start["id"]
    time.sleep(1)
    assert service_exists(swarm_cluster, service)  # the crash left it running
    left = swarm_cluster.configs((name,)) if isolation == "nodes" else swarm_cluster.networks((name,))
    assert len(left) == 1
    swarm_server(server_name=name)  # the next start of the same server_name
    assert not service_exists(swarm_cluster, service)
    assert swarm_cluster.configs((name,)) == []
    assert no_container_within(swarm_cluster, GONE_WITHIN, (name,))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_list_and_cancel_work_from_another_replica(swarm_server, swarm_image, swarm_cluster):
    token = "tester:" + secrets.token_urlsafe(24)
    other = "intruder:" + secrets.token_urlsafe(24)
    first = swarm_server(tokens=[token, other])
    second = swarm_server(tokens=[token, other])  # same tokens, another server_name: another replica
    with first.stream({"cmd": "echo ready; sleep 60", "args": swarm_image}) as events:
        start = first_output(events)
        # Either replica lists it (Swarm's labels are the state they share), for its own token only.
        for server in (first, second):
            listed = httpx.get(f"{server.url}/executions", headers=server.headers(), timeout=60).json()["executions"]
            assert [(item["id"], item["image"]) for item in listed] == [(start["id"], swarm_image)]
        others = httpx.get(f"{second.url}/executions", headers=second.headers(other.split(":", 1)[1]), timeout=60)
        assert others.json() == {"executions": []}
        cancel = f"{second.url}/executions/{start['id']}/cancel"
        # Another token's execution is not found, on any replica.
        refused = httpx.post(cancel, headers=second.headers(other.split(":", 1)[1]), timeout=60)
        assert refused.status_code == 404
        assert httpx.post(f"{second.url}/executions/{'0' * 16}/cancel", headers=second.headers()).status_code == 404
        answer = httpx.post(cancel, headers=second.headers(), timeout=60)
        assert answer.json() == {"id": start["id"], "cancelled": True}
        rest = list(events)
    assert (rest[-1]["event"], rest[-1]["code"], rest[-1]["reason"]) == ("exit", 130, "cancelled")
    assert "another server instance" in rest[-1]["message"]
    assert no_container_within(swarm_cluster, GONE_WITHIN, (first.settings.server_name, second.settings.server_name))


def test_another_deployment_with_the_same_token_name_neither_lists_nor_cancels(
    swarm_server, swarm_image, swarm_cluster
):
    # Two deployments on one swarm, each with a user named alice: same name, different tokens.
    ours, theirs = (f"alice:{secrets.token_urlsafe(24)}" for _ in range(2))
    first = swarm_server(tokens=[ours])
    other = swarm_server(tokens=[theirs])
    with first.stream({"cmd": "echo ready; sleep 60", "args": swarm_image}) as events:
        start = first_output(events)
        listed = httpx.get(f"{other.url}/executions", headers=other.headers(), timeout=60)
        assert listed.json() == {"executions": []}
        cancel = httpx.post(f"{other.url}/executions/{start['id']}/cancel", headers=other.headers(), timeout=60)
        assert cancel.status_code == 404
        service = swarm_cluster.docker(
            "service", "inspect", "--format", "{{json .Spec.Labels}}", "dockyter-" + start["id"]
        )
        labels = json.loads(service.stdout)
        assert labels["io.dockyter.who"] == "alice"  # the name, for people reading the swarm
        assert ours.split(":", 1)[1] not in service.stdout  # the token itself is never written down
        assert len(labels["io.dockyter.principal"]) == 32
        mine = httpx.get(f"{first.url}/executions", headers=first.headers(), timeout=60).json()["executions"]
        assert [item["id"] for item in mine] == [start["id"]]


def test_a_worker_that_dies_mid_run_ends_the_run_with_an_error_naming_it(swarm_server, swarm_image, swarm_cluster):
    # Tasks go to the workers only, so that killing the task's node leaves the manager alive.
    assert swarm_cluster.docker("node", "update", "--availability", "drain", "dyt-manager").returncode == 0
    killed = None
    try:
        server = swarm_server()
        with server.stream({"cmd": "echo ready; sleep 120", "args": swarm_image}) as events:
            start = next(events)
            node = next(event for event in events if event["event"] == "node")["node"]
            assert node in ("dyt-worker1", "dyt-worker2")
            next(event for event in events if event["event"] == "stdout")
            killed = node.removeprefix("dyt-")
            assert swarm_cluster.script("kill-node", killed).returncode == 0
            started = time.monotonic()
            rest = list(events)
            took = time.monotonic() - started
        assert rest[-1]["event"] == "error"
        assert node in rest[-1]["message"]
        assert took < 15  # Swarm sees a node down after a few missed heartbeats
        assert not service_exists(swarm_cluster, "dockyter-" + start["id"])
    finally:
        swarm_cluster.docker("node", "update", "--availability", "active", "dyt-manager")
        if killed:
            restarted = swarm_cluster.script("start-node", killed)
            assert restarted.returncode == 0, restarted.stderr
            ready = wait_until(
                lambda: "Down" not in swarm_cluster.docker("node", "ls", "--format", "{{.Status}}").stdout, timeout=60
            )
            assert ready, "the restarted node did not rejoin"
    # Back up, the node removes the dead task's container: nothing leaks.
    mine = (server.settings.server_name,)
    assert wait_until(lambda: not swarm_cluster.containers(mine), timeout=30, interval=0.5), swarm_cluster.containers(
        mine
    )


def test_after_a_cancel_the_nodes_container_is_gone_within_5_s_when_no_overlay_network_is_attached(
    swarm_server, swarm_image, swarm_cluster
):
    # With a network attached, the node's agent sleeps 2 s before stopping a removed task and
    # 2 s again before deleting its container (moby's defaultGossipConvergeDelay, hard-coded,
    # for load balancer convergence): 5-7 s, see docs/scaling.md. Without one (network = ""
    # on nodes run with --bridge none) nothing waits, and the container goes within the bound.
    server = swarm_server(network="")
    mine = (server.settings.server_name,)
    with server.stream({"cmd": "echo ready; sleep 60", "args": swarm_image}) as events:
        start = first_output(events)
        assert swarm_cluster.containers(mine)
        started = time.monotonic()
        answer = httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(), timeout=60)
        assert answer.json() == {"id": start["id"], "cancelled": True}
        list(events)
    left = GONE_WITHIN - (time.monotonic() - started)
    assert wait_until(lambda: not swarm_cluster.containers(mine), timeout=max(left, 0.1), interval=0.2)


class SocketProxy:
    """A unix socket forwarding every connection to another one, until it is cut.

    Stands for the path to the Swarm manager: cutting it makes the manager unreachable to a
    server while the cluster, and the task, carry on.
    """

    def __init__(self, path: str, target: str) -> None:
        self.path, self.target = path, target
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(64)
        self.connections: list[socket.socket] = []
        self.hanging = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # cut
            if self.hanging:  # accepted, and never answered
                self.connections.append(client)
                continue
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.hanging:  # a hanging manager reads requests and says nothing
                    sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def hang(self) -> None:
        """From now on, take every request and answer none, as a manager that hangs."""
        self.hanging = True

    def cut(self) -> None:
        self.listener.close()
        os.unlink(self.path)
        for connection in self.connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.mark.parametrize("failure", ["refuses", "hangs"])
def test_a_manager_that_stops_answering_ends_the_run_with_an_error_naming_it(
    swarm_server, swarm_image, swarm_cluster, tmp_path, failure
):
    path = str(tmp_path / "manager.sock")
    target = swarm_cluster.host.removeprefix("unix://")
    proxy = SocketProxy(path, target)
    server = swarm_server(docker_command=["docker", "-H", f"unix://{path}"])
    with server.stream({"cmd": "echo ready; sleep 120", "args": swarm_image, "timeout": 120}) as events:
        start = first_output(events)
        if failure == "refuses":
            proxy.cut()
        else:
            proxy.hang()
        lost_at = time.monotonic()
        rest = list(events)
    # Given up well before the run's timeout (120 s): 10 s of refusals, or two polls' timeouts.
    assert time.monotonic() - lost_at < 45
    if failure == "hangs":
        proxy.cut()
    assert rest[-1]["event"] == "error"
    assert f"the Swarm manager (docker -H unix://{path}) has not answered" in rest[-1]["message"]
    assert "dockyter-" + start["id"] in rest[-1]["message"]
    # The run was given up, not timed out: the task still runs on its node.
    assert service_exists(swarm_cluster, "dockyter-" + start["id"])
    # Back, the manager hears from the server again: its shutdown removes the service (the
    # fixture checks that nothing is left).
    proxy = SocketProxy(path, target)
    server.stop()
    proxy.cut()
