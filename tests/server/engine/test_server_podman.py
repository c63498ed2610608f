"""dockyter-server on podman: which podman it is, and a rootless podman's server.

The server's tests on rootful podman are the engine's own, parametrized (``@under_each_engine``,
``@under_each_place``, ``@under_each_engine_and_the_swarm``: the confinement, the refusals,
cancel, limits, sessions, the check of what the engine made, the hostile mounts). Here: what the
server learns of its engine at start-up, and a server whose ``docker_command`` is the rootless
test user's podman (through ``setpriv``, as ``tests/engines.py`` reaches it): on this host's
cgroup v1 it cannot limit a container, so it refuses to start while limits are set, and runs
without them once told so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from engines import ENGINE_NAMES, Engine
from helpers import wait_until

from dockyter.server.engine.enginekind import ask_kind

pytestmark = pytest.mark.docker

NO_LIMITS = {"memory": "", "cpus": "", "pids_limit": 0}


@pytest.mark.parametrize("engine", ENGINE_NAMES, indirect=True)
def test_the_server_knows_its_engine(engine):
    kind = ask_kind(engine.command, {"PATH": os.defpath})
    assert (kind.podman, kind.rootless) == (engine.is_podman, engine.rootless)
    assert kind.oci_runtime == ("runc" if engine.is_podman else "")


@pytest.mark.parametrize("engine", ["podman-rootless"], indirect=True)
def test_rootless_podman_on_cgroup_v1_with_limits_refuses_to_start(engine, tmp_path):
    started = subprocess.run(
        [sys.executable, "-m", "dockyter.server", "--no-auth", "--port", "0", "--docker-command",
         " ".join(engine.command)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert started.returncode == 2, started.stderr
    [line] = started.stderr.splitlines()
    assert line.startswith("dockyter-server: error: rootless podman on cgroup v1 cannot limit a container: ")
    assert "it would ignore memory, cpus, pids_limit" in line


@pytest.fixture
def user_dir(engine: Engine) -> Iterator[Path]:
    """A host directory of the rootless user's, which its containers' root may write."""
    path = Path(tempfile.mkdtemp(prefix="dockyter-rootless-"))
    path.chmod(0o755)
    assert engine.user is not None
    os.chown(path, engine.user.uid, engine.user.gid)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.mark.parametrize("engine", ["podman-rootless"], indirect=True)
def test_a_rootless_podman_server_runs_executions_and_sessions_without_limits(
    engine, dockyter_server, engine_image, user_dir
):
    server = dockyter_server(docker_command=list(engine.command), allowed_mounts=[f"{user_dir}:rw"], **NO_LIMITS)
    assert server.executor.kind.rootless
    reply = server.execute(
        {"cmd": "id -u; grep CapEff /proc/self/status; echo mine > /w/f", "args": f"-v {user_dir}:/w {engine_image}"}
    )
    assert reply.status_code == 200 and reply.json()["exit_code"] == 0, reply.text
    assert reply.json()["stdout"] == "0\nCapEff:\t0000000000000000\n"
    # the container's root is the rootless user on the host
    assert (user_dir / "f").stat().st_uid == engine.user.uid
    made = httpx.post(f"{server.url}/sessions", json={"args": engine_image}, headers=server.headers(), timeout=60)
    assert made.status_code == 201, made.text
    session = made.json()
    run = httpx.post(
        f"{server.url}/sessions/{session['id']}/execute",
        json={"cmd": "export X=1"},
        headers=server.headers(),
        timeout=60,
    )
    assert run.json()["exit_code"] == 0, run.text
    again = httpx.post(
        f"{server.url}/sessions/{session['id']}/execute", json={"cmd": "echo $X"}, headers=server.headers(), timeout=60
    )
    assert again.json()["stdout"] == "1\n", again.text
    gone = httpx.delete(f"{server.url}/sessions/{session['id']}", headers=server.headers(), timeout=60)
    assert gone.json()["deleted"] is True
    server.stop()
    assert wait_until(lambda: not engine.labelled("io.dockyter.server"), timeout=10)
