"""Network isolation on the Swarm: a task reaches nothing outside, and no other user's task.

Swarm has no ``--network none`` for services, and a service without a network lands on its
node's default bridge. The Swarm executor gives each execution an internal overlay network
of its own instead (docs/scaling.md); these tests check what that guarantees, from inside
real tasks on the three-node cluster.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from contextlib import contextmanager

import httpx
import pytest
from helpers import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

ALICE = "alice:" + "a" * 24
BOB = "bob:" + "b" * 24

# Prints the task's address, then waits for one connection on port 8080.
LISTEN = "ip -o -4 addr show eth0 | awk '{print $4}'; nc -l -p 8080 -w 30 </dev/null; echo listener-done"


def probe(address: str, registry: str) -> str:
    """A command that says whether it reaches ``address`` and the registry outside the task."""
    return (
        f"if nc -w 3 {address} 8080 </dev/null; then echo peer-reached; else echo peer-unreachable; fi; "
        f"if wget -q -T 3 -O /dev/null http://{registry}/v2/; then echo outside-reached; else echo outside-unreachable; fi; "
        "ip route | grep -q default && echo has-default-route || echo no-default-route"
    )


def listen_and_probe(
    server, image: str, registry: str, args_prefix: str = "", *, listener_token: str, prober_token: str
) -> str:
    """Start a listener as one user, probe it as another; the prober's output."""
    with server_stream(server, {"cmd": LISTEN, "args": f"{args_prefix}{image}"}, listener_token) as events:
        address = None
        for event in events:
            if event["event"] == "stdout":
                address = re.match(r"([0-9.]+)/", event["data"]).group(1)
                break
        assert address, "the listener printed no address"
        reply = server.execute(
            {"cmd": probe(address, registry), "args": f"{args_prefix}{image}", "timeout": 60}, token=prober_token
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["stdout"]


@contextmanager
def server_stream(server, body, token: str):
    """``server.stream`` with another token: an iterator of events."""
    headers = server.headers(token, Accept="application/x-ndjson")
    with httpx.Client(timeout=120) as client:
        with client.stream("POST", server.url + "/execute", json=body, headers=headers) as response:
            assert response.status_code == 200
            yield (json.loads(line) for line in response.iter_lines() if line)


def test_two_users_tasks_cannot_reach_each_other_or_the_outside(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server(tokens=[ALICE, BOB], max_concurrent=4)
    out = listen_and_probe(
        server, swarm_image, swarm_cluster.registry, listener_token=ALICE.split(":")[1], prober_token=BOB.split(":")[1]
    )
    assert out.split() == ["peer-unreachable", "outside-unreachable", "no-default-route"]


def test_the_same_probe_does_reach_a_peer_on_a_network_the_policy_allows(swarm_server, swarm_image, swarm_cluster):
    # The control case: on a shared network the operator allows, the listener is reachable,
    # so the unreachable peer above is the isolation at work, not a broken probe.
    network = "dyt-test-shared-" + secrets.token_hex(3)
    created = swarm_cluster.docker("network", "create", "--driver", "overlay", "--internal", "--attachable", network)
    assert created.returncode == 0, created.stderr
    try:
        server = swarm_server(tokens=[ALICE, BOB], allowed_networks=[network], max_concurrent=4)
        out = listen_and_probe(
            server, swarm_image, swarm_cluster.registry, f"--network {network} ",
            listener_token=ALICE.split(":")[1], prober_token=BOB.split(":")[1],
        )  # fmt: skip
        assert out.split()[0] == "peer-reached"
    finally:
        for _ in range(40):
            if swarm_cluster.docker("network", "rm", network).returncode == 0:
                break
            time.sleep(0.5)


def test_each_execution_gets_its_own_network_which_goes_with_it(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server()
    with server.stream({"cmd": "echo up; sleep 30", "args": swarm_image}) as events:
        start = next(events)
        name = "dockyter-" + start["id"]
        assert next(event for event in events if event["event"] == "node")  # the service exists
        network = swarm_cluster.docker("network", "inspect", "--format", "{{.Driver}} {{.Internal}}", name)
        attached = swarm_cluster.docker(
            "service", "inspect", "--format", "{{range .Spec.TaskTemplate.Networks}}{{.Target}} {{end}}", name
        )
        ids = swarm_cluster.docker("network", "inspect", "--format", "{{.ID}}", name).stdout.split()
        server.executor.get(start["id"]).stop("cancelled", "test over")
        list(events)
    assert network.stdout.split() == ["overlay", "true"]
    assert attached.stdout.split() == ids  # that network and no other
    gone = wait_until(lambda: swarm_cluster.docker("network", "inspect", name).returncode != 0, timeout=10)
    assert gone, f"network {name} outlived its execution"


def test_with_network_empty_a_task_has_its_nodes_default_here_loopback_only(swarm_server, swarm_image, swarm_cluster):
    # The fast path of docs/scaling.md: no network of its own. The cluster's nodes run dockerd
    # with --bridge none, so the node's default is no network at all.
    server = swarm_server(network="")
    reply = server.execute({"cmd": "ip -o link | awk '{print $2}'", "args": swarm_image})
    assert reply.json()["stdout"].split() == ["lo:"]
    assert not swarm_cluster.networks((server.settings.server_name,))
