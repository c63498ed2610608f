"""The extension in a real Jupyter kernel: live output, interrupts, errors, rich status.

Streaming and interrupts run on every engine (``engine_kernel``; rootless podman's kernel runs
as the rootless user, as that user's own notebook would); errors and the status table are the
kernel's business, tested on Docker.
"""

import re
import time

import pytest
from helpers import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.kernel]


def test_output_streams_while_the_command_runs(engine_kernel, engine_image):
    run = engine_kernel.run(f"%%docker {engine_image}\necho first; sleep 3; echo second >&2; sleep 1; echo third")
    assert run.reply["status"] == "ok", run.reply
    assert run.stdout == "first\nthird\n"
    assert run.stderr == "second\n"
    # "first" reached the notebook seconds before the command ended, not at the end
    assert run.arrival("third") - run.arrival("first") > 3
    assert run.arrival("third") - run.arrival("second") > 0.5


def test_a_progress_line_arrives_before_its_newline(engine_kernel, engine_image):
    run = engine_kernel.run(f"%%docker {engine_image}\nprintf 'working...'; sleep 2; echo ' done'")
    assert run.stdout == "working... done\n"
    assert run.arrival(" done") - run.arrival("working...") > 1.5


def test_a_failing_cell_is_one_red_line(kernel, test_image):
    run = kernel.run(f"%%docker {test_image}\nexit 3")
    assert run.reply["status"] == "error"
    assert run.reply["ename"] == "ContainerExitError"
    [error] = run.of_type("error")
    assert len(error["content"]["traceback"]) == 1
    assert "exited with status 3" in error["content"]["traceback"][0]
    assert kernel.run("print(_exit_code)").stdout == "3\n"


def test_status_renders_as_a_table(kernel, test_image):
    kernel.run(f"%docker {test_image}")
    run = kernel.run("%docker_status")
    [shown] = run.of_type("display_data")
    assert "<table>" in shown["content"]["data"]["text/html"]
    assert "Dockyter status" in shown["content"]["data"]["text/plain"]


def stopped_container(said: str) -> str:
    """The container an interrupt stopped, by the name Dockyter's one line gives."""
    found = re.search(r"interrupted: container (dockyter-\w+) stopped", said)
    assert found, said
    return found.group(1)


def test_interrupting_a_cell_stops_its_container(engine, engine_kernel, engine_image):
    kernel = engine_kernel
    msg_id = kernel.submit(f"%%docker {engine_image}\necho started; sleep 120")
    kernel.collect(msg_id, until="started")
    # (polled: under load a `docker ps` racing other runs' removals can answer with an error)
    assert wait_until(lambda: engine.containers_of(kernel.pid, running_only=True), timeout=10)
    interrupted_at = time.monotonic()
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=30)
    assert time.monotonic() - interrupted_at < 10
    assert run.reply["status"] == "error"
    assert run.reply["ename"] == "Interrupted"
    stopped = stopped_container(run.reply["evalue"])
    assert wait_until(lambda: stopped not in engine.containers_of(kernel.pid), timeout=10)
    # the kernel is ready for the next cell
    assert kernel.run(f"%%docker {engine_image}\necho next").stdout == "next\n"


def test_interrupting_a_bang_command_stops_its_container(engine, engine_kernel, engine_image):
    kernel = engine_kernel
    kernel.run(f"%docker {engine_image}")
    msg_id = kernel.submit("!echo started; sleep 120")
    kernel.collect(msg_id, until="started")
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=30)
    stopped = stopped_container(run.stderr)  # a prestarted one: `%docker IMAGE` started it at once
    assert wait_until(lambda: stopped not in engine.containers_of(kernel.pid), timeout=10)
    assert kernel.run("print(_exit_code)").stdout == "130\n"
    assert kernel.run("x = !echo fine\nprint(x)").stdout == "['fine']\n"


def test_bang_and_capture_in_a_kernel(engine_kernel, engine_image):
    kernel = engine_kernel
    kernel.run(f"%docker -e WHO=container {engine_image}")
    assert kernel.run("!echo hello $WHO").stdout == "hello container\n"
    assert kernel.run("lines = !seq 1 3\nprint(lines.l)").stdout == "['1', '2', '3']\n"
    kernel.run("%docker_off")
    assert kernel.run("!echo ${WHO:-host}").stdout.strip() == "host"  # the host's own `!` again


def test_missing_runtime_keeps_the_kernel_alive(kernel, test_image):
    kernel.run("%config Dockyter.docker_command = ['no-such-runtime']")
    run = kernel.run(f"%%docker {test_image}\necho hi")
    [error] = run.of_type("error")
    assert len(error["content"]["traceback"]) == 1
    assert "'no-such-runtime' was not found" in error["content"]["traceback"][0]
    assert kernel.run("print('alive')").stdout == "alive\n"
