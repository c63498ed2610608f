"""What no mount may expose, read from the host: the parsers on real formats, then this machine."""

from __future__ import annotations

import os
import socket

import pytest

from dockyter.server.policy.hostview import (
    HostSurvey,
    command_line_paths,
    containerd_config,
    daemon_config,
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
