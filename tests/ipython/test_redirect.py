"""`!cmd`, `x = !cmd`, `!!cmd` and %sx in containers after %docker, and back after %docker_off.

A `!` command's run, its captured output and its exit status run on every engine (``engine_cell``);
how the redirection is installed and undone is IPython's business, tested on Docker.
"""

import socket
import subprocess

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.text import SList

pytestmark = pytest.mark.docker

HOST = socket.gethostname()


def overrides(shell) -> dict:
    return {name: shell.__dict__.get(name, "<class>") for name in ("system", "getoutput")}


def test_bang_runs_in_a_container(engine_shell, engine_cell, engine_image):
    engine_cell(f"%docker {engine_image}")
    run = engine_cell("!hostname; echo err >&2")
    hostname = run.stdout.strip()
    assert hostname and hostname != HOST
    assert run.stderr == "err\n"
    assert engine_shell.user_ns["_exit_code"] == 0


def test_each_bang_gets_a_fresh_container(ip, cell, test_image):
    cell(f"%docker {test_image}")
    first = cell("!cd /tmp; touch marker; hostname").stdout
    second = cell("!ls /tmp; pwd; hostname").stdout
    assert "marker" not in second
    assert first.splitlines()[-1] != second.splitlines()[-1]


def test_captured_output_is_an_slist(engine_shell, engine_cell, engine_image):
    engine_cell(f"%docker {engine_image}")
    run = engine_cell("x = !echo one; echo two >&2; echo three")
    assert run.stdout == ""  # captured, not shown
    assert isinstance(engine_shell.user_ns["x"], SList)
    assert list(engine_shell.user_ns["x"]) == ["one", "two", "three"]  # stderr merged, in order
    assert engine_shell.user_ns["x"].n == "one\ntwo\nthree"


def test_double_bang_and_sx(ip, cell, test_image):
    cell(f"%docker {test_image}")
    ip.run_cell("y = %sx echo via sx")
    assert list(ip.user_ns["y"]) == ["via sx"]
    ip.run_cell("!!echo via double bang")
    assert list(ip.user_ns["_"]) == ["via double bang"]


def test_python_expansion(ip, cell, test_image):
    cell(f"%docker {test_image}")
    ip.user_ns["word"] = "global"
    assert cell("!echo $word {1 + 2}").stdout == "global 3\n"
    # locals of the calling frame, as IPython's own `!` sees them
    cell("def f():\n    word = 'local'\n    lines = !echo $word\n    return lines\n")
    ip.run_cell("result = f()")
    assert list(ip.user_ns["result"]) == ["local"]


def test_exit_code_and_system_raise_on_error(engine_shell, engine_cell, engine_image):
    engine_cell(f"%docker {engine_image}")
    run = engine_cell("!exit 7")
    assert run.error is None
    assert engine_shell.user_ns["_exit_code"] == 7
    engine_shell.system_raise_on_error = True
    try:
        run = engine_cell("!exit 7")
        assert isinstance(run.error, subprocess.CalledProcessError)
        assert run.error.returncode == 7
        run = engine_cell("z = !echo partial; exit 2")
        assert isinstance(run.error, subprocess.CalledProcessError)
    finally:
        engine_shell.system_raise_on_error = False


def test_off_restores_the_exact_original_shell(ip, cell, test_image):
    before = overrides(ip)
    cell(f"%docker {test_image}")
    cell(f"%docker -e A=1 {test_image}")
    cell("%docker_on")
    cell("%docker_on")
    assert overrides(ip) != before
    cell("%docker_off")
    assert overrides(ip) == before
    assert ip.system.__func__ is InteractiveShell.system_piped
    assert cell("!hostname").stdout.strip() == HOST
    cell("%docker_on")  # comes back with the last arguments
    assert cell("!echo $A").stdout == "1\n"
    cell("%docker_off")
    cell("%docker_off")
    assert overrides(ip) == before


def test_changing_default_args_applies_to_the_next_bang(ip, cell, test_image):
    cell(f"%docker -e V=first {test_image}")
    assert cell("!echo $V").stdout == "first\n"
    ip.run_line_magic("config", f"Dockyter.default_args = '-e V=second {test_image}'")
    assert cell("!echo $V").stdout == "second\n"


def test_redirect_trait_is_the_switch(ip, cell, test_image):
    ip.run_line_magic("config", f"Dockyter.default_args = '{test_image}'")
    ip.run_line_magic("config", "Dockyter.redirect = True")
    assert cell("!hostname").stdout.strip() != HOST
    ip.run_line_magic("config", "Dockyter.redirect = False")
    assert cell("!hostname").stdout.strip() == HOST


def test_docker_without_arguments_says_what_is_configured(cell, test_image):
    assert "nothing configured" in cell("%docker").stdout
    cell(f"%docker -e A=1 {test_image}")
    cell("%docker_off")
    said = cell("%docker").stdout
    assert f"-e A=1 {test_image}" in said and "off" in said


def test_docker_on_without_arguments_is_refused(cell):
    run = cell("%docker_on")
    assert "first use %docker" in run.stderr + run.stdout


def test_bad_docker_line_changes_nothing(ip, cell, test_image):
    cell(f"%docker {test_image}")
    run = cell("%docker -v")
    assert "needs a value" in run.stderr + run.stdout
    magics = ip._dockyter
    assert magics.default_args == test_image


def test_unload_restores_the_shell(ip, cell, test_image):
    before = overrides(ip)
    cell(f"%docker {test_image}")
    ip.run_line_magic("unload_ext", "dockyter")
    assert overrides(ip) == before
    assert cell("!hostname").stdout.strip() == HOST


def test_missing_runtime_is_one_line_and_the_shell_survives(ip, cell, test_image):
    cell(f"%docker {test_image}")
    ip.run_line_magic("config", "Dockyter.docker_command = ['no-such-runtime']")
    run = cell("!echo hi")
    assert run.error is None
    assert ip.user_ns["_exit_code"] == 127
    assert run.stderr.count("\n") == 1 and "'no-such-runtime' was not found" in run.stderr
    captured = cell("x = !echo hi")
    assert list(ip.user_ns["x"]) == [] and "was not found" in captured.stderr


def test_a_bang_that_cannot_start_follows_system_raise_on_error(ip, cell):
    # The one run path: _exit_code set, one line said, and CalledProcessError only when IPython asks.
    cell("%docker img:1")
    ip.run_line_magic("config", "Dockyter.docker_command = ['no-such-runtime']")
    ip.system_raise_on_error = True
    try:
        run = cell("!echo $HOME")
    finally:
        ip.system_raise_on_error = False
    assert isinstance(run.error, subprocess.CalledProcessError)
    assert (run.error.returncode, run.error.cmd) == (127, "echo $HOME")  # the line as written
    assert ip.user_ns["_exit_code"] == 127
    assert run.stderr.count("Dockyter:") == 1 and "'no-such-runtime' was not found" in run.stderr


def test_on_and_off_say_in_one_line_what_they_did(cell, test_image):
    cell(f"%docker {test_image}")
    assert (
        cell("%docker_off").stdout == "Dockyter: `!` runs on this machine again; %docker_on to run it in containers.\n"
    )
    assert (
        cell("%docker_off").stdout
        == "Dockyter: `!` already runs on this machine; %docker_on to run it in containers.\n"
    )
    assert (
        cell("%docker_on").stdout == f"Dockyter: `!` now runs in {test_image} (docker backend); %docker_off to stop.\n"
    )
    assert (
        cell("%docker_on").stdout
        == f"Dockyter: `!` already runs in {test_image} (docker backend); %docker_off to stop.\n"
    )
    cell("%docker_off")
