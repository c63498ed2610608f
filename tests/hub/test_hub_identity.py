"""dockyter-server's question to the hub, "whose token is this?", against the real test hub.

``HubIdentity`` asks what ``jupyterhub.services.auth.HubAuth`` asks (``GET /hub/api/user`` with
the caller's token) without importing the hub; each test compares its answers with HubAuth's for
the same tokens, then checks what HubAuth leaves to the service: the access scope, the
revocation bound, the hub's outage as one line.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("jupyterhub", reason="jupyterhub is not installed (the test-hub extra)")
from jupyterhub.services.auth import HubAuth

from dockyter.server.http.hubidentity import HubIdentity, HubUser
from dockyter.server.servererrors import HubUnavailable

from .hubserver import Hub, User, free_port
from .test_hub_tokens import SERVICE_ACCESS, server_token

pytestmark = pytest.mark.hub

CACHE_SECONDS = 2.0


def identify(identity: HubIdentity, token: str) -> HubUser | None:
    return asyncio.run(identity.identify(token))


@pytest.fixture
def identity(hub: Hub) -> HubIdentity:
    return HubIdentity(hub.api_url, "dockyter", cache_seconds=CACHE_SECONDS, timeout=5.0)


@pytest.fixture
def hubauth(hub: Hub) -> Iterator[HubAuth]:
    auth = HubAuth(api_url=hub.api_url, api_token="", cache_max_age=0)
    yield auth
    auth.cache.clear()


def new_token(user: User, scopes: list[str], note: str) -> tuple[str, str]:
    answer = user.api("POST", f"/users/{user.name}/tokens", json={"scopes": scopes, "note": note})
    assert answer.status_code == 201, answer.text
    return answer.json()["token"], answer.json()["id"]


def test_it_names_the_user_and_groups_as_hubauth_does(alice: User, bob: User, identity, hubauth) -> None:
    for user, groups in ((alice, ("gpu",)), (bob, ("students",))):
        token = server_token(user)
        found = identify(identity, token)
        model = hubauth.user_for_token(token, use_cache=False)
        assert found == HubUser(user.name, groups, model["token_id"], may_use_service=True)
        assert (found.name, list(found.groups)) == (model["name"], model["groups"])
        assert found.may_use_service == bool(hubauth.check_scopes({SERVICE_ACCESS}, model))


def test_the_access_scope_decides_as_hubauth_does(alice: User, identity, hubauth) -> None:
    for scopes, allowed in (([], False), (["users:activity!user"], False), ([SERVICE_ACCESS], True)):
        token, token_id = new_token(alice, scopes, "scopes")
        try:
            found = identify(identity, token)
            model = hubauth.user_for_token(token, use_cache=False)
            assert found is not None and found.name == "alice", scopes
            assert found.may_use_service is allowed is bool(hubauth.check_scopes({SERVICE_ACCESS}, model)), scopes
        finally:
            alice.api("DELETE", f"/users/{alice.name}/tokens/{token_id}")
    # Tokens of other services' scopes do not open this one, whatever this one is called.
    token, token_id = new_token(alice, [SERVICE_ACCESS], "other service")
    try:
        other = HubIdentity(identity.api_url, "other", cache_seconds=0, timeout=5.0)
        assert identify(other, token).may_use_service is False
    finally:
        alice.api("DELETE", f"/users/{alice.name}/tokens/{token_id}")


def test_tokens_the_hub_does_not_know_are_nobody(alice: User, identity) -> None:
    for token in ("0" * 32, "x", "a" * 4000, "tok\x00en", "tok en", "tökén"):
        assert identify(identity, token) is None, token


def test_a_revoked_token_stops_working_within_the_cache_age(alice: User, identity) -> None:
    token, token_id = new_token(alice, [SERVICE_ACCESS], "revoked")
    asked = time.monotonic()
    assert identify(identity, token) is not None
    revoked = alice.api("DELETE", f"/users/{alice.name}/tokens/{token_id}")
    assert revoked.status_code == 204, revoked.text
    # The cached answer holds until CACHE_SECONDS after it was asked for, never longer.
    while identify(identity, token) is not None:
        assert time.monotonic() - asked <= CACHE_SECONDS + 0.5, "a revoked token outlived the bound"
        time.sleep(0.1)
    assert time.monotonic() - asked >= CACHE_SECONDS - 0.5, "the cache did not hold the answer"


def test_concurrent_questions_about_one_token_share_one(alice: User, identity, hub: Hub) -> None:
    token, token_id = new_token(alice, [SERVICE_ACCESS], "shared")
    asked: list[str] = []
    real_ask = identity._ask_now

    def counted(token: str):  # the real question, counted
        asked.append(token)
        return real_ask(token)

    identity._ask_now = counted  # type: ignore[method-assign]

    async def many() -> list[HubUser | None]:
        return await asyncio.gather(*(identity.identify(token) for _ in range(20)))

    try:
        answers = asyncio.run(many())
        assert {answer.name for answer in answers if answer} == {"alice"} and len(answers) == 20
        assert len(asked) == 1
    finally:
        alice.api("DELETE", f"/users/{alice.name}/tokens/{token_id}")


def test_an_unreachable_hub_is_one_line(alice: User) -> None:
    port = free_port()
    identity = HubIdentity(f"http://127.0.0.1:{port}/hub/api", "dockyter", cache_seconds=30, timeout=2.0)
    with pytest.raises(HubUnavailable) as caught:
        identify(identity, "0" * 32)
    assert str(caught.value) == f"the hub at http://127.0.0.1:{port}/hub/api cannot be reached: Connection refused"


def test_a_wrong_hub_url_is_one_line(hub: Hub) -> None:
    identity = HubIdentity(f"{hub.url}/hub/nothing", "dockyter", cache_seconds=30, timeout=5.0)
    with pytest.raises(HubUnavailable) as caught:
        identify(identity, "0" * 32)
    assert str(caught.value) == f"the hub at {hub.url}/hub/nothing answered 404 when asked who a token is"


class _Stuck(http.server.BaseHTTPRequestHandler):
    """Stands in for a hub that accepts connections and then never answers, or redirects elsewhere."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).seen.append(f"{self.path} {self.headers.get('Authorization')}")
        if self.path.startswith("/redirect"):
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere/user")
            self.end_headers()
            return
        time.sleep(5)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stand_in_hub() -> Iterator[str]:
    """A stand-in, not the hub: JupyterHub neither hangs nor redirects its API on demand."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stuck)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stuck.seen = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_hub_that_does_not_answer_in_time_is_one_line(stand_in_hub: str) -> None:
    identity = HubIdentity(f"{stand_in_hub}/hub/api", "dockyter", cache_seconds=30, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(HubUnavailable) as caught:
        identify(identity, "0" * 32)
    assert time.monotonic() - started < 2
    assert str(caught.value) == f"the hub at {stand_in_hub}/hub/api cannot be reached: no answer in time"


def test_a_redirect_is_not_followed_with_the_token(stand_in_hub: str) -> None:
    identity = HubIdentity(f"{stand_in_hub}/redirect", "dockyter", cache_seconds=30, timeout=2.0)
    with pytest.raises(HubUnavailable, match="answered 307"):
        identify(identity, "0" * 32)
    assert _Stuck.seen == [f"/redirect/user token {'0' * 32}"]  # asked once, never at /elsewhere
