"""The session magics in a real InteractiveShell on a real engine: what a notebook user types and sees."""

from __future__ import annotations

import subprocess

import pytest
from helpers import docker, wait_until
from IPython.core.error import UsageError

from dockyter.errors import ContainerExitError, DockyterError

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _nothing_left_behind(no_leftover_containers):
    """Set up before the shell, so it checks after the shell's unload has removed the sessions."""


@pytest.fixture
def session(cell, test_image):
    """A started session named ``s``."""
    run = cell(f"%docker_session start s {test_image}")
    assert run.error is None, run.stderr
    return "s"


def test_a_cell_runs_in_the_session_with_everything_a_cell_has(cell, ip, session):
    run = cell("%%docker --session s --out out --err err --tee\ncd /tmp; export X=1; echo hi; echo oops >&2")
    assert (run.stdout, run.stderr) == ("hi\n", "oops\n")
    assert (ip.user_ns["out"], ip.user_ns["err"], ip.user_ns["_exit_code"]) == ("hi\n", "oops\n", 0)
    hidden = cell("%%docker --session s --out out\necho captured, not shown")  # as %%bash --out does
    assert (hidden.stdout, ip.user_ns["out"]) == ("", "captured, not shown\n")
    failed = cell("%%docker --session s\npwd; echo $X; exit_three() { return 3; }; exit_three")
    assert failed.stdout.startswith("/tmp\n1\n")
    assert isinstance(failed.error, ContainerExitError) and failed.error.returncode == 3
    assert isinstance(failed.error, subprocess.CalledProcessError)
    assert ip.user_ns["_exit_code"] == 3 and "Traceback" not in failed.stdout + failed.stderr
    quiet = cell("%%docker --session s --no-raise-error\nfalse")
    assert quiet.error is None and ip.user_ns["_exit_code"] == 1
    timed = cell("%%docker --session s --timeout 1\nsleep 30")
    assert isinstance(timed.error, ContainerExitError) and ip.user_ns["_exit_code"] == 124
    assert cell("%%docker --session s\necho $X still").stdout == "1 still\n"


def test_bang_commands_run_in_the_session(cell, ip, session):
    assert cell("%docker --session s").stdout.startswith("Dockyter: `!` now runs in session 's'")
    cell("!cd /tmp && export Y=2")
    assert cell("!pwd; echo $Y").stdout == "/tmp\n2\n"
    cell("x = !echo captured; echo merged >&2")
    assert ip.user_ns["x"] == ["captured", "merged"]
    ip.run_cell("!!echo twice $Y")
    assert list(ip.user_ns["_"]) == ["twice 2"]
    ip.run_cell("z = %sx echo sx $Y")
    assert list(ip.user_ns["z"]) == ["sx 2"]
    cell("!exit_four() { return 4; }; exit_four")
    assert ip.user_ns["_exit_code"] == 4
    cell("%docker_off")
    assert cell("!echo host-$Y").stdout.strip() == "host-"  # IPython's own `!` again (through a pty)
    cell("%docker_on")
    assert cell("!echo $Y").stdout == "2\n"


def test_listing_stopping_and_restarting(cell, ip, session, test_image):
    cell(f"%docker_session start other -e Z=3 {test_image}")
    listing = cell("%docker_session")
    assert "name" in listing.shown and "memory" in listing.shown
    rows = {line.split()[0]: line for line in listing.shown.splitlines()[1:] if line.strip()}
    assert set(rows) == {"s", "other"} and "running" in rows["s"] and test_image in rows["other"]
    cell("%%docker --session s\ntouch /tmp/mark; export W=1")
    assert "restarted" in cell("%docker_session restart s").stdout
    fresh = cell("%%docker --session s\nls /tmp/mark 2>/dev/null || echo gone; echo ${W:-unset}")
    assert fresh.stdout == "gone\nunset\n"
    assert cell("%docker_session stop other").stdout.startswith("Dockyter: session 'other' stopped")
    assert "stopped 1 session(s): s" in cell("%docker_session stop --all").stdout
    assert cell("%docker_session").stdout.startswith("Dockyter: no sessions")


def test_a_dead_session_says_so_until_restarted(cell, ip, session):
    ended = cell("%%docker --session s\nbuiltin exit 5")  # the shell itself, not the cell
    assert isinstance(ended.error, DockyterError)
    assert "session 's' is dead: its shell exited with status 5" in str(ended.error)
    assert ip.user_ns["_exit_code"] == 5
    assert "dead" in cell("%docker_session").shown
    again = cell("%%docker --session s\ntrue")
    assert "is dead" in str(again.error) and "%docker_session restart s" in str(again.error)
    cell("%docker_session restart s")
    assert cell("%%docker --session s\necho back").stdout == "back\n"


def test_a_container_removed_from_outside(cell, ip, session):
    container = ip._dockyter.sessions.get("s").shell.container
    docker("rm", "-f", container)
    gone = cell("%%docker --session s\ntrue")
    assert "session 's' is dead: its container was killed" in str(gone.error)
    assert "Traceback" not in gone.stdout + gone.stderr


def test_bad_names_and_lines_are_one_line(cell, ip, session, sh_image, test_image):
    unknown = cell("%%docker --session ss\ntrue")
    assert isinstance(unknown.error, UsageError) and str(unknown.error) == "no session named 'ss'; did you mean 's'?"
    assert ip.user_ns["_exit_code"] == 2
    taken = cell(f"%docker_session start s {test_image}")
    assert "already running" in str(taken.error)
    no_bash = cell(f"%docker_session start shonly {sh_image}")
    assert "has no bash" in str(no_bash.error)
    for line, message in [
        ("%docker_session start", "usage: %docker_session start NAME"),
        ("%docker_session start bad/name img", "invalid session name"),
        (f"%docker_session start t -t {test_image}", "-t refused: a cell has no terminal"),
        ("%docker_session stop", "usage: %docker_session stop NAME | --all"),
        ("%docker_session launch x", "unknown %docker_session action 'launch'"),
        ("%docker --session", "usage: %docker --session NAME"),
        (f"%%docker --session s {test_image}\ntrue", "give no docker arguments"),
    ]:
        run = cell(line)
        assert isinstance(run.error, UsageError) and message in str(run.error), (line, run.error)
    assert "no session named 'nope'" in str(cell("%docker --session nope").error)
    assert cell("%%docker --session s\necho fine").stdout == "fine\n"  # the session is unharmed


def test_unload_removes_every_session(cell, ip, test_image):
    cell(f"%docker_session start a {test_image}")
    cell(f"%docker_session start b {test_image}")
    containers = [ip._dockyter.sessions.get(name).shell.container for name in ("a", "b")]
    ip.run_line_magic("unload_ext", "dockyter")
    for container in containers:
        assert docker("container", "inspect", container).returncode != 0


def test_idle_sessions_are_stopped(cell, ip, test_image):
    cell("%config Dockyter.session_idle_timeout = 1")
    cell(f"%docker_session start idle {test_image}")
    wait_until(lambda: ip._dockyter.sessions.get("idle").ended, timeout=10)
    stale = cell("%%docker --session idle\ntrue")
    assert "stopped after" in str(stale.error) and "session_idle_timeout" in str(stale.error)
