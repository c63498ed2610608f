"""Network isolation on the Swarm: a task reaches nothing outside, and no other token's task.

Swarm has no ``--network none`` for services, and a service without a network lands on its
node's default bridge. The Swarm executor gives each token an internal overlay network
instead, shared by that token's running executions only (docs/scaling.md); these tests check
what that guarantees, from inside real tasks on the three-node cluster, and how the network
comes and goes with its token's executions.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from helpers import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

ALICE = "alice:" + "a" * 24
BOB = "bob:" + "b" * 24
ALICE_TOKEN, BOB_TOKEN = ALICE.split(":")[1], BOB.split(":")[1]

# Prints the task's address, then waits for one connection on port 8080.
LISTEN = "ip -o -4 addr show eth0 | awk '{print $4}'; nc -l -p 8080 -w 30 </dev/null; echo listener-done"
NODE_PORT = 7946  # Swarm's gossip port: every node listens on it


def probe(peers: list[str], registry: str, nodes: list[str] = ()) -> str:
    """A command that says, one line each, whether it reaches each peer, each node and the registry."""
    # A few tries at a peer: a node learns where a new task's peers are by gossip, which takes
    # a moment under load; a peer on another network fails at once ("Network is unreachable").
    reach = "for try in 1 2 3 4 5; do nc -w 2 {} 8080 </dev/null && break; sleep 1; false; done"
    checks = [f"if {reach.format(peer)}; then echo peer-reached; else echo peer-unreachable; fi" for peer in peers]
    checks += [
        f"if nc -w 3 {node} {NODE_PORT} </dev/null; then echo node-reached; else echo node-unreachable; fi"
        for node in nodes
    ]
    checks += [
        f"if wget -q -T 3 -O /dev/null http://{registry}/v2/; then echo outside-reached; else echo outside-unreachable; fi",
        "ip route | grep -q default && echo has-default-route || echo no-default-route",
    ]
    return "; ".join(checks)


@contextmanager
def server_stream(server, body, token: str):
    """``server.stream`` with another token: an iterator of events."""
    headers = server.headers(token, Accept="application/x-ndjson")
    with httpx.Client(timeout=120) as client:
        with client.stream("POST", server.url + "/execute", json=body, headers=headers) as response:
            assert response.status_code == 200
            yield (json.loads(line) for line in response.iter_lines() if line)


def opened(stack: ExitStack, server, body: dict, token: str):
    """Start an execution as ``token`` (closed with ``stack``): its events, not yet read."""
    events = stack.enter_context(server_stream(server, body, token))
    # Held until the stack closes: an iterator dropped earlier would close its stream, which
    # the server takes for a client that went away, and would end the execution.
    stack.callback(lambda: events)
    return events


def first_output(events) -> tuple[str, str, str]:
    """Read an execution up to its first output: its id, node and that output."""
    start, node = next(events), ""
    for event in events:
        if event["event"] == "node":
            node = event["node"]
        if event["event"] == "stdout":
            return start["id"], node, event["data"]
    raise AssertionError(f"no output: {start}")


def running(stack: ExitStack, server, body: dict, token: str) -> tuple[str, str, str]:
    """Start an execution as ``token`` (closed with ``stack``); its id, node and first output."""
    return first_output(opened(stack, server, body, token))


def listeners(stack: ExitStack, server, args: str, token: str, count: int = 1) -> list[tuple[str, str]]:
    """Start ``count`` listeners at once as ``token``: the node and address of each."""
    started = [opened(stack, server, {"cmd": LISTEN, "args": args}, token) for _ in range(count)]
    found = []
    for events in started:
        _, node, first = first_output(events)
        found.append((node, re.match(r"([0-9.]+)/", first).group(1)))
    return found


def probes(server, command: str, image: str, token: str, count: int = 1) -> list[tuple[str, list[str]]]:
    """Run ``command`` ``count`` times at once as ``token``: the node and output lines of each."""
    with ExitStack() as stack:
        started = [opened(stack, server, {"cmd": command, "args": image, "timeout": 60}, token) for _ in range(count)]
        results = []
        for events in started:
            seen = list(events)
            assert seen[-1]["event"] == "exit", seen[-1]
            node = next(event["node"] for event in seen if event["event"] == "node")
            results.append((node, "".join(event["data"] for event in seen if event["event"] == "stdout").split()))
    return results


def node_addresses(cluster) -> list[str]:
    ids = cluster.docker("node", "ls", "--quiet").stdout.split()
    return cluster.docker("node", "inspect", "--format", "{{.Status.Addr}}", *ids).stdout.split()


def network_of(cluster, service: str) -> list[str]:
    """The ids of the networks a service's tasks join."""
    fmt = "{{range .Spec.TaskTemplate.Networks}}{{.Target}} {{end}}"
    return cluster.docker("service", "inspect", "--format", fmt, service).stdout.split()


