"""The loopback check: the program a Swarm task runs first when its node is trusted for isolation.

With ``swarm_isolation = "nodes"`` a task that gets no network joins no overlay; it relies on
its node's dockerd running with ``--bridge none``, which gives it a loopback interface only.
``loopback_only.c`` (beside this module) makes that fail closed: the task's entrypoint is that
program, which refuses (exit 125, one line) unless the task's network namespace has ``lo`` and
nothing else, and then executes the shell. The Swarm executor ships it to the nodes as a Swarm
config (:mod:`.swarmloopback`).

Build it where a C compiler is (it needs no C library)::

    python -m dockyter.server.swarm.loopbackcheck /usr/local/lib/dockyter/loopback-only
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("loopback_only.c")
MAX_SIZE = 500 * 1024  # Swarm's limit on a config's size
# Where tasks find the check: requests may not mount anything there (swarmexecution.py).
TARGET_DIR = "/.dockyter"

_FLAGS = [
    "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-fno-pie", "-no-pie",
    "-fno-asynchronous-unwind-tables", "-Os", "-s", "-Wall", "-Werror",
]  # fmt: skip


def target(secret: str) -> str:
    """Where a task finds the check: in a directory named by a secret of its execution.

    Docker mounts by path depth, so a volume an image declares deeper than the check, through a
    symbolic link of the image's own, would be mounted after it and could cover it; an image
    cannot be built to cover a directory whose name nobody knows before the task runs.
    """
    return f"{TARGET_DIR}/{secret}/loopback-only"


class LoopbackCheckError(ValueError):
    """The program cannot be built, or a file is not a usable build of it; the message says why."""


def build(out: Path, compiler: str = "cc") -> Path:
    """Compile ``loopback_only.c`` into ``out``; raises :class:`LoopbackCheckError`."""
    if shutil.which(compiler) is None:
        raise LoopbackCheckError(f"no C compiler {compiler!r} to build the loopback check with")
    done = subprocess.run([compiler, *_FLAGS, "-o", str(out), str(SOURCE)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LoopbackCheckError(f"building the loopback check failed: {done.stderr.strip()}")
    problem = program_problem(out)
    if problem:
        raise LoopbackCheckError(problem)
    return out


def program_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the loopback check a Swarm config carries; None when it can."""
    try:
        with path.open("rb") as file:
            head = file.read(4)
        size = path.stat().st_size
    except OSError as error:
        return f"loopback_check {str(path)!r} cannot be read: {error.strerror}"
    if head != b"\x7fELF":
        return f"loopback_check {str(path)!r} is not a program: build it with python -m dockyter.server.swarm.loopbackcheck"
    if size > MAX_SIZE:
        return f"loopback_check {str(path)!r} has {size} bytes, more than a Swarm config holds ({MAX_SIZE})"
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m dockyter.server.swarm.loopbackcheck OUTPUT", file=sys.stderr)
        return 2
    try:
        out = build(Path(args[0]))
    except LoopbackCheckError as error:
        print(f"dockyter: {error}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
