"""The check of what the engine made: a created container (a held Swarm service) that differs from its plan never starts.

Each test runs a real server on 127.0.0.1 and real containers. The differences are made for
real, through what the policy does not control: the operator's ``extra_run_args`` (trusted,
put after the request's options, never part of the plan), the docker CLI's own reading of a
``-v`` target with a line break (on CPython before 3.11.9 ``csv.writer`` leaves ``\\n``
unquoted in the ``--mount`` the policy writes, and the CLI ends the record there, dropping
``readonly``), and the CLI filling a value-less ``-e NAME`` from its own environment. Each
refused request must leave nothing: no container, no file written by the command.

The smuggled differences, the control request and a refused session run on Docker and on rootful
podman (``@under_each_engine``): podman's inspect is read as docker's (engine/podmaninspect.py),
and the same differences must be found in it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import docker, wait_until
from servers import containers_with_label, under_each_engine, under_each_executor

pytestmark = pytest.mark.docker

CHECKED = "the engine did not make what the policy approved: "


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A read-only root (``ro``) and a writable one (``rw``) every user can enter."""
    path = Path(tempfile.mkdtemp(prefix="dockyter-check-"))
    path.chmod(0o755)
    for name in ("ro", "rw"):
        (path / name).mkdir()
        (path / name).chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR and '"engine_disagrees"' in r.getMessage()]


# What an operator's extra_run_args may change that the plan never has, and how the 403 names it.
SMUGGLED = [
    (["--cap-add", "SYS_ADMIN"], "is given the capabilities SYS_ADMIN"),
    (["--privileged"], "is privileged"),
    (["--device", "/dev/zero"], "is given the host devices ['/dev/zero']"),
    (["--security-opt", "seccomp=unconfined"], "security options"),
    (["--pid", "host"], "pid namespace is 'host'"),
    (["--ipc", "host"], "ipc namespace is 'host'"),
    (["--uts", "host"], "uts namespace is 'host'"),
    (["--userns", "host"], "userns namespace is 'host'"),
    (["--env", "SMUGGLED=1"], "'SMUGGLED' is set"),
    (["--label", "smuggled=1"], "label 'smuggled' is set"),
    (["--user", "0"], "runs as user '0'"),
    (["--group-add", "0"], "extra groups ['0']"),
    (["--tmpfs", "/extra"], "tmpfs at '/extra'"),
    (["--mount", "type=tmpfs,target=/extra"], "a read-write tmpfs at '/extra', which the plan does not"),
    (["--read-only"], "root file system is read-only"),
    (["--init=false"], "lacks the init process"),
    (["--log-driver", "json-file"], "log driver is 'json-file'"),
    (["--memory", "1g"], "memory limit is 1073741824"),
    (["--pids-limit", "5000"], "pids limit is 5000"),
    (["--cgroup-parent", "/elsewhere"], "moved to the cgroup '/elsewhere'"),
    (["--sysctl", "net.ipv4.ip_unprivileged_port_start=0"], "sysctls"),
    (["--workdir", "/tmp"], "working directory is '/tmp'"),
    (["--entrypoint", "sh"], "entrypoint is ['sh']"),
]


# Where rootful podman answers otherwise: None, podman itself refuses to create the container;
# DEFAULT, the option is podman's default, and neither its inspect nor its runtime spec tells them
# apart (the container is the same); a text, how the 403 names it.
DEFAULT = "the same container as without it"
ON_PODMAN: dict[str, str | None] = {
    "--pid host": None,  # "cannot add init binary as PID 1 (PID namespace isn't private)"
    "--userns host": DEFAULT,  # rootful podman's containers share the host's user namespace
    "--mount type=tmpfs,target=/extra": "the engine mounts a tmpfs at '/extra', which the plan does not",
}


