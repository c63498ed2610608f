"""The Swarm executor on a real three-node Swarm (.ci/cluster): output, confinement, placement, isolation."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from helpers import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

NODES = {"dyt-manager", "dyt-worker1", "dyt-worker2"}


def test_output_streams_live_in_order_and_ends_with_the_exit_code(swarm_server, swarm_image):
    server = swarm_server()
    cmd = "echo one; echo err >&2; sleep 1.5; echo two; printf 'no newline at the end'; exit 3"
    arrived = []
    with server.stream({"cmd": cmd, "args": swarm_image}) as events:
        for event in events:
            arrived.append((time.monotonic(), event))
    kinds = [event["event"] for _, event in arrived]
    assert kinds[0] == "start"
    assert kinds[-1] == "exit" and arrived[-1][1]["code"] == 3
    # The node comes before any output, and is one of the cluster's.
    node = next(event for _, event in arrived if event["event"] == "node")
    assert node["node"] in NODES
    assert kinds.index("node") < kinds.index("stdout")
    stdout = "".join(event["data"] for _, event in arrived if event["event"] == "stdout")
    stderr = "".join(event["data"] for _, event in arrived if event["event"] == "stderr")
    assert stdout == "one\ntwo\nno newline at the end"
    assert stderr == "err\n"
    # Live: "one" arrived while the command was still sleeping, well before the end.
    first = next(t for t, event in arrived if event.get("data") == "one\n")
    assert arrived[-1][0] - first > 1.0


def test_plain_json_reply_and_merged_stderr(swarm_server, swarm_image):
    server = swarm_server()
    reply = server.execute({"cmd": "echo a; echo b >&2; echo c", "args": swarm_image, "merge_stderr": True})
    assert reply.status_code == 200
    body = reply.json()
    assert (body["stdout"], body["stderr"], body["exit_code"]) == ("a\nb\nc\n", "", 0)


def test_the_task_is_confined_like_a_container_of_the_engine_executor(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server(memory="64m", cpus="0.5", pids_limit=50, allowed_flags=["--env", "--user", "--read-only"])
    probe = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
        "id -u; echo $GREETING; touch /probe 2>/dev/null && echo writable || echo read-only"
    )
    reply = server.execute({"cmd": probe, "args": f"-e GREETING=hello --user 1000 --read-only {swarm_image}"})
    lines = reply.json()["stdout"].split("\n")
    assert lines[0] == str(64 * 1024 * 1024)
    assert lines[1] == "50"
    assert lines[2] == "50000"  # half of the 100000 us period
    assert lines[3].split() == ["CapEff:", "0000000000000000"]
    assert lines[4].split() == ["NoNewPrivs:", "1"]
    assert lines[5:8] == ["1000", "hello", "read-only"]


def test_services_are_labelled_with_the_server_owner_and_execution(swarm_server, swarm_image, swarm_cluster):
    server = swarm_server()
    with server.stream({"cmd": "echo up; sleep 30", "args": swarm_image}) as events:
        start = next(events)
        assert wait_until(lambda: next(events)["event"] == "stdout", timeout=60)
        name = "dockyter-" + start["id"]
        labels = swarm_cluster.docker("service", "inspect", "--format", "{{json .Spec.Labels}}", name).stdout
        httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(), timeout=60)
        list(events)
    assert f'"io.dockyter.server":"{server.executor.label}"' in labels
    assert f'"io.dockyter.execution":"{start["id"]}"' in labels
    assert '"io.dockyter.who":"tester"' in labels
    assert f'"io.dockyter.owner":"{server.executor.owner}"' in labels
    assert '"io.dockyter.managed":"1"' in labels


def test_executions_spread_over_the_nodes(swarm_server, swarm_image):
    server = swarm_server(max_concurrent=12, max_concurrent_per_token=0)
    nodes: list[str] = []

    def run() -> None:
        with server.stream({"cmd": "sleep 2", "args": swarm_image}) as events:
            nodes.extend(event["node"] for event in events if event["event"] == "node")

    threads = [threading.Thread(target=run) for _ in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(nodes) == 9
    assert len(set(nodes)) >= 2, nodes  # Swarm spreads; three nodes, nine tasks


def test_a_missing_image_is_one_stderr_line_and_status_125(swarm_server, swarm_cluster):
    server = swarm_server(max_timeout=60)
    reply = server.execute({"cmd": "true", "args": f"{swarm_cluster.registry}/no/such-image:1"})
    body = reply.json()
    assert reply.status_code == 200
    assert body["exit_code"] in (125, 127)
    assert body["stderr"].startswith("docker: ")
    assert "Traceback" not in body["stderr"]


def test_request_options_swarm_cannot_express_are_refused_at_start_up(swarm_cluster):
    from dockyter.server.settings.fields import SettingsError
    from dockyter.server.settings.sources import make_settings

    with pytest.raises(SettingsError, match="--cpu-shares has no equivalent for Swarm services"):
        make_settings({"executor": "swarm", "allowed_flags": ["--cpu-shares"], "auth": False})
