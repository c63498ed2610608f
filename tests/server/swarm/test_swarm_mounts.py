"""Mounts on a Swarm: bind mounts are checked on the server's file system and mounted on the
task's node; an anonymous volume would outlive the task there.

The policy's checks hold on a node only when the allowed paths are the same storage there:
the server says so at start-up, and a node that lacks a checked path fails the task rather
than creating it. (The hostile mount requests themselves run against the Swarm executor in
test_server_mounts.py and test_server_fuzz.py.)
"""

from __future__ import annotations

import secrets

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

WARNING = "bind mounts are checked on this server's file system but mounted on whichever node runs the task"


def warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]


def test_a_swarm_server_that_allows_bind_mounts_warns_at_start_up(swarm_server, dockyter_server, tmp_path, caplog):
    caplog.set_level("WARNING", logger="dockyter.server")
    swarm_server(allowed_mounts=[str(tmp_path), f"{tmp_path}/rw:rw"])
    (message,) = [message for message in warnings(caplog) if WARNING in message]
    assert message.startswith(f"executor swarm with allowed_mounts ({tmp_path}, {tmp_path}/rw): ")
    assert "must be identical shared storage at the same place on every node and on this server" in message
    caplog.clear()
    swarm_server(allowed_mounts=[str(tmp_path)], mount_constraints=["node.labels.storage==shared"])
    (message,) = [message for message in warnings(caplog) if WARNING in message]
    assert "at the same place on every node matching node.labels.storage==shared and on this server" in message
    caplog.clear()
    swarm_server()  # no bind mounts: nothing to say
    dockyter_server(allowed_mounts=[str(tmp_path)])  # one engine: the server's files are the container's
    assert not [message for message in warnings(caplog) if WARNING in message]


def test_a_node_without_the_checked_path_fails_the_task_and_creates_nothing(
    swarm_server, swarm_image, tmp_path, monkeypatch
):
    """Injected: the path passes the check on the server, then is missing where the task lands."""
    (tmp_path / "data").mkdir()
    server = swarm_server(allowed_mounts=[str(tmp_path)])
    policy = server.app.state.policy
    check = policy.check

    def check_then_lose_the_path(*args, **kwargs):
        plan = check(*args, **kwargs)
        (tmp_path / "data").rmdir()  # as on a node whose storage lacks it
        return plan

    monkeypatch.setattr(policy, "check", check_then_lose_the_path)
    response = server.execute({"cmd": "ls /h; echo ran", "args": f"-v {tmp_path}/data:/h:ro {swarm_image}"})
    assert response.status_code == 200, response.text
    reply = response.json()
    # As `docker run` says it on one engine: status 125 and the engine's one line.
    assert (reply["stdout"], reply["exit_code"]) == ("", 125), reply
    assert "bind source path does not exist" in reply["stderr"], reply
    assert not (tmp_path / "data").exists()


def test_an_anonymous_volume_is_refused_on_a_swarm(swarm_server, swarm_image, swarm_cluster):
    # Allowed on one engine (removed with the container); a service's would stay on its node.
    server = swarm_server()
    for args in ("-v /anonymous", "--mount target=/anonymous"):
        response = server.execute({"cmd": "true", "args": f"{args} {swarm_image}"})
        assert response.status_code == 403, response.text
        assert (
            response.json()["detail"]
            == f"{args} is not allowed: an anonymous volume would outlive the task on its node (use --tmpfs)"
        )
    assert not server.containers()


def test_tasks_with_a_bind_mount_run_only_on_the_nodes_the_constraints_name(
    swarm_server, swarm_image, swarm_cluster, tmp_path
):
    # A label of our own on one worker (removed after): only it "has the shared storage".
    label = "io.dockyter.test-storage"
    value = secrets.token_hex(4)
    assert swarm_cluster.docker("node", "update", "--label-add", f"{label}={value}", "dyt-worker2").returncode == 0
    try:
        server = swarm_server(allowed_mounts=[str(tmp_path)], mount_constraints=[f"node.labels.{label}=={value}"])
        for args in (f"-v {tmp_path}:/h:ro", f"--mount type=bind,src={tmp_path},dst=/h,ro"):
            with server.stream({"cmd": "ls /h >/dev/null && echo mounted", "args": f"{args} {swarm_image}"}) as events:
                seen = list(events)
            assert [event["node"] for event in seen if event["event"] == "node"] == ["dyt-worker2"], seen
            assert (seen[-1]["event"], seen[-1]["code"]) == ("exit", 0), seen
        # Without a bind mount a service is not held to them (a tmpfs is no host path).
        from dockyter.server.swarm.swarmexecution import SwarmExecution

        for args, constrained in ((f"--tmpfs /t {swarm_image}", False), (f"-v {tmp_path}:/h:ro {swarm_image}", True)):
            plan = server.app.state.policy.check(args)
            argv = SwarmExecution(server.executor, plan, "true", 10, False, "tester").service_argv()
            assert ("--constraint" in argv) is constrained, argv
    finally:
        swarm_cluster.docker("node", "update", "--label-rm", label, "dyt-worker2")
