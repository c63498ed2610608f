"""docs/deploy/dockyter-stack.yml is accepted by a real Swarm, and its server settings by the server.

The images it names cannot be pulled here (no registry outside), so its tasks never start:
this checks what Swarm made of the file (replicas, placement, secrets, the proxy's port) and
that the environment it gives the server is a valid dockyter-server configuration.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"


def test_the_stack_file_deploys_two_server_replicas_behind_a_tls_proxy(swarm_cluster, tmp_path):
    for name in ("dockyter-stack.yml", "Caddyfile"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    (tmp_path / "tokens.txt").write_text(f"alice:{secrets.token_hex(16)}\n")
    (tmp_path / "tls.crt").write_text("certificate\n")
    (tmp_path / "tls.key").write_text("key\n")
    stack = "dyt-deploy-" + secrets.token_hex(3)

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*swarm_cluster.docker_command, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )

    deployed = docker("stack", "deploy", "--resolve-image", "never", "--compose-file", "dockyter-stack.yml", stack)
    try:
        assert deployed.returncode == 0, deployed.stderr
        server = json.loads(docker("service", "inspect", "--format", "{{json .Spec}}", f"{stack}_server").stdout)
        proxy = json.loads(docker("service", "inspect", "--format", "{{json .Spec}}", f"{stack}_proxy").stdout)
    finally:
        docker("stack", "rm", stack)
        gone = wait_until(
            lambda: (
                not docker(
                    "network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}"
                ).stdout.split()
            ),
            timeout=60,
        )
    assert gone, "the stack's network outlived it"

    assert server["Mode"]["Replicated"]["Replicas"] == 2
    task = server["TaskTemplate"]
    assert task["Placement"]["Constraints"] == ["node.role == manager"]
    assert [s["SecretName"] for s in task["ContainerSpec"]["Secrets"]] == [f"{stack}_dockyter_tokens"]
    env = dict(item.split("=", 1) for item in task["ContainerSpec"]["Env"])
    assert env["DOCKYTER_SERVER_SERVER_NAME"] == "dockyter-{{.Task.Slot}}"  # Swarm fills in each replica's slot
    published = proxy["EndpointSpec"]["Ports"]
    assert [(p["TargetPort"], p["PublishedPort"], p["PublishMode"]) for p in published] == [(443, 443, "host")]

    # What the server of replica 1 would read: a valid configuration for the Swarm executor.
    from dockyter.server.settings import load_settings

    env["DOCKYTER_SERVER_SERVER_NAME"] = "dockyter-1"
    env["DOCKYTER_SERVER_TOKEN_FILE"] = str(tmp_path / "tokens.txt")
    command = task["ContainerSpec"]["Args"] if "Args" in task["ContainerSpec"] else task["ContainerSpec"]["Command"]
    assert command[0] == "dockyter-server"
    settings = load_settings(command[1:], environ=env)
    assert (settings.executor, settings.server_name, settings.host) == ("swarm", "dockyter-1", "0.0.0.0")
    assert settings.token_table().keys() == {"alice"}
