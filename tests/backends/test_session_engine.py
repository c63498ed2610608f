"""The session engine on a real engine, without IPython: state, streams, the stop ladder, death.

Interrupts are delivered as the kernel gets them: a KeyboardInterrupt raised in the main
thread (``_thread.interrupt_main``) while a cell runs. What the engine does (the shell, the
stop ladder through ``exec``, removal, stats, labels) runs on every engine (``manager`` takes
the ``engine`` parameter); names and idle timers are Dockyter's own, tested on Docker.
"""

from __future__ import annotations

import _thread
import re
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from helpers import docker, wait_until

from dockyter.backends.base import RunRequest
from dockyter.backends.docker.dockerbackend import DockerBackend
from dockyter.errors import BadSessionRequest, SessionDead
from dockyter.output import OutputSink
from dockyter.sessionmanager import COLUMNS, NOT_MEASURED, SessionManager
from dockyter.wire.dockerargs import parse_run_args
from dockyter.wire.sessionprotocol import FrameScanner, ansi_c_quote

pytestmark = pytest.mark.docker


def new_manager(**overrides: object) -> SessionManager:
    """Sessions on the docker backend, with plain settings in place of the Dockyter configurable."""
    values = dict(
        docker_command=["docker"], base_run_args=["--log-driver", "none"], stop_grace=1.0, session_idle_timeout=0.0
    )
    values.update(overrides)
    settings = SimpleNamespace(**values)
    backend = DockerBackend(settings)
    return SessionManager(settings, lambda: backend)


@pytest.fixture
def manager(engine) -> Iterator[SessionManager]:
    """Sessions on the test's engine (its leftover check runs after they are closed)."""
    sessions = new_manager(docker_command=list(engine.command))
    yield sessions
    sessions.close()


@pytest.fixture
def docker_manager(no_leftover_containers) -> Iterator[SessionManager]:
    """Sessions on Docker, for what does not depend on the engine."""
    sessions = new_manager()
    yield sessions
    sessions.close()


class Ran:
    def __init__(
        self, manager: SessionManager, name: str, command: str, timeout: float | None = None, merge: bool = False
    ):
        sink = OutputSink(show=False, capture=True)
        started = time.monotonic()
        request = RunRequest(args=parse_run_args("unused"), command=command, timeout=timeout, merge_stderr=merge)
        self.result = manager.run(name, request, sink)
        self.seconds = time.monotonic() - started
        self.stdout = sink.text("stdout")
        self.stderr = sink.text("stderr")
        self.code = self.result.exit_code


def interrupt_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


def test_shell_state_carries_from_cell_to_cell(manager, engine_image):
    manager.start("s", parse_run_args(engine_image))
    first = Ran(
        manager,
        "s",
        "cd /tmp && mkdir -p work && cd work\nexport GREETING=hello\ngreet() { echo \"$GREETING $1\"; }\nUNEXPORTED=kept\nalias ll='ls -d'\n",
    )
    assert first.code == 0 and first.stdout == first.stderr == ""
    second = Ran(manager, "s", "pwd; greet world; echo $UNEXPORTED; sh -c 'echo child sees $GREETING'; ll /tmp")
    assert second.stdout == "/tmp/work\nhello world\nkept\nchild sees hello\n/tmp\n"


def test_background_processes_keep_running(manager, engine_image):
    manager.start("bg", parse_run_args(engine_image))
    Ran(manager, "bg", "sleep 300 & echo $! > /tmp/pid")
    later = Ran(manager, "bg", "kill -0 $(cat /tmp/pid) && echo alive; jobs | wc -l")
    assert later.stdout == "alive\n1\n"


def test_virtualenv_stays_activated(docker_manager, python_image):
    docker_manager.start("py", parse_run_args(python_image))
    made = Ran(docker_manager, "py", "python3 -m venv --without-pip /tmp/venv && . /tmp/venv/bin/activate")
    assert made.code == 0, made.stderr
    used = Ran(docker_manager, "py", "echo $VIRTUAL_ENV; command -v python3; type -t deactivate")
    assert used.stdout == "/tmp/venv\n/tmp/venv/bin/python3\nfunction\n"
    assert used.stderr == ""  # the prompt activate sets is never written


