"""A hostile client against the Swarm executor: the same refusals as on one engine, and nothing
reaches a shell on the server or a service on the cluster that the policy did not allow."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.swarm]


@pytest.fixture
def server(swarm_server):
    return swarm_server(max_timeout=30, allowed_mounts=["/usr/share:ro"])


@pytest.mark.parametrize(
    "args",
    [
        "--privileged IMAGE",
        "--cap-add ALL IMAGE",
        "--net host IMAGE",
        "--network=host IMAGE",
        "--pid host IMAGE",
        "--security-opt seccomp=unconfined IMAGE",
        "-v /:/host IMAGE",
        "-v /var/run/docker.sock:/s IMAGE",
        "--mount type=bind,source=/,target=/h IMAGE",
        "-v /usr/share:/s IMAGE",  # allowed read-only only
        "--label io.dockyter.server=someone:else IMAGE",
        "--device /dev/sda IMAGE",
        "--name mine IMAGE",
        "-v /anonymous IMAGE",  # allowed by the policy, but it would outlive the task on Swarm
    ],
)
def test_refused_with_one_line_and_no_service(server, swarm_image, swarm_cluster, args):
    answer = server.execute({"cmd": "true", "args": args.replace("IMAGE", swarm_image)})
    assert answer.status_code == 403, answer.text
    detail = answer.json()["detail"]
    assert "\n" not in detail and "Traceback" not in detail
    assert not swarm_cluster.services((server.settings.server_name,))


def test_no_token_no_service(server, swarm_image, swarm_cluster):
    assert httpx.post(server.url + "/execute", json={"cmd": "true", "args": swarm_image}).status_code == 401
    assert server.execute({"cmd": "true", "args": swarm_image}, token="not-a-token-at-all").status_code == 401
    assert not swarm_cluster.services((server.settings.server_name,))


def test_text_reaches_a_shell_only_inside_the_task(server, swarm_image, tmp_path):
    marker = tmp_path / "touched"
    injected = server.execute({"cmd": "true", "args": f"{swarm_image}; touch {marker}"})
    assert injected.status_code == 400
    reply = server.execute({"cmd": 'echo "$X"', "args": f"-e 'X=$(touch {marker})' {swarm_image}"})
    assert reply.json()["stdout"] == f"$(touch {marker})\n"
    assert not Path(marker).exists()


def test_an_allowed_read_only_mount_is_read_only_in_the_task(server, swarm_image):
    reply = server.execute(
        {
            "cmd": "ls /s >/dev/null && echo listed; touch /s/x 2>/dev/null || echo read-only",
            "args": f"-v /usr/share:/s:ro {swarm_image}",
        }
    )
    assert reply.json()["stdout"] == "listed\nread-only\n"
