"""The docker backend on every engine: Docker, rootful podman and rootless podman (engine_fixtures.py).

The same tests on each. Where podman 4.3 does not yet behave as Docker does, the test says so
with ``engine_differs``: an expected failure, strict, whose reason is the difference.
"""

from __future__ import annotations

import os
import re
import socket
import time

import pytest
from helpers import MANAGED_LABEL, OWNER_LABEL, wait_until

from dockyter.wire.contract import owner_id

pytestmark = pytest.mark.kernel


def test_a_cell_streams_its_output_while_it_runs(engine_kernel, engine_image):
    run = engine_kernel.run(f"%%docker {engine_image}\necho first; sleep 2; echo second >&2; sleep 1; echo third")
    assert run.reply["status"] == "ok", run.reply
    assert (run.stdout, run.stderr) == ("first\nthird\n", "second\n")
    assert run.arrival("third") - run.arrival("first") > 2.5


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ("echo out; exit 3", 3, "exited with status 3"),
        ("nosuchcommand", 127, "command not found in the container"),
        ("/etc/passwd", 126, "could not be executed"),
    ],
    ids=["exit-3", "not-found-127", "not-executable-126"],
)
def test_exit_codes_mean_the_same(engine_cell, engine_image, body, code, words):
    run = engine_cell(f"%%docker {engine_image}\n{body}")
    assert run.result.error_in_exec.returncode == code
    assert words in str(run.error)
    assert engine_cell("print(_exit_code)").stdout == f"{code}\n"


def test_a_missing_image_is_125_and_says_so(engine_cell):
    run = engine_cell("%%docker --pull never dockyter-test/no-such-image:1\ntrue")
    assert type(run.error).__name__ == "ContainerNotStarted"
    assert run.error.returncode == 125
    assert "did not start" in str(run.error) and "no-such-image" in str(run.error)


def test_an_image_without_bash_gets_the_hint(engine_cell, engine_sh_image, engine_differs):
    engine_differs(
        "--init is catatonit, which reports a missing command as 'ERROR (catatonit:6): failed to exec pid1: "
        "No such file or directory' and exit status 1, where Docker's tini gives 127"
    )
    run = engine_cell(f"%%docker {engine_sh_image}\necho hi")
    assert run.error.returncode == 127
    assert "has no 'bash'" in str(run.error)


def test_an_interrupt_stops_the_container(engine, engine_kernel, engine_image):
    kernel = engine_kernel
    msg_id = kernel.submit(f"%%docker {engine_image}\necho started; sleep 120")
    kernel.collect(msg_id, until="started")
    [container] = wait_until(lambda: engine.containers_of(kernel.pid, running_only=True), timeout=10)
    assert container in engine.labelled(MANAGED_LABEL)  # labelled as Dockyter's, owned by the kernel
    interrupted_at = time.monotonic()
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=30)
    assert time.monotonic() - interrupted_at < 10
    assert run.reply["ename"] == "Interrupted"
    assert wait_until(lambda: container not in engine.containers_of(kernel.pid), timeout=10)
    assert kernel.run(f"%%docker {engine_image}\necho next").stdout == "next\n"


def test_a_timeout_stops_the_container(engine, engine_cell, engine_image):
    started = time.monotonic()
    run = engine_cell(f"%%docker --timeout 2 {engine_image}\necho started; sleep 60")
    assert run.error.returncode == 124 and "timed out after 2 s" in str(run.error)
    assert run.stdout.startswith("started\n")
    assert time.monotonic() - started < 2 + 2 + 5  # the timeout, stop_grace, the removal
    assert wait_until(lambda: stopped(run.error) not in engine.containers_of(os.getpid()), timeout=10)


def stopped(error: BaseException | None) -> str:
    """The container a timeout stopped, by the name Dockyter's one line gives."""
    found = re.search(r"container (dockyter-\w+) stopped", str(error))
    assert found, error
    return found.group(1)


def test_a_command_that_ignores_signals_is_still_stopped_at_once(engine, engine_cell, engine_image, engine_differs):
    engine_differs(
        "`podman rm -f` is `podman stop` (SIGTERM, 10 s, then SIGKILL) and a removal: the stop ladder's rm -f "
        "waits 10 s for a command that ignores SIGTERM, where `docker rm -f` kills at once"
    )
    started = time.monotonic()
    run = engine_cell(f"%%docker --timeout 2 {engine_image}\ntrap '' TERM INT; echo started; sleep 60")
    assert run.error.returncode == 124
    assert time.monotonic() - started < 2 + 2 + 5  # the timeout, stop_grace, the removal
    assert wait_until(lambda: stopped(run.error) not in engine.containers_of(os.getpid()), timeout=10)


