"""Sessions on dockyter-server over real HTTP with real containers: state, streams, cancel, owners, lifecycle.

What the engine does (the shell, its stop ladder through ``exec``, the confinement, removal,
the clean-up of what a crashed server left) runs on Docker and on rootful podman
(``@under_each_engine``); owners and slots are the server's own, tested on Docker.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time

import httpx
import pytest
from helpers import docker, wait_until
from servers import containers_with_label, start_server_process, under_each_engine

from dockyter.server.sessions.sessionmemory import size_in_bytes

pytestmark = pytest.mark.docker

LABEL = "io.dockyter.server-session"


@pytest.fixture
def server(dockyter_server):
    return dockyter_server()


def create(server, args: str, token: str | None = None, **fields) -> httpx.Response:
    return httpx.post(
        server.url + "/sessions", json={"args": args, **fields}, headers=server.headers(token), timeout=60
    )


def execute(server, session_id: str, cmd: str, token: str | None = None, **fields) -> httpx.Response:
    return httpx.post(
        f"{server.url}/sessions/{session_id}/execute",
        json={"cmd": cmd, **fields},
        headers=server.headers(token),
        timeout=60,
    )


def session_containers(server) -> list[str]:
    return containers_with_label(f"{LABEL}={server.executor.label}", server.cli)


def described(server, session_id: str) -> dict:
    answer = httpx.get(f"{server.url}/sessions/{session_id}", headers=server.headers(), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@under_each_engine
def test_state_carries_between_commands_and_replies_match_execute(server, test_image):
    made = create(server, test_image, name="analysis")
    assert made.status_code == 201, made.text
    session = made.json()
    assert (session["name"], session["image"], session["state"]) == ("analysis", test_image, "running")
    first = execute(server, session["id"], "cd /tmp; export X=1; f() { echo f$1; }; echo set; echo warn >&2")
    assert first.status_code == 200
    reply = first.json()
    assert (reply["stdout"], reply["stderr"], reply["exit_code"], reply["reason"]) == ("set\n", "warn\n", 0, None)
    second = execute(server, session["id"], "pwd; echo $X; f 2; exit_status() { return 4; }; exit_status").json()
    assert (second["stdout"], second["exit_code"]) == ("/tmp\n1\nf2\n", 4)
    listing = httpx.get(server.url + "/sessions", headers=server.headers()).json()
    assert [s["id"] for s in listing["sessions"]] == [session["id"]]


@under_each_engine
def test_streamed_like_execute(server, test_image):
    session = create(server, test_image).json()
    headers = server.headers(Accept="application/x-ndjson")
    body = {"cmd": "echo one; sleep 0.3; echo two >&2"}
    with httpx.stream(
        "POST", f"{server.url}/sessions/{session['id']}/execute", json=body, headers=headers, timeout=30
    ) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert events[0]["event"] == "start" and len(events[0]["id"]) == 16
    assert [(e["event"], e.get("data")) for e in events[1:-2] if e["event"] != "heartbeat"] == [
        ("stdout", "one\n"),
        ("stderr", "two\n"),
    ]
    assert events[-2]["event"] == "receipt" and events[-2]["image"] == test_image
    assert events[-1] == {"event": "exit", "code": 0, "reason": None, "message": None}


@under_each_engine
def test_cancel_stops_the_command_not_the_session(server, test_image):
    session = create(server, test_image).json()
    execute(server, session["id"], "KEPT=yes")
    headers = server.headers(Accept="application/x-ndjson")
    with httpx.stream(
        "POST", f"{server.url}/sessions/{session['id']}/execute", json={"cmd": "sleep 60"}, headers=headers, timeout=30
    ) as response:
        lines = (json.loads(line) for line in response.iter_lines() if line)
        run_id = next(lines)["id"]
        cancelled = httpx.post(f"{server.url}/executions/{run_id}/cancel", headers=server.headers(), timeout=30)
        assert cancelled.json() == {"id": run_id, "cancelled": True}
        final = [event for event in lines if event["event"] == "exit"][0]
    assert final["code"] == 130 and final["reason"] == "cancelled"
    assert execute(server, session["id"], "echo $KEPT").json()["stdout"] == "yes\n"


def test_a_client_that_goes_away_stops_the_command_only(server, test_image):
    session = create(server, test_image).json()
    execute(server, session["id"], "KEPT=yes")
    headers = server.headers(Accept="application/x-ndjson")
    with httpx.stream(
        "POST",
        f"{server.url}/sessions/{session['id']}/execute",
        json={"cmd": "sleep 60; echo never"},
        headers=headers,
        timeout=30,
    ) as response:
        next(response.iter_lines())  # the start event: the command runs; then the client leaves
    after = wait_until(
        lambda: (
            (r := execute(server, session["id"], "echo $KEPT; ps -o comm | grep -c '^sleep'")).status_code == 200 and r
        ),
        timeout=15,
    )
    assert after.json()["stdout"] == "yes\n0\n"


@under_each_engine
def test_a_timeout_stops_the_command_only(server, test_image):
    session = create(server, test_image).json()
    timed = execute(server, session["id"], "X=1; sleep 30", timeout=1).json()
    assert (timed["exit_code"], timed["reason"]) == (124, "timeout")
    assert execute(server, session["id"], "echo $X").json()["stdout"] == "1\n"


def test_sessions_belong_to_their_token(dockyter_server, test_image):
    alice, bob = "alice-" + secrets.token_hex(12), "bob-" + secrets.token_hex(12)
    server = dockyter_server(tokens=[f"alice:{alice}", f"bob:{bob}"])
    session = create(server, test_image, token=alice).json()
    assert execute(server, session["id"], "true", token=bob).status_code == 404
    assert httpx.get(server.url + "/sessions", headers=server.headers(bob)).json() == {"sessions": []}
    assert httpx.delete(f"{server.url}/sessions/{session['id']}", headers=server.headers(bob)).status_code == 404
    assert execute(server, session["id"], "echo mine", token=alice).json()["stdout"] == "mine\n"
    assert httpx.post(server.url + "/sessions", json={"args": test_image}).status_code == 401


@under_each_engine
def test_the_policy_and_the_limits_apply(dockyter_server, test_image, sh_image, executor_kind):
    server = dockyter_server(max_sessions_per_token=1, retry_after=7)
    refused = create(server, f"--privileged {test_image}")
    assert refused.status_code == 403 and "--privileged" in refused.json()["detail"]
    no_bash = create(server, sh_image)
    assert no_bash.status_code == 400 and "no bash" in no_bash.json()["detail"], no_bash.text
    session = create(server, test_image).json()
    too_many = create(server, test_image)  # answered as /execute answers its 429
    assert (too_many.status_code, too_many.headers["retry-after"]) == (429, "7")
    assert too_many.json() == {"detail": "this token already has 1 sessions (max_sessions_per_token): delete one first"}
    # podman writes the capabilities a container has (none), docker the ones it was asked to drop
    capabilities = "{{.EffectiveCaps}}" if executor_kind == "podman" else "{{.HostConfig.CapDrop}}"
    limits = subprocess.run(
        [*server.cli, "inspect", "--format", f"{{{{.HostConfig.Memory}}}} {capabilities} {{{{.HostConfig.NetworkMode}}}}",
         session["container"]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert limits.stdout.split() == [str(512 * 1024 * 1024), "[]" if executor_kind == "podman" else "[ALL]", "none"]


def test_commands_in_sessions_take_no_execution_slot(dockyter_server, test_image):
    # A session runs one command at a time, and max_sessions_per_token bounds a token's sessions.
    server = dockyter_server(max_concurrent=1, max_concurrent_per_token=1)
    session = create(server, test_image).json()
    body = {"cmd": "echo busy; sleep 60", "args": test_image}
    with server.stream(body) as events:
        assert next(event for event in events if event["event"] == "stdout")["data"] == "busy\n"
        assert server.execute({"cmd": "true", "args": test_image}).status_code == 429
        ran = execute(server, session["id"], "echo in the session")
        assert (ran.status_code, ran.json()["stdout"]) == (200, "in the session\n")


@pytest.mark.parametrize(
    "docker_command",
    # the engine's API on its socket; the CLI (docker stats) when docker_command names no plain socket
    [["docker"], ["docker", "--log-level", "warn"]],
    ids=["engine-api", "cli"],
)
def test_a_session_reports_the_memory_its_container_uses(dockyter_server, test_image, docker_command):
    server = dockyter_server(docker_command=docker_command)
    assert (server.app.state.sessions.memory.socket is None) == (len(docker_command) > 1)
    session = create(server, test_image).json()
    # Read in the background once the session started: there at the first listings, never waited for.
    first = wait_until(lambda: described(server, session["id"]).get("memory_bytes"), timeout=10)
    assert isinstance(first, int) and 0 < first < 64 << 20, first  # a bare bash
    held = execute(server, session["id"], "big=$(head -c 40000000 /dev/zero | tr '\\0' x); echo ${#big}")
    assert held.json()["stdout"] == "40000000\n"  # the shell keeps 40 MB in a variable from now on

    def agreeing() -> tuple[int, str] | None:
        """The server's figure once it has grown by the variable and agrees with docker stats, read right after."""
        used = described(server, session["id"]).get("memory_bytes")
        stats = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", session["container"]).stdout
        by_docker = size_in_bytes(stats.partition("/")[0])
        if used is None or by_docker is None or used < first + 35_000_000:
            return None
        return (used, stats) if abs(used - by_docker) < by_docker / 5 else None

    # The server's figure may be a few seconds old (read again after a listing finds it older than
    # that), from before the pipeline's memory went: both are read until they agree.
    found = wait_until(agreeing, timeout=60, interval=0.5)
    assert found, (described(server, session["id"]), docker("stats", "--no-stream", session["container"]).stdout)
    listing = httpx.get(server.url + "/sessions", headers=server.headers(), timeout=10).json()["sessions"]
    assert [entry["memory_bytes"] > first + 35_000_000 for entry in listing] == [True]
    assert (
        httpx.delete(f"{server.url}/sessions/{session['id']}", headers=server.headers(), timeout=60).status_code == 200
    )


