"""Finding and reading dockyter.toml, without a shell: dockyter.config.tomlfile and dockyter.config.profiles."""

import os

import pytest

from dockyter.config.tomlfile import find_toml_file, read_toml_file
from dockyter.core import Dockyter

TRAITS = Dockyter.class_traits(config=True)

ORIGINAL_EXAMPLE = """
    [backend]
    mode = "api"                         # "docker" or "api"
    api_url = "http://127.0.0.1:8000"    # required for "api"

    [docker]
    default_args = "-v /tmp:/tmp ubuntu:22.04"

    [profiles]
    local = "-v /tmp:/tmp ubuntu:22.04"
    ml    = "--gpus all -v /data:/data pytorch/pytorch:latest"
"""


def read(home, text, where=None):
    return read_toml_file(home.write(where or home.user, text), TRAITS)


def messages(result):
    return [str(problem) for problem in result.problems]


# -- where the file is found ---------------------------------------------------------------------


def test_no_file_anywhere(config_home):
    assert find_toml_file() == (None, [])


def test_search_order_first_existing_file_wins(config_home, tmp_path, monkeypatch):
    explicit = config_home.write(tmp_path / "elsewhere.toml", "")
    for path in (config_home.project, config_home.user, config_home.xdg):
        config_home.write(path, "")
    monkeypatch.setenv("DOCKYTER_CONFIG", str(explicit))
    order = [explicit, config_home.project, config_home.user, config_home.xdg]
    for expected in order:
        assert find_toml_file()[0] == expected
        expected.unlink()
    assert find_toml_file()[0] is None


