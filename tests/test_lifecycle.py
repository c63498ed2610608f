"""`docker run` flags and the promise that no container outlives its run: a real shell, engine and kernel.

Which flags are refused is Dockyter's own (tested on Docker); a container named by the user is
run, stopped and removed by the engine, on every engine.
"""

from __future__ import annotations

import secrets

import pytest
from helpers import wait_until

pytestmark = pytest.mark.docker


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ("-d", "-d refused: a run waits for its container and removes it at the end"),
        ("--detach=true", "--detach=true refused: a run waits"),
        ("--rm=false", "--rm=false refused: Dockyter removes every container it starts"),
        ("--restart always", "--restart always refused: Dockyter removes every container"),
        ("-it", "-i and -t refused: a cell has no keyboard input and no terminal to give the container; drop both"),
        ("-i -t", "-i and -t refused: a cell has no keyboard input and no terminal"),
        ("-i", "-i refused: a cell has no keyboard input"),
        ("-t", "-t refused: a cell has no terminal to give the container"),
    ],
)
def test_flags_that_would_leave_a_container_are_refused_in_one_line(
    cell, ip, test_image, flags, says, no_leftover_containers
):
    run = cell(f"%%docker {flags} {test_image}\necho never")
    assert says in str(run.error), run.error
    assert "\n" not in str(run.error) and "Traceback" not in run.stdout + run.stderr
    assert "never" not in run.stdout
    line = cell(f"%docker {flags} {test_image}")  # refused when set, not at the first `!`
    assert says in str(line.error)
    assert ip._dockyter.redirect is False


def test_restart_no_and_rm_are_fine(cell, test_image, no_leftover_containers):
    assert cell(f"%%docker --restart no --rm {test_image}\necho fine").stdout == "fine\n"


def test_a_refused_flag_in_default_args_is_said_by_each_bang_command(cell, ip, test_image):
    ip.run_line_magic("config", f"Dockyter.default_args = '-d {test_image}'")
    ip.run_line_magic("config", "Dockyter.redirect = True")
    run = cell("!echo never")
    assert "Dockyter: -d refused" in run.stderr and "never" not in run.stdout
    ip.run_line_magic("config", "Dockyter.redirect = False")


def test_a_chosen_name_is_the_container_that_runs_and_goes(engine, engine_cell, engine_image):
    name = f"mine-{secrets.token_hex(3)}"
    run = engine_cell(f"%%docker --name {name} {engine_image}\ncat /etc/hostname >/dev/null; echo ran")
    assert run.stdout == "ran\n"
    assert wait_until(lambda: not engine.exists(name))


def test_a_timeout_stops_the_chosen_name(engine, engine_cell, engine_image):
    name = f"mine-{secrets.token_hex(3)}"
    run = engine_cell(f"%%docker --timeout 2 --no-raise-error --name {name} {engine_image}\nsleep 60")
    assert f"container {name} stopped" in run.stderr
    assert not engine.exists(name)


def test_a_name_taken_by_another_container_did_not_start_and_the_other_is_untouched(engine, engine_cell, engine_image):
    name = f"theirs-{secrets.token_hex(3)}"
    assert engine.run("create", "--name", name, engine_image, "true").returncode == 0
    try:
        run = engine_cell(f"%%docker --name {name} {engine_image}\necho never")
        # Docker: "Conflict. The container name ... is already in use"; podman: "... name "X" is already in use"
        assert str(run.error).startswith("the container did not start: "), run.error
        assert "already in use" in str(run.error)
        assert engine.exists(name)
    finally:
        engine.remove(name)


@pytest.mark.kernel
def test_interrupting_a_named_container_stops_that_name(engine, engine_kernel, engine_image):
    kernel = engine_kernel
    name = f"mine-{secrets.token_hex(3)}"
    msg_id = kernel.submit(f"%%docker --name {name} {engine_image}\necho started; sleep 120")
    kernel.collect(msg_id, until="started")
    assert wait_until(lambda: engine.containers_of(kernel.pid, running_only=True), timeout=10)
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=30)
    assert run.reply["ename"] == "Interrupted"
    [error] = run.of_type("error")
    assert f"container {name} stopped" in error["content"]["traceback"][0]
    assert wait_until(lambda: not engine.exists(name), timeout=10)
    assert not engine.containers_of(kernel.pid)
