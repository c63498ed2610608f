"""``swarm_isolation = "nodes"``: tasks without a network, checked from inside before the cell runs.

The test cluster's nodes run their dockerd with ``--bridge none`` (``.ci/cluster``), so a task
without a network has ``lo`` only there and the cell runs. A node with a default bridge would
give the task an ``eth0``; no node of the test cluster has one. The check itself on a real
default bridge is tested in ``test_loopback_check.py``. Giving the task an interface through
the service's spec instead (an overlay network in the operator's trusted ``extra_run_args``)
no longer reaches a task: the check of the service's spec (servicecheck.py) refuses it first.
"""

from __future__ import annotations

import secrets
import time
from contextlib import ExitStack

import pytest
from test_swarm_network import network_of, opened

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

# The task's interfaces, one per line, then its routes.
INTERFACES = "awk -F: 'NR > 2 { gsub(/ /, \"\", $1); print $1 }' /proc/net/dev; ip route; echo routes-end"


def up_to_the_first_output(events) -> list[dict]:
    """The events of a stream up to its first output (the task surely runs then)."""
    seen = []
    for event in events:
        seen.append(event)
        if event["event"] == "stdout":
            return seen
    raise AssertionError(f"no output: {seen}")


def nodes_server(swarm_server, loopback_program, **overrides):
    return swarm_server(swarm_isolation="nodes", loopback_check=str(loopback_program), **overrides)


def test_tasks_run_without_any_network_on_every_node_and_keep_their_output_and_status(
    swarm_server, swarm_image, swarm_cluster, loopback_program
):
    server = nodes_server(swarm_server, loopback_program, max_concurrent=6, max_concurrent_per_token=0)
    names = (server.settings.server_name,)
    cmd = f"{INTERFACES}; echo to-stderr >&2; sleep 4; exit 3"
    with ExitStack() as stack:
        started = [opened(stack, server, {"cmd": cmd, "args": swarm_image}, server.token) for _ in range(6)]
        early = [up_to_the_first_output(events) for events in started]
        ids = [seen[0]["id"] for seen in early]
        # No network for any of them: none created, none in the services' specs.
        assert swarm_cluster.networks(names) == []
        for execution in ids:  # still running: they sleep
            assert swarm_cluster.docker("service", "inspect", "dockyter-" + execution).returncode == 0
            assert network_of(swarm_cluster, "dockyter-" + execution) == []
        assert len(swarm_cluster.configs(names)) == 1  # the check, one config for the instance
        nodes = set()
        for before, events in zip(early, started, strict=True):
            seen = before + list(events)
            nodes |= {event["node"] for event in seen if event["event"] == "node"}
            stdout = "".join(event["data"] for event in seen if event["event"] == "stdout")
            stderr = "".join(event["data"] for event in seen if event["event"] == "stderr")
            assert (seen[-1]["event"], seen[-1]["code"]) == ("exit", 3)
            assert stdout == "lo\nroutes-end\n"  # lo only, and no route at all
            assert stderr == "to-stderr\n"
    assert len(nodes) >= 2, f"six tasks all ran on {nodes}"


def test_a_network_in_the_spec_of_a_task_that_must_have_none_is_refused_before_any_task_runs(
    swarm_server, swarm_image, swarm_cluster, loopback_program
):
    network = "dyt-test-eth0-" + secrets.token_hex(3)
    created = swarm_cluster.docker("network", "create", "--driver", "overlay", "--internal", network)
    assert created.returncode == 0, created.stderr
    try:
        server = nodes_server(swarm_server, loopback_program, extra_run_args=["--network", network])
        reply = server.execute({"cmd": "echo the cell ran", "args": swarm_image})
        assert reply.status_code == 403, reply.text
        assert reply.json()["detail"] == (
            "the engine did not make what the policy approved: "
            "the service joins other networks than the executor chose; removed unstarted"
        )
        assert swarm_cluster.services((server.settings.server_name,)) == []
        server.stop()
    finally:
        for _ in range(40):
            if swarm_cluster.docker("network", "rm", network).returncode == 0:
                break
            time.sleep(0.5)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ("--tmpfs /.dockyter", "/.dockyter holds the loopback check"),
        ("--mount type=tmpfs,destination=/.dockyter/loopback-only", "/.dockyter holds the loopback check"),
        # Other spellings of those paths never get that far: a mount target must be written normalised.
        ("--tmpfs //.dockyter/", "must be written normalised, as /.dockyter"),
        ("--mount type=tmpfs,dst=/./.dockyter/x/..", "must be written normalised, as /.dockyter"),
    ],
)
def test_a_mount_over_the_check_is_refused(swarm_server, swarm_image, swarm_cluster, loopback_program, args, why):
    server = nodes_server(swarm_server, loopback_program)
    reply = server.execute({"cmd": "echo the cell ran", "args": f"{args} {swarm_image}"})
    assert reply.status_code == 403
    assert "is not allowed: " in reply.json()["detail"] and why in reply.json()["detail"]
    assert swarm_cluster.services((server.settings.server_name,)) == []


def test_shutdown_removes_the_checks_config(swarm_server, swarm_image, swarm_cluster, loopback_program):
    server = nodes_server(swarm_server, loopback_program)
    names = (server.settings.server_name,)
    assert swarm_cluster.configs(names) == []  # made on first use, not at start-up
    assert server.execute({"cmd": "true", "args": swarm_image}).json()["exit_code"] == 0
    assert len(swarm_cluster.configs(names)) == 1
    server.stop()
    assert swarm_cluster.configs(names) == []