def test_exit_and_set_e_end_the_command_and_keep_the_session(server, test_image):
    """As a kernel's session (wire/sessionprotocol.py): exit, logout, return and a tripped set -e end
    the command with their status; the session and its state stay; no `[1] PID` for a job."""
    session = create(server, test_image).json()
    execute(server, session["id"], "export KEPT=yes")
    for cmd, stdout, code in [
        ("echo one; exit 3; echo never", "one\n", 3),
        ("set -e; echo two; false; echo never", "two\n", 1),
        ("set +e; sleep 1 & echo background", "background\n", 0),
        ("echo $KEPT; return 5", "yes\n", 5),
        ("trap 'echo caught' INT; exit 6; echo never", "", 6),  # the command's own INT trap catches nothing
        ("trap -p INT", "trap -- 'echo caught' SIGINT\n", 0),  # and stays
    ]:
        reply = execute(server, session["id"], cmd).json()
        assert (reply["stdout"], reply["stderr"], reply["exit_code"], reply["reason"]) == (stdout, "", code, None), cmd
    httpx.delete(f"{server.url}/sessions/{session['id']}", headers=server.headers(), timeout=60)


@under_each_engine
def test_a_command_that_ends_the_shell_ends_the_session(server, test_image):
    session = create(server, test_image).json()
    ended = execute(server, session["id"], "builtin exit 3").json()
    assert (ended["exit_code"], ended["reason"]) == (3, "session_ended")
    assert "exited with status 3" in ended["message"]
    assert execute(server, session["id"], "true").status_code == 404
    wait_until(lambda: not session_containers(server), timeout=10)