def test_streams_statuses_and_odd_cells(manager, engine_image):
    manager.start("s", parse_run_args(engine_image))
    apart = Ran(manager, "s", "echo out; echo err >&2; printf 'no newline'")
    assert (apart.stdout, apart.stderr, apart.code) == ("out\nno newline", "err\n", 0)
    assert Ran(manager, "s", "(exit 7)").code == 7
    assert Ran(manager, "s", "cat; echo stdin was empty").stdout == "stdin was empty\n"  # stdin is at EOF
    quoted = Ran(manager, "s", "echo \"it's\" '\"q\"' \\\\ é $'\\t'x\ncat <<'EOF'\n$HOME `x`\nEOF")
    assert quoted.stdout == 'it\'s "q" \\ é \tx\n$HOME `x`\n'
    broken = Ran(manager, "s", "if then")
    assert broken.code == 2 and "syntax error" in broken.stderr
    fake = "\x1f" + "0" * 32 + ":0\n"  # looks like a frame, but its token was never sent
    assert Ran(manager, "s", "printf '\\037%s:0\\n' " + "0" * 32 + "; echo after").stdout == fake + "after\n"
    merged = Ran(manager, "s", "echo one; echo two >&2; echo three", merge=True)
    assert (merged.stdout, merged.stderr) == ("one\ntwo\nthree\n", "")
    redirected = Ran(manager, "s", "exec >/tmp/log; echo to the file")
    assert redirected.code == 0 and redirected.stdout == ""  # the frames still find their way


def test_a_long_cell_in_a_read_only_container(manager, engine_image):
    """A cell too long for a here-string's pipe comes through a process substitution: no temporary file."""
    manager.start("ro", parse_run_args(f"--read-only {engine_image}"))
    long = "x=1\n" * 3000 + "echo long; exit 3"
    ran = Ran(manager, "ro", long)
    assert (ran.stdout, ran.stderr, ran.code) == ("long\n", "", 3)
    assert Ran(manager, "ro", "echo short").stdout == "short\n"


def test_interrupt_stops_the_command_and_keeps_the_session(manager, engine_image):
    manager.start("s", parse_run_args(engine_image))
    Ran(manager, "s", "cd /tmp; export KEPT=yes; sleep 300 & echo $! > /tmp/bg")
    timer = interrupt_after(1.0)
    interrupted = Ran(manager, "s", "while true; do sleep 1; done; echo never")
    timer.join()
    assert interrupted.code == 130 and interrupted.result.reason == "interrupted"
    assert "never" not in interrupted.stdout
    assert interrupted.seconds < 5
    after = Ran(
        manager, "s", "pwd; echo $KEPT; kill -0 $(cat /tmp/bg) && echo background alive; ps -o comm | grep -c '^sleep'"
    )
    assert after.stdout == "/tmp\nyes\nbackground alive\n1\n"  # only the background sleep is left


def test_a_command_ignoring_sigint_is_killed_after_stop_grace(manager, engine_image):
    manager.start("s", parse_run_args(engine_image))
    Ran(manager, "s", "export KEPT=yes")
    timer = interrupt_after(1.0)
    stubborn = Ran(manager, "s", "trap 'echo caught' INT; (trap 'echo child caught' INT; while :; do sleep 0.1; done)")
    timer.join()
    assert stubborn.code == 130
    assert Ran(manager, "s", "echo $KEPT").stdout == "yes\n"


def test_timeout_stops_the_command_and_keeps_the_session(manager, engine_image):
    manager.start("s", parse_run_args(engine_image))
    Ran(manager, "s", "X=1")
    timed = Ran(manager, "s", "sleep 60", timeout=1)
    assert timed.code == 124 and timed.result.reason == "timeout" and timed.seconds < 5
    assert Ran(manager, "s", "echo $X").stdout == "1\n"


@pytest.mark.parametrize("ending, status", [("builtin exit 3", 3), ("kill 1", 143)])
def test_a_cell_that_ends_the_shell_kills_the_session_until_restart(manager, engine_image, ending, status):
    manager.start("s", parse_run_args(engine_image))
    Ran(manager, "s", "X=1")
    with pytest.raises(SessionDead) as ended:
        Ran(manager, "s", ending)
    assert ended.value.exit_code == status
    assert "is dead" in str(ended.value) and "restart s" in str(ended.value)
    assert manager.rows()[0][2].startswith("dead")
    with pytest.raises(SessionDead, match="is dead"):  # and says so again on the next use
        Ran(manager, "s", "true")
    manager.restart("s")
    fresh = Ran(manager, "s", "echo ${X:-fresh}")
    assert fresh.stdout == "fresh\n"


def test_a_shell_killed_for_memory_ends_the_session(manager, engine_image, engine_differs, isolated_home):
    engine_differs(
        "rootless podman on cgroup v1 cannot limit memory: --memory is ignored ('Resource limits are not "
        "supported and ignored on cgroups V1 rootless systems'), so the shell is never killed for it",
        "podman-rootless",
    )
    manager.start("small", parse_run_args(f"--memory 64m --memory-swap 64m {engine_image}"))
    with pytest.raises(SessionDead, match="is dead: its container was killed") as ended:
        Ran(manager, "small", "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo never")
    assert ended.value.exit_code == 137
    # podman's conmon marks it with an empty file `oom` in the folder `podman run` started in
    assert list(isolated_home.iterdir()) == []


