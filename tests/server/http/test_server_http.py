"""dockyter-server over real HTTP with real containers: the contract, streaming, auth, refusals.

The confinement and hostile-request tests run under runc and gVisor's runsc on this machine's
engine, and on the three-node Swarm (``@under_each_place``); the other refusals run on both
executors (``@under_each_executor``). The contract and streaming tests run on the engine: the
Swarm's output path has its own tests (test_swarm.py).
"""

from __future__ import annotations

import concurrent.futures
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest
from helpers import wait_until
from servers import containers_with_label, under_each_executor, under_each_place

pytestmark = pytest.mark.docker


@pytest.fixture
def server(dockyter_server):
    return dockyter_server()


# -- the original contract ------------------------------------------------------------------------


def test_original_contract_request_and_reply(server, test_image):
    response = httpx.post(
        server.url + "/execute",
        json={"cmd": "echo hello; echo oops >&2", "args": test_image},
        headers=server.headers(),
        timeout=60,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    reply = response.json()
    assert reply["stdout"] == "hello\n"
    assert reply["stderr"] == "oops\n"
    # The extensions ride along; a client of the original contract ignores them.
    assert reply["exit_code"] == 0
    assert reply["reason"] is None and reply["message"] is None
    assert len(reply["execution_id"]) == 16


def test_health_needs_no_token_and_says_whether_one_is_accepted(server):
    answer = httpx.get(server.url + "/health").json()
    assert answer == {
        "status": "ok",
        "version": answer["version"],
        "features": ["stream", "cancel", "exit_code", "timeout", "sessions"],
    }
    assert httpx.get(server.url + "/health", headers=server.headers()).json()["token"] == "accepted"
    assert httpx.get(server.url + "/health", headers=server.headers("x" * 30)).json()["token"] == "rejected"


def test_a_failing_command_is_still_a_200_with_its_exit_code(server, test_image):
    reply = server.execute({"cmd": "echo partial; exit 7", "args": test_image}).json()
    assert (reply["stdout"], reply["exit_code"]) == ("partial\n", 7)


def test_options_reach_the_container_and_the_shell_is_a_choice(server, test_image, sh_image):
    reply = server.execute(
        {
            "cmd": 'echo "$GREETING from $(hostname) in $(pwd) as $(id -u)"',
            "args": f"-e GREETING=hi --hostname lab -w /tmp -u 65534 {test_image}",
        }
    ).json()
    assert reply["stdout"] == "hi from lab in /tmp as 65534\n", reply
    reply = server.execute({"cmd": "echo $0", "args": sh_image, "shell": ["sh", "-c"]}).json()
    assert reply["stdout"] == "sh\n"


@under_each_place
def test_the_server_defaults_confine_the_container(server, run_image, oci_runtime, executor_kind):
    script = (
        "cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs)'; ls /sys/class/net; "
        "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; "
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
        "echo routes; tail -n +2 /proc/net/route; dmesg 2>/dev/null | head -n 1"
    )
    reply = server.execute({"cmd": script, "args": run_image}).json()
    lines = reply["stdout"].split()
    assert lines[lines.index("CapEff:") + 1] == "0000000000000000"
    # No way out: no default route (destination 00000000) in the routing table.
    routes = reply["stdout"].split("routes\n", 1)[1].splitlines()
    assert not [route for route in routes if route.split()[1:2] == ["00000000"]], routes
    if executor_kind == "swarm":
        # Its own --internal overlay network, which nothing else joins (test_swarm_network.py).
        assert "lo" in lines
    else:
        assert "eth0" not in lines and "lo" in lines  # --network none
    if oci_runtime == "runsc":
        # gVisor's own kernel answers; its /proc shows no NoNewPrivs and it mounts no cgroupfs,
        # so those two limits are checked from the engine's side (test_server_runtime.py).
        assert "gVisor" in reply["stdout"]
    else:
        assert lines[lines.index("NoNewPrivs:") + 1] == "1"  # on a Swarm, from the nodes' daemon.json
        assert "256" in lines  # --pids-limit
        assert str(512 * 1024 * 1024) in lines  # --memory


@under_each_executor
def test_a_request_cannot_undo_the_confinement_it_is_allowed_to_shape(server, run_image):
    """A request may choose its user, a read-only root and a tmpfs; it still gets no capability."""
    probe = "id -u; touch /probe 2>/dev/null && echo writable || echo read-only; touch /t/x && echo tmpfs; grep CapEff /proc/self/status"
    reply = server.execute({"cmd": probe, "args": f"-u 65534 --read-only --tmpfs /t {run_image}"}).json()
    assert reply["stdout"] == "65534\nread-only\ntmpfs\nCapEff:\t0000000000000000\n", reply


def test_merge_stderr_keeps_the_order(server, test_image):
    reply = server.execute({"cmd": "echo 1; echo 2 >&2; echo 3", "args": test_image, "merge_stderr": True}).json()
    assert (reply["stdout"], reply["stderr"]) == ("1\n2\n3\n", "")


def test_utf8_split_across_reads_arrives_whole(server, test_image):
    # 'é' is two bytes; printf writes them in two separate writes with a pause between.
    reply = server.execute({"cmd": r"printf '\303'; sleep 0.3; printf '\251\n'", "args": test_image}).json()
    assert reply["stdout"] == "é\n"


def test_unknown_fields_are_ignored(server, test_image):
    reply = server.execute({"cmd": "echo ok", "args": test_image, "from_the_future": {"x": 1}}).json()
    assert reply["stdout"] == "ok\n"


# -- streaming ---------------------------------------------------------------------------------------


def test_stream_events_come_in_order(server, test_image):
    with server.stream(
        {"cmd": "echo a; sleep 0.3; echo b >&2; sleep 0.3; echo c; exit 3", "args": test_image}
    ) as events:
        seen = list(events)
    assert seen[0]["event"] == "start" and len(seen[0]["id"]) == 16
    assert [(e["event"], e.get("data")) for e in seen[1:-1]] == [
        ("stdout", "a\n"),
        ("stderr", "b\n"),
        ("stdout", "c\n"),
    ]
    assert seen[-1] == {"event": "exit", "code": 3, "reason": None, "message": None}


def test_the_stream_is_live(server, test_image):
    """The first line arrives while the command is still running, not when it ends."""
    with server.stream({"cmd": "echo first; sleep 3; echo second", "args": test_image}) as events:
        arrivals = [(time.monotonic(), event) for event in events]
    times = {event.get("data"): at for at, event in arrivals}
    assert times["second\n"] - times["first\n"] > 2.0
    assert arrivals[0][1]["event"] == "start"


def test_a_slow_reader_loses_nothing(server, test_image):
    """Backpressure, not loss: the container waits while the client is not reading."""
    expected = "".join(f"{n}\n" for n in range(1, 200001))
    with server.stream({"cmd": "seq 1 200000; echo end >&2", "args": test_image}) as events:
        assert next(events)["event"] == "start"
        time.sleep(2)  # the queue fills up meanwhile
        seen = list(events)
    assert "".join(e["data"] for e in seen if e["event"] == "stdout") == expected
    assert [e["data"] for e in seen if e["event"] == "stderr"] == ["end\n"]
    assert seen[-1]["code"] == 0


def test_a_large_json_reply_is_whole(server, test_image):
    reply = server.execute({"cmd": "seq 1 500000", "args": test_image}).json()
    assert reply["stdout"] == "".join(f"{n}\n" for n in range(1, 500001))


def test_heartbeats_in_silence(dockyter_server, test_image):
    server = dockyter_server(heartbeat_interval=0.5)
    with server.stream({"cmd": "sleep 2.2; echo done", "args": test_image}) as events:
        kinds = [event["event"] for event in events]
    assert kinds[0] == "start" and kinds[-2:] == ["stdout", "exit"]
    assert kinds.count("heartbeat") >= 3


# -- authentication -------------------------------------------------------------------------------------


@under_each_executor
def test_requests_without_a_token_are_401_with_a_challenge(server, run_image):
    body = {"cmd": "echo hi", "args": run_image}
    missing = httpx.post(server.url + "/execute", json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json() == {"detail": "a token is required: send 'Authorization: Bearer TOKEN'"}
    wrong = httpx.post(server.url + "/execute", json=body, headers=server.headers("not-the-token-at-all"))
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert wrong.json() == {"detail": "the token is not accepted by this server"}
    basic = httpx.post(server.url + "/execute", json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    assert basic.json() == {"detail": "the Authorization header must be 'Bearer TOKEN'"}
    prefix = httpx.post(server.url + "/execute", json=body, headers=server.headers(server.token[:-1]))
    assert prefix.status_code == 401
    cancel = httpx.post(server.url + "/executions/abc/cancel")
    assert cancel.status_code == 401
    assert not server.containers()


def test_named_tokens_are_each_accepted_and_logged_by_name(dockyter_server, test_image, caplog):
    alice, bob = "alice-" + uuid.uuid4().hex, "bob-" + uuid.uuid4().hex
    server = dockyter_server(tokens=[f"alice:{alice}", f"bob:{bob}"])
    caplog.set_level("INFO", logger="dockyter.server")
    for token in (alice, bob):
        assert server.execute({"cmd": "echo hi", "args": test_image}, token=token).json()["stdout"] == "hi\n"
    records = [r.execution for r in caplog.records if hasattr(r, "execution")]
    assert [r["who"] for r in records] == ["alice", "bob"]
    for record in records:
        assert set(record) >= {"id", "image", "exit_code", "duration", "bytes_out", "who"}
        assert (record["image"], record["exit_code"], record["bytes_out"]) == (test_image, 0, 3)
    assert not any(alice in r.getMessage() or bob in r.getMessage() for r in caplog.records)


def test_token_from_a_file(dockyter_server, test_image, tmp_path):
    secret = uuid.uuid4().hex
    (tmp_path / "tokens").write_text(f"# comment\nlab:{secret}\n")
    server = dockyter_server(tokens=[], token_file=str(tmp_path / "tokens"))
    assert server.execute({"cmd": "echo hi", "args": test_image}, token=secret).status_code == 200


def test_no_auth_mode_on_loopback(dockyter_server, test_image):
    server = dockyter_server(auth=False)
    response = httpx.post(server.url + "/execute", json={"cmd": "echo open", "args": test_image}, timeout=60)
    assert response.json()["stdout"] == "open\n"


# -- refusals: clear, and nothing runs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "status", "detail"),
    [
        ("--privileged {image}", 403, "--privileged is not allowed: it gives the container full access to the host"),
        ("--privileged=true {image}", 403, "--privileged=true is not allowed"),
        ("--net=host {image}", 403, "--net=host is not allowed: it shares the network namespace"),
        ("--pid host {image}", 403, "--pid host is not allowed"),
        ("-v /:/host {image}", 403, "-v /:/host is not allowed: it would give the container the host socket"),
        ("-v /var/run/docker.sock:/s {image}", 403, "-v /var/run/docker.sock:/s is not allowed"),
        ("--mount type=bind,source=/,target=/h {image}", 403, "--mount type=bind,source=/,target=/h is not allowed"),
        ("--volumes-from x {image}", 403, "--volumes-from x is not allowed"),
        ("--cap-add=SYS_ADMIN {image}", 403, "--cap-add=SYS_ADMIN is not allowed"),
        ("--security-opt seccomp=unconfined {image}", 403, "--security-opt seccomp=unconfined is not allowed"),
        ("--device /dev/sda {image}", 403, "--device /dev/sda is not allowed"),
        ("--label io.dockyter.server=someone:else {image}", 403, "--label io.dockyter.server=someone:else is not"),
        ("--name mine {image}", 403, "--name mine is not allowed"),
        ("-itd {image}", 403, "-t is not allowed by this server's policy"),
        ("--runtime runc {image}", 403, "--runtime runc is not allowed: the server chooses the container's runtime"),
        ("--runtime=runsc {image}", 403, "--runtime=runsc is not allowed"),
        ("{image} extra", 400, "args: unexpected 'extra' after the image"),
        ("'{image}", 400, "args: cannot split"),
        ("", 400, "args: no image given"),
    ],
)
@under_each_place
def test_refusals_are_one_line_and_start_nothing(server, run_image, args, status, detail):
    response = server.execute({"cmd": "echo never", "args": args.format(image=run_image)})
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail), response.json()
    assert "\n" not in response.json()["detail"]
    assert not server.containers()


@under_each_executor
def test_a_refused_shell(server, run_image):
    response = server.execute({"cmd": "print(1)", "args": run_image, "shell": ["python3", "-c"]})
    assert response.status_code == 403
    assert response.json()["detail"].startswith("the shell 'python3 -c' is not allowed")


@pytest.mark.parametrize(
    "args",
    [
        "img; touch {marker}",
        "$(touch {marker})",
        "`touch {marker}`",
        "{image} && touch {marker}",
        "{image}; touch {marker}",
        "{image} $(touch {marker})",
        "-e X=$(touch {marker}) {image}",
        "-e 'X=$(touch {marker})' -e Y=`touch {marker}` {image}",
        "-v $(touch {marker}):/x {image}",
        "--hostname=`touch {marker}` {image}",
        "{image}\ntouch {marker}",
    ],
)
@under_each_place
def test_argument_injection_never_runs_anything_on_the_host(server, run_image, tmp_path, args):
    marker = tmp_path / "marker"
    response = server.execute(
        {"cmd": "echo $X; touch " + str(marker), "args": args.format(marker=marker, image=run_image)}
    )
    assert response.status_code in (200, 400, 403), response.text
    if response.status_code == 200:  # the value reached the container as text, and the cmd ran there
        assert response.json()["exit_code"] in (0, 1)
    time.sleep(0.2)
    assert not marker.exists()
    assert not Path(str(marker)).exists()


@under_each_executor
def test_text_no_process_can_receive_is_a_400(server, run_image):
    response = server.execute({"cmd": "echo a\u0000b", "args": run_image})
    assert response.status_code == 400
    assert response.json()["detail"] == "cmd contains a NUL character, which no process argument can hold"
    response = httpx.post(
        server.url + "/execute",
        content=b'{"cmd": "\\ud800", "args": "' + run_image.encode() + b'"}',
        headers=server.headers(**{"Content-Type": "application/json"}),
    )
    assert response.status_code == 400
    assert "lone surrogate" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{", "the body is not valid JSON"),
        (b"[]", "the body must be a JSON object"),
        (b'{"args": "x"}', "cmd: Field required"),
        (b'{"cmd": 1, "args": "x"}', "cmd: Input should be a valid string"),
        (b'{"cmd": "x", "args": "x", "timeout": 0}', "timeout: Input should be greater than 0"),
        (b'{"cmd": "x", "args": "x", "shell": []}', "shell: List should have at least 1 item"),
    ],
)
@under_each_executor
def test_bodies_that_are_not_the_contract_are_422_with_one_line(server, body, detail):
    response = httpx.post(
        server.url + "/execute", content=body, headers=server.headers(**{"Content-Type": "application/json"})
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)


