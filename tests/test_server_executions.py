"""``GET /executions``: the caller's running executions (engine executor; the Swarm one is in test_swarm_lifecycle)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.docker


def test_lists_the_callers_running_executions_only(dockyter_server, test_image):
    other = "other:" + "o" * 24
    server = dockyter_server(tokens=["tester:" + "t" * 24, other])
    assert httpx.get(f"{server.url}/executions", headers=server.headers(), timeout=30).json() == {"executions": []}
    with server.stream({"cmd": "echo ready; sleep 60", "args": test_image}) as events:
        start = next(events)
        assert next(events)["event"] == "stdout"
        listed = httpx.get(f"{server.url}/executions", headers=server.headers(), timeout=30).json()
        theirs = httpx.get(f"{server.url}/executions", headers=server.headers("o" * 24), timeout=30).json()
        httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(), timeout=60)
        list(events)
    assert listed == {"executions": [{"id": start["id"], "image": test_image, "node": None}]}
    assert theirs == {"executions": []}


def test_needs_a_token(dockyter_server):
    server = dockyter_server()
    assert httpx.get(f"{server.url}/executions", timeout=30).status_code == 401
