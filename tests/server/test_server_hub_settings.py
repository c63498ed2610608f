"""The settings of ``auth = "jupyterhub"``: the modes, what a managed hub service's environment fills,
the [groups.NAME] tables of the config file, and one clear line for each bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyter.server.settings.fields import Settings, SettingsError
from dockyter.server.settings.sources import load_settings

HUB = "http://127.0.0.1:8081/hub/api"
# What JupyterHub puts in the environment of a managed service (the parts the server reads).
MANAGED = {
    "JUPYTERHUB_API_URL": HUB,
    "JUPYTERHUB_API_TOKEN": "service-token-0123456789abcdef",
    "JUPYTERHUB_SERVICE_NAME": "dockyter",
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:8010",
}


def load(argv: list[str], environ: dict[str, str] | None = None) -> Settings:
    return load_settings(argv, environ or {})


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return str(path)


def test_the_modes_and_their_old_spellings(tmp_path) -> None:
    assert Settings(tokens=["x" * 16]).auth == "tokens"
    assert load(["--auth", "jupyterhub", "--hub-api-url", HUB]).auth == "jupyterhub"
    assert load([], {"DOCKYTER_SERVER_AUTH": "JupyterHub", "DOCKYTER_SERVER_HUB_API_URL": HUB}).auth == "jupyterhub"
    assert load(["--no-auth"]).auth == "none" and not load(["--no-auth"]).authenticates
    assert load(["--config", config(tmp_path, "auth = false\n")]).auth == "none"
    assert load(["--config", config(tmp_path, 'auth = true\ntokens = ["t:0123456789abcdef"]\n')]).auth == "tokens"
    assert Settings(auth=False).auth == "none"  # type: ignore[arg-type] - the dataclass takes the old booleans too


def test_a_managed_service_takes_the_hub_from_its_environment() -> None:
    settings = load(["--auth", "jupyterhub"], MANAGED)
    assert (settings.hub_api_url, settings.hub_api_token, settings.hub_service) == (
        HUB,
        "service-token-0123456789abcdef",
        "dockyter",
    )
    assert (settings.host, settings.port) == ("127.0.0.1", 8010)  # where the hub expects it
    assert settings.token_table() == {}  # no static token needed


def test_what_the_operator_sets_wins_over_the_hubs_environment(tmp_path) -> None:
    path = config(tmp_path, 'auth = "jupyterhub"\nport = 9000\nhub_service = "dock"\n')
    settings = load(["--config", path, "--hub-api-url", "http://hub:8081/hub/api"], MANAGED)
    assert (settings.port, settings.hub_service, settings.hub_api_url) == (9000, "dock", "http://hub:8081/hub/api")
    assert settings.host == "127.0.0.1"
    # Without auth jupyterhub, the hub's variables mean nothing to the server.
    assert load(["--no-auth"], MANAGED).port == 8000


def test_groups_come_from_the_config_file(tmp_path) -> None:
    path = config(
        tmp_path,
        'auth = "jupyterhub"\nhub_api_url = "http://h:1/hub/api"\n'
        '[groups.gpu]\nallowed_flags = ["--gpus"]\n[groups.students]\nmax_concurrent_per_token = 1\nsessions = false\n',
    )
    groups = load(["--config", path]).groups
    assert sorted(groups) == ["gpu", "students"]
    assert groups["gpu"].allowed_flags == ("--gpus",)
    assert (groups["students"].max_concurrent_per_token, groups["students"].sessions) == (1, False)


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ('auth = "jupyterhub"\n', {}, "auth jupyterhub needs hub_api_url, the hub's API"),
        (
            'auth = "jupyterhub"\nhub_api_url = "hub:8081"\n',
            {},
            "hub_api_url 'hub:8081' must be an http:// or https:// URL",
        ),
        ('auth = "jupyterhub"\nhub_api_url = "http://h/api?x=1"\n', {}, "without query or fragment"),
        ('auth = "jupyterhub"\nhub_api_url = "http://h/api"\nhub_service = "a b"\n', {}, "hub_service 'a b' must be"),
        (
            'auth = "jupyterhub"\nhub_api_url = "http://h/api"\nhub_cache_seconds = -1\n',
            {},
            "hub_cache_seconds must not be negative",
        ),
        (
            'auth = "jupyterhub"\nhub_api_url = "http://h/api"\nhub_timeout = 0\n',
            {},
            "hub_timeout must be greater than 0",
        ),
        ('auth = "maybe"\n', {}, "'auth' in"),
        (
            'tokens = ["t:0123456789abcdef"]\n[groups.gpu]\nallowed_flags = ["--gpus"]\n',
            {},
            'they need auth = "jupyterhub"',
        ),
        (
            'auth = "jupyterhub"\nhub_api_url = "http://h/api"\n[groups.gpu]\nallowed_flags = ["--privileged"]\n',
            {},
            "[groups.gpu] in",
        ),
        (
            'auth = "jupyterhub"\nhub_api_url = "http://h/api"\n[groups.gpu]\nmax_concurrent = 1\n',
            {},
            "unknown key 'max_concurrent'",
        ),
        (
            'auth = "jupyterhub"\n',
            {**MANAGED, "JUPYTERHUB_SERVICE_URL": "https://h"},
            "JUPYTERHUB_SERVICE_URL: 'https://h' is not",
        ),
        (
            'auth = "jupyterhub"\nhub_api_url = "http://h/api"\n',
            {"DOCKYTER_SERVER_GROUPS": "x"},
            "unknown environment variable DOCKYTER_SERVER_GROUPS",
        ),
    ],
)
def test_bad_hub_settings_get_one_clear_line(tmp_path, text, environ, message) -> None:
    with pytest.raises(SettingsError) as caught:
        load(["--config", config(tmp_path, text)], environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_group_on_a_swarm_may_allow_only_what_a_service_can_do(tmp_path) -> None:
    path = config(
        tmp_path,
        'auth = "jupyterhub"\nhub_api_url = "http://h/api"\nexecutor = "swarm"\n'
        '[groups.gpu]\nallowed_flags = ["--gpus"]\n',
    )
    with pytest.raises(SettingsError, match="executor swarm: --gpus has no equivalent for Swarm services"):
        load(["--config", path])
