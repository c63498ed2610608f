"""A prestarted container: the shell that waits in it for one command, and which lines cannot wait.

A prestarted container is started before its command is known, with the argv a cold run would
have, except that ``-i`` keeps its stdin open and, where the cold run has ``SHELL... CMD``, it
has :func:`waiter_words` ``SHELL...``: a POSIX ``sh`` running :data:`WAITER`. The waiter

1. prints a ready frame, ``\\x1f<ready token>\\n`` on stdout, once the image's entrypoint (if
   any) has started it: from then on the container only waits;
2. reads its command from stdin as :func:`command_block` writes it: a frame token on a line of
   its own, the command's lines, and the token again. End-of-file before the second token (the
   kernel died, the pool let it go) runs nothing and ends the container;
3. runs ``SHELL... CMD`` as its child, exactly the words a cold run's container would run,
   with stdin ``/dev/null`` (opened read-write, as the engine does) and the environment it was
   started with (``SHLVL`` as it was before the waiter's own shell counted itself);
4. writes the child's status as the sessions' frames (:mod:`dockyter.wire.sessionprotocol`):
   ``\\x1f<token>:<status>\\n`` on stdout, ``\\x1f<token>\\n`` on stderr, and exits with it.

Why a child and not ``exec``: the frames say that everything the command wrote has been read
and what its status was, at once. Without them a run would end only when the ``docker run``
process does, which with ``--rm`` waits for the engine to tear the container down and remove
it: 0.2-0.3 s that a prestarted container exists to avoid. The waiter traps the signals the
init (``--init``) forwards to it, so it outlives a signal meant for the command and reports
what the command did; the command itself gets them with their default actions, as in a cold
run. The frame token travels on stdin, never in an argv, so the command cannot read it from
``ps``. What the cell can tell: its parent (``$PPID``) is the waiter, which ``ps`` shows as
``sh -c ... dockyter-prestart``, not 1; the waiter is one more process under ``--pids-limit``
and a few hundred KB more under ``--memory``; the container (its hostname, its start time) was
made before the cell ran.

Nothing here imports IPython: ``dockyter-server`` prestarts with the same waiter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .dockerargs import BOOL_FLAGS, VALUE_FLAGS, RunArgs
from .sessionprotocol import FrameScanner, new_token

PRESTART_LABEL = "io.dockyter.prestart"  # on every prestarted container (value "1")
WAITER_NAME = "dockyter-prestart"  # the waiter's $0: what `ps` in the container shows for it
# Linux refuses a single argument over 128 KiB (MAX_ARG_STRLEN): a longer command runs cold,
# where the docker backend says so in one line instead of the shell's "Argument list too long".
MAX_COMMAND_BYTES = 128 * 1024 - 64
EARLY_KEEP = 65536  # bytes of what a container prints before its waiter is ready, kept for its command

# Signals whose default action ends a process, which the init may forward to the waiter
# (docker kill -s, docker stop, the stop ladder's SIGINT): trapped, never ignored, so that the
# command, a child the waiter starts, still gets each with its default action.
_TRAPPED = "1 2 3 4 5 6 7 8 10 11 12 13 14 15 16 24 25 26 27 29 30 31"

# $1: the ready token; then the run's SHELL words. (Shells such as bash and busybox ash count
# themselves in SHLVL: the command's shell must see what the waiter was given, as in a cold run,
# so a child is asked once, at start, whether this sh counts. An image without the run's shell
# never gets ready: its line runs cold, where the engine's own words explain it.)
WAITER = r"""trap : TRAPPED
r=$1; shift
s=${SHLVL-}; i=$(sh -c 'echo "${SHLVL-}"')
if [ -n "$s" ] && [ "$i" = "$((s + 1))" ]; then
  if [ "$s" -gt 1 ]; then SHLVL=$((s - 1)); else unset SHLVL; fi
fi
command -v "$1" >/dev/null 2>&1 || { echo "dockyter-prestart: the image has no $1 to run commands with" >&2; exit 127; }
printf '\037%s\n' "$r"
IFS= read -r t || exit 0
c= n=
while IFS= read -r l; do
  if [ "$l" = "$t" ]; then
    "$@" "$c" 0<>/dev/null
    e=$?
    printf '\037%s:%s\n' "$t" "$e"
    printf '\037%s\n' "$t" >&2
    exit "$e"
  fi
  if [ -n "$n" ]; then c="$c
$l"; else c=$l n=1; fi
done
exit 0
""".replace("TRAPPED", _TRAPPED)


def waiter_words(ready_token: str) -> tuple[str, ...]:
    """What replaces ``SHELL... CMD`` after the image: the waiter, then the run's ``SHELL...`` follows."""
    return ("sh", "-c", WAITER, WAITER_NAME, ready_token)


def new_ready_token() -> str:
    return new_token()


