"""The session magics in a real InteractiveShell on a real engine: what a notebook user types and sees.

A session (``engine_cell``) runs on every engine: Docker, podman and rootless podman.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from helpers import wait_until
from IPython.core.error import UsageError

from dockyter.errors import ContainerExitError, DockyterError

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _nothing_left_behind(request):
    """Set up before the shell, so it checks after the shell's unload has removed the sessions.

    A test on an engine has that engine's check instead (engine_fixtures.py).
    """
    if "engine" not in request.fixturenames:
        request.getfixturevalue("no_leftover_containers")


@pytest.fixture
def session(engine_cell, engine_image):
    """A started session named ``s``, on the test's engine."""
    run = engine_cell(f"%docker_session start s {engine_image}")
    assert run.error is None, run.stderr
    return "s"


def test_a_cell_runs_in_the_session_with_everything_a_cell_has(engine_cell, engine_shell, session):
    run = engine_cell("%%docker --session s --out out --err err --tee\ncd /tmp; export X=1; echo hi; echo oops >&2")
    assert (run.stdout, run.stderr) == ("hi\n", "oops\n")
    assert (engine_shell.user_ns["out"], engine_shell.user_ns["err"], engine_shell.user_ns["_exit_code"]) == (
        "hi\n",
        "oops\n",
        0,
    )
    hidden = engine_cell("%%docker --session s --out out\necho captured, not shown")  # as %%bash --out does
    assert (hidden.stdout, engine_shell.user_ns["out"]) == ("", "captured, not shown\n")
    failed = engine_cell("%%docker --session s\npwd; echo $X; exit_three() { return 3; }; exit_three")
    assert failed.stdout.startswith("/tmp\n1\n")
    assert isinstance(failed.error, ContainerExitError) and failed.error.returncode == 3
    assert isinstance(failed.error, subprocess.CalledProcessError)
    assert engine_shell.user_ns["_exit_code"] == 3 and "Traceback" not in failed.stdout + failed.stderr
    quiet = engine_cell("%%docker --session s --no-raise-error\nfalse")
    assert quiet.error is None and engine_shell.user_ns["_exit_code"] == 1
    timed = engine_cell("%%docker --session s --timeout 1\nsleep 30")
    assert isinstance(timed.error, ContainerExitError) and engine_shell.user_ns["_exit_code"] == 124
    assert engine_cell("%%docker --session s\necho $X still").stdout == "1 still\n"


def test_bang_commands_run_in_the_session(engine_cell, engine_shell, session):
    assert engine_cell("%docker --session s").stdout.startswith("Dockyter: `!` now runs in session 's'")
    engine_cell("!cd /tmp && export Y=2")
    assert engine_cell("!pwd; echo $Y").stdout == "/tmp\n2\n"
    engine_cell("x = !echo captured; echo merged >&2")
    assert engine_shell.user_ns["x"] == ["captured", "merged"]
    engine_shell.run_cell("!!echo twice $Y")
    assert list(engine_shell.user_ns["_"]) == ["twice 2"]
    engine_shell.run_cell("z = %sx echo sx $Y")
    assert list(engine_shell.user_ns["z"]) == ["sx 2"]
    engine_cell("!exit_four() { return 4; }; exit_four")
    assert engine_shell.user_ns["_exit_code"] == 4
    engine_cell("%docker_off")
    assert engine_cell("!echo host-$Y").stdout.strip() == "host-"  # IPython's own `!` again (through a pty)
    engine_cell("%docker_on")
    assert engine_cell("!echo $Y").stdout == "2\n"


