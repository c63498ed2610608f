"""dockyter-server as the hub's service, probed as hub users (and a hostile one) would probe it.

Each user's token is the one their kernels send: ``$JUPYTERHUB_API_TOKEN`` of their single-user
server, read in a kernel. Requests go straight to the service's URL, as the kernels' do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from helpers import free_port, wait_until

from .conftest import CACHE_SECONDS
from .hubserver import SERVER_CONFIG, Hub, User
from .test_hub_tokens import SERVICE_ACCESS, server_token

pytestmark = [pytest.mark.docker, pytest.mark.hub]


def execute(hub: Hub, token: str, args: str, cmd: str, stream: bool = False, **kwargs):
    headers = {"Accept": "application/x-ndjson"} if stream else {}
    return hub.service(
        "POST", "/execute", token, json={"cmd": cmd, "args": args}, headers=headers, stream=stream, **kwargs
    )


@pytest.fixture
def running(hub: Hub) -> Iterator[list]:
    """Streams opened by a test (responses and their line iterators), closed after it: their containers go."""
    opened: list = []
    yield opened
    for response in opened:
        response.close()
    assert wait_until(lambda: not hub.server_containers(), timeout=15), hub.server_containers()


def start_long(hub: Hub, token: str, image: str, running: list) -> str:
    """Start a long execution on a stream and return its id (the first event)."""
    response = execute(hub, token, image, "echo started; sleep 120", stream=True)
    assert response.status_code == 200, response.text
    lines = response.iter_lines()
    # Kept until the test ends: a line iterator collected as garbage closes the connection (urllib3), and
    # the server stops a run whose client went away.
    running.extend([lines, response])
    first = json.loads(next(lines))
    assert first["event"] == "start", first
    return str(first["id"])


def test_health_says_whose_token_it_is_and_which_groups_applied(alice: User, bob: User, hub: Hub) -> None:
    for user, groups in ((alice, ["gpu"]), (bob, ["students"])):
        health = hub.service("GET", "/health", server_token(user)).json()
        assert (health["token"], health["user"], health["groups"]) == ("accepted", user.name, groups)
    assert hub.service("GET", "/health", "0" * 32).json()["token"] == "rejected"
    assert "user" not in hub.service("GET", "/health", "0" * 32).json()


def test_one_user_can_neither_list_cancel_nor_use_anothers_runs(
    alice: User, bob: User, hub: Hub, test_image: str, running: list
) -> None:
    alices, bobs = server_token(alice), server_token(bob)
    execution = start_long(hub, alices, test_image, running)
    session = hub.service("POST", "/sessions", alices, json={"args": test_image, "name": "mine"})
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    try:
        assert [e["id"] for e in hub.service("GET", "/executions", alices).json()["executions"]] == [execution]
        assert [s["id"] for s in hub.service("GET", "/sessions", alices).json()["sessions"]] == [session_id]
        # bob sees none of them, and whatever he asks of them is "no such thing".
        assert hub.service("GET", "/executions", bobs).json()["executions"] == []
        assert hub.service("GET", "/sessions", bobs).json()["sessions"] == []
        assert hub.service("POST", f"/executions/{execution}/cancel", bobs).status_code == 404
        assert hub.service("GET", f"/sessions/{session_id}", bobs).status_code == 404
        used = hub.service("POST", f"/sessions/{session_id}/execute", bobs, json={"cmd": "id"})
        assert used.status_code == 404, used.text
        assert hub.service("DELETE", f"/sessions/{session_id}", bobs).status_code == 404
        # ... and alice's are untouched.
        assert [e["id"] for e in hub.service("GET", "/executions", alices).json()["executions"]] == [execution]
        ran = hub.service("POST", f"/sessions/{session_id}/execute", alices, json={"cmd": "echo still mine"})
        assert ran.json()["stdout"] == "still mine\n", ran.text
    finally:
        hub.service("DELETE", f"/sessions/{session_id}", alices)


def test_a_groups_table_applies_and_another_groups_does_not(
    alice: User, bob: User, hub: Hub, test_image: str, running: list
) -> None:
    alices, bobs = server_token(alice), server_token(bob)
    # gpu (alice) may pass --gpus: the policy lets it through to the engine, which has no GPU here.
    gpus = execute(hub, alices, f"--gpus all {test_image}", "true")
    assert "--gpus" not in gpus.text or "not allowed" not in gpus.text, gpus.text
    refused = execute(hub, bobs, f"--gpus all {test_image}", "true")
    assert (refused.status_code, refused.json()["detail"]) == (403, "--gpus all is not allowed by this server's policy")
    # students (bob) run one execution at a time; alice has the server-wide two.
    start_long(hub, bobs, test_image, running)
    busy = execute(hub, bobs, test_image, "true")
    assert busy.status_code == 429, busy.text
    start_long(hub, alices, test_image, running)
    assert execute(hub, alices, test_image, "echo second").json()["stdout"] == "second\n"
    # students have no sessions.
    session = hub.service("POST", "/sessions", bobs, json={"args": test_image, "name": "s"})
    assert (session.status_code, session.json()["detail"]) == (
        403,
        "your groups (students) have no sessions on this server",
    )


def test_a_token_without_access_to_the_service_is_refused(alice: User, hub: Hub) -> None:
    answer = alice.api("POST", f"/users/{alice.name}/tokens", json={"scopes": [], "note": "no access"})
    token, token_id = answer.json()["token"], answer.json()["id"]
    try:
        refused = hub.service("GET", "/executions", token)
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"] == (
            "this JupyterHub token may not access the service dockyter (it lacks access:services!service=dockyter)"
        )
    finally:
        alice.api("DELETE", f"/users/{alice.name}/tokens/{token_id}")


def test_a_token_the_hub_revoked_stops_working_within_the_bound(alice: User, hub: Hub) -> None:
    answer = alice.api("POST", f"/users/{alice.name}/tokens", json={"scopes": [SERVICE_ACCESS], "note": "revoked"})
    token, token_id = answer.json()["token"], answer.json()["id"]
    assert hub.service("GET", "/executions", token).status_code == 200
    assert alice.api("DELETE", f"/users/{alice.name}/tokens/{token_id}").status_code == 204
    revoked = time.monotonic()
    while hub.service("GET", "/executions", token).status_code == 200:
        assert time.monotonic() - revoked <= CACHE_SECONDS + 1, "a revoked token outlived hub_cache_seconds"
        time.sleep(0.2)
    assert hub.service("GET", "/executions", token).status_code == 401


# -- the external service: dockyter-server started outside the hub ----------------------------------


def start_external(hub: Hub, tmp_path, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """dockyter-server with the recipe's TOML, told the hub's API and a token, as an external service is."""
    port = free_port()
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "DOCKYTER_SERVER_PORT": str(port),
        "DOCKYTER_SERVER_SERVER_NAME": f"{hub.server_name}-external",
        "DOCKYTER_SERVER_TOKENS": "robot:robot-token-0123456789",
        **{f"DOCKYTER_SERVER_{name.upper()}": value for name, value in settings.items()},
    }
    log = tmp_path / "external.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "dockyter.server", "--config", str(SERVER_CONFIG)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    return process, f"http://127.0.0.1:{port}"


def managed_service_token(hub: Hub) -> str:
    """The token the hub gave its managed service (in that process's environment)."""
    from .hubserver import marked_processes

    (pid,) = [pid for pid, command in marked_processes(hub.run_mark) if "dockyter-server" in command]
    variables = dict(entry.split("=", 1) for entry in open(f"/proc/{pid}/environ").read().split("\0") if "=" in entry)
    return variables["JUPYTERHUB_API_TOKEN"]


def test_an_external_service_is_told_the_hub_and_its_token(alice: User, hub: Hub, tmp_path) -> None:
    process, url = start_external(hub, tmp_path, hub_api_url=hub.api_url, hub_api_token=managed_service_token(hub))
    try:
        import requests

        assert wait_until(lambda: _answers(url), timeout=30), (tmp_path / "external.log").read_text()
        health = requests.get(f"{url}/health", headers={"Authorization": f"Bearer {server_token(alice)}"}, timeout=10)
        assert (health.json()["token"], health.json()["user"]) == ("accepted", "alice")
        robot = requests.get(f"{url}/health", headers={"Authorization": "Bearer robot-token-0123456789"}, timeout=10)
        assert robot.json()["token"] == "accepted"  # static tokens keep working beside the hub's
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_external_service_with_a_wrong_token_does_not_start(hub: Hub, tmp_path) -> None:
    process, _ = start_external(hub, tmp_path, hub_api_url=hub.api_url, hub_api_token="0" * 32)
    assert process.wait(timeout=30) != 0
    lines = (tmp_path / "external.log").read_text().strip().splitlines()
    assert lines[-1] == (
        f"dockyter-server: error: the hub at {hub.api_url} does not accept the service's own token (hub_api_token)"
    ), lines


def test_a_hub_that_cannot_be_reached_is_a_503_and_static_tokens_still_work(alice: User, hub: Hub, tmp_path) -> None:
    gone = f"http://127.0.0.1:{free_port()}/hub/api"
    process, url = start_external(hub, tmp_path, hub_api_url=gone, hub_api_token="0" * 32)
    try:
        import requests

        assert wait_until(lambda: _answers(url), timeout=30), (tmp_path / "external.log").read_text()
        answer = requests.get(f"{url}/executions", headers={"Authorization": f"Bearer {'1' * 32}"}, timeout=10)
        assert answer.status_code == 503
        assert answer.json()["detail"] == f"the hub at {gone} cannot be reached: Connection refused"
        robot = requests.get(
            f"{url}/executions", headers={"Authorization": "Bearer robot-token-0123456789"}, timeout=10
        )
        assert robot.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