@pytest.mark.parametrize(("extra", "named"), SMUGGLED, ids=[" ".join(extra) for extra, _ in SMUGGLED])
@under_each_engine
def test_what_the_plan_does_not_have_is_refused_and_nothing_runs(
    dockyter_server, test_image, host_dir, caplog, extra, named, executor_kind
):
    caplog.set_level(logging.INFO, logger="dockyter.server")
    rw = host_dir / "rw"
    server = dockyter_server(allowed_mounts=[f"{rw}:rw"], extra_run_args=extra)
    body = {"cmd": "touch /w/ran", "args": f"-v {rw}:/w {test_image}"}
    response = server.execute(body)
    if executor_kind == "podman" and " ".join(extra) in ON_PODMAN:
        named = ON_PODMAN[" ".join(extra)]
        if named is None:  # podman refused to create it: docker's "could not run it", nothing ran
            assert (response.status_code, response.json()["exit_code"]) == (200, 125), response.text
            assert not (rw / "ran").exists() and not server.containers()
            return
        if named == DEFAULT:
            assert (response.status_code, response.json()["exit_code"]) == (200, 0), response.text
            return
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert detail.startswith(CHECKED) and named in detail, detail
    assert "\n" not in detail
    assert not (rw / "ran").exists()
    assert not server.containers()
    # Logged loudly, with the token's name and every difference; and foretold at start-up.
    [record] = refusals(caplog)
    assert '"who": "tester"' in record.getMessage() and named in record.getMessage()
    assert any(r.getMessage().startswith(f"extra_run_args sets {extra[0].split('=')[0]}, ") for r in caplog.records)


def test_a_network_the_plan_does_not_join_is_refused(dockyter_server, test_image):
    # With the server's own --network none, a second network would be refused by the engine itself.
    server = dockyter_server(network="", extra_run_args=["--network", "bridge"])
    response = server.execute({"cmd": "echo ran", "args": test_image})
    assert response.status_code == 403, response.text
    assert response.json()["detail"].startswith(f"{CHECKED}the container's network is 'bridge', the plan has 'default'")
    assert not server.containers()


@under_each_engine
def test_the_same_request_runs_when_nothing_is_smuggled(dockyter_server, test_image, host_dir, caplog, executor_kind):
    # The control for the test above: the request itself is fine, and its command writes.
    caplog.set_level(logging.INFO, logger="dockyter.server")
    rw = host_dir / "rw"
    limits = ["--ulimit", "nofile=1024:1024"]
    if executor_kind == "podman":
        # podman's --ulimit replaces its defaults, whose nproc (1048576) root here may not raise to (.ci/podman)
        limits += ["--ulimit", "nproc=32768:32768"]
    server = dockyter_server(allowed_mounts=[f"{rw}:rw"], extra_run_args=limits)
    response = server.execute({"cmd": "touch /w/ran; ulimit -n", "args": f"-v {rw}:/w {test_image}"})
    assert response.status_code == 200, response.text
    assert response.json()["stdout"] == "1024\n"  # extra_run_args outside the compared fields apply
    assert (rw / "ran").exists()
    assert not refusals(caplog)
    assert not any("extra_run_args sets" in r.getMessage() for r in caplog.records)


@under_each_executor
def test_a_variable_the_operator_adds_is_refused_on_both_executors(dockyter_server, run_image, executor_kind):
    server = dockyter_server(extra_run_args=["--env", "SMUGGLED=1"])
    response = server.execute({"cmd": "echo ran", "args": run_image})
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == (
        f"{CHECKED}the environment variable 'SMUGGLED' is set, and "
        + ("neither the plan nor the image set it" if executor_kind == "engine" else "the plan did not set it")
        + "; removed unstarted"
    )
    assert wait_until(lambda: not server.containers(), timeout=20)