def test_listing_stopping_and_restarting(engine_cell, engine_shell, session, engine_image):
    engine_cell(f"%docker_session start other -e Z=3 {engine_image}")
    listing = engine_cell("%docker_session")
    assert "name" in listing.shown and "memory" in listing.shown
    rows = {line.split()[0]: line.split() for line in listing.shown.splitlines()[1:] if line.strip()}
    assert set(rows) == {"s", "other"} and "running" in rows["s"] and engine_image in rows["other"]

    # the memory each uses (1.2MiB, 442.4kB), before the container's name, once measured in the
    # background; rootless podman on cgroup v1 has no stats: the resident memory of its processes instead
    def memory_column() -> list[str]:
        shown = engine_cell("%docker_session").shown
        return [line.split()[-2] for line in shown.splitlines()[1:] if line.strip()]

    assert wait_until(lambda: all(re.fullmatch(r"\d+(\.\d+)?[kKMG]?i?B", m) for m in memory_column()), timeout=30), (
        memory_column()
    )
    engine_cell("%%docker --session s\ntouch /tmp/mark; export W=1")
    assert "restarted" in engine_cell("%docker_session restart s").stdout
    fresh = engine_cell("%%docker --session s\nls /tmp/mark 2>/dev/null || echo gone; echo ${W:-unset}")
    assert fresh.stdout == "gone\nunset\n"
    assert engine_cell("%docker_session stop other").stdout.startswith("Dockyter: session 'other' stopped")
    assert "stopped 1 session(s): s" in engine_cell("%docker_session stop --all").stdout
    assert engine_cell("%docker_session").stdout.startswith("Dockyter: no sessions")


def test_a_dead_session_says_so_until_restarted(engine_cell, engine_shell, session):
    ended = engine_cell("%%docker --session s\nbuiltin exit 5")  # the shell itself, not the cell
    assert isinstance(ended.error, DockyterError)
    assert "session 's' is dead: its shell exited with status 5" in str(ended.error)
    assert engine_shell.user_ns["_exit_code"] == 5
    assert "dead" in engine_cell("%docker_session").shown
    again = engine_cell("%%docker --session s\ntrue")
    assert "is dead" in str(again.error) and "%docker_session restart s" in str(again.error)
    engine_cell("%docker_session restart s")
    assert engine_cell("%%docker --session s\necho back").stdout == "back\n"


def test_a_container_removed_from_outside(engine, engine_cell, engine_shell, session):
    container = engine_shell._dockyter.sessions.get("s").shell.container
    engine.remove(container)
    gone = engine_cell("%%docker --session s\ntrue")
    assert "session 's' is dead: its container was killed" in str(gone.error)
    assert "Traceback" not in gone.stdout + gone.stderr


def test_bad_names_and_lines_are_one_line(engine_cell, engine_shell, session, engine_sh_image, engine_image):
    unknown = engine_cell("%%docker --session ss\ntrue")
    assert isinstance(unknown.error, UsageError) and str(unknown.error) == "no session named 'ss'; did you mean 's'?"
    assert engine_shell.user_ns["_exit_code"] == 2
    taken = engine_cell(f"%docker_session start s {engine_image}")
    assert "already running" in str(taken.error)
    no_bash = engine_cell(f"%docker_session start shonly {engine_sh_image}")
    assert "has no bash" in str(no_bash.error)
    for line, message in [
        ("%docker_session start", "usage: %docker_session start NAME"),
        ("%docker_session start bad/name img", "invalid session name"),
        (f"%docker_session start t -t {engine_image}", "-t refused: a cell has no terminal"),
        ("%docker_session stop", "usage: %docker_session stop NAME | --all"),
        ("%docker_session launch x", "unknown %docker_session action 'launch'"),
        ("%docker --session", "usage: %docker --session NAME"),
        (f"%%docker --session s {engine_image}\ntrue", "give no docker arguments"),
    ]:
        run = engine_cell(line)
        assert isinstance(run.error, UsageError) and message in str(run.error), (line, run.error)
    assert "no session named 'nope'" in str(engine_cell("%docker --session nope").error)
    assert engine_cell("%%docker --session s\necho fine").stdout == "fine\n"  # the session is unharmed


def test_unload_removes_every_session(engine, engine_cell, engine_shell, engine_image):
    engine_cell(f"%docker_session start a {engine_image}")
    engine_cell(f"%docker_session start b {engine_image}")
    containers = [engine_shell._dockyter.sessions.get(name).shell.container for name in ("a", "b")]
    started = time.monotonic()
    engine_shell.run_line_magic("unload_ext", "dockyter")
    assert time.monotonic() - started < 5  # podman's rm waits 10 s for SIGTERM unless told not to
    assert not any(engine.exists(container) for container in containers)


def test_idle_sessions_are_stopped(cell, ip, test_image):
    cell("%config Dockyter.session_idle_timeout = 1")
    cell(f"%docker_session start idle {test_image}")
    wait_until(lambda: ip._dockyter.sessions.get("idle").ended, timeout=10)
    stale = cell("%%docker --session idle\ntrue")
    assert "stopped after" in str(stale.error) and "session_idle_timeout" in str(stale.error)
