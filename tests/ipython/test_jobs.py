"""Background jobs (``%%docker --bg``, ``%docker_jobs``) in a real kernel: the cell returns at once,
the streams and the handle are the variables asked for, stopping stops the container, and nothing
is left when the kernel ends, even killed."""

from __future__ import annotations

import os
import re
import signal

import pytest
from helpers import docker, wait_until
from kernels import containers_of, start_kernel
from shells import run_cell

pytestmark = [pytest.mark.docker, pytest.mark.kernel]


def exists(name: str) -> bool:
    return docker("container", "inspect", name).returncode == 0


def job_container(run) -> str:
    found = re.search(r"container (dockyter-[0-9a-f]+)\)", run.stdout)
    assert found, run.stdout
    return found.group(1)


def complete_in(kernel, code: str) -> list[str]:
    """The matches of a TAB at the end of ``code``, as Jupyter asks for them."""
    msg_id = kernel.client.complete(code, len(code))
    while True:
        reply = kernel.client.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            return list(reply["content"]["matches"])


def listing(kernel) -> list[list[str]]:
    [table] = kernel.run("%docker_jobs").of_type("display_data")
    return [re.split(r"\s{2,}", row) for row in table["content"]["data"]["text/plain"].splitlines()[1:]]


def test_a_background_cell_returns_at_once_with_its_streams_and_handle(kernel, test_image, no_leftover_containers):
    started = kernel.run(
        f"%%docker --bg --out log --err errors --proc job {test_image}\n"
        "echo started; sleep 3; echo late; echo complaint >&2; exit 3"
    )
    container = job_container(started)
    assert started.stdout == (
        f"Dockyter: job 1 runs in the background ({test_image}, container {container}); log, errors, job set; "
        "%docker_jobs lists it, %docker_jobs stop 1 stops it\n"
    )
    assert started.reply["status"] == "ok" and started.stderr == ""
    [row] = listing(kernel)
    assert row[:3] == ["1", "running", test_image] and row[-1] == container
    assert kernel.run("print(job.running, job.returncode)").stdout == "True None\n"
    assert kernel.run("print(job.wait(60))").stdout == "3\n"
    ended = kernel.run("print(repr(str(log)), repr(errors.read()), repr(errors.read()), job.state)")
    assert ended.stdout == "'started\\nlate\\n' 'complaint\\n' '' exited 3\n"
    assert listing(kernel)[0][1] == "exited 3"
    assert wait_until(lambda: not exists(container), timeout=15)


def test_stopping_a_job_stops_its_container(kernel, test_image, no_leftover_containers):
    first = job_container(kernel.run(f"%%docker --bg --proc sleeper {test_image}\necho up; sleep 300"))
    second = f"dockyter-test-job-{os.getpid()}"  # the user's --name is honoured, as in a cell
    named = kernel.run(f"%%docker --bg --name {second} {test_image}\nsleep 300")
    assert f"container {second})" in named.stdout
    assert complete_in(kernel, "%docker_jobs stop ") == ["1", "2", "--all"]
    assert wait_until(lambda: len(containers_of(kernel.pid, running_only=True)) == 2, timeout=30)
    assert listing(kernel)[1][-1] == second and exists(second)
    stopped = kernel.run("%docker_jobs stop 1")
    assert stopped.stdout == f"Dockyter: job 1 stopped (exit status 130); container {first} removed\n"
    assert not exists(first)
    assert kernel.run("print(sleeper.returncode, sleeper.state, repr(sleeper.stdout.text))").stdout == (
        "130 stopped (130) 'up\\n'\n"
    )
    assert kernel.run("%docker_jobs stop 1").stdout == "Dockyter: job 1 had already ended: stopped (130)\n"
    assert kernel.run("%docker_jobs stop --all").stdout == "Dockyter: stopped 1 job(s): 2\n"
    assert not exists(second)
    assert kernel.run("%docker_jobs stop 7").stderr == (
        "UsageError: %docker_jobs: no job '7' (jobs: 1, 2); %docker_jobs lists them\n"
    )


def test_what_does_not_go_with_bg_is_one_line(kernel, test_image):
    lines = {
        "--bg --session s": "--bg runs a fresh container in the background; a session runs one cell at a time: "
        "use --bg without --session, or `cmd &` in the session",
        f"--proc p {test_image}": "--proc VAR names a background job's handle: give --bg with it",
        f"--bg --tee --out o {test_image}": "--tee shows the output as it streams; a background job's output is kept, "
        "not shown",
    }
    for options, said in lines.items():
        assert kernel.run(f"%%docker {options}\ntrue").stderr == f"UsageError: %%docker: {said}\n", options
    assert kernel.run("%docker_jobs").stdout == "Dockyter: no background jobs; %%docker --bg IMAGE starts one\n"
    kernel.run("%docker_backend api http://127.0.0.1:9")
    assert kernel.run(f"%%docker --bg {test_image}\ntrue").stderr == (
        "UsageError: --bg runs a container of the docker backend in the background; the api backend's runs "
        "are its server's: run the cell without --bg\n"
    )
    kernel.run("%docker_backend docker")
    assert [item for item in complete_in(kernel, "%docker_jobs ")] == ["stop"]


def test_a_kernel_shutdown_stops_its_jobs(tmp_path, test_image):
    kernel = start_kernel(tmp_path, {"HOME": str(tmp_path)})
    try:
        kernel.run("%load_ext dockyter")
        container = job_container(kernel.run(f"%%docker --bg {test_image}\nsleep 300"))
        assert wait_until(lambda: exists(container), timeout=30)
        kernel.client.shutdown()  # a clean shutdown request, as Jupyter sends it
        wait_until(lambda: not kernel.manager.is_alive(), timeout=30)
    finally:
        kernel.shutdown()
    assert wait_until(lambda: not exists(container), timeout=15)


def test_the_jobs_of_a_killed_kernel_are_cleaned_up(tmp_path, ip, test_image):
    kernel = start_kernel(tmp_path, {"HOME": str(tmp_path)})
    try:
        kernel.run("%load_ext dockyter")
        container = job_container(kernel.run(f"%%docker --bg {test_image}\nsleep 300"))
        assert wait_until(lambda: exists(container), timeout=30)
        os.kill(kernel.pid, signal.SIGKILL)
        wait_until(lambda: not kernel.manager.is_alive(), timeout=10)
    finally:
        kernel.shutdown()
        kernel.manager.cleanup_resources()
    run = run_cell(ip, "%docker_cleanup")  # as the next load does, in the background
    assert container in run.stdout, run.stdout
    assert wait_until(lambda: not exists(container), timeout=15)
