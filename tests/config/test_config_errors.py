"""Configuration errors reach the user in one line and never break loading: a real shell and a real kernel."""

from __future__ import annotations

import re

import pytest
from kernels import start_kernel
from shells import run_cell


def test_a_value_config_refused_never_breaks_a_later_load(ipshell):
    ran = run_cell(ipshell, "%config Dockyter.backend = 'nope'")
    assert ran.stderr == (
        "Dockyter: %config: Dockyter.backend = 'nope' refused: unknown backend 'nope'; "
        "known backends: api, docker (backend stays 'docker')\n"
    )
    assert ran.error is None and "Traceback" not in ran.stdout + ran.stderr
    run_cell(ipshell, "%config Dockyter.timeout = 9")  # traitlets re-applies everything: not said twice
    assert ipshell.config.Dockyter.backend == "nope"  # IPython keeps it...
    run_cell(ipshell, "%unload_ext dockyter")
    reloaded = run_cell(ipshell, "%load_ext dockyter")
    assert reloaded.error is None, reloaded.error  # ...and loading still works
    assert reloaded.stderr.count("\n") == 1
    assert "Dockyter.backend = 'nope' refused" in reloaded.stderr and "backend stays 'docker'" in reloaded.stderr
    core = ipshell._dockyter
    assert (core.backend, core.timeout) == ("docker", 9.0)  # the good value of the same config applies
    assert core.layers.origin["backend"] == "default"


def test_a_bad_value_in_ipython_config_loads_the_extension_all_the_same(load_dockyter):
    loaded = load_dockyter(default_args="--no-image-here", timeout=5.0)
    assert loaded.stderr == (
        "Dockyter: the IPython configuration (ipython_config.py, or an earlier %config): "
        "Dockyter.default_args = '--no-image-here' refused: invalid default_args '--no-image-here': "
        "unknown docker run option '--no-image-here'; if it takes a value, write it as --no-image-here=VALUE "
        "(default_args stays '')\n"
    )
    core = loaded.magics
    assert (core.default_args, core.timeout) == ("", 5.0)
    assert (core.layers.origin["default_args"], core.layers.origin["timeout"]) == ("default", "ipython_config.py")
    assert run_cell(loaded.shell, "%docker_status").error is None


def test_a_string_for_a_list_of_words_is_split_like_a_shell(ipshell):
    core = ipshell._dockyter
    run_cell(ipshell, "%config Dockyter.shell = 'sh -c'")
    assert core.shell == ["sh", "-c"]
    run_cell(ipshell, "%config Dockyter.docker_command = 'sudo -n docker'")
    assert core.docker_command == ["sudo", "-n", "docker"]
    ran = run_cell(ipshell, "%config Dockyter.shell = 'bash \"-c'")
    assert ran.stderr.startswith("Dockyter: %config: Dockyter.shell = 'bash \"-c' refused: cannot split")
    assert core.shell == ["sh", "-c"]


# -- loaded by ipython_config.py in a real kernel ---------------------------------------------------

SITE_CONFIG = """\
c = get_config()
c.InteractiveShellApp.extensions = ["dockyter"]
c.Dockyter.default_args = "--no-image-here"
"""


@pytest.mark.kernel
def test_problems_at_a_kernels_start_reach_its_log_and_the_first_cell_using_dockyter(tmp_path):
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_config.py").write_text(SITE_CONFIG)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "dockyter.toml").write_text("[Dockyter]\ntimeot = 5\n")
    log = tmp_path / "kernel.log"
    env = {"IPYTHONDIR": str(tmp_path / "ipython"), "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    with log.open("w") as log_file:
        kernel = start_kernel(work, env, drop=("DOCKYTER_", "IPYTHON", "JUPYTER_"), stderr=log_file)
    try:
        assert kernel.run("print('not using Dockyter')").stderr == ""
        first = kernel.run("%docker_status")
        lines = first.stderr.splitlines()
        assert len(lines) == 2, first.stderr
        assert "Dockyter.default_args = '--no-image-here' refused" in lines[0]
        assert re.search(r"dockyter.toml: unknown key \[Dockyter\] timeot ignored; did you mean", lines[1]), lines[1]
        assert kernel.run("%docker_status").stderr == ""  # once
    finally:
        kernel.shutdown()
    logged = log.read_text()
    assert "Dockyter: the IPython configuration" in logged and "timeot" in logged
