"""What the recipe's roles let a hub service learn from the tokens hub users send it.

The service "dockyter" is played here by ``jupyterhub.services.auth.HubAuth``, as a service
would use it: ``user_for_token`` asks the hub's ``GET /hub/api/user`` with the user's token
(the service needs no token of its own for that), and ``check_scopes`` says whether the token
may access this service. Each user's token is read where the Dockyter client will read it:
``$JUPYTERHUB_API_TOKEN`` inside a kernel of their single-user server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

pytest.importorskip("jupyterhub", reason="jupyterhub is not installed (the test-hub extra)")
from helpers import wait_until
from jupyterhub.services.auth import HubAuth

from .hubserver import Hub, User
from .labkernel import LabKernel

pytestmark = pytest.mark.hub

SERVICE_ACCESS = "access:services!service=dockyter"
CACHE_SECONDS = 2  # the service's cache of the hub's answers: how late it may notice a revocation


@pytest.fixture
def service(hub: Hub) -> Iterator[HubAuth]:
    """The service's view of the hub: HubAuth on the hub's API, with no token of its own."""
    auth = HubAuth(api_url=hub.api_url, api_token="", cache_max_age=CACHE_SECONDS)
    yield auth
    auth.cache.clear()


_seen_tokens: dict[tuple[str, str], str] = {}  # (user, when their server started) -> its token


def server_token(user: User) -> str:
    """$JUPYTERHUB_API_TOKEN as a kernel of the user's server sees it (read once per start of the server)."""
    key = (user.name, str(user.model()["servers"][""]["started"]))
    if key not in _seen_tokens:
        kernel = LabKernel(user, "token.ipynb")
        try:
            token = kernel.run("import os; print(os.environ['JUPYTERHUB_API_TOKEN'])").stdout.strip()
        finally:
            kernel.close()
        assert token, f"no JUPYTERHUB_API_TOKEN in {user.name}'s kernel"
        _seen_tokens[key] = token
    return _seen_tokens[key]


def test_a_server_token_names_its_user_and_groups_to_the_service(alice: User, bob: User, service: HubAuth) -> None:
    for user, groups in ((alice, ["gpu"]), (bob, ["students"])):
        model = service.user_for_token(server_token(user))
        assert model is not None
        assert (model["name"], model["groups"]) == (user.name, groups)
        # The recipe's scopes: this token may access the service "dockyter", and no other.
        assert service.check_scopes({SERVICE_ACCESS}, model) == {SERVICE_ACCESS}
        assert not service.check_scopes({"access:services!service=other"}, model)


def test_a_token_without_the_service_scope_is_known_but_not_allowed(alice: User, service: HubAuth) -> None:
    # A token of alice's own with no scope at all still names her: the check of scopes is the service's.
    answer = alice.api("POST", f"/users/{alice.name}/tokens", json={"scopes": [], "note": "no scope"})
    assert answer.status_code == 201, answer.text
    model = service.user_for_token(answer.json()["token"])
    assert model is not None and model["name"] == alice.name
    assert not service.check_scopes({SERVICE_ACCESS}, model)
    alice.api("DELETE", f"/users/{alice.name}/tokens/{answer.json()['id']}")


def test_a_server_token_opens_nothing_else(alice: User, bob: User, hub: Hub) -> None:
    """What a service that sees alice's server token could do with it beside naming her: nothing.

    JupyterHub's default server token would open her own server (its files, kernels: code run as
    her); the recipe's ``server_token_scopes`` leave that out.
    """
    token = server_token(alice)
    as_server = {"Authorization": f"token {token}"}
    assert alice.server("GET", "/api/contents", headers=as_server).status_code == 403
    assert bob.server("GET", "/api/contents", headers=as_server).status_code == 403
    # Not the hub's controls either: no tokens minted, no server stopped, nobody else seen.
    assert hub.api("POST", f"/users/{alice.name}/tokens", token=token, json={}).status_code == 403
    assert hub.api("DELETE", f"/users/{alice.name}/server", token=token).status_code == 403
    assert hub.api("GET", f"/users/{bob.name}", token=token).status_code == 404
    # Its one other power: reporting the server's activity, which the hub requires of every server token.
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    activity = {"last_activity": now, "servers": {"": {"last_activity": now}}}
    assert hub.api("POST", f"/users/{alice.name}/activity", token=token, json=activity).status_code == 200


def test_an_identify_only_token_opens_nothing_but_the_service(alice: User, service: HubAuth) -> None:
    """The narrowest token for the service: only access:services!service=dockyter (identifying comes with every token)."""
    answer = alice.api("POST", f"/users/{alice.name}/tokens", json={"scopes": [SERVICE_ACCESS], "note": "dockyter"})
    assert answer.status_code == 201, answer.text
    token, token_id = answer.json()["token"], answer.json()["id"]
    try:
        model = service.user_for_token(token)
        assert model is not None and (model["name"], model["groups"]) == (alice.name, ["gpu"])
        assert service.check_scopes({SERVICE_ACCESS}, model)
        assert alice.server("GET", "/api/contents", headers={"Authorization": f"token {token}"}).status_code == 403
    finally:
        alice.api("DELETE", f"/users/{alice.name}/tokens/{token_id}")


def test_a_revoked_token_stops_working_when_the_cache_expires(alice: User, service: HubAuth) -> None:
    answer = alice.api("POST", f"/users/{alice.name}/tokens", json={"scopes": [SERVICE_ACCESS], "note": "revoked"})
    token = answer.json()["token"]
    model = service.user_for_token(token)
    assert model is not None and model["token_id"] == answer.json()["id"]
    revoked = alice.api("DELETE", f"/users/{alice.name}/tokens/{model['token_id']}")
    assert revoked.status_code == 204, revoked.text
    started = time.monotonic()
    # The hub refuses it at once; the service's cached answer lives out its age.
    assert service.user_for_token(token, use_cache=False) is None
    assert wait_until(lambda: service.user_for_token(token) is None, timeout=CACHE_SECONDS + 5, interval=0.1)
    assert time.monotonic() - started <= CACHE_SECONDS + 1


def test_a_stopped_server_token_is_refused(alice: User, service: HubAuth) -> None:
    token = server_token(alice)
    assert service.user_for_token(token, use_cache=False) is not None
    alice.stop_server()
    assert service.user_for_token(token, use_cache=False) is None
