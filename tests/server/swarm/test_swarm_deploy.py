"""docs/deploy/ runs for real: the shipped stack file on the three-node test cluster.

The server image (docs/deploy/build-server-image.sh on the python test image) and a Caddy
image (Debian's caddy, FROM scratch) are pushed to the cluster's registry, the stack is
deployed with a throwaway certificate authority, and a notebook's requests come from inside
the cluster's network through the TLS proxy to the two server replicas, whose executions run
as services of the swarm. See deploy_stack.py for the set-up and deploy_client.py for the client.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import LEFTOVER_WAIT
from conftest import skip_or_fail
from deploy_stack import SERVER_IMAGE, Deployment, image_problem
from helpers import docker, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

REPLICAS = ("dockyter-1", "dockyter-2")  # the stack file's server names, one per slot


@pytest.fixture(scope="module")
def deployment(swarm_cluster, tmp_path_factory) -> Iterator[Deployment]:
    skip_or_fail(image_problem())
    deployed = Deployment.prepare(swarm_cluster, tmp_path_factory.mktemp("deploy"))
    try:
        deployed.deploy()
        deployed.wait_ready()
        yield deployed
    finally:
        left = deployed.remove()
    assert not left, f"the stack left: {left}"
    # The nodes delete a removed task's container seconds after its service went.
    gone = wait_until(lambda: not swarm_cluster.leftovers(REPLICAS), timeout=LEFTOVER_WAIT, interval=0.5)
    assert gone, f"the replicas left executions behind: {swarm_cluster.leftovers(REPLICAS)}"


def next_record(client: subprocess.Popen[str]) -> dict[str, Any]:
    line = client.stdout.readline() if client.stdout else ""
    assert line, f"the client ended: {client.stderr.read() if client.stderr else ''}"
    return json.loads(line)


def the_running_service(cluster) -> dict[str, str]:
    """The labels of the one execution service of the replicas (an earlier test's may take a moment to go)."""
    services = wait_until(lambda: len(cluster.services(REPLICAS)) == 1 and cluster.services(REPLICAS), timeout=15)
    assert services, f"not exactly one execution service: {cluster.services(REPLICAS)}"
    answer = cluster.docker("service", "inspect", "--format", "{{json .Spec.Labels}}", services[0])
    return json.loads(answer.stdout)


def test_swarm_runs_two_server_replicas_on_the_manager_and_the_proxy(deployment):
    servers = deployment.tasks("server")
    assert [node for node, _ in servers] == ["dyt-manager", "dyt-manager"]
    assert len(deployment.tasks("proxy")) == 1


def test_a_cell_runs_through_the_tls_proxy_with_its_output_and_exit_code(deployment, swarm_image):
    health = deployment.request("GET", "/health", token=deployment.token)
    assert health["status"] == 200
    assert (health["body"]["status"], health["body"]["token"]) == ("ok", "accepted")

    records = deployment.cell(swarm_image, "echo out; echo err >&2; exit 3")
    assert "".join(r.get("stdout", "") for r in records) == "out\n"
    assert "".join(r.get("stderr", "") for r in records) == "err\n"
    assert records[-1] == {"exit_code": 3, "reason": None, "message": None}


def test_requests_without_a_token_or_for_another_image_are_refused(deployment, swarm_image):
    refused = deployment.request("POST", "/execute", body={"cmd": "true", "args": swarm_image})
    assert refused["status"] == 401
    assert "token" in refused["body"]["detail"]
    wrong = deployment.request("POST", "/execute", token="not-a-token", body={"cmd": "true", "args": swarm_image})
    assert wrong["status"] == 401
    # The allowed images are the stack's DOCKYTER_ALLOWED_IMAGES: the cluster registry's test images.
    other = deployment.request("POST", "/execute", token=deployment.token, body={"cmd": "true", "args": "busybox:1"})
    assert other["status"] == 403
    assert "busybox:1" in other["body"]["detail"]


def test_output_streams_live_and_a_cancel_through_the_proxy_removes_the_service(deployment, swarm_image):
    cluster = deployment.cluster
    client = deployment.start_cell(swarm_image, "echo started; sleep 120; echo finished")
    try:
        # The first line arrives while the command still sleeps: nothing held it back on the way.
        assert next_record(client) == {"stdout": "started\n"}
        assert client.poll() is None
        # The run is a service of the swarm, started by one of the replicas for alice.
        labels = the_running_service(cluster)
        assert labels["io.dockyter.who"] == "alice"
        assert labels["io.dockyter.server"].split(":")[0] in REPLICAS
        execution = labels["io.dockyter.execution"]
        # swarm_isolation = nodes: no network; the image's loopback check is the task's entrypoint.
        spec = cluster.docker("service", "inspect", "--format", "{{json .Spec.TaskTemplate}}", f"dockyter-{execution}")
        template = json.loads(spec.stdout)
        assert not template.get("Networks")
        [check] = template["ContainerSpec"]["Command"]
        assert re.fullmatch(r"/\.dockyter/[0-9a-f]{32}/loopback-only", check)
        assert [config["File"]["Name"] for config in template["ContainerSpec"]["Configs"]] == [check]

        # Cancelled by another connection, which the proxy may give to either replica.
        cancelled = deployment.request("POST", f"/executions/{execution}/cancel", token=deployment.token)
        assert cancelled == {"status": 200, "body": {"id": execution, "cancelled": True}}
        rest = [next_record(client)]
        while "exit_code" not in rest[-1]:
            rest.append(next_record(client))
    finally:
        client.kill()
        client.wait()
    assert rest[-1]["exit_code"] == 130 and rest[-1]["reason"] == "cancelled"
    assert "finished" not in "".join(r.get("stdout", "") for r in rest)
    assert wait_until(lambda: not cluster.services(REPLICAS), timeout=10), "the cancelled run's service stayed"


# Last: it kills a replica, which Swarm then restarts.
def test_a_replica_that_dies_is_skipped_by_the_proxy_and_its_run_does_not_outlive_it(deployment, swarm_image):
    cluster = deployment.cluster
    client = deployment.start_cell(swarm_image, "echo started; sleep 120; echo finished")
    try:
        assert next_record(client) == {"stdout": "started\n"}
        labels = the_running_service(cluster)
        slot = labels["io.dockyter.server"].split(":")[0].removeprefix("dockyter-")
        container = deployment.replica_container(slot)
        assert container, f"no running container for replica {slot}"
        assert cluster.docker("kill", container).returncode == 0
        # The notebook is told, in one line, rather than left waiting.
        end = next_record(client)
        while not {"exit_code", "error"} & end.keys():
            end = next_record(client)
    finally:
        client.kill()
        client.wait()
    assert "the API stream ended before the command finished" in end.get("error", ""), end
    # Meanwhile the proxy sends every request to the replica that is left.
    for _ in range(4):
        assert deployment.request("GET", "/health", token=deployment.token)["status"] == 200
    # Nothing of the run outlives its replica (the client's cancel reaches the other replica,
    # or the restarted one removes what its slot left), and Swarm brings the replica back.
    assert wait_until(lambda: not cluster.services(REPLICAS), timeout=30), cluster.services(REPLICAS)
    assert wait_until(lambda: deployment.replica_container(slot), timeout=60), "the replica did not come back"


@pytest.mark.parametrize(("network", "code"), [("none", 0), ("bridge", 125)])
def test_the_server_image_carries_the_loopback_check_where_its_setting_says(network, code):
    # swarm_isolation = "nodes" needs only the setting: the image has the program, and names it.
    skip_or_fail(image_problem())
    path = docker("image", "inspect", "--format", "{{json .Config.Env}}", SERVER_IMAGE)
    assert "DOCKYTER_SERVER_LOOPBACK_CHECK=/usr/local/lib/dockyter/loopback-only" in json.loads(path.stdout)
    done = docker(
        "run", "--rm", "--network", network, "--entrypoint", "/usr/local/lib/dockyter/loopback-only",
        SERVER_IMAGE, "dockyter-server", "--help",
    )  # fmt: skip
    assert done.returncode == code, done.stderr
