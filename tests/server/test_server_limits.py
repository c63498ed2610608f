"""dockyter-server limits: wall clock, output bytes, concurrency, request size; each stops what it must.

Each limit holds on both executors (``@under_each_executor``); the time and output limits
also run under runc and under gVisor's runsc (``@under_each_place``). Two exact-cap checks of
the engine executor's own pipe reader run on the engine only.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from helpers import wait_until
from servers import under_each_executor, under_each_place

pytestmark = pytest.mark.docker


@under_each_place
def test_a_client_may_ask_for_a_shorter_time_limit(dockyter_server, run_image, oci_runtime, executor_kind):
    server = dockyter_server()
    # The limit counts from the CLI's start: gVisor's sandbox takes a second or two to boot, and
    # a Swarm node a second or two to attach the task to its network.
    limit = 4 if oci_runtime == "runsc" or executor_kind == "swarm" else 1
    started = time.monotonic()
    reply = server.execute({"cmd": "echo before; sleep 60", "args": run_image, "timeout": limit}).json()
    assert time.monotonic() - started < limit + 9
    assert reply["stdout"] == "before\n"
    assert (reply["exit_code"], reply["reason"]) == (124, "timeout")
    # "container dockyter-ID removed" on the engine, "service dockyter-ID removed" on a Swarm
    assert reply["message"].startswith(f"timed out after {limit} s: ")
    assert "dockyter-" + reply["execution_id"] in reply["message"]
    assert wait_until(lambda: not server.runs(reply["execution_id"]))


@under_each_executor
def test_a_client_cannot_ask_for_more_than_the_server_allows(dockyter_server, run_image):
    server = dockyter_server(max_timeout=1.5)
    started = time.monotonic()
    with server.stream({"cmd": "sleep 60", "args": run_image, "timeout": 3600}) as events:
        seen = list(events)
    assert time.monotonic() - started < 10
    assert seen[-1]["reason"] == "timeout" and seen[-1]["code"] == 124
    assert "1.5 s" in seen[-1]["message"]
    assert wait_until(lambda: not server.runs(seen[0]["id"]))


@under_each_place
def test_output_over_the_cap_stops_the_container(dockyter_server, run_image):
    server = dockyter_server(max_output_bytes=1000)
    reply = server.execute({"cmd": "yes 0123456789; sleep 60", "args": run_image}).json()
    assert len(reply["stdout"].encode()) == 1000
    assert (reply["exit_code"], reply["reason"]) == (137, "output_limit")
    assert reply["message"].startswith("the output exceeded 1000 bytes")
    assert wait_until(lambda: not server.runs(reply["execution_id"]))


@under_each_executor
def test_the_cap_counts_stdout_and_stderr_together_in_a_stream(dockyter_server, run_image):
    # Both streams race for the cap; whichever crosses it, exactly 5000 bytes arrive in all.
    server = dockyter_server(max_output_bytes=5000)
    with server.stream({"cmd": "while :; do echo out; echo err >&2; done", "args": run_image}) as events:
        seen = list(events)
    total = sum(len(e["data"].encode()) for e in seen if e["event"] in ("stdout", "stderr"))
    assert total == 5000
    assert {e["event"] for e in seen} >= {"stdout", "stderr"}
    assert seen[-1]["reason"] == "output_limit"
    assert wait_until(lambda: not server.runs(seen[0]["id"]))


def test_a_byte_over_a_cap_that_one_chunk_filled_exactly_stops_the_container(dockyter_server, run_image):
    # Engine only: a regression of the engine executor's pipe reader. The Swarm's cap, read from
    # its log follower, is held by the two tests above and test_swarm_lifecycle.py.
    #
    # One write of exactly the cap, read on its own (the pause), then more: the first byte of
    # "more" is over the cap. This used to be dropped without stopping anything, so the
    # container ran to its time limit (600 s by default) and the stream only got heartbeats;
    # the request's 30 s limit keeps a regression from hanging the run (it ends with 124).
    server = dockyter_server(max_output_bytes=1000)
    cmd = "head -c 1000 /dev/zero | tr '\\0' x; sleep 1; while :; do echo more; sleep 0.1; done"
    body = {"cmd": cmd, "args": run_image, "timeout": 30}
    with server.stream(body) as events:
        seen = list(events)
    assert "".join(e["data"] for e in seen if e["event"] == "stdout") == "x" * 1000
    assert (seen[-1]["code"], seen[-1]["reason"]) == (137, "output_limit")
    reply = server.execute(body).json()
    assert (reply["stdout"], reply["exit_code"], reply["reason"]) == ("x" * 1000, 137, "output_limit")
    ids = [seen[0]["id"], reply["execution_id"]]
    assert wait_until(lambda: not any(server.runs(execution_id) for execution_id in ids))


def test_output_exactly_at_the_cap_is_not_cut(dockyter_server, run_image):
    server = dockyter_server(max_output_bytes=1000)
    reply = server.execute({"cmd": "head -c 1000 /dev/zero | tr '\\0' x", "args": run_image}).json()
    assert (len(reply["stdout"]), reply["exit_code"], reply["reason"]) == (1000, 0, None)


@under_each_executor
def test_too_many_executions_get_429_with_retry_after(dockyter_server, run_image):
    server = dockyter_server(max_concurrent=1, retry_after=7)
    with server.stream({"cmd": "echo busy; sleep 60", "args": run_image}) as events:
        first = next(events)
        assert next(event for event in events if event["event"] != "node")["data"] == "busy\n"
        answer = server.execute({"cmd": "echo hi", "args": run_image})
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "7"
        assert answer.json() == {"detail": "all 1 execution slots of this server are taken: retry later"}
        cancel = httpx.post(f"{server.url}/executions/{first['id']}/cancel", headers=server.headers(), timeout=60)
        assert cancel.status_code == 200
        assert list(events)[-1]["reason"] == "cancelled"
    # The slot is free again once the container is gone.
    assert server.execute({"cmd": "echo again", "args": run_image}).json()["stdout"] == "again\n"


def busy(server, stack: ExitStack, run_image: str, token: str | None = None) -> Iterator[dict]:
    """Start an execution of ``token`` that keeps running until ``stack`` closes its stream.

    Keep what it returns: once the event iterator is collected, its stream closes, and the
    server stops the execution of a client that went away.
    """
    events = stack.enter_context(server.stream({"cmd": "echo busy; sleep 60", "args": run_image}, token=token))
    assert next(event for event in events if event["event"] not in ("start", "node"))["data"] == "busy\n"
    return events


@under_each_executor
def test_a_token_at_its_share_gets_429_while_another_token_still_runs(dockyter_server, run_image):
    alice, bob = "alice-" + secrets.token_hex(12), "bob-" + secrets.token_hex(12)
    server = dockyter_server(
        tokens=[f"alice:{alice}", f"bob:{bob}"], max_concurrent=3, max_concurrent_per_token=2, retry_after=7
    )
    with ExitStack() as running:
        streams = [busy(server, running, run_image, alice), busy(server, running, run_image, alice)]
        refused = server.execute({"cmd": "echo never", "args": run_image}, token=alice)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "7"
        assert refused.json() == {
            "detail": "this token already runs 2 executions (max_concurrent_per_token): retry when one has ended"
        }
        # Another token is not shut out: it runs, up to the server's own limit.
        ran = server.execute({"cmd": "echo bob runs", "args": run_image}, token=bob)
        assert (ran.status_code, ran.json()["stdout"]) == (200, "bob runs\n")
        streams.append(busy(server, running, run_image, bob))
        full = server.execute({"cmd": "echo never", "args": run_image}, token=bob)
        assert full.status_code == 429 and full.headers["retry-after"] == "7"
        assert full.json() == {"detail": "all 3 execution slots of this server are taken: retry later"}
    # The streams are closed: their executions stop, and alice's share is hers again.
    assert wait_until(lambda: not server.executor.running, timeout=30)
    again = server.execute({"cmd": "echo again", "args": run_image}, token=alice)
    assert (again.status_code, again.json()["stdout"]) == (200, "again\n")


def test_without_authentication_only_max_concurrent_counts(dockyter_server, test_image):
    # Every request is the same user's: a share of the slots would only be a lower max_concurrent.
    server = dockyter_server(auth=False, tokens=[], max_concurrent=2, max_concurrent_per_token=1)
    with ExitStack() as running:
        streams = [busy(server, running, test_image), busy(server, running, test_image)]
        assert len(streams) == 2 and len(server.executor.running) == 2
        assert server.execute({"cmd": "true", "args": test_image}).status_code == 429


@under_each_executor
def test_a_body_over_the_size_cap_is_413(dockyter_server, run_image):
    server = dockyter_server(max_request_bytes=2048)
    body = {"cmd": "echo " + "x" * 5000, "args": run_image}
    response = server.execute(body)
    assert response.status_code == 413
    assert response.json() == {"detail": "the request body is larger than 2048 bytes"}

    def chunks():  # no Content-Length: the cap holds while reading
        for _ in range(10):
            yield b"x" * 1000

    response = httpx.post(server.url + "/execute", content=chunks(), headers=server.headers())
    assert response.status_code == 413
    assert not server.containers()
    assert server.execute({"cmd": "echo small", "args": run_image}).status_code == 200


@under_each_executor
def test_a_cmd_longer_than_a_process_argument_is_413(dockyter_server, run_image):
    server = dockyter_server(max_request_bytes=4 * 1024 * 1024)
    response = server.execute({"cmd": "#" * 200_000, "args": run_image})
    assert response.status_code == 413
    assert response.json()["detail"].startswith("one argument (cmd or args) is longer than 131071 bytes")
    assert not server.containers()
