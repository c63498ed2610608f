"""Mount escapes of dockyter-server (issue 10, items 1-4), with the exact requests, over real HTTP.

Each test runs a real server and real containers, on this machine's engine, on rootful podman
(``dockyter-server --docker-command podman``) and on the three-node Swarm
(``@under_each_engine_and_the_swarm``). The cluster's nodes share this machine's file
system (each is a dockerd in its own network namespace), which is what an operator must
provide for bind mounts on a Swarm: the same storage at the same paths on every node and on
the server (docs/scaling.md). Item 4 needs a
server that cannot see everything root sees: a real ``dockyter-server`` process started with
``setpriv`` without CAP_DAC_READ_SEARCH and CAP_DAC_OVERRIDE. It keeps uid 0, because the
interpreter of the test environment may live where no other user can read it (pyenv under
``/root``); for permission checks it is then an ordinary user that owns root's files, which is
what a non-root server is for directories other users made private. podman has no daemon: a
rootful podman started by such a server has its missing capabilities too, and cannot mount a
container's root file system. On podman, the non-root server is the real thing instead: the
server run as the rootless test user, on that user's rootless podman (without limits, which
rootless podman cannot apply on this host's cgroup v1).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import skip_or_fail
from engine_fixtures import user_python
from engines import engine_named
from helpers import wait_until
from servers import under_each_engine_and_the_swarm

pytestmark = pytest.mark.docker

CONTAINER_USER = 4321  # the user of item 4's first request
WITHOUT_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def snapshot(root: Path) -> list[tuple[str, int]]:
    """Every name below ``root`` with its mode: what must not change."""
    return sorted((str(path), path.lstat().st_mode) for path in root.rglob("*"))


def assert_refused(response: httpx.Response, written: str, why: str) -> None:
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"{written} is not allowed: "), detail
    assert why in detail, detail


# -- 1. a source the server cannot inspect: a 403, never a 500 ----------------------------------------


@under_each_engine_and_the_swarm
def test_item_1_proc_1_root_is_a_403(dockyter_server, run_image):
    server = dockyter_server(allowed_mounts=["/"])
    response = server.execute({"cmd": "ls /h", "args": f"-v /proc/1/root:/h:ro {run_image}"})
    assert_refused(response, "-v /proc/1/root:/h:ro", "it is on the host's proc file system (/proc)")


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("{ro}/missing/x", "{ro}/missing does not exist"),
        ("{ro}/file/x", "{ro}/file is not a directory"),
        ("{ro}/" + "x" * 256, "file name too long"),
        ("{ro}/loop/x", "{ro}/loop is a symbolic link"),
        ("{ro}/" + "a/" * 2100, "longer than the system's limit"),
    ],
)
@under_each_engine_and_the_swarm
def test_item_1_every_path_error_is_a_403_naming_the_argument(dockyter_server, run_image, host_dir, source, why):
    ro = host_dir / "ro"
    ro.mkdir()
    (ro / "file").write_text("x")
    os.symlink("loop", ro / "loop")  # ELOOP for whoever follows it
    server = dockyter_server(allowed_mounts=[str(ro)])
    source = source.format(ro=ro)
    for args in (f"-v {source}:/h:ro", f"--mount type=bind,src={source},dst=/h,ro"):
        assert_refused(server.execute({"cmd": "ls /h", "args": f"{args} {run_image}"}), args, why.format(ro=ro))
    assert httpx.get(server.url + "/health").status_code == 200


# -- 2. a request never creates anything on the host ----------------------------------------------------


@under_each_engine_and_the_swarm
def test_item_2_a_missing_source_is_refused_and_not_created(dockyter_server, run_image, host_dir):
    ro = host_dir / "ro"
    ro.mkdir()
    server = dockyter_server(allowed_mounts=[str(ro)])
    before = snapshot(host_dir)
    for args in (
        f"-v {ro}/made-by-a-request/a/b:/h:ro",
        f"--mount type=bind,source={ro}/made-by-a-request/a/b,target=/h,readonly",
    ):
        response = server.execute({"cmd": "ls /h", "args": f"{args} {run_image}"})
        assert_refused(
            response, args, f"{ro}/made-by-a-request does not exist (the server never creates a mount source)"
        )
    assert snapshot(host_dir) == before
    assert not (ro / "made-by-a-request").exists()


def test_item_2_a_source_removed_after_the_check_makes_the_engine_fail_not_create(
    dockyter_server, test_image, host_dir
):
    """The race itself: the check passes, the directory goes, then the engine creates what was planned.

    Engine only: it runs the engine executor's own argv, a `docker create` (a Swarm node refuses
    a missing bind source the same way: test_swarm_mounts.py). `docker create` exits 1 where
    `docker run` exits 125; the server reports 125 for a container it could not create.
    """
    from dockyter.server.engine.execution import Execution

    ro = host_dir / "ro"
    (ro / "gone").mkdir(parents=True)
    server = dockyter_server(allowed_mounts=[str(ro)])
    plan = server.app.state.policy.check(f"-v {ro}/gone:/h:ro {test_image}")
    (ro / "gone").rmdir()
    argv = Execution(server.executor, plan, "ls /h", 30, False, "tester").argv()
    assert argv[1] == "create"
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert "bind source path does not exist" in result.stderr
    assert not (ro / "gone").exists()


@under_each_engine_and_the_swarm
def test_item_2_an_accepted_mount_mounts_the_checked_directory(dockyter_server, run_image, host_dir):
    ro, rw = host_dir / "ro", host_dir / "rw"
    (ro / "data").mkdir(parents=True)
    (ro / "data" / "hello").write_text("hello from the host\n")
    rw.mkdir()
    server = dockyter_server(allowed_mounts=[str(ro), f"{rw}:rw"])
    reply = server.execute(
        {
            "cmd": "cat /d/hello; touch /d/x || echo read-only; echo made > /w/out",
            "args": f"-v {ro}//data/.:/d:ro -v {rw}:/w {run_image}",
        }
    ).json()
    assert reply["stdout"] == "hello from the host\nread-only\n", reply
    assert (rw / "out").read_text() == "made\n"
    assert not (ro / "data" / "x").exists()
    # The other spellings, and a comma in a path (quoted for the engine's --mount parser):
    (ro / "a,b").mkdir()
    (ro / "a,b" / "f").write_text("comma\n")
    args = f"--mount type=bind,src={ro}/data,dst=/m,ro --volume={ro}/a,b:/c:ro --mount=type=bind,source={rw},target=/w {run_image}"
    reply = server.execute({"cmd": "cat /m/hello /c/f /w/out", "args": args}).json()
    assert reply["stdout"] == "hello from the host\ncomma\nmade\n", reply


# -- 3. containerd's socket, and any socket bound on the host -----------------------------------------


@under_each_engine_and_the_swarm
def test_item_3_containerd_socket_is_refused_with_this_engine_as_it_runs(dockyter_server, run_image):
    # The bound sockets as the kernel lists them: whatever containerd this engine uses is among them.
    bound = [line.split()[-1] for line in Path("/proc/net/unix").read_text().splitlines()[1:] if len(line.split()) == 8]
    containerd = sorted({path for path in bound if path.startswith("/") and path.endswith("containerd.sock")})
    assert containerd, "no containerd socket is bound on this host"
    server = dockyter_server(allowed_mounts=["/"])
    for path in containerd:
        for source in (os.path.dirname(path), path, os.path.realpath(os.path.dirname(path))):
            args = f"-v {source}:/h:ro"
            response = server.execute({"cmd": "ls /h", "args": f"{args} {run_image}"})
            assert_refused(response, args, "it would give the container the host socket ")
    # The issue's own request, on this machine's layout (dockerd running its own containerd):
    if "/var/run/docker/containerd/containerd.sock" in containerd:
        response = server.execute({"cmd": "ls /h", "args": f"-v /run/docker/containerd:/h:ro {run_image}"})
        assert_refused(response, "-v /run/docker/containerd:/h:ro", "/run/docker/containerd/containerd")


@under_each_engine_and_the_swarm
def test_item_3_a_socket_bound_after_start_up_is_refused(dockyter_server, run_image, host_dir):
    ro = host_dir / "ro"
    (ro / "app").mkdir(parents=True)
    server = dockyter_server(allowed_mounts=[str(ro)])
    assert server.execute({"cmd": "true", "args": f"-v {ro}/app:/h:ro {run_image}"}).status_code == 200
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(ro / "app" / "service.sock"))
        listener.listen()
        time.sleep(1.1)  # the host view is cached for up to a second
        response = server.execute({"cmd": "true", "args": f"-v {ro}/app:/h:ro {run_image}"})
        assert_refused(response, f"-v {ro}/app:/h:ro", f"the host socket {ro}/app/service.sock")


def test_item_3_a_root_holding_an_engine_socket_is_reported_at_start_up(dockyter_server, caplog):
    dockyter_server(allowed_mounts=["/"])
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any(
        message.startswith("allowed mount / holds what no mount may expose") and "socket" in message
        for message in warnings
    ), warnings


# -- 4. a link the server cannot see: a non-root server --------------------------------------------------


@pytest.fixture
def non_root_server(host_dir, executor_kind, run_image, request) -> Iterator[tuple[str, Path, Path]]:
    """A real dockyter-server that cannot override file permissions: (url, RW root, RO root with another user's private dir)."""
    rw, ro = host_dir / "rw", host_dir / "ro"
    rw.mkdir()
    rw.chmod(0o777)  # the container user 4321 writes here
    (ro / "private" / "sub").mkdir(parents=True)
    os.chown(ro / "private", CONTAINER_USER, CONTAINER_USER)
    (ro / "private").chmod(0o700)  # another user's: the server cannot search it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = request.getfixturevalue("swarm_cluster") if executor_kind == "swarm" else None
    on_cluster = []
    server = [*WITHOUT_DAC, sys.executable, "-m", "dockyter.server"]
    if cluster:
        on_cluster = ["--executor", "swarm", "--docker-command", shlex.join(cluster.docker_command)]
        on_cluster += ["--allow-registry", cluster.registry]
    elif executor_kind == "podman":
        rootless = engine_named("podman-rootless")
        skip_or_fail(rootless.image_problem(run_image))
        python = user_python(rootless.user, "dockyter.server", "dockyter.server.http.app")
        skip_or_fail(None if python else f"{rootless.user.name} can run no Python with dockyter-server")
        server = rootless.user.argv(*python)
        on_cluster = ["--docker-command", "podman", "--memory", "", "--cpus", "", "--pids-limit", "0"]
    process = subprocess.Popen(
        [
            *server, "--no-auth", "--port", str(port), "--pull", "never",
            "--server-name", f"nonroot-{port}", "--allow-mount", f"{rw}:rw", "--allow-mount", str(ro), "--allow-mount", "/",
            *on_cluster,
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None

    try:
        assert wait_until(healthy, timeout=30) and process.poll() is None, (
            process.stderr.read().decode() if process.poll() is not None else ""
        )
        yield url, rw, ro
    finally:
        process.terminate()
        process.wait(60)
    if cluster is not None:
        from cluster import fail_on_leftovers

        fail_on_leftovers(cluster, (f"nonroot-{port}",))
    if executor_kind == "podman":
        names = rootless.run(
            "ps", "-a", "--filter", "label=io.dockyter.server", "--format", "{{.Names}}"
        ).stdout.split()
        row = '{{.Name}} {{index .Config.Labels "io.dockyter.server"}}'
        inspected = rootless.run("container", "inspect", "--format", row, *names).stdout if names else ""
        left = [line.split()[0] for line in inspected.splitlines() if f" nonroot-{port}:" in line]
        rootless.remove(*left)
        rootless.user.stop_if_idle()
        assert not left, f"containers the rootless server left: {left}"


@under_each_engine_and_the_swarm
def test_item_4_a_link_below_a_private_directory_does_not_reach_the_host(non_root_server, run_image):
    url, rw, _ = non_root_server
    etc_before = sorted(os.listdir("/etc"))
    first = httpx.post(
        url + "/execute",
        json={
            "cmd": "mkdir /w/priv && chmod 700 /w/priv && ln -s /etc /w/priv/link",
            "args": f"-u 4321:4321 -v {rw}:/w {run_image}",
        },
        timeout=60,
    )
    assert first.status_code == 200 and first.json()["exit_code"] == 0, first.text
    second = httpx.post(
        url + "/execute",
        json={"cmd": "cat /h/passwd; touch /h/x", "args": f"-v {rw}/priv/link:/h {run_image}"},
        timeout=60,
    )
    assert_refused(
        second, f"-v {rw}/priv/link:/h", f"is inside the writable directory {rw}, which containers can change"
    )
    assert sorted(os.listdir("/etc")) == etc_before and not os.path.exists("/etc/x")


@under_each_engine_and_the_swarm
def test_item_4_what_a_non_root_server_cannot_inspect_is_a_403(non_root_server, run_image):
    url, _, ro = non_root_server
    cases = [
        (f"-v {ro}/private/sub:/h:ro", f"{ro}/private/sub cannot be checked: permission denied to the server"),
        ("-v /proc/1/root:/h:ro", "it is on the host's proc file system"),
        ("-v /run/docker/containerd:/h:ro", "it would give the container the host socket /run/docker/containerd/"),
    ]
    for args, why in cases:
        response = httpx.post(url + "/execute", json={"cmd": "ls /h", "args": f"{args} {run_image}"}, timeout=60)
        assert_refused(response, args, why)
    assert httpx.get(url + "/health", timeout=10).status_code == 200
