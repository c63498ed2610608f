"""What a ``%%docker`` line asks for besides the docker arguments, read with its grammar table.

:data:`~dockyter.ipython.magiclines.CELL` reads the options; here they become a
:class:`CellOptions`, with the checks that involve more than one of them or the docker
arguments after them (an option of ours among docker's, a typo of ours).
"""

from __future__ import annotations

import difflib
import keyword
from dataclasses import dataclass, field

from ..errors import BadUsage
from ..output import Stream
from ..runspec import RunSpec
from ..wire.dockerargs import ALIASES, BOOL_FLAGS, SHORT_FLAGS, VALUE_FLAGS, RunArgs
from .grammar import Option
from .magiclines import CELL


@dataclass
class CellOptions:
    """What the ``%%docker`` line asks for besides the docker arguments."""

    raise_on_error: bool | None = None  # None: use Dockyter.raise_on_error
    timeout: float | None = None  # None: use Dockyter.timeout
    out: str | None = None  # capture stdout into this variable
    err: str | None = None  # capture stderr into this variable
    tee: bool = False  # show what --out/--err capture, as well
    here: bool = False  # mount the kernel's working directory and start there
    as_me: bool = False  # run as the kernel's uid:gid
    profile: str | None = None
    session: str | None = None  # run in this session's container
    bg: bool = False  # run in the background (a job), return at once
    proc: str | None = None  # with --bg: the variable for the job's handle
    help: bool = False  # --help: show the usage, run nothing
    docker_tokens: list[str] = field(default_factory=list)

    def raises(self, configured: bool) -> bool:
        """Whether a failure raises: the line's --raise-error / --no-raise-error, else ``configured``."""
        return configured if self.raise_on_error is None else self.raise_on_error

    def run_spec(self, cell: str, args: RunArgs | None) -> RunSpec:
        """The run this line asks for: ``cell`` in a fresh container from ``args`` (None: the configured
        ones), or in its session; the output stored in --out/--err's variables, shown only with --tee
        (as ``%%bash`` does)."""
        store: dict[str, Stream] = {}
        if self.out:
            store[self.out] = "stdout"
        if self.err:
            store[self.err] = "stderr"
        hide = frozenset[Stream]() if self.tee else frozenset(store.values())
        return RunSpec(
            cell,
            args=args,
            session=self.session,
            timeout=self.timeout,
            here=self.here,
            as_me=self.as_me,
            store=store,
            hide=hide,
        )


def parse_cell_line(line: str) -> CellOptions:
    """Read ``[DOCKYTER OPTIONS] [--] [DOCKER ARGS...] [IMAGE]``; BadUsage for what does not fit."""
    parsed = CELL.parse(line)
    options = CellOptions(help=parsed.help, docker_tokens=parsed.docker)
    for option, value in parsed.given:
        _apply(options, option, value)
    own = [option.name for option in CELL.options]
    for name in [] if parsed.explicit_end else docker_flags_of(options.docker_tokens):
        if name in own and name not in BOOL_FLAGS:
            raise BadUsage(f"{name} is a %%docker option: put it before the docker arguments")
        _refuse_a_typo(name, own)  # --no-raise-eror among the docker arguments, too
    if options.tee and not (options.out or options.err):
        raise BadUsage("--tee shows what --out VAR or --err VAR store: give one of them")
    _check_background(options)
    if options.profile is not None and options.docker_tokens:
        raise BadUsage("--profile NAME replaces the docker arguments: give one or the other")
    if options.session is not None and (options.here or options.as_me):
        given = " ".join(name for name, on in (("--here", options.here), ("--as-me", options.as_me)) if on)
        raise BadUsage(
            f"{given} with --session: the session's container has its mounts and user already; they are "
            f"given when it starts: %docker_session start {options.session} {given} IMAGE"
        )
    if options.session is not None and (options.docker_tokens or options.profile is not None):
        raise BadUsage(
            "--session NAME runs in the session's container, which has its arguments already: "
            "give no docker arguments or profile with it"
        )
    return options


def _check_background(options: CellOptions) -> None:
    """--bg and --proc: what goes with them, in one line each."""
    if options.proc is not None and not options.bg:
        raise BadUsage("--proc VAR names a background job's handle: give --bg with it")
    if not options.bg:
        return
    if options.session is not None:
        raise BadUsage(
            "--bg runs a fresh container in the background; a session runs one cell at a time: "
            "use --bg without --session, or `cmd &` in the session"
        )
    if options.tee:
        raise BadUsage("--tee shows the output as it streams; a background job's output is kept, not shown")


def docker_flags_of(tokens: list[str]) -> list[str]:
    """The long flags among docker tokens (not the values they take), up to the image."""
    flags, skip = [], False
    for token in tokens:
        if skip:
            skip = False
            continue
        if not token.startswith("-") or token == "--":
            break  # the image: what follows is not docker's
        name = token.partition("=")[0]
        if token.startswith("--"):
            flags.append(name)
            skip = "=" not in token and ALIASES.get(name, name) in VALUE_FLAGS
        else:  # -it, -v VALUE, -vVALUE: a value flag last in a group takes the next token
            letters = token[1:]
            skip = len(letters) >= 1 and SHORT_FLAGS.get(letters[-1]) in VALUE_FLAGS and "=" not in token
            skip = skip and all(SHORT_FLAGS.get(letter) in BOOL_FLAGS for letter in letters[:-1])
    return flags


def _refuse_a_typo(name: str, own: list[str]) -> None:
    """``--no-raise-eror`` is a typo of ours, not an unknown docker flag: say which option was meant."""
    if not name.startswith("--") or ALIASES.get(name, name) in VALUE_FLAGS | BOOL_FLAGS:
        return
    best = difflib.get_close_matches(name, [*own, *VALUE_FLAGS, *BOOL_FLAGS, *ALIASES], n=1, cutoff=0.6)
    if best and best[0] in own:
        raise BadUsage(f"unknown option {name!r}: did you mean {best[0]} (a %%docker option)?")
    # docker has many flags: only a close one is worth naming (--bogus is not --gpus)
    if best and difflib.SequenceMatcher(None, name, best[0]).ratio() >= 0.8:
        raise BadUsage(f"unknown docker run option {name!r}: did you mean {best[0]}?")


def _apply(options: CellOptions, option: Option, value: str | None) -> None:
    """One option of the line, in the order given (the last of --raise-error / --no-raise-error wins)."""
    name = option.name
    if option.metavar is None:
        if name in ("--raise-error", "--no-raise-error"):
            options.raise_on_error = name == "--raise-error"
        else:  # --tee, --here, --as-me, --bg, --help
            setattr(options, name[2:].replace("-", "_"), True)
        return
    assert value is not None  # the grammar gives every option with a metavar its value
    if name == "--timeout":
        options.timeout = parse_timeout(value)
    elif name in ("--out", "--err", "--proc"):
        if not value.isidentifier() or keyword.iskeyword(value):
            raise BadUsage(f"{name} needs a Python variable name, not {value!r}")
        setattr(options, name[2:], value)
    elif name == "--session":
        options.session = value
    else:
        options.profile = value


def parse_timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise BadUsage(f"--timeout needs a number of seconds, not {value!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise BadUsage(f"--timeout must be a number of seconds (0: no limit), not {value!r}")
    return seconds
