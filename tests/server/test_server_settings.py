"""Server settings: three sources with a clear precedence, checked values, documented everywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dockyter.server.settings.fields import Settings, SettingsError, definitions, env_of, flag_of, kind_of
from dockyter.server.settings.sources import load_settings
from dockyter.server.settings.table import settings_markdown

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t" * 24


def load(argv=(), environ=None) -> Settings:
    return load_settings(list(argv), {} if environ is None else environ)


def test_defaults_are_loopback_and_locked_down():
    settings = Settings(tokens=[TOKEN])
    assert settings.host == "127.0.0.1"
    assert settings.auth == "tokens"
    assert settings.network == "none"
    assert settings.drop_capabilities and settings.forbid_new_privileges
    assert settings.allowed_mounts == [] and settings.allowed_volumes == [] and settings.allowed_networks == []
    assert settings.token_table() == {"token-1": TOKEN}


def test_flags_win_over_the_environment_which_wins_over_the_file(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text(
        'port = 9000\nmax_concurrent = 2\nmemory = "1g"\nallowed_images = ["a/*", "b/*"]\n'
        f'tokens = ["alice:{TOKEN}"]\ndocker_command = ["sudo", "docker"]\n'
    )
    environ = {"DOCKYTER_SERVER_CONFIG": str(config), "DOCKYTER_SERVER_PORT": "9001", "DOCKYTER_SERVER_MEMORY": "2g"}
    settings = load(["--port", "9002"], environ)
    assert settings.port == 9002  # flag
    assert settings.memory == "2g"  # environment
    assert settings.max_concurrent == 2  # file
    assert settings.allowed_images == ["a/*", "b/*"]
    assert settings.docker_command == ["sudo", "docker"]
    assert settings.token_table() == {"alice": TOKEN}
    assert load(["--config", str(config)]).port == 9000


def test_lists_come_from_repeated_flags_or_commas_and_replace_lower_layers():
    environ = {"DOCKYTER_SERVER_ALLOWED_IMAGES": "x/*, y/*", "DOCKYTER_SERVER_TOKENS": f"a:{TOKEN},b:{TOKEN}x"}
    assert load([], environ).allowed_images == ["x/*", "y/*"]
    assert load(["--allow-image", "z/*", "--allow-image=w/*"], environ).allowed_images == ["z/*", "w/*"]
    assert load([], environ).token_table() == {"a": TOKEN, "b": TOKEN + "x"}
    settings = load(["--no-auth", "--docker-command", "sudo -n docker", "--extra-run-args", "--ulimit nofile=64"])
    assert settings.docker_command == ["sudo", "-n", "docker"]
    assert settings.extra_run_args == ["--ulimit", "nofile=64"]
    settings = load(["--no-auth", "--allow-flag", "env", "--allow-flag=-v"])
    assert settings.allowed_flags == ["env", "-v"]  # as the operator wrote them
    assert settings.flag_names() == ("--env", "--volume")  # as the policy compares them


def test_booleans_from_flags_and_environment():
    assert load(["--no-auth"]).auth == "none"
    assert load([], {"DOCKYTER_SERVER_AUTH": "off"}).auth == "none"
    assert load(["--no-auth", "--no-drop-capabilities"]).drop_capabilities is False


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        ([], {}, "no tokens: give --token-file or DOCKYTER_SERVER_TOKENS, --auth jupyterhub to let a JupyterHub"),
        (["--no-auth", "--host", "0.0.0.0"], {}, "--no-auth is refused on '0.0.0.0'"),
        (["--no-auth", "--host", "::"], {}, "--no-auth is refused on '::'"),
        (["--no-auth", "--host", "192.168.1.10"], {}, "--no-auth is refused"),
        (
            ["--no-auth"],
            {"DOCKYTER_SERVER_PORT": "eighty"},
            "environment variable DOCKYTER_SERVER_PORT: expected an integer, got 'eighty'",
        ),
        (["--no-auth"], {"DOCKYTER_SERVER_AUTH": "maybe"}, "expected tokens, jupyterhub or none, got 'maybe'"),
        (["--no-auth"], {"DOCKYTER_SERVER_PROT": "1"}, "unknown environment variable DOCKYTER_SERVER_PROT"),
        (["--no-auth", "--port", "70000"], {}, "port must be between 0 and 65535"),
        (["--no-auth", "--max-concurrent", "0"], {}, "max_concurrent must be at least 1"),
        (["--no-auth", "--max-concurrent-per-token=-1"], {}, "max_concurrent_per_token must not be negative"),
        (["--no-auth", "--max-timeout", "0"], {}, "max_timeout must be greater than 0"),
        (["--no-auth", "--server-name", "a b"], {}, "server_name 'a b' must be"),
        (["--no-auth", "--network", "host"], {}, "network 'host' would share a namespace"),
        (["--no-auth", "--pull", "sometimes"], {}, "pull must be missing, never, always or empty"),
        (["--no-auth", "--allow-flag=--cap-add"], {}, "--cap-add can never be allowed"),
        (["--no-auth", "--allow-mount", "relative/dir"], {}, "must be an absolute path"),
        (["--token", "short"], {}, "must be at least 16 printable ASCII characters"),
        (["--token", f"a:{TOKEN}", "--token", f"a:{TOKEN}"], {}, "two tokens are named 'a'"),
        (["--token", f"bad name:{TOKEN}"], {}, "token name 'bad name'"),
        (["--token-file", "/nonexistent/tokens"], {}, "cannot read the token file"),
        (["--config", "/nonexistent/server.toml"], {}, "cannot read the config file"),
    ],
)
def test_bad_settings_get_one_clear_message(argv, environ, message):
    with pytest.raises(SettingsError) as error:
        load(argv, environ)
    assert message in str(error.value)


def test_config_file_errors_name_the_file_and_key(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match=r"unknown setting 'prot' in the config file"):
        load(["--config", str(config)])
    config.write_text("port = 'x'\n")
    with pytest.raises(SettingsError, match=r"'port' in .*server.toml.*: expected an integer"):
        load(["--config", str(config)])
    config.write_text("port = \n")
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load(["--config", str(config)])
    config.write_text("auth = 'yes'\nmax_timeout = true\n")
    with pytest.raises(SettingsError, match="'max_timeout'.*expected a number"):
        load(["--config", str(config)])


def test_token_file_with_names_comments_and_bare_tokens(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# the lab\nalice:{TOKEN}a\n\n  {TOKEN}b  \nci-bot:{TOKEN}c\n")
    settings = load(["--token-file", str(tokens)])
    assert settings.token_table() == {"alice": TOKEN + "a", "token-2": TOKEN + "b", "ci-bot": TOKEN + "c"}


def test_no_auth_on_loopback_is_allowed():
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert load(["--no-auth", "--host", host]).auth == "none"


# -- the command ------------------------------------------------------------------------------------


def run_command(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyter.server", *argv], capture_output=True, text=True, timeout=60, env=env
    )


def test_help_documents_every_setting():
    answer = run_command("--help")
    assert answer.returncode == 0
    text = " ".join(answer.stdout.split())
    for definition in definitions():
        if kind_of(definition) == "table":  # the config file's tables have no flag
            assert f"[{definition.name}.NAME]" in text, definition.name
            continue
        assert flag_of(definition) in text, definition.name
        # argparse may break the variable's name after a hyphen; compare without spaces.
        assert env_of(definition) in text.replace("- ", "-").replace(" ", ""), definition.name
    assert "--config" in text and "127.0.0.1" in text


def test_the_command_refuses_no_auth_on_a_public_address():
    answer = run_command("--no-auth", "--host", "0.0.0.0")
    assert answer.returncode == 2
    assert answer.stderr.startswith("dockyter-server: error: --no-auth is refused on '0.0.0.0'")
    assert "Traceback" not in answer.stderr


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "dockyter-server"
    answer = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0 and "usage: dockyter-server" in answer.stdout


def test_importing_dockyter_does_not_import_the_web_framework():
    code = "import sys, dockyter, dockyter.ipython.magics, dockyter.server, dockyter.server.settings; print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert answer.stdout.strip() == "[]", answer.stderr


# -- the documentation -----------------------------------------------------------------------------


def test_docs_list_every_setting_exactly_as_defined():
    page = (ROOT / "docs" / "server.md").read_text()
    start, end = "<!-- settings:start -->\n", "<!-- settings:end -->"
    assert start in page and end in page
    table = page.split(start, 1)[1].split(end, 1)[0]
    assert table.strip() == settings_markdown().strip(), (
        "docs/server.md is out of date: replace its settings table with the output of "
        "`python -m dockyter.server.settings`"
    )
