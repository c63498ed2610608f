"""Dockyter in a real IPython terminal (``ipython`` on a pseudo-terminal), as a user types in it."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

RED = b"\x1b[31m"


def terminal(home: Path, options: list[str], lines: list[str], timeout: float = 60) -> bytes:
    """What ``ipython OPTIONS`` writes to its terminal while ``lines`` are typed into it, then ``exit``."""
    controller, device = pty.openpty()
    environment = {**os.environ, "HOME": str(home), "TERM": "dumb", "DOCKYTER_CONFIG": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "IPython", *options, "--simple-prompt", "--no-banner", "--HistoryManager.enabled=False"],
        stdin=device,
        stdout=device,
        stderr=device,
        env=environment,
        close_fds=True,
    )
    os.close(device)
    for line in [*lines, "exit"]:
        os.write(controller, line.encode() + b"\n")
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([controller], [], [], 0.5)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: IPython has exited
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    process.kill()
    process.wait()
    os.close(controller)
    return seen


@pytest.mark.parametrize("colours", ["nocolor", "neutral"])
def test_the_red_line_follows_the_shells_colour_setting(tmp_path, test_image, colours, no_leftover_containers):
    seen = terminal(
        tmp_path,
        [f"--colors={colours}"],
        [
            "%load_ext dockyter",
            f"%docker_session start x --frobnicate=1 {test_image}",
            f"%%docker {test_image}",
            "exit 3",
            "",
            "",  # the simple prompt ends a cell magic at an empty line after an empty line
        ],
    )
    # each as the terminal shows it, after the prompts ("In [2]: ", "   ...: ") it follows on its line
    lines = [
        line[line.index("Dockyter:") - (5 if RED.decode() in line else 0) :]
        for line in seen.decode().splitlines()
        if "Dockyter:" in line
    ]
    said = [
        "Dockyter: session 'x' could not start: the session's container did not start: unknown flag: --frobnicate",
        "Dockyter: the command exited with status 3",
    ]
    if colours == "nocolor":
        assert RED not in seen and lines == said, seen
    else:
        assert lines == [f"\x1b[31m{text}\x1b[0m" for text in said], seen
