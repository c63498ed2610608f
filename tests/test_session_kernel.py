"""Sessions in a real Jupyter kernel: live output, interrupts, shutdown, and kernels killed with SIGKILL.

On every engine (``engine_kernel``): rootless podman's kernel runs as the rootless user.
"""

from __future__ import annotations

import os
import pty
import re
import shlex
import signal
import subprocess
import time

import pytest
from helpers import docker, wait_until
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


def started_container(run) -> str:
    """The container a ``%docker_session start`` (or restart) message names."""
    found = re.search(r"container (dockyter-[0-9a-f]+)\)", run.stdout)
    assert found, run.stdout
    return found.group(1)


def test_here_and_as_me_apply_to_sessions_as_to_cells(kernel, test_image, tmp_path):
    """`start NAME --here --as-me`, and the traits, mount the notebook's folder and run as the kernel's user."""
    run = kernel.run(f"%docker_session start me --here --as-me {test_image}")
    container = started_container(run)
    assert run.stdout == (
        f"Dockyter: session 'me' started ({test_image}, container {container}); use it with "
        f"%%docker --session me; a terminal in it: docker exec -it {container} bash\n"
    )
    made = kernel.run("%%docker --session me\npwd; id -u; echo from-the-session > made.txt")
    assert made.stdout == f"{tmp_path}\n{os.getuid()}\n"
    assert (tmp_path / "made.txt").read_text() == "from-the-session\n"
    user = docker("inspect", "--format", "{{.Config.User}}", container).stdout.strip()
    assert user == f"{os.getuid()}:{os.getgid()}"
    # the traits do the same for every session
    kernel.run("%config Dockyter.here = True")
    kernel.run(f"%docker_session start traits {test_image}")
    assert kernel.run("%%docker --session traits\npwd").stdout == f"{tmp_path}\n"
    kernel.run("%config Dockyter.here = False")
    # given to a session's cell, they are one line saying where they go
    refused = kernel.run("%%docker --session me --here\npwd")
    assert refused.stderr == (
        "UsageError: %%docker: --here with --session: the session's container has its mounts and user already; "
        "they are given when it starts: %docker_session start me --here IMAGE\n"
    )
    kernel.run("%docker_session stop --all")


def test_a_session_that_cannot_start_says_dockers_reason(kernel, test_image, no_leftover_containers):
    """docker's own complaint, not its pointer to the usage; a %%docker option given to start is named."""
    run = kernel.run(f"%docker_session start x --frobnicate=1 {test_image}")
    assert [line for error in run.of_type("error") for line in error["content"]["traceback"]] == [
        "\x1b[31mDockyter: session 'x' could not start: the session's container did not start: "
        "unknown flag: --frobnicate\x1b[0m"
    ]
    assert (run.stdout, run.stderr) == ("", "")
    own = kernel.run(f"%docker_session start x --timeout=5 {test_image}")
    assert own.stderr == (
        "UsageError: %docker_session: --timeout is a %%docker option, for each cell run in the session: "
        "%%docker --session x --timeout=5; %docker_session start takes --here, --as-me and docker run's options\n"
    )
    late = kernel.run(f"%docker_session start x -e A=1 --here {test_image}")
    assert late.stderr == (
        "UsageError: %docker_session: --here is an option of start: put it before the docker arguments\n"
    )
    assert (
        kernel.run("%docker_session").stdout
        == "Dockyter: no sessions; start one with %docker_session start NAME IMAGE\n"
    )