def test_xdg_config_home_is_honoured_and_defaults_to_dot_config(config_home, tmp_path, monkeypatch):
    default_place = config_home.write(config_home.xdg, "")
    custom = config_home.write(tmp_path / "xdg" / "dockyter" / "config.toml", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert find_toml_file()[0] == custom
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert find_toml_file()[0] == default_place


def test_project_file_is_found_relative_to_the_working_directory(config_home, tmp_path, monkeypatch):
    config_home.write(config_home.project, "")
    assert find_toml_file()[0] == config_home.project
    monkeypatch.chdir(tmp_path)
    assert find_toml_file()[0] is None


def test_dockyter_config_naming_nothing_is_a_warning_and_the_search_goes_on(config_home, monkeypatch):
    config_home.write(config_home.user, "")
    monkeypatch.setenv("DOCKYTER_CONFIG", "/nonexistent/dockyter.toml")
    path, problems = find_toml_file()
    assert path == config_home.user
    assert [str(p) for p in problems] == [
        "warning: $DOCKYTER_CONFIG names /nonexistent/dockyter.toml, which is not a file; looking further"
    ]


# -- the original format and the [Dockyter] table ------------------------------------------------


def test_the_original_format_is_read_unchanged(config_home):
    result = read(config_home, ORIGINAL_EXAMPLE)
    assert result.problems == []
    assert {name: s.value for name, s in result.settings.items()} == {
        "backend": "api",
        "api_url": "http://127.0.0.1:8000",
        "default_args": "-v /tmp:/tmp ubuntu:22.04",
    }
    assert result.settings["backend"].key == "[backend] mode"
    assert {name: p.args for name, p in result.profiles.items()} == {
        "local": "-v /tmp:/tmp ubuntu:22.04",
        "ml": "--gpus all -v /data:/data pytorch/pytorch:latest",
    }


def test_the_dockyter_table_sets_any_trait_by_name(config_home):
    result = read(
        config_home,
        """
        [Dockyter]
        shell = ["sh", "-c"]
        timeout = 30
        stop_grace = 0.5
        raise_on_error = false
        docker_command = ["podman"]
        api_headers = { X-Team = "data" }
    """,
    )
    assert result.problems == []
    assert {name: s.value for name, s in result.settings.items()} == {
        "shell": ["sh", "-c"],
        "timeout": 30,
        "stop_grace": 0.5,
        "raise_on_error": False,
        "docker_command": ["podman"],
        "api_headers": {"X-Team": "data"},
    }


def test_the_same_trait_in_both_spellings_warns_and_the_dockyter_table_wins(config_home):
    result = read(
        config_home,
        """
        [Dockyter]
        default_args = "alpine:3"
        [docker]
        default_args = "ubuntu:22.04"
    """,
    )
    assert result.settings["default_args"].value == "alpine:3"
    assert messages(result) == [
        f"warning: {config_home.user}: [Dockyter] default_args and [docker] default_args both set "
        "default_args; [Dockyter] default_args is used"
    ]


def test_profile_tables_carry_args_and_overrides(config_home):
    result = read(
        config_home,
        """
        [profiles]
        plain = "alpine:3"
        [profiles.sh]
        args = "-e A=1 alpine:3"
        shell = ["sh", "-c"]
        timeout = 600
        backend = "docker"
    """,
    )
    assert result.problems == []
    assert result.profiles["plain"].values() == {"default_args": "alpine:3"}
    assert result.profiles["sh"].values() == {
        "default_args": "-e A=1 alpine:3",
        "shell": ["sh", "-c"],
        "timeout": 600,
        "backend": "docker",
    }
    assert result.profiles["sh"].summary() == "-e A=1 alpine:3; shell=['sh', '-c']; timeout=600; backend='docker'"


# -- bad input: one clear line each, the rest of the file still read -----------------------------


def test_invalid_toml_names_the_file_and_the_line(config_home):
    result = read(config_home, '[docker]\ndefault_args = "alpine:3"\ntimeout = \n')
    (line,) = messages(result)
    assert line.startswith(f"error: {config_home.user} is not valid TOML")
    assert "line 3" in line
    assert result.settings == {}


def test_a_file_that_is_not_utf8_is_one_line(config_home):
    config_home.user.write_bytes(b'[docker]\ndefault_args = "\xff"\n')
    (line,) = messages(read_toml_file(config_home.user, TRAITS))
    assert str(config_home.user) in line and line.startswith("error:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[Dockyter]\ntimout = 3\n", "unknown key [Dockyter] timout ignored; did you mean 'timeout'?"),
        ("[docker]\ndefault_arg = 'a:1'\n", "unknown key [docker] default_arg ignored; did you mean 'default_args'?"),
        ("[backend]\nmod = 'api'\n", "unknown key [backend] mod ignored; did you mean 'mode'?"),
        ("[docker]\ntimeout = 3\n", "unknown key [docker] timeout ignored; did you mean to set it in [Dockyter]?"),
        ("[docker]\ntimout = 3\n", "unknown key [docker] timout ignored; did you mean [Dockyter] timeout?"),
        ("[dockyter]\ntimeout = 3\n", "unknown table 'dockyter' ignored; did you mean 'Dockyter'?"),
        ("[profile]\na = 'b:1'\n", "unknown table 'profile' ignored; did you mean 'profiles'?"),
        ("timeout = 3\n", "unknown key 'timeout' ignored; did you mean [Dockyter] timeout?"),
        ("[zzz]\n", "unknown table 'zzz' ignored; known tables: backend, docker, profiles, Dockyter"),
    ],
)
def test_unknown_keys_and_tables_are_warnings_with_did_you_mean(config_home, text, expected):
    result = read(config_home, text + "[profiles]\nok = 'alpine:3'\n")
    assert messages(result) == [f"warning: {config_home.user}: {expected}"]
    assert "ok" in result.profiles  # the rest of the file is still used


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[Dockyter]\ntimeout = '5s'\n", "[Dockyter] timeout: expected a number, found a string ('5s')"),
        ("[Dockyter]\ntimeout = true\n", "[Dockyter] timeout: expected a number, found a boolean (True)"),
        ("[Dockyter]\nshell = 'sh -c'\n", "[Dockyter] shell: expected an array of strings, found a string ('sh -c')"),
        (
            "[Dockyter]\nshell = ['sh', 1]\n",
            "[Dockyter] shell: expected an array of strings, found an array (['sh', 1])",
        ),
        ("[Dockyter]\nredirect = 'yes'\n", "[Dockyter] redirect: expected true or false, found a string ('yes')"),
        (
            "[Dockyter]\napi_headers = { A = 1 }\n",
            "[Dockyter] api_headers: expected a table of strings, found a table ({'A': 1})",
        ),
        ("[backend]\nmode = 2\n", "[backend] mode: expected a string, found an integer (2)"),
        ("[docker]\ndefault_args = ['a:1']\n", "[docker] default_args: expected a string, found an array (['a:1'])"),
    ],
)
def test_a_wrong_type_names_the_key_what_was_expected_and_what_was_found(config_home, text, expected):
    result = read(config_home, text)
    assert messages(result) == [f"error: {config_home.user}: {expected}; not applied"]
    assert result.settings == {}


