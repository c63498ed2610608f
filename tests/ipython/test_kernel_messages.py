"""One message per problem, in our words, as a user meets it in a real kernel.

Docker's own complaint is said once, in the red line (never also as its raw usage text); the
most common docker habits (``-it``, ``-v $PWD:/work``) get one line that names what they
wrote; a bad setting is one sentence, not traitlets' text.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from helpers import docker
from kernels import Execution, Kernel, start_kernel

pytestmark = [pytest.mark.docker, pytest.mark.kernel]

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """One kernel for the walk, with Dockyter loaded and its HOME in a temporary folder."""
    folder = tmp_path_factory.mktemp("walk")
    started = start_kernel(folder, {"HOME": str(folder), "XDG_CONFIG_HOME": str(folder), "DOCKYTER_CONFIG": ""})
    try:
        assert started.run("%load_ext dockyter").reply["status"] == "ok"
        yield started
    finally:
        started.shutdown()


def red_lines(run: Execution) -> list[str]:
    """The error lines the notebook shows (an error's traceback), without colours."""
    return [ANSI.sub("", line) for error in run.of_type("error") for line in error["content"]["traceback"]]


@pytest.mark.parametrize("flags", ["-it", "-ti", "-i -t"])
def test_it_is_answered_in_one_line_naming_both(walk, test_image, flags, no_leftover_containers):
    run = walk.run(f"%%docker {flags} {test_image}\necho never")
    first, second = ("-t", "-i") if flags == "-ti" else ("-i", "-t")
    assert run.stderr == (
        f"UsageError: {first} and {second} refused: a cell has no keyboard input and no terminal to give the "
        "container; drop both: its output streams live without them\n"
    )
    assert run.stdout == "" and run.reply["ename"] == "UsageError"


def test_dockers_complaint_is_said_once_in_our_line(walk, test_image, no_leftover_containers):
    """A name taken, --pull never without the image, a bad volume mode, an unknown flag: nothing ran,
    and the red line alone says docker's reason (no raw "docker: Error response..." nor usage text)."""
    taken = f"dyt-taken-{secrets.token_hex(3)}"
    assert docker("create", "--name", taken, test_image, "true").returncode == 0
    try:
        cases = [
            (
                f"--name {taken} {test_image}",
                f'Conflict. The container name "/{taken}" is already in use by container "',
            ),
            ("--pull never dockyter-test/no-such-image:1", "No such image: dockyter-test/no-such-image:1"),
            (f"-v /tmp:/x:zz {test_image}", "invalid mode: zz"),
            (f"--frobnicate=1 {test_image}", "unknown flag: --frobnicate"),
        ]
        for line, reason in cases:
            run = walk.run(f"%%docker {line}\necho never")
            [red] = red_lines(run)
            assert red.startswith(f"Dockyter: the container did not start: {reason}"), red
            assert (run.stdout, run.stderr) == ("", ""), line
            assert run.reply["ename"] == "ContainerNotStarted"
            assert walk.run("print(_exit_code)").stdout == "125\n"
    finally:
        docker("rm", "--force", taken)
    # the same for `!`: one line, no raw text
    walk.run(f"%docker --frobnicate=1 {test_image}")
    bang = walk.run("!echo never")
    assert (bang.stdout, bang.stderr) == ("", "Dockyter: the container did not start: unknown flag: --frobnicate\n")
    walk.run("%docker_off")


def test_a_commands_own_error_output_is_never_held_back_long(walk, test_image, no_leftover_containers):
    """stderr that starts like docker's complaint but comes from a running container is shown, whole."""
    run = walk.run(f'%%docker {test_image}\necho "Error: retrying" >&2; sleep 2; echo done')
    assert (run.stdout, run.stderr, run.reply["status"]) == ("done\n", "Error: retrying\n", "ok")
    assert run.arrival("done") - run.arrival("Error: retrying") > 1  # shown before the command ended