def test_two_tokens_tasks_reach_neither_each_other_nor_the_outside_on_one_node_or_two(
    swarm_server, swarm_image, swarm_cluster
):
    server = swarm_server(tokens=[ALICE, BOB], max_concurrent=8, max_concurrent_per_token=4)
    nodes = node_addresses(swarm_cluster)
    assert len(nodes) == 3
    isolated = ["peer-unreachable"] * 3 + ["node-unreachable"] * 3 + ["outside-unreachable", "no-default-route"]
    with ExitStack() as stack:
        # Three of alice's listeners and three of bob's probes, each three started at once, so
        # that Swarm spreads them over the nodes: some of bob's tasks share a node with one of
        # alice's, and all have one of alice's on another node.
        found = listeners(stack, server, swarm_image, ALICE_TOKEN, count=3)
        alice_nodes = {node for node, _ in found}
        addresses = [address for _, address in found]
        command = probe(addresses, swarm_cluster.registry, nodes)
        bob = probes(server, command, swarm_image, BOB_TOKEN, count=3)
        for _, out in bob:
            assert out == isolated
        cases = {"same node" for node, _ in bob if node in alice_nodes}
        cases |= {"another node" for node, _ in bob if alice_nodes - {node}}
        assert cases == {"same node", "another node"}, f"alice on {alice_nodes}, bob on {[n for n, _ in bob]}"
        # The control, and the decision of docs/scaling.md: alice's own concurrent execution
        # shares her network and reaches her listeners, on its node and the others, but
        # still nothing outside. So bob's unreachable peers are the isolation at work.
        [(_, out)] = probes(server, command, swarm_image, ALICE_TOKEN)
        assert out == ["peer-reached"] * 3 + isolated[3:]


def test_the_same_probe_does_reach_a_peer_on_a_network_the_policy_allows(swarm_server, swarm_image, swarm_cluster):
    # On a shared network the operator allows, another token's listener is reachable.
    network = "dyt-test-shared-" + secrets.token_hex(3)
    created = swarm_cluster.docker("network", "create", "--driver", "overlay", "--internal", "--attachable", network)
    assert created.returncode == 0, created.stderr
    try:
        server = swarm_server(tokens=[ALICE, BOB], allowed_networks=[network], max_concurrent=4)
        args = f"--network {network} {swarm_image}"
        with ExitStack() as stack:
            [(_, address)] = listeners(stack, server, args, ALICE_TOKEN)
            [(_, out)] = probes(server, probe([address], swarm_cluster.registry), args, BOB_TOKEN)
        assert out[0] == "peer-reached"
    finally:
        for _ in range(40):
            if swarm_cluster.docker("network", "rm", network).returncode == 0:
                break
            time.sleep(0.5)


