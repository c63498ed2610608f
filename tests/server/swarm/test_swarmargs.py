"""The request's ``docker run`` options as ``docker service create`` options, and the executor setting."""

from __future__ import annotations

import pytest

from dockyter.server.settings.fields import SettingsError
from dockyter.server.settings.sources import load_settings, make_settings
from dockyter.server.swarm.swarmargs import SwarmArgsError, service_options
from dockyter.wire.dockerargs import parse_run_args
from dockyter.wire.enginesocket import socket_path


def translate(args: str) -> list[str]:
    return service_options(parse_run_args(args + " image").options)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("-e A=1 -w /w -u 1000 -h box", ["--env=A=1", "--workdir=/w", "--user=1000", "--hostname=box"]),
        ("--label team=x", ["--container-label=team=x"]),
        ("--read-only --init --rm -i", ["--read-only", "--init"]),
        ("--read-only=false", []),
        ("-m 64m --cpus 0.5 --pids-limit 10", ["--limit-memory=64m", "--limit-cpu=0.5", "--limit-pids=10"]),
        ("-v /data:/d:ro", ["--mount=type=bind,source=/data,target=/d,readonly=true"]),
        ("-v /data:/d:rw,rprivate", ["--mount=type=bind,source=/data,target=/d,bind-propagation=rprivate"]),
        ("-v cache:/c:nocopy", ["--mount=type=volume,source=cache,target=/c,volume-nocopy=true"]),
        ("--tmpfs /t:size=64m,mode=1777,noexec", ["--mount=type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777"]),
        ("--mount type=tmpfs,target=/t", ["--mount=type=tmpfs,target=/t"]),
        ("--mount source=cache,target=/c", ["--mount=source=cache,target=/c"]),
        ("--mount type=bind,src=/d,dst=/d", ["--mount=type=bind,src=/d,dst=/d"]),
        ("--net=mynet", ["--network=mynet"]),
        # A container path with a comma stays one field: it cannot add keys such as type=bind.
        ("-v cache:/a,type=bind,source=/etc", ['--mount=type=volume,source=cache,"target=/a,type=bind,source=/etc"']),
        ("--tmpfs /a,type=bind,source=/etc", ['--mount=type=tmpfs,"target=/a,type=bind,source=/etc"']),
        ("--tmpfs '/a\"b'", ['--mount=type=tmpfs,"target=/a""b"']),
    ],
)
def test_translations(args, expected):
    assert translate(args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("-v /anonymous", "an anonymous volume would outlive the task"),
        ("--mount target=/anonymous", "an anonymous volume would outlive the task"),
        ("--mount type=volume,target=/a,readonly", "an anonymous volume would outlive the task"),
        ("--mount 'type=volume,\"dst=/a,b\"'", "an anonymous volume would outlive the task"),
        ("--tmpfs /t:uid=1000", "the tmpfs option 'uid' cannot be given"),
        ("-v /d:/d:z", "the mode 'z' has no Swarm equivalent"),
        ("--cpu-shares 10", "cannot express --cpu-shares"),
        ("--gpus all", "cannot express --gpus"),
    ],
)
def test_what_swarm_cannot_express_is_refused_naming_it(args, message):
    with pytest.raises(SwarmArgsError, match=message):
        translate(args)


def test_the_executor_setting_from_flag_environment_and_file(tmp_path):
    assert load_settings(["--no-auth", "--executor", "swarm"], environ={}).executor == "swarm"
    assert load_settings(["--no-auth"], environ={"DOCKYTER_SERVER_EXECUTOR": "swarm"}).executor == "swarm"
    config = tmp_path / "server.toml"
    config.write_text('executor = "swarm"\nauth = false\n')
    assert load_settings(["--config", str(config)], environ={}).executor == "swarm"
    assert load_settings(["--no-auth"], environ={}).executor == "engine"
    with pytest.raises(SettingsError, match="executor must be engine or swarm, not 'kubernetes'"):
        make_settings({"executor": "kubernetes", "auth": False})
    with pytest.raises(SettingsError, match="executor swarm: .*--gpus"):
        make_settings({"executor": "swarm", "auth": False, "extra_run_args": ["--gpus", "all"]})


def test_the_api_socket_is_used_only_when_plain_to_see():
    assert socket_path(["docker", "-H", "unix:///run/m.sock"], {}) == "/run/m.sock"
    assert socket_path(["docker", "--host=unix:///run/m.sock"], {}) == "/run/m.sock"
    assert socket_path(["docker"], {"DOCKER_HOST": "unix:///x.sock"}) == "/x.sock"
    assert socket_path(["docker"], {}) == "/var/run/docker.sock"
    for command, environ in [
        (["docker", "-H", "tcp://10.0.0.1:2376"], {}),
        (["docker", "--context", "prod"], {}),
        (["docker"], {"DOCKER_CONTEXT": "prod"}),
        (["sudo", "docker"], {}),
        (["podman"], {}),
    ]:
        assert socket_path(command, environ) is None


def test_mount_constraints_are_swarm_placement_constraints_for_a_swarm_server():
    settings = load_settings(
        ["--no-auth", "--executor", "swarm", "--mount-constraint", "node.labels.storage==shared"], environ={}
    )
    assert settings.mount_constraints == ["node.labels.storage==shared"]
    with pytest.raises(SettingsError, match="mount_constraints place Swarm services: they need executor swarm"):
        make_settings({"mount_constraints": ["node.role==worker"], "auth": False})
    for bad in ("storage", "node.labels.x==", "node.labels.x==a b", "--constraint=x==y"):
        with pytest.raises(SettingsError, match="must be a Swarm placement constraint"):
            make_settings({"executor": "swarm", "mount_constraints": [bad], "auth": False})