@under_each_engine
def test_a_session_that_differs_from_its_plan_is_refused(dockyter_server, test_image, caplog):
    caplog.set_level(logging.INFO, logger="dockyter.server")
    server = dockyter_server(extra_run_args=["--cap-add", "NET_ADMIN"])
    made = httpx.post(f"{server.url}/sessions", json={"args": test_image}, headers=server.headers(), timeout=60)
    assert made.status_code == 403, made.text
    assert made.json()["detail"].startswith(CHECKED + "the container is given the capabilities NET_ADMIN")
    listed = httpx.get(f"{server.url}/sessions", headers=server.headers(), timeout=30).json()
    assert listed == {"sessions": []}
    assert not containers_with_label(f"io.dockyter.server-session={server.executor.label}", server.cli)
    assert len(refusals(caplog)) == 1


# -- the defects of issue 19, as the engine reads them -------------------------------------------------


@pytest.mark.parametrize("where", ["execution", "session"])
def test_a_line_break_in_a_target_never_makes_a_read_only_mount_writable(dockyter_server, test_image, host_dir, where):
    """Issue 19, defect 1, with its exact request: ``/h`` came out writable, and root wrote ``/srv/ro/m``.

    Refused before parsing (400), or by the check of what the engine made (403): never run.
    """
    ro = host_dir / "ro"
    server = dockyter_server(allowed_mounts=[str(ro)])
    args = f"-v '{ro}:/h\nx:ro' -u 0 {test_image}"
    if where == "execution":
        response = server.execute({"args": args, "cmd": "touch /h/m"})
    else:
        response = httpx.post(f"{server.url}/sessions", json={"args": args}, headers=server.headers(), timeout=60)
    assert response.status_code in (400, 403), response.text
    assert list(ro.iterdir()) == []
    assert not server.containers()


@pytest.mark.parametrize("spelling", ["-e {}", "--env={}", "-e{}", "--env {}"])
def test_a_bare_variable_never_carries_the_servers_environment(dockyter_server, test_image, monkeypatch, spelling):
    """Issue 19, defect 2: the docker CLI fills a value-less ``-e NAME`` from its own environment."""
    monkeypatch.setenv("DOCKYTER_TEST_SERVER_SECRET", "not-for-containers-8c1f")
    server = dockyter_server()
    args = f"{spelling.format('DOCKYTER_TEST_SERVER_SECRET')} {test_image}"
    response = server.execute({"args": args, "cmd": "echo $DOCKYTER_TEST_SERVER_SECRET"})
    assert "not-for-containers-8c1f" not in response.text
    assert response.status_code in (400, 403), response.text
    made = httpx.post(f"{server.url}/sessions", json={"args": args}, headers=server.headers(), timeout=60)
    assert made.status_code in (400, 403), made.text
    assert not server.containers()


# -- reading back: through the CLI too, and what it keeps of docker run --------------------------------


def test_without_a_plain_socket_the_check_reads_through_the_cli(dockyter_server, test_image):
    # `--context default` is not a socket the server can read directly: docker inspect is used.
    server = dockyter_server(docker_command=["docker", "--context", "default"])
    assert server.executor.check.socket is None
    response = server.execute({"cmd": "echo $X", "args": f"-e X=1 {test_image}"})
    assert (response.status_code, response.json()["stdout"]) == (200, "1\n")
    smuggling = dockyter_server(docker_command=["docker", "--context", "default"], extra_run_args=["--pid", "host"])
    response = smuggling.execute({"cmd": "echo ran", "args": test_image})
    assert response.status_code == 403 and "pid namespace is 'host'" in response.json()["detail"], response.text


def test_exit_statuses_stay_as_docker_run_gives_them(dockyter_server, test_image):
    server = dockyter_server()
    statuses = {
        "exit 3": (3, ""),
        "no-such-command": (127, "command not found"),
    }
    for cmd, (code, said) in statuses.items():
        reply = server.execute({"cmd": cmd, "args": test_image}).json()
        assert reply["exit_code"] == code and said in reply["stderr"], reply
    # The engine refuses to start it: docker run's 125, with the engine's reason.
    reply = server.execute({"cmd": "true", "args": f"-u no-such-user {test_image}"}).json()
    assert reply["exit_code"] == 125, reply
    assert reply["stderr"].startswith("Error response from daemon: unable to find user no-such-user"), reply
    # The engine cannot create it: 125 too.
    reply = server.execute({"cmd": "true", "args": "dockyter-test/no-such-image:1"}).json()
    assert reply["exit_code"] == 125 and "No such image" in reply["stderr"], reply
    assert not server.containers()


