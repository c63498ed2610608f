"""One grammar table per magic: its options, verbs and words, declared once (see :mod:`~dockyter.ipython.grammar`).

The magics parse their lines with these, their ``--help`` and docstrings are generated from
them, and tab completion reads them. Dockyter's own ``%%docker`` options come before the docker
arguments, and none of them is also a ``docker run`` flag, so ``%%docker --timeout 5 -v /d:/d
img`` is unambiguous; ``--`` ends them explicitly: ``%%docker --out log -- -e X=1 img``.
"""

from __future__ import annotations

from .grammar import DOCKER_ARGS, HELP, Grammar, Option, Verb, Word

# The shorthands for the notebook's folder and the user's own files: a cell's, and a session's.
HERE = Option("--here", "mount the kernel's working directory at the same path and start there")
AS_ME = Option("--as-me", "run as the kernel's own uid:gid, so files written into mounts are yours")

CELL = Grammar(
    "%%docker",
    description="""
Run the cell in one fresh container.

The whole cell runs through `bash -lc` (Dockyter.shell) in one container, so cd,
variables, loops and heredocs carry from line to line. Output streams live; stderr is
shown as stderr. With no arguments, Dockyter.default_args is used. Dockyter's options
come before the docker arguments; `--` ends them. Docker's own flags pass untouched.
""",
    options=(
        Option("--no-raise-error", "do not raise CalledProcessError on a non-zero exit"),
        Option("--raise-error", "raise even if Dockyter.raise_on_error is off"),
        Option(
            "--timeout",
            "stop the container after this long (exit status 124); 0: no limit, even when Dockyter.timeout sets one",
            "SECONDS",
        ),
        Option("--out", "store stdout in the variable VAR instead of showing it (as %%bash --out)", "VAR"),
        Option("--err", "store stderr in the variable VAR instead of showing it (as %%bash --err)", "VAR"),
        HERE,
        AS_ME,
        Option("--tee", "with --out/--err: show the output as it streams and store it too"),
        Option(
            "--profile",
            "run this cell with a dockyter.toml profile (its arguments and overrides; %docker_profile lists them)",
            "NAME",
            values="profiles",
        ),
        Option(
            "--session",
            "run the cell in the running container of session NAME, which keeps its state "
            "(%docker_session start NAME IMAGE starts one)",
            "NAME",
            values="sessions",
        ),
        Option(
            "--bg",
            "run the container in the background and return at once (as %%script --bg): its output is kept, "
            "not shown; %docker_jobs lists the jobs",
        ),
        Option("--proc", "with --bg: store the job's handle (returncode, wait(), stop()) in the variable VAR", "VAR"),
        HELP,
    ),
    docker="[--] [DOCKER ARGS...] [IMAGE]",
    epilog="""
After the run, `_exit_code` holds the exit status (124: timed out, 130: interrupted).
Interrupting the kernel stops and removes the container.

With --bg, --out VAR and --err VAR name the job's streams (VAR.read() gives what is new,
str(VAR) all of it); without them the last 64 KiB of each are kept in the job's handle.

`$name` and `{expression}` on the magic line expand from Python, as on any
IPython magic line; the cell itself reaches the container's shell untouched.

Example:

    %%docker -v {project_dir}:/work -w /work python:3.12
    python --version
    ls
""",
)

LINE = Grammar(
    "%docker",
    description="""
Run every later `!cmd` in a fresh container (or in session NAME's running container).

Stores the arguments in Dockyter.default_args and turns redirection on, so `!cmd`,
`x = !cmd`, `!!cmd` and `%sx cmd` run in containers. `%docker_off` restores the normal
`!`; `%docker_on` brings the containers back. Without arguments, says what is configured.
""",
    options=(
        Option("--session", "run `!` in the running container of session NAME", "NAME", values="sessions", alone=True),
        HELP,
    ),
    docker=DOCKER_ARGS,
)

