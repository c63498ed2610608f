"""The layers in a real InteractiveShell: defaults < ipython_config.py < dockyter.toml < run time.

Each test writes its files in an isolated home (``config_home``), then loads the extension with
``load_dockyter(**traits)``, where ``traits`` play the part of ``c.Dockyter.<name>`` in
ipython_config.py.
"""

import re

import pytest
from shells import run_cell


def origins(magics):
    return magics.layers.origin


def config_report(shell):
    run = run_cell(shell, "%docker_config")
    assert run.error is None and run.stderr == ""
    return run.shown


def value_row(report, name):
    (row,) = [line for line in report.splitlines() if line.split()[:1] == [name]]
    return row


# -- each layer on its own -----------------------------------------------------------------------


def test_defaults_when_nothing_is_configured(load_dockyter):
    loaded = load_dockyter()
    assert loaded.stderr == ""
    assert set(origins(loaded.magics).values()) == {"default"}
    report = config_report(loaded.shell)
    assert re.search(
        r"file\s+none found; looked for .*/work/dockyter.toml, .*/home/.dockyter.toml, "
        r".*/home/.config/dockyter/config.toml\n",
        report,
    )
    assert re.search(r"timeout\s+0.0   from default", report)


def test_ipython_config_layer(load_dockyter):
    loaded = load_dockyter(timeout=7.0, shell=["sh", "-c"])
    assert (loaded.magics.timeout, loaded.magics.shell) == (7.0, ["sh", "-c"])
    assert origins(loaded.magics)["timeout"] == "ipython_config.py"
    assert origins(loaded.magics)["stop_grace"] == "default"
    assert re.search(r"shell\s+\['sh', '-c'\]   from ipython_config.py", config_report(loaded.shell))


@pytest.mark.parametrize("where", ["project", "user", "xdg"])
def test_file_layer_from_each_place(config_home, load_dockyter, where):
    path = config_home.write(getattr(config_home, where), "[Dockyter]\ntimeout = 9\n")
    loaded = load_dockyter()
    assert loaded.stderr == ""
    assert loaded.magics.timeout == 9.0
    assert origins(loaded.magics)["timeout"] == str(path)
    report = config_report(loaded.shell)
    assert re.search(rf"file\s+{re.escape(str(path))}\n", report)
    assert re.search(rf"timeout\s+9.0   from {re.escape(str(path))}", report)


def test_the_original_format_configures_the_extension(config_home, load_dockyter):
    config_home.write(
        config_home.user,
        """
        [backend]
        mode = "api"
        api_url = "http://127.0.0.1:8000"
        [docker]
        default_args = "-v /tmp:/tmp ubuntu:22.04"
        [profiles]
        local = "-v /tmp:/tmp ubuntu:22.04"
    """,
    )
    loaded = load_dockyter(cleanup_on_load=False)  # no background cleanup against a made-up API
    assert loaded.stderr == ""
    magics = loaded.magics
    assert (magics.backend, magics.api_url, magics.default_args) == (
        "api",
        "http://127.0.0.1:8000",
        "-v /tmp:/tmp ubuntu:22.04",
    )
    assert magics.redirect is False  # default_args alone does not redirect `!`, as before


def test_status_names_the_config_file(config_home, load_dockyter):
    path = config_home.write(config_home.user, "[Dockyter]\ntimeout = 9\n")
    run = run_cell(load_dockyter().shell, "%docker_status")
    assert re.search(rf"^  config file\s+{re.escape(str(path))}$", run.shown, re.M)


def test_status_says_when_there_is_no_config_file(ipshell):
    run = run_cell(ipshell, "%docker_status")
    assert re.search(r"config file\s+none found", run.shown)


# -- each precedence pair ------------------------------------------------------------------------


def test_file_beats_ipython_config_which_beats_defaults(config_home, load_dockyter):
    path = config_home.write(config_home.user, "[Dockyter]\ntimeout = 9\n")
    magics = load_dockyter(timeout=7.0, stop_grace=1.0).magics
    assert (magics.timeout, magics.stop_grace, magics.base_run_args) == (9.0, 1.0, ["--log-driver", "none"])
    assert [origins(magics)[n] for n in ("timeout", "stop_grace", "base_run_args")] == [
        str(path),
        "ipython_config.py",
        "default",
    ]


@pytest.mark.parametrize("lower", ["default", "ipython_config.py", "file"])
def test_run_time_beats_every_layer(config_home, load_dockyter, lower):
    if lower == "file":
        config_home.write(config_home.user, "[Dockyter]\ntimeout = 9\n")
    shell = load_dockyter(**({"timeout": 7.0} if lower == "ipython_config.py" else {})).shell
    run_cell(shell, "%config Dockyter.timeout = 11")
    assert shell._dockyter.timeout == 11.0
    assert origins(shell._dockyter)["timeout"] == "run time"


