"""``GET /executions``: the caller's running executions, and never another token's, on both executors.

On a Swarm it lists them from the services' labels, whichever replica runs them (the
two-replica case is in test_swarm_lifecycle.py).
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from servers import under_each_executor

pytestmark = pytest.mark.docker


@under_each_executor
def test_lists_the_callers_running_executions_only(dockyter_server, run_image, executor_kind):
    # Names of their own: a Swarm server lists a token name's executions from the whole cluster.
    name = "tester-" + secrets.token_hex(4)
    other = f"other-{secrets.token_hex(4)}:" + "o" * 24
    server = dockyter_server(tokens=[f"{name}:" + "t" * 24, other])
    assert httpx.get(f"{server.url}/executions", headers=server.headers(), timeout=30).json() == {"executions": []}
    with server.stream({"cmd": "echo ready; sleep 60", "args": run_image}) as events:
        start = next(events)
        event = next(events)
        if executor_kind == "swarm":  # where the task landed, before its output
            assert event["event"] == "node"
            event = next(events)
        assert event["event"] == "stdout"
        listed = httpx.get(f"{server.url}/executions", headers=server.headers(), timeout=30).json()
        theirs = httpx.get(f"{server.url}/executions", headers=server.headers("o" * 24), timeout=30).json()
        httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(), timeout=60)
        list(events)
    (mine,) = listed["executions"]
    assert (mine["id"], mine["image"]) == (start["id"], run_image)
    assert mine["node"] is None if executor_kind == "engine" else mine["node"].startswith("dyt-")
    assert theirs == {"executions": []}


@under_each_executor
def test_needs_a_token(dockyter_server):
    server = dockyter_server()
    assert httpx.get(f"{server.url}/executions", timeout=30).status_code == 401
