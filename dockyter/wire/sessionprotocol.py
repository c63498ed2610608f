"""How one cell reaches a session's long-lived shell, and how its end is found in the output.

A session is a container whose main process is ``bash --login -i`` reading commands from
the container's stdin (a pipe, no terminal). Each cell is sent as two lines::

    builtin source /dev/fd/61 61<<< $'<the cell, escaped>' </dev/null 2>&63
    __dockyter_end <token> $?

so the cell runs in the shell itself (cd, export, functions, an activated virtualenv carry
over), reads no stdin (EOF, as a fresh cell), and may contain anything: quotes, heredocs, a
syntax error (``source`` reports it and the next line still ends the cell). ``__dockyter_end``
then writes a frame ``\\x1f<token>:<status>\\n`` on stdout and ``\\x1f<token>\\n`` on stderr,
through copies of the shell's original stdout and stderr (fds 62 and 63, so ``exec >log`` in a
cell does not hide them). Once both frames are read, everything the cell wrote on both streams
has been read too. The token is 128 random bits, new for every cell, so output cannot end a
cell by accident.

The shell is interactive on purpose: an interactive bash that gets SIGINT abandons the
current command line, loops included, and reads the next one, exactly as a terminal's Ctrl-C
does. The shell is the container's pid 1 (no init): ``kill 1`` and ``docker stop`` reach it
directly. After an interrupt a *sync* line (``__dockyter_end <token> $?``) finds the end.

**A cell is not a terminal.** A ``%%bash`` user expects ``exit 3`` and a ``set -e`` that trips
to end the *cell*, with its status, not the session. So ``exit`` (and ``logout``) is a function
that, in the shell itself (not in a subshell), records the status and abandons the cell's line
as Ctrl-C does (a SIGINT to the shell; a cell's own INT trap is set aside for that and back
before the end frame); an ERR trap does the same where ``errexit`` would end
the shell (``set -E`` carries it into functions). The end frame is on the next line, which the
shell reads all the same, ``__dockyter_end`` reporting the recorded status. The cell is sourced
rather than ``eval``'d (a here-string, or ``<(printf %s CELL)`` for a long one): the shell runs
it as a script, so a ``cmd &`` does not print ``[1] 25`` on stderr, and ``return`` ends the cell
too. The shell's own stderr is ``/dev/null`` between cells (its newline after an abandoned line);
each cell gets the real one. What cannot be kept: a cell that sets its own ERR trap replaces
this one, so ``set -e`` ends the session again; ``builtin exit``, ``exec CMD`` and ``kill 1``
still end it.

Nothing here imports IPython: ``dockyter-server`` speaks the same protocol.
"""

from __future__ import annotations

import re
import secrets

# `--login` as Dockyter.shell's `bash -lc`: /etc/profile sets PATH in many images.
# `--noediting`: no readline, as there is no terminal.
SESSION_SHELL: tuple[str, ...] = ("bash", "--login", "--noediting", "-i")

SESSION_LABEL = "io.dockyter.session"  # the session's name, on its container
# Copies of the shell's own stdout and stderr, for the frames (high numbers a cell will not use).
OUT_FD, ERR_FD = 62, 63
SOURCE_FD = 61  # where a short cell's text is read from by `source`
HERE_STRING_MAX = 4000  # characters of a quoted cell sent as a here-string (see cell_line)

# What bash itself writes on stderr while a command is being stopped: the newline after ^C, and
# its complaint about the terminal it does not have when a job dies of SIGKILL. Not the cell's.
STOP_NOISE = re.compile(rb"^\n|bash: \[\d+: \d+ \(\d+\)\] tcsetattr: Inappropriate ioctl for device\n")

TOKEN_HEX = 32
FRAME = re.compile(rb"\x1f([0-9a-f]{%d})(?::(-?[0-9]{1,10}))?\n" % TOKEN_HEX)
# A frame cut short at the end of a read: held back until the next read completes it.
PARTIAL_FRAME = re.compile(rb"\x1f[0-9a-f]{0,%d}(?::-?[0-9]{0,10})?" % TOKEN_HEX)
MAX_FRAME = 1 + TOKEN_HEX + 1 + 11 + 1