def test_the_way_in_opens_a_terminal_in_the_sessions_container(kernel, test_image, no_leftover_containers):
    """The `docker exec -it ... bash` line of start's message, run as printed in a terminal, reaches the session."""
    run = kernel.run(f"%docker_session start shell {test_image}")
    line = run.stdout.split("a terminal in it: ")[1].strip()
    kernel.run("%%docker --session shell\necho kept > /tmp/made-by-a-cell")
    controller, terminal = pty.openpty()
    process = subprocess.Popen(shlex.split(line), stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    os.write(controller, b"cat /tmp/made-by-a-cell; exit\n")
    seen = b""
    while b"kept" not in seen:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(timeout=30) == 0
    os.close(controller)
    assert b"kept" in seen, seen
    restarted = kernel.run("%docker_session restart shell")
    assert restarted.stdout.endswith(f"; a terminal in it: docker exec -it {started_container_of(restarted)} bash\n")
    kernel.run("%docker_session stop shell")


def started_container_of(run) -> str:
    found = re.search(r"docker exec -it (dockyter-[0-9a-f]+) bash", run.stdout)
    assert found, run.stdout
    return found.group(1)


def test_the_listing_never_waits_for_the_memory_figure(kernel, test_image, tmp_path, no_leftover_containers):
    """`docker stats` samples for a second or two (here, made slower still): the listing comes at once,
    with the memory column to be filled in, and a later listing has the figure."""
    done = tmp_path / "stats-answered"
    slow = tmp_path / "slow-stats-docker"
    slow.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = stats ]; then sleep 4; docker "$@"; status=$?; touch "$DONE"; exit $status; fi\n'
        'exec docker "$@"\n'
    )
    slow.chmod(0o755)
    kernel.run(f"import os; os.environ['DONE'] = {str(done)!r}")
    kernel.run(f"%config Dockyter.docker_command = [{str(slow)!r}]")
    kernel.run(f"%docker_session start a {test_image}")
    kernel.run(f"%docker_session start b {test_image}")
    [shown] = kernel.run("%docker_session").of_type("display_data")
    assert not done.exists()  # the listing did not wait for docker stats
    rows = shown["content"]["data"]["text/plain"].splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["a", "b"]
    assert all(row.split()[2] == "running" and row.split()[7] == "…" for row in rows), rows
    assert wait_until(done.exists, timeout=30)

    def memory_column() -> list[str]:
        [table] = kernel.run("%docker_session").of_type("display_data")
        return [row.split()[7] for row in table["content"]["data"]["text/plain"].splitlines()[1:]]

    assert wait_until(lambda: all(figure.endswith("B") for figure in memory_column()), timeout=30)
    kernel.run("%docker_session stop --all")


def test_exit_and_set_e_end_the_cell_and_keep_the_session(kernel, test_image, no_leftover_containers):
    """As in %%bash: `exit N`, a tripped `set -e` and `return` end the cell with their status; the
    session, its variables and its background jobs stay; no `logout`, no `[1] 25` on stderr."""
    kernel.run(f"%docker_session start s {test_image}")
    kernel.run("%%docker --session s\nexport KEPT=yes; sleep 300 & echo $! > /tmp/job")
    cases = [
        ("set -e; echo one; false; echo never", "one\n", 1),
        ("set +e; echo two; exit 3; echo never", "two\n", 3),
        ("f() { echo in-f; exit 4; }; f; echo never", "in-f\n", 4),
        ("for i in 1 2; do echo loop$i; logout 5; done", "loop1\n", 5),
        ("echo early; return 6; echo never", "early\n", 6),
        ("(exit 7); echo subshell $?", "subshell 7\n", 0),
        ("sleep 1 & echo background", "background\n", 0),
        # the cell's own INT trap neither catches the exit nor is lost
        ("trap 'echo caught' INT; echo trapped; exit 8; echo never", "trapped\n", 8),
        ("trap -p INT; trap - INT", "trap -- 'echo caught' SIGINT\n", 0),
    ]
    for cell, printed, status in cases:
        run = kernel.run(f"%%docker --session s --no-raise-error\n{cell}")
        assert (run.stdout, run.stderr, run.reply["status"]) == (printed, "", "ok"), cell
        assert kernel.run("print(_exit_code)").stdout == f"{status}\n", cell
    kept = kernel.run("%%docker --session s\necho $KEPT; kill -0 $(cat /tmp/job) && echo job-running")
    assert kept.stdout == "yes\njob-running\n"
    raised = kernel.run("%%docker --session s\nset -e; grep -q nothing /etc/hostname; echo never")
    [red] = [line for error in raised.of_type("error") for line in error["content"]["traceback"]]
    assert red == "\x1b[31mDockyter: the command exited with status 1\x1b[0m"
    [listing] = kernel.run("%docker_session").of_type("display_data")
    assert "running" in listing["content"]["data"]["text/plain"]
    kernel.run("%docker_session stop s")