def test_magics_are_run_time_too(ipshell):
    run_cell(ipshell, "%docker alpine:3")
    assert origins(ipshell._dockyter)["default_args"] == "run time"
    assert origins(ipshell._dockyter)["redirect"] == "run time"
    run_cell(ipshell, "%docker_off")


def test_a_file_value_equal_to_the_default_still_shows_the_file(config_home, load_dockyter):
    path = config_home.write(config_home.user, "[Dockyter]\ntimeout = 0\n")
    assert origins(load_dockyter().magics)["timeout"] == str(path)


def test_the_token_default_comes_from_the_environment(load_dockyter, monkeypatch):
    monkeypatch.setenv("DOCKYTER_API_TOKEN", "env-secret-42")
    loaded = load_dockyter()
    assert loaded.magics.api_token == "env-secret-42"
    row = value_row(config_report(loaded.shell), "api_token")
    assert row.split(None, 1)[1] == "(set, hidden)   from environment ($DOCKYTER_API_TOKEN)"


def test_redirect_from_the_file_turns_redirection_on_at_load(config_home, load_dockyter):
    config_home.write(config_home.user, "[Dockyter]\ndefault_args = 'alpine:3'\nredirect = true\n")
    shell = load_dockyter().shell
    assert shell._dockyter._redirection.installed
    assert "system" in shell.__dict__


# -- reload --------------------------------------------------------------------------------------


def test_reload_keeps_run_time_values_and_recomputes_the_others(config_home, load_dockyter):
    path = config_home.write(
        config_home.user,
        """
        [Dockyter]
        timeout = 9
        stop_grace = 3
        shell = ["sh", "-c"]
    """,
    )
    shell = load_dockyter(stop_grace=1.0).shell
    magics = shell._dockyter
    run_cell(shell, "%config Dockyter.timeout = 11")
    config_home.write(
        path,
        """
        [Dockyter]
        timeout = 99
        shell = ["ash", "-c"]
        base_run_args = ["--init"]
    """,
    )  # stop_grace removed from the file
    run = run_cell(shell, "%docker_config reload")
    assert run.error is None
    assert (magics.timeout, magics.stop_grace, magics.shell, magics.base_run_args) == (
        11.0,
        1.0,
        ["ash", "-c"],
        ["--init"],
    )
    assert [origins(magics)[n] for n in ("timeout", "stop_grace", "shell", "base_run_args")] == [
        "run time",
        "ipython_config.py",
        str(path),
        str(path),
    ]
    assert run.stdout == (
        f"Dockyter: read {path}; changed: base_run_args, shell, stop_grace; kept run-time values of timeout\n"
    )


def test_reload_finds_a_file_created_after_load_and_falls_back_when_it_goes(config_home, load_dockyter):
    shell = load_dockyter().shell
    magics = shell._dockyter
    path = config_home.write(config_home.project, "[Dockyter]\ntimeout = 5\n")
    run_cell(shell, "%docker_config reload")
    assert (magics.timeout, origins(magics)["timeout"]) == (5.0, str(path))
    path.unlink()
    run = run_cell(shell, "%docker_config reload")
    assert (magics.timeout, origins(magics)["timeout"]) == (0.0, "default")
    assert run.stdout.startswith("Dockyter: read none found")


def test_reload_reports_problems_again(config_home, load_dockyter):
    shell = load_dockyter().shell
    config_home.write(config_home.user, "[Dockyter]\ntimout = 5\n")
    run = run_cell(shell, "%docker_config reload")
    assert "did you mean 'timeout'?" in run.stderr
    assert "did you mean 'timeout'?" in config_report(shell)  # %docker_config lists them too


def test_docker_config_refuses_other_words(ipshell):
    run = run_cell(ipshell, "%docker_config relaod")
    assert "usage: %docker_config [reload]" in str(run.error)


# -- bad input at load: one clear line, the extension loads with the other layers ----------------


