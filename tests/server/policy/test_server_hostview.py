"""What no mount may expose, read from the host: the parsers on real formats, then this machine."""

from __future__ import annotations

import json
import os
import socket

import pytest

from dockyter.server.policy.hostview import (
    HostSurvey,
    command_line_paths,
    containerd_config,
    daemon_config,
    podman_info_paths,
    pseudo_mounts,
    read_host,
    unix_socket_paths,
)

# Lines as the kernel writes them (one mount point with a space, escaped as \040).
MOUNTINFO = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 28 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:14 - proc proc rw
24 28 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=4012345k,nr_inodes=1003086,mode=755
28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
31 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw
40 28 0:35 / /srv/my\\040data rw,relatime shared:20 - proc proc rw
41 28 0:36 / /run rw,nosuid,nodev shared:21 - tmpfs tmpfs rw,mode=755
512 41 0:4 net:[4026532290] /run/docker/netns/1a2b rw shared:300 - nsfs nsfs rw
"""

PROC_NET_UNIX = """\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 20512 /run/docker/containerd/containerd.sock
0000000000000000: 00000002 00000000 00010000 0001 01 20513 /var/run/docker.sock
0000000000000000: 00000002 00000000 00010000 0001 01 20514 @/containerd-shim/abc.sock@
0000000000000000: 00000003 00000000 00000000 0001 03 20515
0000000000000000: 00000002 00000000 00010000 0001 01 20516 relative.sock
0000000000000000: 00000002 00000000 00010000 0001 01 20517 /tmp/with space.sock
"""


def test_pseudo_file_systems_come_from_mountinfo():
    assert pseudo_mounts(MOUNTINFO) == {
        "/sys": "sysfs",
        "/proc": "proc",
        "/dev": "devtmpfs",
        "/sys/fs/cgroup": "cgroup2",
        "/srv/my data": "proc",
        "/run/docker/netns/1a2b": "nsfs",
    }


def test_bound_unix_sockets_come_from_proc_net_unix():
    assert unix_socket_paths(PROC_NET_UNIX) == {
        "/run/docker/containerd/containerd.sock",
        "/var/run/docker.sock",
        "/tmp/with space.sock",
    }


def test_daemon_json_names_sockets_and_directories():
    text = '{"hosts": ["unix:///srv/engine.sock", "tcp://127.0.0.1:2375"], "containerd": "/srv/ctr.sock", "data-root": "/srv/docker", "exec-root": "/srv/exec"}'
    assert daemon_config(text) == ({"/srv/engine.sock", "/srv/ctr.sock"}, {"/srv/docker", "/srv/exec"})
    for broken in ("", "{", "[]", '{"hosts": 3, "data-root": ["x"]}'):
        assert daemon_config(broken) == (set(), set())


def test_command_lines_of_dockerd_and_containerd(tmp_path):
    config = tmp_path / "containerd.toml"
    config.write_text(
        'root = "/srv/ctr/root"\nstate = "/srv/ctr/state"\n[grpc]\n  address = "/srv/ctr/ctr.sock"\n[debug]\n  address = "/srv/ctr/debug.sock"\n'
    )
    dockerd = [
        "/usr/sbin/dockerd",
        "-H",
        "unix:///srv/d.sock",
        "--host=fd://",
        "--data-root=/srv/data",
        "--exec-root",
        "/srv/exec",
        "--containerd=/srv/c.sock",
    ]
    assert command_line_paths(dockerd) == ({"/srv/d.sock", "/srv/c.sock"}, {"/srv/data", "/srv/exec"})
    containerd = ["containerd", "--config", str(config), "--log-level", "info"]
    assert command_line_paths(containerd) == (
        {"/srv/ctr/ctr.sock", "/srv/ctr/debug.sock"},
        {"/srv/ctr/root", "/srv/ctr/state"},
    )
    assert containerd_config("not toml [") == (set(), set())


def test_a_socket_bound_after_start_up_is_seen_within_a_second(tmp_path):
    survey = HostSurvey(["false"], {}, cache_seconds=0.0)
    path = str(tmp_path / "late.sock")
    assert path not in survey.view().sockets
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        assert path in survey.view().sockets
        assert survey.view().exposed_by(str(tmp_path)) == f"it would give the container the host socket {path}"


@pytest.mark.docker
def test_this_hosts_engine_as_it_runs():
    """The engine of this machine: its data root, and containerd's socket wherever dockerd put it."""
    view = read_host(("docker",), {"PATH": os.defpath})
    assert {"/proc", "/sys"} <= view.pseudo.keys()
    assert "/var/lib/docker" in view.engine_dirs
    bound = unix_socket_paths(open("/proc/net/unix").read())
    containerd = [path for path in bound if path.endswith("/containerd.sock")]
    assert containerd, "no containerd socket is bound on this host"
    for path in containerd:
        assert os.path.realpath(path) in view.sockets
        assert view.exposed_by(os.path.dirname(path))