def test_the_command_gets_the_interrupt_before_it_is_killed(engine_cell, engine_image, engine_differs):
    engine_differs(
        "podman's catatonit sends SIGINT to the shell only, not to its process group as tini does with "
        "TINI_KILL_PROCESS_GROUP=1: bash waits for `sleep`, and the removal after stop_grace kills both"
    )
    run = engine_cell(
        f"%%docker --timeout 2 {engine_image}\ntrap 'echo got INT; exit 7' INT; echo started; sleep 60; echo missed"
    )
    assert run.error.returncode == 124
    assert run.stdout.startswith("started\ngot INT\n")


def start_labelled(engine, image: str, owner: str) -> str:
    name = f"dockyter-test-{os.getpid()}-{time.monotonic_ns()}"
    labels = ["--label", f"{MANAGED_LABEL}=1", "--label", f"{OWNER_LABEL}={owner}"]
    started = engine.run("run", "-d", "--rm", "--init", "--name", name, *labels, image, "sleep", "300")
    assert started.returncode == 0, started.stderr
    return name


def test_cleanup_removes_the_containers_of_dead_kernels_only(engine, engine_cell, engine_image, engine_differs):
    engine_differs(
        "`ps --format '{{.Label \"io.dockyter.owner\"}}'` is a template error in podman 4.3 (no .Label on its "
        "ps rows): %docker_cleanup lists nothing and says 'no containers left by dead kernels'"
    )
    dead = start_labelled(engine, engine_image, f"{socket.gethostname()}:{2**22 + 12345}:1")
    alive = start_labelled(engine, engine_image, owner_id())
    try:
        run = engine_cell("%docker_cleanup")
        assert dead in run.stdout
        assert wait_until(lambda: not engine.exists(dead), timeout=10)
        assert engine.exists(alive)
    finally:
        engine.remove(dead, alive)


def test_a_session_keeps_its_state_across_an_interrupt(engine, engine_kernel, engine_image):
    kernel = engine_kernel
    assert kernel.run(f"%docker_session start work {engine_image}").reply["status"] == "ok"
    try:
        assert kernel.run("%%docker --session work\nexport KEPT=yes; cd /tmp").reply["status"] == "ok"
        msg_id = kernel.submit("%%docker --session work\necho started; sleep 120")
        kernel.collect(msg_id, until="started")
        kernel.manager.interrupt_kernel()
        run = kernel.collect(msg_id, timeout=30)
        assert run.reply["ename"] == "Interrupted"
        assert kernel.run("print(_exit_code)").stdout == "130\n"
        assert kernel.run("%%docker --session work\necho $KEPT in $PWD").stdout == "yes in /tmp\n"
        [container] = engine.containers_of(kernel.pid, running_only=True)
        assert engine.run("container", "inspect", container).returncode == 0
    finally:
        assert kernel.run("%docker_session stop work").reply["status"] == "ok"
    assert wait_until(lambda: not engine.containers_of(kernel.pid), timeout=10)


def test_the_session_listing_shows_memory(engine_cell, engine_image, engine_differs):
    engine_differs(
        "`podman stats` answers 'stats is not supported in rootless mode without cgroups v2' (this host has "
        "cgroup v1): the memory column shows '-'",
        "podman-rootless",
    )
    engine_cell(f"%docker_session start mem {engine_image}")
    try:
        listing = engine_cell("%docker_session").shown
        [row] = [line for line in listing.splitlines() if line.startswith("mem ")]
        assert "B" in row.split()[-2]  # "1.2MiB / 23.5GiB" -> its last word before the container name
    finally:
        engine_cell("%docker_session stop mem")


def test_status_names_the_engine_version(engine_cell, engine_image):
    engine_cell(f"%docker {engine_image}")
    shown = engine_cell("%docker_status").shown
    [row] = [line for line in shown.splitlines() if "runtime version" in line]
    assert any(character.isdigit() for character in row)


def test_completion_offers_the_test_image_by_its_name(engine_shell, engine_image, engine_differs):
    engine_differs(
        "`podman images` names an image loaded without a registry localhost/dockyter-test/bash:1, so the "
        "name a user types (and podman runs) is not among the names offered"
    )
    images = engine_shell._dockyter.active_backend.images
    images.refresh()
    assert engine_image in images.names()