def test_a_container_removed_from_outside(engine, manager, engine_image):
    session = manager.start("s", parse_run_args(engine_image))
    engine.remove(session.shell.container)
    with pytest.raises(SessionDead, match="is dead: its container was killed"):
        Ran(manager, "s", "true")


def test_the_listing_shows_the_memory_each_container_uses(engine, manager, engine_image):
    doomed = manager.start("doomed", parse_run_args(engine_image))
    manager.start("kept", parse_run_args(engine_image))
    memory = COLUMNS.index("memory")
    # measured in the background: a listing shows the last figure, or NOT_MEASURED before the first
    assert all(row[memory] == NOT_MEASURED or row[memory].endswith("B") for row in manager.rows())
    wait_until(lambda: NOT_MEASURED not in [row[memory] for row in manager.rows()], timeout=30)
    rows = {row[0]: row for row in manager.rows()}
    for name in ("doomed", "kept"):  # as docker stats writes it (308KiB, 1.5MiB), or podman's (442.4kB)
        assert re.fullmatch(r"\d+(\.\d+)?(B|kB|KiB|MB|MiB|GB|GiB)", rows[name][memory]), rows[name]
    engine.remove(doomed.shell.container)
    state = COLUMNS.index("state")
    wait_until(lambda: manager.rows()[0][state].startswith("dead"), timeout=10)  # its CLI sees it go
    rows = {row[0]: row for row in manager.rows()}
    assert rows["doomed"][memory] == "-"
    assert rows["kept"][memory] != "-"


def test_names_taken_unknown_and_invalid(docker_manager, test_image):
    docker_manager.start("analysis", parse_run_args(test_image))
    with pytest.raises(BadSessionRequest, match="already running"):
        docker_manager.start("analysis", parse_run_args(test_image))
    with pytest.raises(BadSessionRequest, match="did you mean 'analysis'"):
        Ran(docker_manager, "analysys", "true")
    with pytest.raises(BadSessionRequest, match="invalid session name"):
        docker_manager.start("no/slash", parse_run_args(test_image))
    with pytest.raises(BadSessionRequest, match="--tty cannot be used"):
        docker_manager.start("t", parse_run_args(f"-t {test_image}"))


def test_an_image_without_bash(manager, engine_sh_image):
    with pytest.raises(SessionDead, match="has no bash"):
        manager.start("sh", parse_run_args(engine_sh_image))
    assert manager.sessions == {}


def test_idle_sessions_are_stopped_in_the_background(no_leftover_containers, test_image):
    manager = new_manager(session_idle_timeout=1.0)
    try:
        session = manager.start("idle", parse_run_args(test_image))
        busy = Ran(manager, "idle", "sleep 1.5; echo used")  # a running cell is never idle
        assert busy.stdout == "used\n"
        wait_until(lambda: manager.sessions["idle"].ended, timeout=5)
        assert "idle" in manager.rows()[0][2]
        assert docker("ps", "-q", "--filter", f"name={session.shell.container}").stdout.strip() == ""
        with pytest.raises(SessionDead, match="session_idle_timeout"):
            Ran(manager, "idle", "true")
    finally:
        manager.close()


def test_listing_shows_memory_and_labels(engine, manager, engine_image):
    session = manager.start("listed", parse_run_args(engine_image))
    wait_until(lambda: manager.rows()[0][COLUMNS.index("memory")] != NOT_MEASURED, timeout=30)
    ((name, image, state, age, idle, memory, container),) = manager.rows()
    assert (name, image, state) == ("listed", engine_image, "running")
    assert memory.endswith("B") and container == session.shell.container
    labels = engine.run("inspect", "--format", "{{json .Config.Labels}}", container).stdout
    assert '"io.dockyter.session":"listed"' in labels and "io.dockyter.owner" in labels


def test_frames_split_across_reads_are_found():
    scanner = FrameScanner()
    token = "ab" * 16
    scanner.expect(token)
    stream = b"out" + f"\x1f{token}:42\n".encode() + b"late"
    pieces = [stream[i : i + 3] for i in range(0, len(stream), 3)]
    output, frames = b"", []
    for piece in pieces:
        text, found = scanner.feed(piece)
        output += text
        frames += found
    assert output + scanner.flush() == b"outlate"
    assert frames == [(token, 42)]


def test_cells_are_quoted_into_one_line():
    assert ansi_c_quote("a'b\\c\nd é") == "$'a\\'b\\\\c\\x0ad \\xc3\\xa9'"
    with pytest.raises(ValueError, match="NUL"):
        ansi_c_quote("a\0b")