@under_each_engine
def test_delete_idle_timeout_and_shutdown_remove_containers(dockyter_server, test_image):
    server = dockyter_server(session_idle_timeout=3)
    first = create(server, test_image).json()
    assert httpx.delete(f"{server.url}/sessions/{first['id']}", headers=server.headers()).json()["deleted"] is True
    assert first["container"] not in session_containers(server)
    second = create(server, test_image).json()
    wait_until(lambda: not session_containers(server), timeout=10)  # the idle one
    assert execute(server, second["id"], "true").status_code == 404
    busy = dockyter_server()
    create(busy, test_image)
    assert len(session_containers(busy)) == 1
    busy.stop()
    assert session_containers(busy) == []


def test_the_maximum_lifetime_ends_a_busy_session_too(dockyter_server, test_image):
    server = dockyter_server(session_max_lifetime=3)
    session = create(server, test_image).json()
    started = time.monotonic()
    busy = execute(server, session["id"], "sleep 60").json()  # still running when its time is up
    assert time.monotonic() - started < 20
    assert busy["exit_code"] in (130, 137) and busy["reason"] in ("cancelled", "session_ended")
    wait_until(lambda: not session_containers(server), timeout=10)
    assert execute(server, session["id"], "true").status_code == 404


@under_each_engine
def test_a_restarted_server_removes_what_a_crashed_one_left(dockyter_server, test_image, executor_kind):
    name = "test-" + secrets.token_hex(4)
    cli = ["podman"] if executor_kind == "podman" else ["docker"]

    def engine(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, timeout=60)

    left = engine(
        "run",
        "-d",
        "--rm",
        "--label",
        "io.dockyter.managed=1",
        "--label",
        f"{LABEL}={name}:0123456789ab",
        test_image,
        "sleep",
        "300",
    ).stdout.strip()
    try:
        dockyter_server(server_name=name)
        assert wait_until(lambda: engine("ps", "-q", "--filter", f"id={left}").stdout.strip() == "", timeout=10)
    finally:
        engine("rm", "-f", *(("--time", "0") if executor_kind == "podman" else ()), left)


