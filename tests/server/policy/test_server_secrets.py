"""The server's secrets stay the server's (issue 19): the container CLI's environment, and its secret files.

A real server on 127.0.0.1 with real containers, on this machine's engine and on the three-node
Swarm (``@under_each_executor``). The servers of these tests run in the test process, so the
"server's environment" is this process's: a variable planted here before a server starts is a
variable of that server. What each container CLI process the server starts actually received
is recorded by a small wrapper put in front of the real ``docker`` (``docker_command``), which
writes its environment and arguments to a file and then runs ``docker`` with both unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import httpx
import pytest
from servers import under_each_executor

from dockyter.server.engine.engineenv import engine_environment

pytestmark = pytest.mark.docker

PLANTED = "DOCKYTER_PLANTED_SECRET"
TOKENS = "alice:secret-token-of-alice-0123456789,bob:secret-token-of-bob-9876543210"

# The environment as the process received it: /proc/self/environ, since Python may add LC_CTYPE to its own.
RECORDER = """\
#!{python} -I
import json, os, sys
with open("/proc/self/environ", "rb") as received:
    env = dict(item.decode().split("=", 1) for item in received.read().split(b"\\0") if item)
with open(os.path.join({directory!r}, str(os.getpid()) + ".json"), "w") as record:
    json.dump({{"argv": sys.argv[1:], "env": env}}, record)