SESSION = Grammar(
    "%docker_session",
    description="""
A session is a container that stays up between cells, with one bash in it: files, installed
packages, background processes, the working directory, exported variables, shell functions
and an activated virtualenv carry from one cell to the next, as in a terminal.

    %%docker --session NAME     runs a cell in it
    %docker --session NAME      makes `!cmd`, `x = !cmd`, `!!cmd` and %sx run in it

Interrupting a cell stops its command (SIGINT, then SIGKILL after Dockyter.stop_grace) and
keeps the session. Sessions idle for Dockyter.session_idle_timeout seconds are stopped
(0: never); %unload_ext, the kernel's shutdown and `stop --all` remove them all.
""",
    options=(HELP,),
    no_verb="list the sessions",
    verbs=(
        Verb("start", "start a session", (Word("NAME"),), docker=True, options=(HERE, AS_ME)),
        Verb("stop", "stop one, or every one", (Word("NAME", "sessions", instead=("--all",)),)),
        Verb("restart", "a fresh container, same arguments", (Word("NAME", "sessions"),)),
    ),
)

BACKEND = Grammar(
    "%docker_backend",
    description="""
Choose the backend, then show the status: `%docker_backend docker` runs containers with the
local container CLI (Dockyter.docker_command); `%docker_backend api URL` sends them to the
Dockyter HTTP service at URL (Dockyter.api_url, which may be set already). Same as
%config Dockyter.backend.
""",
    options=(HELP,),
    words=(Word("NAME", "backends"), Word("URL", optional=True)),
)

PROFILE = Grammar(
    "%docker_profile",
    description="""
Apply a dockyter.toml profile for later `!` commands.

Like `%docker ARGS IMAGE` with the profile's arguments: sets Dockyter.default_args and
the traits the profile overrides (shell, timeout, backend...), and turns redirection on.
Another profile replaces it, with all its overrides. `%docker_profile --off` (and
`%docker_off`) drops it: every value it set goes back to what it was before, unless
changed since. Without a name, lists the profiles and what each sets.
""",
    options=(HELP,),
    words=(Word("NAME", "profiles", optional=True, instead=("--off",)),),
)

CONFIG = Grammar(
    "%docker_config",
    description="""
Layers, lowest first: default < ipython_config.py < dockyter.toml < run time. A reload
keeps every value changed at run time in this kernel (%config, %docker, %docker_profile...)
and recomputes the others, so a value removed from the file falls back to the layers below.
""",
    options=(HELP,),
    no_verb="show the dockyter.toml read and where each value came from",
    verbs=(Verb("reload", "read dockyter.toml again"),),
)

ON = Grammar("%docker_on", "Run `!` commands in containers again, with the last arguments given to %docker.")
OFF = Grammar(
    "%docker_off",
    "Restore IPython's own `!` behaviour and drop the active profile (the arguments are kept for %docker_on).",
)
STATUS = Grammar(
    "%docker_status",
    """
Show the backend, whether it is available and why not, the configured image and arguments,
whether `!` is redirected, and the exact command a cell would run.
""",
)
CLEANUP = Grammar("%docker_cleanup", "Remove Dockyter containers left running by kernels that died (and nothing else).")

JOBS = Grammar(
    "%docker_jobs",
    description="""
Background jobs: the containers of `%%docker --bg` cells, which run while the notebook goes on.
Stopping one stops its container as an interrupt does (SIGINT, then removal after
Dockyter.stop_grace); %unload_ext and the kernel's shutdown stop them all.
""",
    options=(HELP,),
    no_verb="list the jobs: number, state (running, exited N, stopped), image, age, command, container",
    verbs=(Verb("stop", "stop one, or every one", (Word("JOB", "jobs", instead=("--all",)),)),),
)

# Every magic's grammar, for completion: those whose line takes anything.
GRAMMARS = (CELL, LINE, SESSION, JOBS, BACKEND, PROFILE, CONFIG, ON, OFF, STATUS, CLEANUP)
