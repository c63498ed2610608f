"""Prestarted containers through a real kernel: fresh for every command, as a cold run, stopped, let go.

``WARM`` in a command prints whether it ran in a prestarted container (its parent is then the
waiter, not the init), so each test knows which path it checked.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import docker, wait_until
from kernels import Kernel, containers_of, start_kernel

from dockyter.wire.sessionprotocol import new_token

pytestmark = [pytest.mark.docker, pytest.mark.kernel]

WARM = 'if [ "$PPID" = 1 ]; then echo cold; else echo warm; fi'
PROBE = "env | grep -v ^HOSTNAME= | sort; id; pwd; umask; ls -l /proc/self/fd/0 | sed 's/.* 0 ->/0 ->/'"
# Seconds within which a killed kernel's prestarted containers are gone (docs/user-guide.md).
KILLED_KERNEL_BOUND = 10.0


def status(kernel: Kernel) -> str:
    [shown] = kernel.run("%docker_status").of_type("display_data")
    return str(shown["content"]["data"]["text/plain"])


def wait_ready(kernel: Kernel, what: str, count: int = 1) -> str:
    """Until ``%docker_status`` says ``count`` ready for a line naming ``what``; its text."""
    pattern = re.compile(rf"prestarted\s+{count} ready(, \d starting)?: .*{re.escape(what)}")
    text = wait_until(lambda: (lambda shown: shown if pattern.search(shown) else "")(status(kernel)), timeout=60)
    assert text, status(kernel)
    return text


def bang(kernel: Kernel, command: str) -> str:
    run = kernel.run(f"_out = !{command}\nprint('\\n'.join(_out))")
    assert run.reply["status"] == "ok", run.reply
    return run.stdout


def test_each_bang_command_gets_a_fresh_prestarted_container(kernel, test_image):
    kernel.run(f"%docker {test_image}")
    shown = wait_ready(kernel, test_image)
    assert "! runs cold" not in shown
    first = bang(kernel, f"touch /tmp/left-behind; hostname; {WARM}").split()
    wait_ready(kernel, test_image)
    second = bang(kernel, f"ls /tmp/left-behind 2>/dev/null || echo absent; hostname; {WARM}").split()
    assert first[1] == second[2] == "warm"
    assert second[0] == "absent" and first[0] != second[1]


def test_what_a_command_sees_equals_a_cold_run(kernel, test_image, tmp_path):
    line = f"--user 65534:65534 --workdir /tmp -e STAGE=dev -v {tmp_path}:/data:ro {test_image}"
    kernel.run("%config Dockyter.prestart = 0")
    kernel.run(f"%docker {line}")
    cold = bang(kernel, f"{PROBE}; {WARM}")
    kernel.run("%config Dockyter.prestart = 1")  # `!`'s line gets one at once
    wait_ready(kernel, test_image)
    warm = bang(kernel, f"{PROBE}; {WARM}")
    assert cold.endswith("cold\n") and warm.endswith("warm\n")
    assert "uid=65534" in cold and "STAGE=dev" in cold and "\n/tmp\n" in cold and "0 -> /dev/null" in cold
    assert warm.removesuffix("warm\n") == cold.removesuffix("cold\n")


def test_a_cell_line_that_repeats_runs_prestarted_from_its_second_run(kernel, test_image):
    cell = f"%%docker -e LINE=repeats {test_image}\necho $LINE; {WARM}"
    assert kernel.run(cell).stdout == "repeats\ncold\n"
    wait_ready(kernel, "LINE=repeats")
    assert kernel.run(cell).stdout == "repeats\nwarm\n"


def stopped_container(said: str) -> str:
    found = re.search(r"container (dockyter-\w+) stopped", said)
    assert found, said
    return found.group(1)


def test_an_interrupt_stops_a_prestarted_cell(kernel, test_image):
    kernel.run(f"%%docker {test_image}\ntrue")
    wait_ready(kernel, test_image)
    msg_id = kernel.submit(f"%%docker {test_image}\n{WARM}; sleep 120; echo never")
    kernel.collect(msg_id, until="warm")
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=30)
    assert run.reply["ename"] == "Interrupted" and "never" not in run.stdout
    stopped = stopped_container(run.reply["evalue"])
    assert wait_until(lambda: stopped not in containers_of(kernel.pid), timeout=15)
    assert kernel.run("print(_exit_code)").stdout == "130\n"


def test_a_timeout_stops_a_prestarted_cell(kernel, test_image):
    kernel.run(f"%%docker --timeout 1 {test_image}\ntrue")
    wait_ready(kernel, test_image)
    started = time.monotonic()
    run = kernel.run(f"%%docker --timeout 1 {test_image}\n{WARM}; sleep 120; echo never")
    assert time.monotonic() - started < 15
    assert run.stdout.startswith("warm\n") and "never" not in run.stdout
    stopped = stopped_container(run.reply["evalue"])
    assert wait_until(lambda: stopped not in containers_of(kernel.pid), timeout=15)
    assert kernel.run("print(_exit_code)").stdout == "124\n"


@pytest.fixture
def rebuild(tmp_path: Path, test_image: str) -> Iterator[Callable[[str, str], None]]:
    """``rebuild(tag, version)``: an image FROM the test image whose /version says ``version``."""
    tags: set[str] = set()

    def build(tag: str, version: str) -> None:
        folder = tmp_path / version
        folder.mkdir()
        (folder / "Dockerfile").write_text(f"FROM {test_image}\nRUN echo {version} > /version\n")
        answer = docker("build", "-q", "-t", tag, str(folder), timeout=300)
        assert answer.returncode == 0, answer.stderr
        tags.add(tag)

    yield build
    if tags:
        docker("rmi", "-f", *tags)


def test_an_image_rebuilt_under_its_tag_is_used_at_once(kernel, rebuild):
    tag = f"dockyter-test/prestart-{new_token()[:8]}:1"
    rebuild(tag, "one")
    kernel.run(f"%docker {tag}")
    wait_ready(kernel, tag)
    rebuild(tag, "two")
    assert bang(kernel, f"cat /version; {WARM}") == "two\ncold\n"
    wait_ready(kernel, tag)
    assert bang(kernel, f"cat /version; {WARM}") == "two\nwarm\n"


def test_docker_off_lets_the_prestarted_containers_go(kernel, test_image):
    kernel.run(f"%docker {test_image}")
    wait_ready(kernel, test_image)
    assert containers_of(kernel.pid)
    kernel.run("%docker_off")
    assert wait_until(lambda: not containers_of(kernel.pid), timeout=15)


def test_a_changed_setting_lets_the_old_containers_go_and_unload_leaves_nothing(kernel, test_image):
    kernel.run(f"%docker {test_image}")
    wait_ready(kernel, test_image)
    before = set(containers_of(kernel.pid))
    assert before
    kernel.run("%config Dockyter.here = True")  # every line now mounts the kernel's folder and starts there
    assert wait_until(lambda: not before & set(containers_of(kernel.pid)), timeout=15)
    wait_ready(kernel, test_image)
    cwd = kernel.run("import os; print(os.getcwd())").stdout.strip()
    assert bang(kernel, f"pwd; {WARM}") == f"{cwd}\nwarm\n"
    kernel.run("%unload_ext dockyter")
    assert wait_until(lambda: not containers_of(kernel.pid), timeout=15)


def test_a_killed_kernel_leaves_nothing_behind(tmp_path, test_image):
    kernel = start_kernel(tmp_path, {"HOME": str(tmp_path), "DOCKYTER_CONFIG": ""})
    try:
        kernel.run("%load_ext dockyter")
        kernel.run(f"%docker {test_image}")
        kernel.run(f"%%docker -e OTHER=line {test_image}\ntrue")  # a cell's line: one for its next run
        wait_ready(kernel, test_image)
        wait_ready(kernel, "OTHER=line")
        kernel.run(f"%%docker -e THIRD=line {test_image}\ntrue")  # its container is still starting below
        assert len(containers_of(kernel.pid)) >= 2
        os.kill(kernel.pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: not kernel.manager.is_alive(), timeout=10)
    finally:
        kernel.shutdown()
        kernel.manager.cleanup_resources()
    # Nobody cleans up: each waiting container reads end-of-file on its stdin and ends itself.
    assert wait_until(lambda: not containers_of(kernel.pid), timeout=KILLED_KERNEL_BOUND, interval=0.2)
    print(f"gone {time.monotonic() - killed:.1f} s after the kill")


def test_an_api_cell_runs_in_a_container_the_server_prestarted(kernel, dockyter_server, test_image):
    server = dockyter_server(prestart=1)
    kernel.run(f"%config Dockyter.api_token = {server.token!r}")
    assert kernel.run(f"%docker_backend api {server.url}").reply["status"] == "ok"
    cell = f"%%docker {test_image}\nls /tmp/left-behind 2>/dev/null || echo absent; touch /tmp/left-behind; {WARM}"
    assert kernel.run(cell).stdout == "absent\ncold\n"
    prestarts = server.executor.prestarts
    assert wait_until(lambda: prestarts.counts("tester")["ready"], timeout=60)
    assert re.search(r"prestarted \(server\)\s+1 ready", status(kernel)), status(kernel)
    assert kernel.run(cell).stdout == "absent\nwarm\n"
    assert prestarts.served == 1
