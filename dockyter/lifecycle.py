"""`docker run` flags against the promise "a container Dockyter starts is a container it stops".

Each run is ``docker run --rm`` with a name, waited for and removed when it ends, however it
ends. Most flags leave that alone. These would not, so they are refused with one line saying
why, before anything starts:

* ``-d``/``--detach``: the run would return at once, the container left running;
* ``--rm=false``: the container would stay behind, stopped;
* ``--restart`` (other than ``no``): docker refuses it with ``--rm``, and it would restart
  what we stop;
* ``-t``/``--tty``, ``-i``/``--interactive``: a cell has no terminal and no keyboard input to
  give (docker answers "the input device is not a TTY" and nothing runs). ``-it``, the most
  common docker habit, is answered in one line that names both.

``--help`` among the docker arguments is docker's: it prints its help, starts nothing.

``--name NAME`` is honoured: the container is called NAME, and NAME is what an interrupt or a
timeout stops and removes (only if it is still ours, by its owner label).
"""

from __future__ import annotations

from .wire.dockerargs import RunArgs

REFUSED: dict[str, str] = {
    "--detach": "a run waits for its container and removes it at the end; a detached one would be "
    "left running (start long-lived containers with `docker run -d` in a terminal)",
    "--tty": "a cell has no terminal to give the container; its output streams live without -t",
    "--interactive": "a cell has no keyboard input to give the container; drop -i",
}
# -i and -t together (-it, -ti, -i -t): one answer for both.
TERMINAL = (
    "a cell has no keyboard input and no terminal to give the container; drop both: its output streams live "
    "without them"
)
KEEP = (
    "Dockyter removes every container it starts when its run ends; keep files in a mounted folder "
    "(-v HOST:CONTAINER, or --here) instead"
)


def lifecycle_problem(args: RunArgs) -> str | None:
    """Why ``args`` would break the promise, in one line; None when they keep it."""
    terminal = [option for option in args.options if option.name in ("--interactive", "--tty") and option.enabled]
    if {option.name for option in terminal} == {"--interactive", "--tty"}:
        return f"{' and '.join(option.as_written for option in terminal)} refused: {TERMINAL}"
    for option in args.options:
        written = " ".join(option.written)
        if option.name in REFUSED and option.enabled:
            return f"{written} refused: {REFUSED[option.name]}"
        if option.name == "--rm" and not option.enabled:
            return f"{written} refused: {KEEP}"
        if option.name == "--restart" and (option.value or "no") != "no":
            return f"{written} refused: {KEEP}, so there is nothing to restart"
    return None


def given_name(args: RunArgs) -> str | None:
    """The container name the user chose with ``--name`` (docker takes the last one), if any."""
    names = args.values("--name")
    return names[-1] if names else None