def test_health_announces_sessions(server):
    assert "sessions" in httpx.get(server.url + "/health").json()["features"]


# -- background output between commands ------------------------------------------------------------

IDLE_CPU_BOUND = 0.03  # of one core: the server process while an idle session runs `yes &` (it was 0.25)
DROPPED = re.compile(
    r"\[dockyter-server: (\d+) bytes of background output were dropped while the session was idle; "
    r"the last 65536 follow\]\n"
)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (/proc/PID/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_flood_of_background_output_costs_an_idle_session_little(test_image, tmp_path):
    """`yes &`, then five idle seconds: the server process stays under IDLE_CPU_BOUND of a core,
    keeps the last 64 KiB, says how much it dropped, and runs the next command."""
    process, url = start_server_process(tmp_path / "server.log", "test-" + secrets.token_hex(4))
    try:
        made = httpx.post(url + "/sessions", json={"args": test_image}, timeout=60)
        assert made.status_code == 201, made.text
        session = made.json()
        run = f"{url}/sessions/{session['id']}/execute"
        assert httpx.post(run, json={"cmd": "yes &"}, timeout=60).json()["exit_code"] == 0
        time.sleep(0.5)  # the command's own end is behind us: the session is idle
        used, started = cpu_seconds(process.pid), time.monotonic()
        time.sleep(5)
        share = (cpu_seconds(process.pid) - used) / (time.monotonic() - started)
        assert share < IDLE_CPU_BOUND, f"the server used {share:.1%} of a core for an idle session's `yes &`"

        after = httpx.post(run, json={"cmd": "kill %1; wait 2>/dev/null; echo next"}, timeout=60).json()
        assert (after["exit_code"], after["reason"]) == (0, None)
        assert after["stdout"].endswith("next\n")
        # First the tail that was kept (exactly 64 KiB of it), announced on stderr with what was dropped.
        dropped = DROPPED.match(after["stderr"])
        assert dropped, after["stderr"][:300]
        assert int(dropped.group(1)) > 0
        assert set(after["stdout"][:65536]) == {"y", "\n"}
        assert httpx.delete(f"{url}/sessions/{session['id']}", timeout=60).json()["deleted"] is True
    finally:
        process.terminate()
        process.wait(60)


def test_a_moderate_background_writer_is_never_held_up_while_idle(server, test_image):
    """About 200 KB a second for five seconds, while no command runs: read at the idle pace, it never waits
    for the pipe (all 1 MB is written while idle), and the tail shows its last line."""
    session = create(server, test_image).json()
    job = (
        "(for i in $(seq 50); do head -c 20000 /dev/zero | tr '\\0' x; echo; sleep 0.1; done; "
        "echo finished; touch /tmp/finished) &"
    )
    assert execute(server, session["id"], job).json()["exit_code"] == 0
    assert wait_until(lambda: docker("exec", session["container"], "test", "-e", "/tmp/finished").returncode == 0,
                      timeout=30)  # fmt: skip
    after = execute(server, session["id"], "wait; echo next").json()
    assert after["stdout"].endswith("finished\nnext\n")
    assert DROPPED.match(after["stderr"])  # 1 MB written, 64 KiB kept
