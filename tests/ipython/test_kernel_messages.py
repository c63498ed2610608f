"""One message per problem, in our words, as a user meets it in a real kernel.

Docker's own complaint is said once, in the red line (never also as its raw usage text); the
most common docker habits (``-it``, ``-v $PWD:/work``) get one line that names what they
wrote; a bad setting is one sentence, not traitlets' text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
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
