"""Inside a JupyterHub single-user server the API backend needs no token of its own.

A real InteractiveShell, configured as the site profile configures it (``c.Dockyter.*`` in the
IPython configuration), with ``$JUPYTERHUB_API_TOKEN`` and ``$JUPYTERHUB_USER`` set as the hub
sets them for a single-user server and its kernels, against a scripted server that records what
it receives. The same against a real hub and a real dockyter-server is in tests/hub.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from IPython.utils.capture import capture_output
from scripted_server import ScriptedServer, event, json_reply, stream
from shells import ConfigHome

from dockyter.backends.base import RunRequest
from dockyter.wire.dockerargs import parse_run_args

HUB_TOKEN = "hub-Token-0f1e2d3c4b5a6978"
OWN_TOKEN = "own-Token-1234567890abcdef"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    scripted.routes["POST", "/execute"] = stream(
        event("start", id="r"), event("stdout", data="ran\n"), event("exit", code=0)
    )
    scripted.routes["GET", "/health"] = json_reply(
        {"status": "ok", "version": "test", "token": "accepted", "user": "alice", "groups": ["gpu"]}
    )
    yield scripted
    scripted.stop()


@pytest.fixture
def in_hub_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a hub gives a single-user server's kernels (the parts Dockyter reads)."""
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", HUB_TOKEN)
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")


def site_profile(load_dockyter, server: ScriptedServer, **more):
    """Dockyter loaded as the recipe's site profile loads it: the API backend at the service's URL."""
    return load_dockyter(backend="api", api_url=server.url, **more).shell


def status_text(shell) -> str:
    with capture_output() as captured:
        shell.run_line_magic("docker_status", "")
    return captured.stdout + "".join(output.data.get("text/plain", "") for output in captured.outputs)


def sent_authorization(server: ScriptedServer, shell) -> str | None:
    with capture_output():
        shell.run_cell("%%docker img:1\necho hi")
    (sent,) = server.requests_to("/execute")
    return sent.headers.get("authorization")


def test_the_hub_token_is_sent_and_named_but_never_shown(in_hub_server, load_dockyter, server) -> None:
    shell = site_profile(load_dockyter, server)
    assert sent_authorization(server, shell) == f"Bearer {HUB_TOKEN}"
    shown = status_text(shell)
    assert "from JupyterHub, user alice: accepted" in shown
    assert "gpu" in shown  # the groups whose policy the server applied
    assert HUB_TOKEN not in shown
    # The status's curl description of a cell reads it from the variable the kernel has.
    with capture_output():
        shell.run_line_magic("docker", "img:1")
    described = status_text(shell)
    assert '"Authorization: Bearer $JUPYTERHUB_API_TOKEN"' in described and HUB_TOKEN not in described


def test_a_users_own_token_wins(in_hub_server, load_dockyter, server, monkeypatch) -> None:
    shell = site_profile(load_dockyter, server, api_token=OWN_TOKEN)
    assert sent_authorization(server, shell) == f"Bearer {OWN_TOKEN}"
    server.received.clear()
    # ... and so does $DOCKYTER_API_TOKEN, read when the extension first needs it.
    monkeypatch.setenv("DOCKYTER_API_TOKEN", OWN_TOKEN + "-env")
    shell = site_profile(load_dockyter, server)
    assert sent_authorization(server, shell) == f"Bearer {OWN_TOKEN}-env"


def test_a_projects_file_cannot_send_the_hub_token_elsewhere(
    in_hub_server, load_dockyter, server, config_home: ConfigHome
) -> None:
    """A dockyter.toml in a cloned project points api_url at another server: it gets no token."""
    elsewhere = ScriptedServer()
    elsewhere.routes["POST", "/execute"] = json_reply({"detail": "a token is required"}, 401)
    elsewhere.routes["GET", "/health"] = json_reply({"status": "ok"})
    try:
        config_home.write(config_home.project, f'[Dockyter]\napi_url = "{elsewhere.url}"\n')
        shell = site_profile(load_dockyter, server)
        with capture_output() as captured:
            shell.run_cell("%%docker img:1\necho hi")
        (sent,) = elsewhere.requests_to("/execute")
        assert "authorization" not in sent.headers
        assert "the API needs a token" in captured.stdout + captured.stderr
        shown = status_text(shell)
        assert f"JupyterHub's token is sent only to {server.url}, the api_url of ipython_config.py" in shown
        # Pointed back at the site's service (with a trailing slash), it is sent again.
        shell.run_line_magic("config", f"Dockyter.api_url = '{server.url}/'")
        assert sent_authorization(server, shell) == f"Bearer {HUB_TOKEN}"
    finally:
        elsewhere.stop()


def test_no_site_url_no_hub_token(in_hub_server, load_dockyter, server) -> None:
    shell = load_dockyter().shell
    with capture_output():
        shell.run_line_magic("docker_backend", f"api {server.url}")
    assert sent_authorization(server, shell) is None
    assert "JupyterHub's token is sent only to an api_url set in ipython_config.py" in status_text(shell)


def test_a_refused_hub_token_says_what_the_server_needs(in_hub_server, load_dockyter, server) -> None:
    server.routes["POST", "/execute"] = json_reply({"detail": f"unknown token {HUB_TOKEN}"}, 401)
    shell = site_profile(load_dockyter, server)
    with capture_output() as captured:
        result = shell.run_cell("%%docker img:1\necho hi")
    text = captured.stdout + captured.stderr
    assert result.error_in_exec is not None
    assert (
        'the API refused your JupyterHub token: the server does not accept this JupyterHub\'s tokens: it must run with auth = "jupyterhub"'
        in text
    )
    assert HUB_TOKEN not in text and "Traceback" not in text


def test_the_curl_command_works_with_the_kernels_variable(in_hub_server, load_dockyter, server) -> None:
    shell = site_profile(load_dockyter, server)
    line = shell._dockyter.active_backend.describe(RunRequest(args=parse_run_args("img:1"), command="echo hi"))
    subprocess.run(["bash", "-c", line], capture_output=True, timeout=20, env=dict(os.environ), check=True)
    (sent,) = server.requests_to("/execute")
    assert sent.headers["authorization"] == f"Bearer {HUB_TOKEN}"