class ReadyWatch:
    """Reads what a prestarting container prints on stdout until its waiter's ready frame.

    What comes before the frame (an entrypoint's words) is kept, up to ``EARLY_KEEP`` bytes,
    for the command's output: a cold run would show it there.
    """

    def __init__(self, ready_token: str) -> None:
        self._scanner = FrameScanner()
        self._scanner.expect(ready_token)
        self.early: list[bytes] = []
        self._kept = 0

    def feed(self, data: bytes) -> bool:
        """One chunk of stdout; whether the ready frame has come (the rest of the chunk is kept)."""
        output, frames = self._scanner.feed(data)
        self._keep(output)
        if not frames:
            return False
        self._keep(self._scanner.flush())
        return True

    def _keep(self, output: bytes) -> None:
        if output and self._kept < EARLY_KEEP:
            self.early.append(output)
            self._kept += len(output)


def command_block(token: str, command: str) -> bytes:
    """What the waiter reads: the token, the command's lines, the token. ValueError for a NUL."""
    data = command.encode("utf-8", errors="surrogateescape")
    if b"\0" in data:
        raise ValueError("the command contains a NUL character, which a shell cannot receive")
    line = token.encode()
    return line + b"\n" + data + b"\n" + line + b"\n"


# -- which lines cannot wait --------------------------------------------------------------------

# Options whose effect depends on the moment the container starts, or that hold something the
# next run (or anything else) may need while the container waits: such a line runs cold.
COLD_OPTIONS: dict[str, str] = {
    "--name": "a name is held by one container at a time: a waiting one would hold it",
    "--cidfile": "the file is written when the container is created and must not exist yet",
    "--env-file": "the file is read when the container is created",
    "--label-file": "the file is read when the container is created",
    "--publish": "a waiting container would hold the host's port",
    "--publish-all": "a waiting container would hold host ports",
    "--ip": "a waiting container would hold the address",
    "--ip6": "a waiting container would hold the address",
    "--mac-address": "a waiting container would hold the address",
    "--volumes-from": "another container's volumes are taken as they are when the container starts",
    "--link": "another container is linked as it is when the container starts",
    "--attach": "it changes which streams the run reads",
    "--help": "docker prints its help and starts nothing",
}
# Options whose value "container:NAME" joins another container's namespace as it is at the start.
JOINING = ("--network", "--pid", "--ipc", "--uts", "--userns", "--cgroupns")


def cold_reason(args: RunArgs) -> str | None:
    """Why ``args`` cannot be prestarted (the line then runs cold, as before); None when it can.

    An option outside docker run's table (a runtime's own) runs cold too: its effect at
    start-up cannot be judged.
    """
    for option in args.options:
        written = " ".join(option.written)
        if option.name not in BOOL_FLAGS | VALUE_FLAGS:
            return f"{written}: not a docker run option whose effect is known"
        if option.name in COLD_OPTIONS and (option.name not in BOOL_FLAGS or option.enabled):
            return f"{written}: {COLD_OPTIONS[option.name]}"
        if option.name == "--pull" and option.value == "always":
            return f"{written}: the image is pulled when the container starts"
        if option.name in JOINING and (option.value or "").startswith("container:"):
            return f"{written}: another container's namespace is joined as it is when the container starts"
    return None


def passed_through(args: RunArgs) -> tuple[str, ...]:
    """Names of ``-e NAME`` (no ``=``): the docker CLI copies their values from its own environment."""
    return tuple(value for value in args.values("--env") if "=" not in value)


def environment_of(
    names: Sequence[str], environ: Mapping[str, str] | None = None
) -> tuple[tuple[str, str | None], ...]:
    """The values ``names`` have now, for a prestarted container's key."""
    environ = os.environ if environ is None else environ
    return tuple((name, environ.get(name)) for name in names)


def bind_sources(args: RunArgs) -> tuple[str, ...] | None:
    """The host paths ``args`` bind-mount (``-v /a:/b``, ``--mount type=bind,source=/a,...``).

    None when a ``--mount`` value is written in a way this reading may not agree with the docker
    CLI's CSV reader on (quotes): such a line runs cold.
    """
    sources: list[str] = []
    for option in args.options:
        if option.name == "--volume" and option.value and option.value.startswith("/"):
            sources.append(option.value.split(":", 1)[0])
        elif option.name == "--mount" and option.value is not None:
            if '"' in option.value:
                return None
            fields = dict(part.partition("=")[::2] for part in option.value.split(","))
            source = fields.get("source") or fields.get("src")
            if fields.get("type", "volume") == "bind" and source:
                sources.append(source)
    return tuple(sources)


def identity(path: str) -> tuple[int, int] | None:
    """What a bind mount takes at start-up: the file or folder ``path`` names now (device, inode).

    A folder removed and made again, or a file an editor saved by renaming a new one over it, is
    a different one: a container started before holds the old one, a cold run would get the new.
    """
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)