def test_a_container_created_and_never_started_is_swept(dockyter_server, test_image):
    """A server that crashed between create and start leaves a created container: the sweep removes it,
    and so does the start-up clean-up of the next instance of the same server_name."""
    server = dockyter_server(reap_interval=0.5)
    label = f"io.dockyter.server={server.executor.label}"
    planted = docker("create", "--label", "io.dockyter.managed=1", "--label", label, test_image, "true")
    assert planted.returncode == 0, planted.stderr
    assert wait_until(lambda: docker("container", "inspect", planted.stdout.strip()).returncode != 0, timeout=20)
    earlier = f"io.dockyter.server={server.settings.server_name}:0123456789ab"
    planted = docker("create", "--label", "io.dockyter.managed=1", "--label", earlier, test_image, "true")
    assert planted.returncode == 0, planted.stderr
    later = dockyter_server(server_name=server.settings.server_name)
    assert later.executor.label != server.executor.label
    assert docker("container", "inspect", planted.stdout.strip()).returncode != 0


def test_a_run_whose_time_ends_while_it_is_created_leaves_nothing(dockyter_server, test_image):
    server = dockyter_server(reap_interval=1)
    for _ in range(3):
        reply = server.execute({"cmd": "echo never", "args": test_image, "timeout": 0.01}).json()
        assert (reply["exit_code"], reply["reason"]) == (124, "timeout"), reply
        assert "never" not in reply["stdout"]
    assert wait_until(lambda: not server.containers(), timeout=20)


# -- after a pull: the stream has started, so the refusal is its last event ---------------------------


def test_a_difference_found_after_a_pull_ends_the_stream_and_the_reply_is_403(dockyter_server, registry):
    server = dockyter_server(
        pull="missing", extra_run_args=["--cap-add", "SYS_PTRACE"], allowed_registries=["docker.io", registry.host]
    )
    with server.stream({"cmd": "echo ran", "args": registry.push_fresh_image(megabytes=1)}) as events:
        seen = list(events)
    kinds = [event["event"] for event in seen]
    assert "pull" in kinds and "stdout" not in kinds, seen
    assert seen[-1]["event"] == "error" and seen[-1]["message"].startswith(CHECKED), seen[-1]
    response = server.execute({"cmd": "echo ran", "args": registry.push_fresh_image(megabytes=1)})
    assert response.status_code == 403 and "SYS_PTRACE" in response.json()["detail"], response.text
    assert not server.containers()


@pytest.mark.swarm
def test_on_a_swarm_without_a_plain_socket_the_spec_is_read_and_released_through_the_cli(
    swarm_server, swarm_image, swarm_cluster, tmp_path
):
    # A wrapper is no socket the server can read directly: `service inspect` and `service scale` are used.
    wrapper = tmp_path / "manager-docker"
    wrapper.write_text(f'#!/bin/sh\nexec docker -H {swarm_cluster.host} "$@"\n')
    wrapper.chmod(0o755)
    server = swarm_server(docker_command=[str(wrapper)])
    reply = server.execute({"cmd": "echo $X", "args": f"-e X=1 {swarm_image}"})
    assert (reply.status_code, reply.json()["stdout"]) == (200, "1\n"), reply.text
    smuggling = swarm_server(docker_command=[str(wrapper)], extra_run_args=["--env", "SMUGGLED=1"])
    reply = smuggling.execute({"cmd": "echo ran", "args": swarm_image})
    assert reply.status_code == 403 and "'SMUGGLED' is set" in reply.json()["detail"], reply.text
    assert swarm_cluster.services((smuggling.settings.server_name,)) == []