def test_a_table_where_a_value_is_expected_and_the_reverse(config_home):
    result = read(config_home, "docker = 'alpine:3'\n[Dockyter]\ntimeout = { a = 1 }\n")
    assert messages(result) == [
        f"error: {config_home.user}: 'docker' must be a table ([docker]), found a string ('alpine:3')",
        f"error: {config_home.user}: [Dockyter] timeout: expected a number, found a table ({{'a': 1}}); not applied",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[profiles]\nbad = '-v'\n", "[profiles] bad cannot be used: args: -v (--volume) needs a value"),
        (
            "[profiles]\nbad = 3\n",
            "[profiles] bad cannot be used: expected a string of docker arguments or a table, found an integer (3)",
        ),
        (
            "[profiles.bad]\nshell = ['sh', '-c']\n",
            "[profiles.bad] cannot be used: no args (the docker arguments ending with the image)",
        ),
        (
            "[profiles.bad]\nargs = 'a:1'\ntimeout = '1m'\n",
            "[profiles.bad] cannot be used: timeout: expected a number, found a string ('1m')",
        ),
    ],
)
def test_a_broken_profile_is_one_error_and_remembered_as_broken(config_home, text, expected):
    result = read(config_home, text + "good = 'alpine:3'\n" if text.startswith("[profiles]\n") else text)
    assert messages(result) == [f"error: {config_home.user}: {expected}"]
    assert "bad" in result.broken_profiles and "bad" not in result.profiles


def test_an_unknown_profile_key_is_a_warning_and_the_profile_still_works(config_home):
    result = read(config_home, "[profiles.p]\nargs = 'alpine:3'\nshel = ['sh', '-c']\nredirect = true\n")
    assert messages(result) == [
        f"warning: {config_home.user}: [profiles.p]: unknown key 'shel' ignored; did you mean 'shell'?",
        f"warning: {config_home.user}: [profiles.p]: redirect ignored: %docker_profile turns redirection on, "
        "%%docker --profile does not need it",
    ]
    assert result.profiles["p"].values() == {"default_args": "alpine:3"}


# -- secrets -------------------------------------------------------------------------------------


def test_a_token_in_the_project_file_is_a_warning_but_still_used(config_home):
    result = read(config_home, "[backend]\napi_token = 'tok-123'\n", where=config_home.project)
    (line,) = messages(result)
    assert line.startswith(
        f"warning: {config_home.project}: [backend] api_token: a secret in a project's dockyter.toml"
    )
    assert "it belongs in $DOCKYTER_API_TOKEN or your own ~/.dockyter.toml" in line
    assert "tok-123" not in line
    assert result.settings["api_token"].value == "tok-123"


def test_a_token_in_a_project_profile_is_a_warning_too(config_home, monkeypatch):
    monkeypatch.setenv("DOCKYTER_CONFIG", "dockyter.toml")  # the same file, named explicitly
    result = read(config_home, "[profiles.remote]\nargs = 'a:1'\napi_token = 'tok-123'\n", where=config_home.project)
    (line,) = messages(result)
    assert "[profiles.remote] api_token: a secret" in line


def test_a_token_in_the_users_own_file_is_fine(config_home):
    result = read(config_home, "[Dockyter]\napi_token = 'tok-123'\n")
    assert result.problems == []


def test_a_wrong_type_for_a_secret_never_shows_its_value(config_home):
    result = read(config_home, "[Dockyter]\napi_token = 123456789\n")
    assert messages(result) == [
        f"error: {config_home.user}: [Dockyter] api_token: expected a string, found an integer; not applied"
    ]


def test_nothing_is_read_from_the_real_home(config_home):
    assert os.environ["HOME"] == str(config_home.home)