def test_one_tokens_executions_share_one_network_which_goes_with_the_last(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server(max_concurrent=4)
    names = (server.settings.server_name,)
    body = {"cmd": "echo up; sleep 30", "args": swarm_image}
    with ExitStack() as first_stack, ExitStack() as second_stack:
        first, _, _ = running(first_stack, server, body, server.token)
        second, _, _ = running(second_stack, server, body, server.token)
        networks = swarm_cluster.networks(names)
        assert len(networks) == 1, networks
        shape = swarm_cluster.docker("network", "inspect", "--format", "{{.Driver}} {{.Internal}}", networks[0])
        assert shape.stdout.split() == ["overlay", "true"]
        ids = swarm_cluster.docker("network", "inspect", "--format", "{{.ID}}", networks[0]).stdout.split()
        assert network_of(swarm_cluster, "dockyter-" + first) == ids  # that network and no other
        assert network_of(swarm_cluster, "dockyter-" + second) == ids
        first_stack.close()  # the client goes: the first execution ends
        assert wait_until(lambda: swarm_cluster.docker("service", "inspect", "dockyter-" + first).returncode != 0)
        time.sleep(3)  # what would remove the network has had its chance
        assert swarm_cluster.networks(names) == networks  # the second execution still uses it
    gone = wait_until(lambda: not swarm_cluster.networks(names), timeout=20)
    assert gone, "the network outlived its token's last execution"


def test_shutdown_removes_the_networks(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server(tokens=[ALICE, BOB], max_concurrent=4)
    names = (server.settings.server_name,)
    with ExitStack() as stack:
        for token in (ALICE_TOKEN, BOB_TOKEN):
            running(stack, server, {"cmd": "echo up; sleep 30", "args": swarm_image}, token)
        assert len(swarm_cluster.networks(names)) == 2  # one per token
        server.stop()
    # The server removed them before it stopped; a manager that ran one of the tasks still
    # lists its local copy until that task's container has left it (seconds, see scaling.md).
    # Nothing else removes them, so a network still listed after that was never removed.
    gone = wait_until(lambda: not swarm_cluster.networks(names), timeout=20)
    assert gone, "a network outlived the server's shutdown"


def test_with_network_empty_a_task_has_its_nodes_default_here_loopback_only(swarm_server, swarm_image, swarm_cluster):
    # The fast path of docs/scaling.md: no network of its own. The cluster's nodes run dockerd
    # with --bridge none, so the node's default is no network at all.
    server = swarm_server(network="")
    reply = server.execute({"cmd": "ip -o link | awk '{print $2}'", "args": swarm_image})
    assert reply.json()["stdout"].split() == ["lo:"]
    assert not swarm_cluster.networks((server.settings.server_name,))


def test_the_sweep_removes_networks_left_behind(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server(reap_interval=0.5)
    suffix = secrets.token_hex(4)
    # One of this instance's that no execution uses, and one of a vanished replica, past its deadline.
    left = {"io.dockyter.server": server.executor.label}
    expired = {"io.dockyter.server": f"gone-{suffix}:0", "io.dockyter.deadline": str(int(time.time()) - 1)}
    names = {f"dyt-test-left-{suffix}": left, f"dyt-test-expired-{suffix}": expired}
    for name, labels in names.items():
        flags = [word for key, value in labels.items() for word in ("--label", f"{key}={value}")]
        created = swarm_cluster.docker(
            "network", "create", "--driver", "overlay", "--internal", "--label", "io.dockyter.managed=1", *flags, name
        )
        assert created.returncode == 0, created.stderr
    try:
        # An execution spanning several sweeps keeps its token's network.
        body = server.execute({"cmd": "sleep 3; echo still-here", "args": swarm_image}).json()
        assert (body["exit_code"], body["stdout"]) == (0, "still-here\n")
        assert wait_until(lambda: not any(exists(swarm_cluster, name) for name in names), timeout=15)
    finally:
        for name in names:
            swarm_cluster.docker("network", "rm", name)


# -- the network keeper itself, against the cluster's manager --------------------------------------


@pytest.fixture
def networks(swarm_cluster):
    """A :class:`SwarmNetworks` of a made-up server instance; its networks are checked gone after."""
    from dockyter.server.settings.fields import Settings
    from dockyter.server.swarm.swarmexecutor import SwarmExecutor

    name = "test-" + secrets.token_hex(4)
    settings = Settings(executor="swarm", docker_command=swarm_cluster.docker_command, server_name=name, auth=False)
    keeper = SwarmExecutor(settings).networks
    yield keeper
    left = swarm_cluster.networks((name,))
    for network in left:
        swarm_cluster.docker("network", "rm", network)
    assert not left, f"networks left: {left}"


def exists(cluster, network: str) -> bool:
    return cluster.docker("network", "inspect", network).returncode == 0


def test_an_acquire_cancels_a_pending_removal_and_reuses_the_network(networks, swarm_cluster):
    async def scenario() -> tuple[str, str]:
        until = time.time() + 60
        first, _ = await networks.acquire("alice", until)
        networks.release(first)  # removal pending
        again, _ = await networks.acquire("alice", until)  # before the reaper has run
        networks.release(again)
        await networks.wait_removed()
        return first, again

    first, again = asyncio.run(scenario())
    assert first and again == first
    assert not exists(swarm_cluster, first)


def test_an_acquire_after_the_removal_creates_a_new_network(networks, swarm_cluster):
    async def scenario() -> tuple[str, str, bool]:
        until = time.time() + 60
        first, _ = await networks.acquire("alice", until)
        networks.release(first)
        await networks.wait_removed()
        second, _ = await networks.acquire("alice", until)
        alive = exists(swarm_cluster, second)
        networks.release(second)
        await networks.wait_removed()
        return first, second, alive

    first, second, alive = asyncio.run(scenario())
    assert second != first and alive


def test_an_acquire_during_the_removal_waits_for_it_and_creates_a_new_network(networks, swarm_cluster):
    # The reaper's `network rm` is held at its start; an acquire meanwhile must neither hand out
    # the network being removed nor cancel a removal already under way.
    async def scenario() -> tuple[str, str, bool]:
        real_control, gate, held = networks.control, asyncio.Event(), asyncio.Event()

        async def control(*args, **kwargs):
            if args[:2] == ("network", "rm"):
                held.set()
                await gate.wait()
            return await real_control(*args, **kwargs)

        networks.control = control
        until = time.time() + 60
        first, _ = await networks.acquire("alice", until)
        networks.release(first)
        await held.wait()
        acquiring = asyncio.create_task(networks.acquire("alice", until))
        await asyncio.sleep(0.5)
        assert not acquiring.done()  # it waits for the removal under way
        gate.set()
        second, _ = await acquiring
        alive = exists(swarm_cluster, second)
        networks.release(second)
        await networks.wait_removed()
        return first, second, alive

    first, second, alive = asyncio.run(scenario())
    assert second != first and alive
    assert not exists(swarm_cluster, first)


def test_two_owners_never_share_a_network(networks):
    async def scenario() -> tuple[str | None, str | None]:
        until = time.time() + 60
        alice, bob = await asyncio.gather(networks.acquire("alice", until), networks.acquire("bob", until))
        for name, _ in (alice, bob):
            networks.release(name)
        await networks.wait_removed()
        return alice[0], bob[0]

    alice, bob = asyncio.run(scenario())
    assert alice and bob and alice != bob
