"""%docker_profile and %%docker --profile, with profiles from dockyter.toml."""

import subprocess

import pytest
from shells import run_cell

PROFILES = """
    [profiles]
    local = "-v /tmp:/tmp ubuntu:22.04"
    broken = "-v"
    [profiles.small]
    args = "-e MODE=small alpine:3"
    shell = ["sh", "-c"]
    timeout = 60
    raise_on_error = false
"""


@pytest.fixture
def shell(config_home, load_dockyter):
    config_home.write(config_home.user, PROFILES)
    loaded = load_dockyter(timeout=7.0)
    assert "[profiles] broken cannot be used" in loaded.stderr
    return loaded.shell


def magics_of(shell):
    return shell._dockyter


# -- %docker_profile -----------------------------------------------------------------------------


def test_listing_shows_each_profile_with_what_it_sets(shell, config_home):
    ran = run_cell(shell, "%docker_profile")
    assert ran.error is None
    assert ran.shown.splitlines() == [
        f"Profiles in {config_home.user}",
        "  local   -v /tmp:/tmp ubuntu:22.04",
        "  small   -e MODE=small alpine:3; shell=['sh', '-c']; timeout=60; raise_on_error=False",
        "  broken  cannot be used: args: -v (--volume) needs a value",
    ]


def test_listing_without_profiles_says_where_to_define_them(ipshell):
    ran = run_cell(ipshell, "%docker_profile")
    assert ran.stdout.startswith("Dockyter: no profiles; define them under [profiles] in dockyter.toml")


def test_applying_a_profile_works_like_docker_args_plus_its_overrides(shell):
    magics = magics_of(shell)
    ran = run_cell(shell, "%docker_profile small")
    assert ran.error is None
    assert ran.stdout == "Dockyter: profile 'small': `!` now runs in alpine:3 (docker backend); %docker_off to stop.\n"
    assert (magics.default_args, magics.shell, magics.timeout, magics.raise_on_error, magics.redirect) == (
        "-e MODE=small alpine:3",
        ["sh", "-c"],
        60.0,
        False,
        True,
    )
    assert magics.layers.origin["timeout"] == "run time (%docker_profile small)"
    assert magics.layers.origin["redirect"] == "run time (%docker_profile small)"
    run_cell(shell, "%docker_off")


def test_a_string_profile_is_exactly_docker_args(shell):
    magics = magics_of(shell)
    run_cell(shell, "%docker_profile local")
    after_profile = (magics.default_args, magics.shell, magics.timeout, magics.redirect)
    run_cell(shell, "%docker -v /tmp:/tmp ubuntu:22.04")
    assert after_profile == (magics.default_args, magics.shell, magics.timeout, magics.redirect)
    run_cell(shell, "%docker_off")


def test_profile_values_survive_a_reload(shell):
    magics = magics_of(shell)
    run_cell(shell, "%docker_profile small")
    run_cell(shell, "%docker_config reload")
    assert (magics.default_args, magics.timeout) == ("-e MODE=small alpine:3", 60.0)
    run_cell(shell, "%docker_off")


def test_profile_off_gives_back_exactly_the_values_underneath(shell):
    magics = magics_of(shell)
    before = (magics.default_args, magics.shell, magics.timeout, magics.raise_on_error, magics.redirect)
    origins = dict(magics.layers.origin)
    run_cell(shell, "%docker_profile small")
    ran = run_cell(shell, "%docker_profile --off")
    assert ran.stdout == (
        "Dockyter: profile 'small' dropped (default_args, shell, timeout, raise_on_error back as before); "
        "`!` runs on this machine again.\n"
    )
    assert (magics.default_args, magics.shell, magics.timeout, magics.raise_on_error, magics.redirect) == before
    assert magics.layers.origin == origins  # 7 s from the IPython config is again "ipython_config.py"
    assert run_cell(shell, "%docker_profile --off").stdout == "Dockyter: no profile is active.\n"


def test_switching_profiles_replaces_the_previous_overrides(shell):
    magics = magics_of(shell)
    run_cell(shell, "%docker_profile small")
    ran = run_cell(shell, "%docker_profile local")
    assert ran.error is None
    # small's shell, timeout and raise_on_error are gone: local sets none of them
    assert (magics.default_args, magics.shell, magics.timeout, magics.raise_on_error) == (
        "-v /tmp:/tmp ubuntu:22.04",
        ["bash", "-lc"],
        7.0,
        True,
    )
    assert magics.layers.active_profile.name == "local"
    run_cell(shell, "%docker_profile --off")
    assert magics.default_args == "" and magics.redirect is False


def test_docker_off_drops_the_profile_and_says_so(shell):
    magics = magics_of(shell)
    run_cell(shell, "%docker_profile small")
    ran = run_cell(shell, "%docker_off")
    assert ran.stdout == (
        "Dockyter: `!` runs on this machine again; profile 'small' dropped (default_args, shell, "
        "timeout, raise_on_error back as before); %docker_on to run it in containers.\n"
    )
    assert (magics.shell, magics.timeout, magics.redirect) == (["bash", "-lc"], 7.0, False)