@under_each_executor
def test_cancel_of_an_unknown_execution_is_404(server):
    # A Swarm server also looks for the id among other replicas' services (by label).
    for execution_id in ("nope", "0123456789abcdef", "x" * 300):
        response = httpx.post(f"{server.url}/executions/{execution_id}/cancel", headers=server.headers())
        assert response.status_code == 404
        assert response.json() == {"detail": f"no running execution {execution_id!r}"}


@under_each_executor
def test_an_engine_that_cannot_be_reached_is_503(dockyter_server, run_image, tmp_path, executor_kind):
    server = dockyter_server(docker_command=["docker", "--host", f"unix://{tmp_path}/no.sock"])
    response = server.execute({"cmd": "echo hi", "args": run_image})
    assert response.status_code == 503
    unreachable = "the container engine" if executor_kind == "engine" else "the Swarm manager"
    assert response.json()["detail"].startswith(f"{unreachable} is not reachable: "), response.json()
    missing = dockyter_server(docker_command=[str(tmp_path / "no-such-cli")])
    response = missing.execute({"cmd": "echo hi", "args": run_image})
    assert response.status_code == 503
    assert response.json()["detail"].startswith("cannot start the container CLI")


def test_openapi_document_describes_the_contract(server):
    document = httpx.get(server.url + "/openapi.json").json()
    assert set(document["paths"]) == {
        "/health",
        "/execute",
        "/executions",
        "/executions/{execution_id}/cancel",
        # sessions, additive (tests/server/sessions/test_server_sessions.py)
        "/sessions",
        "/sessions/{session_id}",
        "/sessions/{session_id}/execute",
    }
    execute = document["paths"]["/execute"]["post"]
    assert set(execute["responses"]) == {"200", "400", "401", "403", "413", "422", "429", "503"}
    assert "application/x-ndjson" in execute["responses"]["200"]["content"]
    schema = document["components"]["schemas"]["ExecuteRequest"]
    assert schema["required"] == ["cmd", "args"]


def test_many_executions_run_at_once(dockyter_server, test_image):
    server = dockyter_server(max_concurrent=4, max_concurrent_per_token=4)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = list(
            pool.map(lambda n: server.execute({"cmd": f"sleep 2; echo {n}", "args": test_image}).json(), range(4))
        )
    assert [r["stdout"] for r in replies] == ["0\n", "1\n", "2\n", "3\n"]
    assert time.monotonic() - started < 8.5  # not 4 x (2 s + start-up) one after the other


def test_a_raw_http_client_of_the_original_contract(server, test_image):
    """What a 40-line client written for the original server sends: plain HTTP/1.1, JSON in, JSON out."""
    host, port = server.url.removeprefix("http://").split(":")
    body = f'{{"cmd": "echo raw", "args": "{test_image}"}}'.encode()
    request = (
        f"POST /execute HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b'"stdout":"raw\\n"' in payload
    assert wait_until(lambda: not containers_with_label(f"io.dockyter.server={server.executor.label}"))
