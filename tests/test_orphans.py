"""A kernel killed with SIGKILL leaves its container running; the next load or %docker_cleanup
removes it, and never anything that belongs to a live process or another host."""

import os
import signal
import time

import pytest
from helpers import docker, wait_until
from kernels import containers_of, start_kernel
from shells import run_cell

pytestmark = pytest.mark.docker


def start_labelled(image: str, owner: str) -> str:
    name = f"dockyter-test-{os.getpid()}-{time.monotonic_ns()}"
    started = docker(
        "run",
        "-d",
        "--rm",
        "--name",
        name,
        "--label",
        "io.dockyter.managed=1",
        "--label",
        f"io.dockyter.owner={owner}",
        image,
        "sleep",
        "300",
    )
    assert started.returncode == 0, started.stderr
    return name


def exists(name: str) -> bool:
    return docker("container", "inspect", name).returncode == 0


@pytest.mark.kernel
def test_container_of_a_killed_kernel_is_removed_by_cleanup(tmp_path, ip, test_image):
    kernel = start_kernel(tmp_path, {"HOME": str(tmp_path)})
    try:
        assert kernel.run("%load_ext dockyter").reply["status"] == "ok"
        msg_id = kernel.submit(f"%%docker {test_image}\necho started; sleep 300")
        kernel.collect(msg_id, until="started")
        [orphan] = wait_until(lambda: containers_of(kernel.pid, running_only=True), timeout=10)
        os.kill(kernel.pid, signal.SIGKILL)
        wait_until(lambda: not kernel.manager.is_alive(), timeout=10)
        time.sleep(1)
        assert exists(orphan), "the container outlives its kernel: the reason cleanup exists"
    finally:
        kernel.shutdown()
    run = run_cell(ip, "%docker_cleanup")
    assert orphan in run.stdout
    assert wait_until(lambda: not exists(orphan), timeout=10)


def test_loading_the_extension_removes_orphans(isolated_home, test_image):
    from IPython.core.interactiveshell import InteractiveShell

    dead_pid = 2**22 + 12345  # above pid_max's default: no such process
    import socket

    orphan = start_labelled(test_image, f"{socket.gethostname()}:{dead_pid}:1")
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "dockyter")
    try:
        assert wait_until(lambda: not exists(orphan), timeout=20)
    finally:
        shell.run_line_magic("unload_ext", "dockyter")
        docker("rm", "-f", orphan)


def test_cleanup_never_touches_live_owners_or_other_hosts(ip, test_image):
    import socket

    from dockyter.wire.contract import owner_id

    mine = start_labelled(test_image, owner_id())  # this very process: alive
    elsewhere = start_labelled(test_image, "another-host:1:1")
    reused_pid = start_labelled(test_image, f"{socket.gethostname()}:{os.getpid()}:0")  # same pid, other start
    unrelated = f"not-dockyter-{os.getpid()}"
    docker("run", "-d", "--rm", "--name", unrelated, test_image, "sleep", "300")
    try:
        run = run_cell(ip, "%docker_cleanup")
        assert reused_pid in run.stdout
        assert exists(mine) and exists(elsewhere) and exists(unrelated)
        assert wait_until(lambda: not exists(reused_pid), timeout=10)
    finally:
        docker("rm", "-f", mine, elsewhere, reused_pid, unrelated)