def new_token() -> str:
    return secrets.token_hex(TOKEN_HEX // 2)


def ansi_c_quote(text: str) -> str:
    """``text`` as one bash ``$'...'`` word, ASCII only: every other byte as ``\\xHH``.

    One line whatever the cell holds, so the shell reads exactly one command per cell.
    """
    data = text.encode("utf-8", errors="surrogateescape")
    if b"\0" in data:
        raise ValueError("the cell contains a NUL character, which a shell cannot receive")
    out = []
    for byte in data:
        if byte == 0x5C:  # backslash
            out.append("\\\\")
        elif byte == 0x27:  # single quote
            out.append("\\'")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:  # newlines, tabs, control characters, UTF-8 bytes: at most two hex digits each
            out.append(f"\\x{byte:02x}")
    return "$'" + "".join(out) + "'"


# `exit` and a tripped `set -e` end the cell, not the shell (see the module's docstring). The
# status goes through __dockyter_status to the end frame of the next line.
KEEP_SHELL = (
    # the status as `exit` takes it: a number, modulo 256; anything else is bash's own complaint and 2
    "__dockyter_abandon() { if [[ $1 =~ ^-?[0-9]{1,18}$ ]]; then __dockyter_status=$(( $1 & 255 )); "
    "else builtin printf 'bash: exit: %s: numeric argument required\\n' \"$1\" >&2; __dockyter_status=2; fi; "
    # A cell's own INT trap would catch that SIGINT and carry on: set aside until the end frame.
    "__dockyter_int=$(builtin trap -p INT); builtin trap - INT; builtin kill -INT $$; }; "
    'exit() { local s=$?; if [[ $BASHPID == $$ ]]; then __dockyter_abandon "${1:-$s}"; '
    'else builtin exit "$@"; fi; }; '
    'logout() { exit "$@"; }; '
    "__dockyter_failed() { local s=$?; [[ $- == *e* && $BASHPID == $$ ]] && __dockyter_abandon $s; }; "
    "trap __dockyter_failed ERR; set -E; "
    "exec 2>/dev/null; "
)


def setup_line(token: str) -> bytes:
    """The first line a session's shell reads: quiet prompts, no history, the end function, and
    a cell's ``exit`` and ``set -e`` made to end the cell, not the shell.

    Its frame's status is the shell's pid, which the interrupt ladder needs.
    """
    return (
        # No prompts (an interactive shell writes PS1 on stderr before each line), no history
        # file, no `!` expansion. `kill 1` ends the session, as it ends a container.
        "PS1= PS2= PS0= HISTFILE=; unset PROMPT_COMMAND; set +o history +H; trap 'builtin exit 143' TERM; "
        f"exec {OUT_FD}>&1 {ERR_FD}>&2; "
        # The cell's INT trap that an `exit` set aside (see KEEP_SHELL), back before the cell ends.
        '__dockyter_end() { if [[ -n $__dockyter_int ]]; then builtin eval "$__dockyter_int"; __dockyter_int=; fi; '
        f'builtin printf \'\\037%s:%s\\n\' "$1" "${{__dockyter_status:-$2}}" >&{OUT_FD}; '
        f"builtin printf '\\037%s\\n' \"$1\" >&{ERR_FD}; __dockyter_status=; "
        # A virtualenv's `activate` sets PS1: an empty prompt keeps the next cell's stderr clean.
        "PS1= PS2= PS0=; }; "
        f"{KEEP_SHELL}"
        f"__dockyter_end {token} $$\n"
    ).encode()


def cell_line(command: str, token: str, merge_stderr: bool = False) -> bytes:
    """The two lines that run one cell; ``merge_stderr`` sends its stderr to stdout, in order.

    The cell is sourced on a line of its own, with the real stderr, and its end frame comes on
    the next line, which the shell reads even when an ``exit`` or ``set -e`` abandoned the cell's.
    """
    stderr = "2>&1" if merge_stderr else f"2>&{ERR_FD}"
    text = ansi_c_quote(command)
    # A here-string is a pipe bash fills itself while it fits one (a temporary file past that,
    # which a --read-only container cannot make); a longer cell comes through a process substitution.
    source = (
        f"/dev/fd/{SOURCE_FD} {SOURCE_FD}<<< {text}" if len(text) < HERE_STRING_MAX else f"<(builtin printf %s {text})"
    )
    return f"builtin source {source} </dev/null {stderr}\n__dockyter_end {token} $?\n".encode()


def sync_line(token: str) -> bytes:
    """After an interrupt: a line whose frame says the shell reads commands again (and ``$?``)."""
    return f"__dockyter_end {token} $?\n".encode()


# Run with `bash -c INTERRUPT_SCRIPT _ SHELL_PID` through `docker exec`: Ctrl-C as a terminal
# gives it. The shell first (it then drops the rest of the cell once the command ends), then
# every other process of the container: the running command and its children. Background jobs
# started with `&` ignore SIGINT (bash starts them so without job control) and keep running.
INTERRUPT_SCRIPT = 'kill -INT "$1"; kill -INT -1 2>/dev/null; exit 0'

# Run with `bash -c KILL_SCRIPT _ SHELL_PID MODE` through `docker exec`: SIGKILL the processes
# of the session shell's process group (everything a cell started, the shell excepted). MODE
# "foreground" spares those that ignore SIGINT: without job control, that is how bash starts
# background jobs (`cmd &`), which Ctrl-C leaves running in a terminal too. Builtins only:
# images need no ps or kill.
KILL_SCRIPT = r"""
shell=$1 mode=$2
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [[ $p == "$shell" || $p == "$$" ]] && continue
  IFS= read -r st < "$d/stat" 2>/dev/null || continue
  set -- ${st##*) }
  [[ $3 == "$shell" ]] || continue
  if [[ $mode == foreground ]]; then
    ign=0
    while IFS=$'\t :' read -r key value; do [[ $key == SigIgn ]] && { ign=$value; break; }; done < "$d/status"
    (( 16#$ign & 2 )) && continue
  fi
  kill -KILL "$p" 2>/dev/null
done
exit 0
"""


class FrameScanner:
    """Takes one stream's bytes, returns the output with our frames taken out, and the frames.

    Only frames whose token is expected count; anything else, however it looks, is output.
    """

    def __init__(self) -> None:
        self.expected: set[str] = set()
        self._held = b""

    def expect(self, token: str) -> None:
        self.expected.add(token)

    def feed(self, data: bytes) -> tuple[bytes, list[tuple[str, int | None]]]:
        buffer = self._held + data if self._held else data
        self._held = b""
        if b"\x1f" not in buffer:  # the common case, kept fast for large outputs
            return buffer, []
        output: list[bytes] = []
        frames: list[tuple[str, int | None]] = []
        start = search = 0
        while (at := buffer.find(b"\x1f", search)) >= 0:
            match = FRAME.match(buffer, at)
            if match and match.group(1).decode() in self.expected:
                output.append(buffer[start:at])
                status = match.group(2)
                frames.append((match.group(1).decode(), int(status) if status is not None else None))
                start = search = match.end()
                continue
            if match is None and len(buffer) - at < MAX_FRAME:
                partial = PARTIAL_FRAME.match(buffer, at)
                if partial and partial.end() == len(buffer):
                    output.append(buffer[start:at])
                    self._held = buffer[at:]
                    return b"".join(output), frames
            search = at + 1
        output.append(buffer[start:])
        return b"".join(output), frames

    def flush(self) -> bytes:
        """What was held back, at the end of the stream."""
        held, self._held = self._held, b""
        return held