# -- podman, rootful and rootless -----------------------------------------------------------------


def test_podmans_storage_state_and_configuration_come_from_its_info():
    rootless = {
        "host": {"remoteSocket": {"path": "/run/user/1001/podman/podman.sock"}, "security": {"rootless": True}},
        "store": {
            "graphRoot": "/home/u/.local/share/containers/storage",
            "runRoot": "/run/user/1001/containers",
            "volumePath": "/home/u/.local/share/containers/storage/volumes",
            "configFile": "/home/u/.config/containers/storage.conf",
        },
    }
    sockets, dirs = podman_info_paths(rootless)
    assert sockets == {"/run/user/1001/podman/podman.sock"}
    assert {
        "/home/u/.local/share/containers",
        "/home/u/.local/share/containers/storage",
        "/run/user/1001/containers",
        "/run/user/1001/libpod",
        "/run/user/1001/podman",
        "/run/user/1001/netns",
        "/home/u/.config/containers",
    } <= dirs
    rootful = {
        "host": {"remoteSocket": {"path": "/run/podman/podman.sock"}, "security": {"rootless": False}},
        "store": {"graphRoot": "/var/lib/containers/storage", "configFile": "/usr/share/containers/storage.conf"},
    }
    sockets, dirs = podman_info_paths(rootful)
    assert {"/var/lib/containers", "/run/libpod", "/run/containers"} <= dirs
    assert "/usr/share/containers" not in dirs  # the vendor's defaults, not this host's engine


def test_the_command_line_of_podmans_service():
    service = [
        "podman",
        "--root",
        "/srv/p/root",
        "--runroot",
        "/srv/p/run",
        "system",
        "service",
        "--time=0",
        "unix:///srv/p.sock",
    ]
    assert command_line_paths(service) == ({"/srv/p.sock"}, {"/srv/p/root", "/srv/p/run"})


@pytest.mark.parametrize("engine", ["podman", "podman-rootless"], indirect=True)
def test_this_hosts_podman_as_it_runs(engine):
    """podman as the server's docker_command runs it: rootless, the user's storage, state and configuration
    (the server's own environment is root's: what the user's podman reports is what counts)."""
    view = read_host(engine.command, {"PATH": os.defpath})
    info = json.loads(engine.run("info", "--format", "json").stdout)
    runtime_dir = os.path.dirname(os.path.dirname(info["host"]["remoteSocket"]["path"]))
    for path in (info["store"]["graphRoot"], info["store"]["runRoot"], os.path.join(runtime_dir, "libpod")):
        assert view.exposed_by(path), path
        assert view.exposed_by(os.path.join(path, "x")), path
    assert view.exposed_by(info["host"]["remoteSocket"]["path"])  # no service runs: refused by name
    if engine.rootless:
        home = engine.user.home
        assert view.exposed_by(f"{home}/.config/containers/auth.json")
        assert "contains the container engine's directory" in view.exposed_by(f"{home}/.config")
        assert "contains the container engine's directory" in view.exposed_by(f"{home}/.local/share")
        assert view.exposed_by(f"{home}/notebooks") is None
    else:
        assert view.exposed_by("/etc/containers/registries.conf.d")