def assert_one_clean_line(stderr, *fragments):
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Dockyter: ")
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_invalid_toml_still_loads_with_the_other_layers(config_home, load_dockyter):
    path = config_home.write(config_home.project, "[Dockyter]\ntimeout = 9\nshell = [\n")
    loaded = load_dockyter(stop_grace=1.0)
    assert_one_clean_line(loaded.stderr, str(path), "(at the end, after line 3)", "not valid TOML")
    assert "dockyter" in loaded.shell.extension_manager.loaded
    assert loaded.shell.find_cell_magic("docker") is not None
    assert (loaded.magics.timeout, loaded.magics.stop_grace) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[Dockyter]\ntimout = 5\n", ["warning:", "did you mean 'timeout'?"]),
        ("[Dockyter]\ntimeout = '5'\n", ["error:", "[Dockyter] timeout: expected a number, found a string ('5')"]),
        ("[Dockyter]\ntimeout = -1\n", ["error:", "[Dockyter] timeout:", "should not be less than 0.0", "not applied"]),
        (
            "[backend]\nmode = 'kubernetes'\n",
            ["error:", "[backend] mode: unknown backend 'kubernetes'; known backends: api, docker"],
        ),
        (
            "[docker]\ndefault_args = '-v /a:/a'\n",
            ["error:", "[docker] default_args: invalid default_args", "no image given"],
        ),
    ],
)
def test_each_bad_value_is_one_line_and_the_rest_applies(config_home, load_dockyter, text, fragments):
    config_home.write(config_home.user, text + "[profiles]\nok = 'alpine:3'\n")
    loaded = load_dockyter(timeout=7.0)
    assert_one_clean_line(loaded.stderr, *fragments)
    assert loaded.magics.timeout == 7.0  # a refused value leaves the layer below in force
    assert "ok" in loaded.magics.layers.file.profiles


def test_api_mode_without_api_url_is_an_error_not_a_silent_fallback(config_home, load_dockyter):
    path = config_home.write(config_home.user, "[backend]\nmode = 'api'\n")
    loaded = load_dockyter()
    assert_one_clean_line(
        loaded.stderr, "error:", str(path), '[backend] mode = "api" needs api_url', "the backend stays 'docker'"
    )
    assert loaded.magics.backend == "docker"
    assert "needs api_url" in config_report(loaded.shell)


def test_api_mode_with_api_url_from_ipython_config_is_fine(config_home, load_dockyter):
    config_home.write(config_home.user, "[backend]\nmode = 'api'\n")
    loaded = load_dockyter(api_url="https://dockyter.example.org", cleanup_on_load=False)
    assert loaded.stderr == ""
    assert loaded.magics.backend == "api"


# -- secrets are never printed -------------------------------------------------------------------

SECRET = "tok-never-shown-7f3a"


def test_a_token_in_the_project_file_warns_and_is_masked_everywhere(config_home, load_dockyter):
    config_home.write(
        config_home.project,
        f"""
        [backend]
        api_token = "{SECRET}"
        [profiles.remote]
        args = "alpine:3"
        api_token = "{SECRET}"
    """,
    )
    loaded = load_dockyter()
    assert "a secret in a project's dockyter.toml is easily committed" in loaded.stderr
    assert "$DOCKYTER_API_TOKEN" in loaded.stderr
    assert loaded.magics.api_token == SECRET  # still used
    outputs = [loaded.stdout, loaded.stderr]
    for cell in (
        "%docker_config",
        "%docker_status",
        "%config Dockyter",
        "%docker_profile",
        "%docker_config reload",
        "%docker_profile remote",
        "%docker_config",
    ):
        run = run_cell(loaded.shell, cell)
        assert run.error is None, cell
        outputs += [run.stdout, run.stderr, run.shown]
    assert not [text for text in outputs if SECRET in text]
    assert "(set, hidden)" in "".join(outputs)
    run_cell(loaded.shell, "%docker_off")


def test_config_listing_masks_the_token_and_shows_the_rest(load_dockyter, monkeypatch):
    monkeypatch.setenv("DOCKYTER_API_TOKEN", SECRET)
    run = run_cell(load_dockyter().shell, "%config Dockyter")
    assert SECRET not in run.stdout
    token_help = run.stdout.split("Dockyter.api_token=<Unicode>")[1].split("Dockyter.")[0]
    assert token_help.rstrip().endswith("Current: (set, hidden)")
    assert "Default:" not in token_help
    assert "Current: 0.0" in run.stdout.split("Dockyter.timeout=<Float>")[1]


def test_unset_token_shows_as_not_set(ipshell):
    assert value_row(config_report(ipshell), "api_token").split(None, 1)[1] == "(not set)   from default"


def test_credential_headers_are_masked_and_other_headers_shown(config_home, load_dockyter):
    config_home.write(
        config_home.user,
        f"""
        [Dockyter]
        api_headers = {{ Authorization = "Basic {SECRET}", X-Team = "data" }}
    """,
    )
    loaded = load_dockyter()
    outputs = []
    for cell in ("%docker_config", "%config Dockyter"):
        ran = run_cell(loaded.shell, cell)
        outputs += [ran.stdout, ran.stderr, ran.shown]
    assert not [text for text in outputs if SECRET in text]
    assert "{'Authorization': '(hidden)', 'X-Team': 'data'}" in outputs[2]
    assert "Current: {'Authorization': '(hidden)', 'X-Team': 'data'}" in outputs[3]
