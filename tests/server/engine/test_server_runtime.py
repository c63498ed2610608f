"""The server's ``runtime`` setting: every container under one OCI runtime, gVisor's runsc first.

What the engine records for a running container (``docker inspect``) shows the runtime and
the limits the server set, under runc and runsc alike: inside gVisor some of them cannot be
seen (its /proc shows no NoNewPrivs, it mounts no cgroupfs). The client passes
``%%docker --runtime runsc IMAGE`` through like any docker flag.

The engine executor only: a service cannot choose its runtime, so a Swarm server refuses the
setting at start-up (below) and its nodes' default-runtime runs every task.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import httpx
import pytest
from helpers import docker
from servers import under_each_runtime

pytestmark = pytest.mark.docker


@under_each_runtime
def test_every_container_runs_under_the_runtime_and_says_so(dockyter_server, test_image, oci_runtime, caplog):
    server = dockyter_server()
    caplog.set_level("INFO", logger="dockyter.server")
    with server.stream({"cmd": "echo ready; dmesg 2>/dev/null | head -n 1; sleep 60", "args": test_image}) as events:
        start = next(events)
        first = next(events)
        assert first["data"] == "ready\n"
        name = "dockyter-" + start["id"]
        inspected = docker("inspect", "--format", "{{json .HostConfig}}", name)
        assert inspected.returncode == 0, inspected.stderr
        host = json.loads(inspected.stdout)
        assert host["Runtime"] == oci_runtime
        assert (host["NetworkMode"], host["PidsLimit"], host["Memory"]) == ("none", 256, 512 * 1024 * 1024)
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
        if oci_runtime == "runsc":  # gVisor's kernel, not the host's, answers the container
            assert "gVisor" in next(events)["data"]
        httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(), timeout=60)
        assert list(events)[-1]["reason"] == "cancelled"
    # Which runtime ran: the authenticated health reply and the execution's log line.
    assert httpx.get(server.url + "/health", headers=server.headers()).json()["runtime"] == oci_runtime
    assert "runtime" not in httpx.get(server.url + "/health").json()  # not for strangers
    assert "runtime" not in httpx.get(server.url + "/health", headers=server.headers("x" * 30)).json()
    records = [r.execution for r in caplog.records if hasattr(r, "execution")]
    assert records[-1]["runtime"] == oci_runtime


@under_each_runtime
def test_a_session_runs_under_the_runtime_with_the_same_limits(dockyter_server, test_image, oci_runtime):
    server = dockyter_server()
    made = httpx.post(f"{server.url}/sessions", json={"args": test_image}, headers=server.headers(), timeout=60)
    assert made.status_code == 201, made.text
    session = made.json()
    inspected = docker("inspect", "--format", "{{json .HostConfig}}", session["container"])
    assert inspected.returncode == 0, inspected.stderr
    host = json.loads(inspected.stdout)
    assert host["Runtime"] == oci_runtime
    assert (host["NetworkMode"], host["PidsLimit"], host["Memory"]) == ("none", 256, 512 * 1024 * 1024)
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    answer = httpx.post(
        f"{server.url}/sessions/{session['id']}/execute",
        json={"cmd": "echo here"},
        headers=server.headers(),
        timeout=60,
    )
    assert answer.json()["stdout"] == "here\n"


def test_without_the_setting_the_engine_default_is_reported(dockyter_server, test_image, caplog):
    server = dockyter_server()
    caplog.set_level("INFO", logger="dockyter.server")
    default = docker("info", "--format", "{{.DefaultRuntime}}").stdout.strip()
    assert default
    assert httpx.get(server.url + "/health", headers=server.headers()).json()["runtime"] == default
    assert server.execute({"cmd": "echo plain", "args": test_image}).json()["stdout"] == "plain\n"
    records = [r.execution for r in caplog.records if hasattr(r, "execution")]
    assert records[-1]["runtime"] == default


def test_a_runtime_the_engine_lacks_stops_the_command_with_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "dockyter.server",
        "--no-auth",
        "--port",
        str(port),
        "--runtime",
        "no-such-runtime",
    ]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert answer.returncode == 2
    assert answer.stderr.startswith(
        "dockyter-server: error: the container engine has no runtime 'no-such-runtime' (it has: "
    )
    assert "runc" in answer.stderr and "/etc/docker/daemon.json" in answer.stderr
    assert answer.stderr.count("\n") == 1  # one line, no traceback
    assert answer.stdout == ""


@pytest.mark.parametrize("value", ["--privileged", "runsc --debug", "../x", ""])
def test_a_runtime_that_is_not_a_name_is_a_settings_error(value):
    from dockyter.server.settings.fields import SettingsError
    from dockyter.server.settings.sources import load_settings

    if value == "":  # empty means the engine's default
        assert load_settings(["--no-auth", "--runtime="], environ={}).runtime == ""
        return
    with pytest.raises(SettingsError, match="must be a runtime name like runsc"):
        load_settings(["--no-auth", f"--runtime={value}"], environ={})


def test_the_runtime_comes_from_flag_environment_and_file(tmp_path):
    from dockyter.server.settings.sources import load_settings

    config = tmp_path / "server.toml"
    config.write_text('runtime = "from-file"\n')
    assert load_settings(["--no-auth", "--config", str(config)], environ={}).runtime == "from-file"
    environ = {"DOCKYTER_SERVER_RUNTIME": "runsc"}
    assert load_settings(["--no-auth", "--config", str(config)], environ=environ).runtime == "runsc"
    assert load_settings(["--no-auth", "--runtime", "runc"], environ=environ).runtime == "runc"


def test_the_client_passes_runtime_through_like_any_docker_flag(cell, ip, test_image, runsc):
    run = cell(f"%%docker --runtime {runsc} {test_image}\ndmesg | head -n 1; uname -r")
    assert run.error is None, run.stdout + run.stderr
    first, release = run.stdout.splitlines()
    assert "gVisor" in first
    assert release != os.uname().release  # not the host's kernel
    assert ip.user_ns["_exit_code"] == 0


def test_a_swarm_server_refuses_a_runtime_with_one_line():
    from dockyter.server.settings.fields import SettingsError
    from dockyter.server.settings.sources import load_settings

    with pytest.raises(SettingsError) as error:
        load_settings(["--no-auth", "--executor", "swarm", "--runtime", "runsc"], environ={})
    assert str(error.value) == (
        "executor swarm: runtime 'runsc' cannot be set per service; "
        "make it the nodes' default-runtime in their daemon.json and leave runtime empty"
    )
