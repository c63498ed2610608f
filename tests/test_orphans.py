"""A kernel killed with SIGKILL leaves its container running; the next load or %docker_cleanup
removes it, and never anything that belongs to a live process or another host.

On every engine: podman lists and reads labels differently from Docker (wire/labelled.py).
"""

import os
import signal
import socket
import time

import pytest
from helpers import MANAGED_LABEL, OWNER_LABEL, wait_until
from shells import run_cell

from dockyter.wire.contract import owner_id

pytestmark = pytest.mark.docker

DEAD_PID = 2**22 + 12345  # above pid_max's default: no such process


def start_labelled(engine, image: str, owner: str) -> str:
    """A container labelled as a kernel's, owned by ``owner``."""
    name = f"dockyter-test-{os.getpid()}-{time.monotonic_ns()}"
    labels = ["--label", f"{MANAGED_LABEL}=1", "--label", f"{OWNER_LABEL}={owner}"]
    started = engine.run("run", "-d", "--rm", "--init", "--name", name, *labels, image, "sleep", "300")
    assert started.returncode == 0, started.stderr
    return name


@pytest.mark.kernel
def test_container_of_a_killed_kernel_is_removed_by_cleanup(engine, engine_kernel, engine_shell, engine_image):
    kernel = engine_kernel
    msg_id = kernel.submit(f"%%docker {engine_image}\necho started; sleep 300")
    kernel.collect(msg_id, until="started")
    [orphan] = wait_until(lambda: engine.containers_of(kernel.pid, running_only=True), timeout=10)
    os.kill(kernel.pid, signal.SIGKILL)
    wait_until(lambda: not kernel.manager.is_alive(), timeout=10)
    kernel.manager.cleanup_resources()
    time.sleep(1)
    assert engine.exists(orphan), "the container outlives its kernel: the reason cleanup exists"
    run = run_cell(engine_shell, "%docker_cleanup")
    assert orphan in run.stdout
    assert wait_until(lambda: not engine.exists(orphan), timeout=10)


def test_loading_the_extension_removes_orphans(engine, load_dockyter, engine_image):
    orphan = start_labelled(engine, engine_image, f"{socket.gethostname()}:{DEAD_PID}:1")
    try:
        load_dockyter(docker_command=list(engine.command))
        assert wait_until(lambda: not engine.exists(orphan), timeout=20)
    finally:
        engine.remove(orphan)


def test_cleanup_never_touches_live_owners_or_other_hosts(engine, engine_shell, engine_image):
    mine = start_labelled(engine, engine_image, owner_id())  # this very process: alive
    elsewhere = start_labelled(engine, engine_image, "another-host:1:1")
    unrelated = f"not-dockyter-{os.getpid()}"
    assert engine.run("run", "-d", "--rm", "--name", unrelated, engine_image, "sleep", "300").returncode == 0
    reused_pid = []
    try:
        for _ in range(3):
            # the same pid with another start time: gone. On an engine shared with other runs, their
            # clean-up may take it first; then it is made again (a cleanup that did nothing would leave it).
            reused_pid.append(start_labelled(engine, engine_image, f"{socket.gethostname()}:{os.getpid()}:0"))
            run = run_cell(engine_shell, "%docker_cleanup")
            if reused_pid[-1] in run.stdout or engine.exists(reused_pid[-1]):
                break
        assert reused_pid[-1] in run.stdout
        assert engine.exists(mine) and engine.exists(elsewhere) and engine.exists(unrelated)
        assert wait_until(lambda: not engine.exists(reused_pid[-1]), timeout=10)
    finally:
        engine.remove(mine, elsewhere, unrelated, *reused_pid)