os.execvpe("docker", ["docker", *sys.argv[1:]], env)
"""


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The tokens in the server's environment, as the documented deployments keep them, and one more secret."""
    values = {"DOCKYTER_SERVER_TOKENS": TOKENS, PLANTED: "planted-value-4242"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


# -- the environment of the container CLI ------------------------------------------------------------------


def test_the_cli_environment_is_path_home_and_the_engines_own():
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/dockyter",
        "DOCKER_HOST": "unix:///run/user/1000/docker.sock",
        "DOCKER_CONFIG": "/etc/dockyter/docker",
        "XDG_RUNTIME_DIR": "/run/user/1000",
        "CONTAINER_HOST": "unix:///run/user/1000/podman/podman.sock",
        "DOCKYTER_SERVER_TOKENS": TOKENS,
        "AWS_SECRET_ACCESS_KEY": "x",
        "LD_PRELOAD": "/tmp/evil.so",
    }
    passed = ["PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "XDG_RUNTIME_DIR", "CONTAINER_HOST"]
    assert engine_environment(environ) == {name: environ[name] for name in passed}
    assert engine_environment({}) == {"PATH": os.defpath}


@under_each_executor
def test_a_container_never_sees_the_servers_environment(dockyter_server, run_image, planted):
    """The operator's own trusted options may hold a bare ``--env NAME``: the CLI has nothing to fill it with.

    The name alone still reaches the engine, as an entry the plan does not have: the check of what the
    engine made refuses the container before it runs, and says nothing of any value.
    """
    extra = ["--env", "DOCKYTER_SERVER_TOKENS", "--env", PLANTED]
    server = dockyter_server(extra_run_args=extra)
    cmd = f'echo "${{DOCKYTER_SERVER_TOKENS-unset}} ${{{PLANTED}-unset}}"; env'
    response = server.execute({"cmd": cmd, "args": run_image})
    assert response.status_code == 403, response.text
    # The engine records value-less entries in no fixed order: the answer names the first, and counts the other.
    detail = response.json()["detail"]
    named = [name for name in ("DOCKYTER_SERVER_TOKENS", PLANTED) if f"{name!r} is set" in detail]
    assert len(named) == 1 and detail.endswith("(and 1 more); removed unstarted"), detail
    assert "secret-token" not in response.text and "planted-value" not in response.text
    assert not server.containers()


def test_a_session_never_sees_the_servers_environment(dockyter_server, test_image, planted):
    server = dockyter_server(extra_run_args=["--env", "DOCKYTER_SERVER_TOKENS", "--env", PLANTED])
    session = httpx.post(server.url + "/sessions", json={"args": test_image}, headers=server.headers(), timeout=60)
    assert session.status_code == 403, session.text  # the bare names reached the engine: refused unstarted
    assert "secret-token" not in session.text and "planted-value" not in session.text
    assert not server.containers()


def verb(argv: list[str]) -> str:
    """``run``, ``image inspect``, ``service create``: what a recorded CLI command did (after ``-H HOST``)."""
    words = list(argv)
    while words and words[0] in ("-H", "--host"):
        words = words[2:]
    if words and words[0] in ("image", "system", "service", "network", "node", "config", "container"):
        return " ".join(words[:2])
    return words[0] if words else ""


@under_each_executor
def test_every_cli_process_gets_the_fixed_environment_and_nothing_else(
    dockyter_server, run_image, test_image, executor_kind, planted, tmp_path, request
):
    records = tmp_path / "records"
    records.mkdir()
    recorder = tmp_path / "docker-recorder"
    recorder.write_text(RECORDER.format(python=sys.executable, directory=str(records)))
    recorder.chmod(0o755)
    command = [str(recorder)]
    if executor_kind == "swarm":  # the manager is named on the command line: keep it, after the recorder
        command += request.getfixturevalue("swarm_cluster").docker_command[1:]
    server = dockyter_server(docker_command=command, pull="missing")
    expected = server.settings.engine_environment()
    assert expected == engine_environment(os.environ)
    assert server.execute({"cmd": "echo ran", "args": run_image}).json()["stdout"] == "ran\n"
    wanted = {"info"}
    if executor_kind == "engine":
        # An image the engine lacks: the server asks for it and pulls it (which fails: no registry here).
        absent = server.execute({"cmd": "true", "args": "dockyter-test/absent:1"}).json()
        assert (absent["exit_code"], absent["reason"]) == (125, "not_started"), absent
        session = httpx.post(server.url + "/sessions", json={"args": test_image}, headers=server.headers(), timeout=60)
        assert session.status_code == 201, session.text
        httpx.delete(f"{server.url}/sessions/{session.json()['id']}", headers=server.headers(), timeout=60)
        wanted |= {"create", "start", "image inspect", "system dial-stdio", "rm"}
    else:
        wanted |= {"service create", "service logs", "service rm"}
    server.stop()
    seen = [json.loads(path.read_text()) for path in records.iterdir()]
    assert wanted <= {verb(record["argv"]) for record in seen}, sorted(verb(record["argv"]) for record in seen)
    for record in seen:
        assert record["env"] == expected, record["argv"]
        assert PLANTED not in record["env"] and "DOCKYTER_SERVER_TOKENS" not in record["env"]


# -- defect 3: the server's own secrets are never mounted -------------------------------------------------


@pytest.fixture
def token_root(host_dir: Path) -> tuple[Path, Path]:
    """A directory holding a token file and a data directory: (the directory, the token file)."""
    tokens = host_dir / "tokens"
    tokens.write_text("alice:secret-token-of-alice-0123456789\n")
    tokens.chmod(0o600)
    (host_dir / "data").mkdir()
    return host_dir, tokens


@under_each_executor
def test_defect_3_the_token_file_is_never_mounted(dockyter_server, run_image, token_root):
    root, tokens = token_root
    # The request, with /etc/dockyter/tokens replaced by a token file of our own, under a wide root.
    server = dockyter_server(token_file=str(tokens), tokens=[], allowed_mounts=[str(root)])
    response = server.execute({"cmd": "cat /t", "args": f"-v {tokens}:/t:ro -u 0 {run_image}"})
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == (
        f"-v {tokens}:/t:ro is not allowed: it is the server's token file {tokens}, which no container may see"
    )
    for args, why in [
        (f"-v {root}:/t:ro", f"it contains the server's token file {tokens}"),
        (f"--mount type=bind,source={root}/data/..,target=/t,readonly", f"contains the server's token file {tokens}"),
    ]:
        response = server.execute({"cmd": "cat /t/tokens", "args": f"{args} -u 0 {run_image}"})
        assert response.status_code == 403 and why in response.json()["detail"], (args, response.text)
    # The same file under another name: a hard link.
    os.link(tokens, root / "data" / "alias")
    response = server.execute({"cmd": "cat /t", "args": f"-v {root}/data/alias:/t:ro -u 0 {run_image}"})
    assert response.status_code == 403, response.text
    assert f"it is the server's token file {tokens} under another name" in response.json()["detail"]
    # What holds no secret is still mounted.
    (root / "data" / "alias").unlink()
    reply = server.execute({"cmd": "ls /d", "args": f"-v {root}/data:/d:ro {run_image}"}).json()
    assert (reply["exit_code"], reply["stdout"]) == (0, ""), reply


def test_defect_3_as_session_arguments_too(dockyter_server, test_image, token_root):
    root, tokens = token_root
    server = dockyter_server(token_file=str(tokens), tokens=[], allowed_mounts=[str(root)])
    response = httpx.post(
        server.url + "/sessions", json={"args": f"-v {tokens}:/t:ro -u 0 {test_image}"}, headers=server.headers()
    )
    assert response.status_code == 403, response.text
    assert "it is the server's token file" in response.json()["detail"]


@under_each_executor
def test_the_cli_configuration_and_listed_secret_paths_are_never_mounted(
    dockyter_server, run_image, host_dir, monkeypatch
):
    docker_config = host_dir / "docker-config"
    docker_config.mkdir()
    (docker_config / "config.json").write_text('{"auths": {"registry.example.org": {"auth": "c2VjcmV0"}}}')
    environment_file = host_dir / "server.env"  # an EnvironmentFile of a systemd unit, which the server cannot see
    environment_file.write_text(f"DOCKYTER_SERVER_TOKENS={TOKENS}\n")
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))  # where the CLI reads its credentials
    server = dockyter_server(allowed_mounts=[str(host_dir)], secret_paths=[str(environment_file)])
    assert server.execute({"cmd": "true", "args": run_image}).json()["exit_code"] == 0  # the CLI works there
    for path, what in [
        (environment_file, f"it is a secret path of the server (secret_paths) {environment_file}"),
        (docker_config, f"it is the container CLI's configuration {docker_config}"),
        (docker_config / "config.json", f"it is inside the container CLI's configuration {docker_config}"),
        (host_dir, f"it contains the container CLI's configuration {docker_config}"),
    ]:
        response = server.execute({"cmd": "cat /s", "args": f"-v {path}:/s:ro {run_image}"})
        assert response.status_code == 403, response.text
        assert what in response.json()["detail"], response.text


def test_a_root_holding_a_secret_is_reported_at_start_up(dockyter_server, token_root, caplog):
    root, tokens = token_root
    with caplog.at_level(logging.WARNING, logger="dockyter.server"):
        dockyter_server(token_file=str(tokens), tokens=[], allowed_mounts=[str(root)])
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    expected = f"allowed mount {root} overlaps the server's token file {tokens}, which is never mounted, nor anything"
    assert any(message.startswith(expected) for message in warnings), warnings