def test_a_value_changed_after_the_profile_is_kept_when_it_is_dropped(shell):
    magics = magics_of(shell)
    run_cell(shell, "%docker_profile small")
    run_cell(shell, "%config Dockyter.timeout = 99")
    run_cell(shell, "%docker_profile --off")
    assert magics.timeout == 99.0 and magics.shell == ["bash", "-lc"]


def test_status_shows_the_active_profile(shell):
    run_cell(shell, "%docker_profile small")
    assert "small (%docker_profile --off drops it)" in run_cell(shell, "%docker_status").shown
    run_cell(shell, "%docker_profile --off")
    status = run_cell(shell, "%docker_status").shown
    assert "profile" in status and "small" not in status


def test_an_unknown_profile_lists_them_and_names_the_closest(shell, config_home):
    ran = run_cell(shell, "%docker_profile smal")
    assert str(ran.error) == (
        f"unknown profile 'smal'; did you mean 'small'? (profiles in {config_home.user}: local, small)"
    )
    assert magics_of(shell).redirect is False


def test_a_broken_profile_says_why(shell, config_home):
    ran = run_cell(shell, "%docker_profile broken")
    assert str(ran.error) == f"profile 'broken' in {config_home.user} cannot be used: args: -v (--volume) needs a value"


def test_without_a_file_there_are_no_profiles(ipshell):
    ran = run_cell(ipshell, "%docker_profile local")
    assert str(ran.error) == "unknown profile 'local': no dockyter.toml was found, so there are no profiles"


def test_a_value_the_trait_refuses_changes_nothing(config_home, load_dockyter):
    config_home.write(
        config_home.user,
        """
        [profiles.odd]
        args = "alpine:3"
        shell = ["sh", "-c"]
        backend = "kubernetes"
    """,
    )
    magics = load_dockyter().magics
    ran = run_cell(magics.ipython, "%docker_profile odd")
    assert "profile 'odd': unknown backend 'kubernetes'" in str(ran.error)
    assert (magics.default_args, magics.shell, magics.backend, magics.redirect) == (
        "",
        ["bash", "-lc"],
        "docker",
        False,
    )
    assert set(magics.layers.origin.values()) == {"default"}


# -- %%docker --profile: one cell only -------------------------------------------------------------


def test_a_cell_runs_with_the_profile_and_everything_is_restored(shell, recording_backend):
    magics = magics_of(shell)
    run_cell(shell, "%config Dockyter.backend = 'recording'")
    before = {name: getattr(magics, name) for name in magics.layers.traits}
    origins_before = dict(magics.layers.origin)
    ran = run_cell(shell, "%%docker --profile small\necho hi")
    assert ran.error is None
    ((request, seen),) = recording_backend.requests
    assert (str(request.args), request.shell, request.timeout, request.command) == (
        "-e MODE=small alpine:3",
        ("sh", "-c"),
        60.0,
        "echo hi\n",
    )
    assert seen == {
        "default_args": "-e MODE=small alpine:3",
        "shell": ["sh", "-c"],
        "timeout": 60.0,
        "raise_on_error": False,
    }
    assert {name: getattr(magics, name) for name in magics.layers.traits} == before
    assert magics.layers.origin == origins_before


def test_the_profile_is_restored_when_the_cell_fails(shell, recording_backend, config_home, load_dockyter):
    config_home.write(config_home.user, "[profiles.strict]\nargs = 'alpine:3'\nraise_on_error = true\ntimeout = 5\n")
    magics = load_dockyter(backend="recording", raise_on_error=False).magics
    recording_backend.exit_code = 3
    ran = run_cell(magics.ipython, "%%docker --profile strict\nfalse")
    assert isinstance(ran.error, subprocess.CalledProcessError) and ran.error.returncode == 3
    assert (magics.raise_on_error, magics.timeout, magics.default_args) == (False, 0.0, "")


def test_a_cell_option_still_beats_the_profile(shell, recording_backend):
    run_cell(shell, "%config Dockyter.backend = 'recording'")
    run_cell(shell, "%%docker --timeout 2 --profile small\ntrue")
    ((request, _),) = recording_backend.requests
    assert request.timeout == 2.0


def test_a_profile_and_docker_args_together_are_refused(shell):
    ran = run_cell(shell, "%%docker --profile small alpine:3\ntrue")
    assert "--profile NAME replaces the docker arguments: give one or the other" in str(ran.error)


def test_an_unknown_profile_in_a_cell_is_refused_before_anything_runs(shell, recording_backend):
    run_cell(shell, "%config Dockyter.backend = 'recording'")
    ran = run_cell(shell, "%%docker --profile lcoal\ntrue")
    assert "did you mean 'local'?" in str(ran.error)
    assert recording_backend.requests == []


@pytest.mark.docker
def test_a_profile_cell_in_a_real_container(config_home, load_dockyter, test_image):
    config_home.write(
        config_home.user,
        f"""
        [profiles.posix]
        args = "-e GREETING=hello {test_image}"
        shell = ["sh", "-c"]
    """,
    )
    magics = load_dockyter().magics
    ran = run_cell(magics.ipython, '%%docker --profile posix\necho "$GREETING from $0"')
    assert ran.error is None, ran.stderr
    assert ran.stdout == "hello from sh\n"
    assert magics.shell == ["bash", "-lc"]
