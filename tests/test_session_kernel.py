"""Sessions in a real Jupyter kernel: live output, interrupts, shutdown, and kernels killed with SIGKILL.

On every engine (``engine_kernel``): rootless podman's kernel runs as the rootless user.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from helpers import wait_until
from shells import run_cell

pytestmark = [pytest.mark.docker, pytest.mark.kernel]


def test_output_streams_live_from_a_session(engine_kernel, engine_image):
    assert engine_kernel.run(f"%docker_session start live {engine_image}").reply["status"] == "ok"
    run = engine_kernel.run("%%docker --session live\necho first; sleep 1.5; echo second")
    assert run.stdout == "first\nsecond\n"
    assert run.arrival("second") - run.arrival("first") > 1.0


def test_interrupt_stops_the_command_and_the_session_keeps_its_state(engine, engine_kernel, engine_image):
    kernel = engine_kernel
    kernel.run(f"%docker_session start s {engine_image}")
    kernel.run("%%docker --session s\ncd /tmp; export KEPT=yes")
    msg_id = kernel.submit("%%docker --session s\necho started; sleep 300; echo never")
    kernel.collect(msg_id, until="started")
    interrupted_at = time.monotonic()
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=30)
    assert time.monotonic() - interrupted_at < 10
    assert run.reply["status"] == "error" and run.reply["ename"] == "Interrupted"
    assert "never" not in run.stdout and "Traceback" not in run.stderr
    assert kernel.run("print(_exit_code)").stdout == "130\n"
    after = kernel.run("%%docker --session s\npwd; echo $KEPT; ps -o comm | grep -c '^sleep' || true")
    assert after.stdout == "/tmp\nyes\n0\n"
    [container] = engine.containers_of(kernel.pid, running_only=True)  # the same container, still running
    assert kernel.run("%docker_session stop s").reply["status"] == "ok"
    assert wait_until(lambda: not engine.exists(container), timeout=10)


def test_a_kernel_shutdown_removes_its_sessions(engine, engine_kernel, engine_image):
    kernel = engine_kernel
    assert kernel.run(f"%docker_session start a {engine_image}").reply["status"] == "ok"
    [container] = engine.containers_of(kernel.pid)
    kernel.client.shutdown()  # a clean shutdown request, as Jupyter sends it
    wait_until(lambda: not kernel.manager.is_alive(), timeout=30)
    assert wait_until(lambda: not engine.exists(container), timeout=15)


def test_sessions_of_a_killed_kernel_are_removed(engine, engine_kernel, engine_shell, engine_image):
    kernel = engine_kernel
    kernel.run(f"%docker_session start a {engine_image}")
    kernel.run("%%docker --session a\nsleep 300 >/dev/null 2>&1 &")  # a background job, as a database would be
    [container] = engine.containers_of(kernel.pid)
    os.kill(kernel.pid, signal.SIGKILL)
    wait_until(lambda: not kernel.manager.is_alive(), timeout=10)
    kernel.manager.cleanup_resources()  # its sockets: else closing zmq at exit waits for the dead kernel
    # The shell reads end-of-file on its stdin once the kernel is gone, and the container ends;
    # were it still there, %docker_cleanup (and the next load) would remove it by its labels.
    run = run_cell(engine_shell, "%docker_cleanup")
    assert "Traceback" not in run.stdout + run.stderr
    assert wait_until(lambda: not engine.exists(container), timeout=15)
