"""Splitting a ``%%docker`` line into Dockyter's own options and the docker arguments.

Dockyter's options come first; none of them is also a ``docker run`` flag, so
``%%docker --timeout 5 -v /d:/d img`` is unambiguous. ``--`` ends Dockyter's options
explicitly when needed: ``%%docker --out log -- -e X=1 img``.
"""

from __future__ import annotations

import difflib
import keyword
from dataclasses import dataclass, field

from ..output import Stream
from ..runspec import RunSpec
from ..wire.dockerargs import ALIASES, BOOL_FLAGS, SHORT_FLAGS, VALUE_FLAGS, DockerArgsError, RunArgs, split_line


@dataclass(frozen=True)
class Option:
    """One of Dockyter's own ``%%docker`` options: the one declaration parsing and ``--help`` use."""

    name: str
    metavar: str | None  # None: a switch
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("--no-raise-error", None, "do not raise CalledProcessError on a non-zero exit"),
    Option("--raise-error", None, "raise even if Dockyter.raise_on_error is off"),
    Option(
        "--timeout",
        "SECONDS",
        "stop the container after this long (exit status 124); 0: no limit, even when Dockyter.timeout sets one",
    ),
    Option("--out", "VAR", "store stdout in the variable VAR instead of showing it (as %%bash --out)"),
    Option("--err", "VAR", "store stderr in the variable VAR instead of showing it (as %%bash --err)"),
    Option("--here", None, "mount the kernel's working directory at the same path and start there"),
    Option("--as-me", None, "run as the kernel's own uid:gid, so files written into mounts are yours"),
    Option("--tee", None, "with --out/--err: show the output as it streams and store it too"),
    Option(
        "--profile",
        "NAME",
        "run this cell with a dockyter.toml profile (its arguments and overrides; %docker_profile lists them)",
    ),
    Option(
        "--session",
        "NAME",
        "run the cell in the running container of session NAME, which keeps its state "
        "(%docker_session start NAME IMAGE starts one)",
    ),
    Option("--help", None, "show this help and run nothing"),
)
VALUE_OPTIONS = tuple(option.name for option in OPTIONS if option.metavar)
SWITCHES = tuple(option.name for option in OPTIONS if not option.metavar)


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
    """Parse ``[DOCKYTER OPTIONS] [--] [DOCKER ARGS...] [IMAGE]``; raises DockerArgsError."""
    tokens = split_line(line, comments=True)  # `%%docker img  # note` as in a shell
    options = CellOptions()
    position = 0
    explicit_end = False  # `--` given: what follows is docker's, whatever it looks like
    while position < len(tokens):
        token = tokens[position]
        if token == "--":
            position += 1
            explicit_end = True
            break
        name, has_value, inline = token.partition("=")
        if token == "--help":
            options.help = True
            position += 1
        elif token in ("--tee", "--here", "--as-me"):
            setattr(options, token[2:].replace("-", "_"), True)
            position += 1
        elif token in SWITCHES:
            options.raise_on_error = token == "--raise-error"
            position += 1
        elif name in VALUE_OPTIONS:
            if has_value:
                value, position = inline, position + 1
            elif position + 1 < len(tokens):
                value, position = tokens[position + 1], position + 2
            else:
                raise DockerArgsError(f"{name} needs a value")
            _apply(options, name, value)
        else:
            break
    options.docker_tokens = tokens[position:]
    for name in [] if explicit_end else _flags(options.docker_tokens):
        if name in (option.name for option in OPTIONS) and name not in BOOL_FLAGS:
            raise DockerArgsError(f"{name} is a %%docker option: put it before the docker arguments")
        _refuse_a_typo(name)  # --no-raise-eror among the docker arguments, too
    if options.tee and not (options.out or options.err):
        raise DockerArgsError("--tee shows what --out VAR or --err VAR store: give one of them")
    if options.profile is not None and options.docker_tokens:
        raise DockerArgsError("--profile NAME replaces the docker arguments: give one or the other")
    if options.session is not None and (options.docker_tokens or options.profile is not None):
        raise DockerArgsError(
            "--session NAME runs in the session's container, which has its arguments already: "
            "give no docker arguments or profile with it"
        )
    return options


def _flags(tokens: list[str]) -> list[str]:
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


def _refuse_a_typo(name: str) -> None:
    """``--no-raise-eror`` is a typo of ours, not an unknown docker flag: say which option was meant."""
    if not name.startswith("--") or ALIASES.get(name, name) in VALUE_FLAGS | BOOL_FLAGS:
        return
    own = [option.name for option in OPTIONS]
    best = difflib.get_close_matches(name, [*own, *VALUE_FLAGS, *BOOL_FLAGS, *ALIASES], n=1, cutoff=0.6)
    if best and best[0] in own:
        raise DockerArgsError(f"unknown option {name!r}: did you mean {best[0]} (a %%docker option)?")
    # docker has many flags: only a close one is worth naming (--bogus is not --gpus)
    if best and difflib.SequenceMatcher(None, name, best[0]).ratio() >= 0.8:
        raise DockerArgsError(f"unknown docker run option {name!r}: did you mean {best[0]}?")


def _apply(options: CellOptions, name: str, value: str) -> None:
    if name == "--timeout":
        options.timeout = parse_timeout(value)
    elif name in ("--out", "--err"):
        if not value.isidentifier() or keyword.iskeyword(value):
            raise DockerArgsError(f"{name} needs a Python variable name, not {value!r}")
        setattr(options, name[2:], value)
    elif name == "--session":
        options.session = value
    else:
        options.profile = value


def parse_timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise DockerArgsError(f"--timeout needs a number of seconds, not {value!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise DockerArgsError(f"--timeout must be a number of seconds (0: no limit), not {value!r}")
    return seconds
