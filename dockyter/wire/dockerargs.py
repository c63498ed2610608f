"""Splitting ``[DOCKER ARGS...] IMAGE`` the way ``docker run`` itself would.

The line is split like a POSIX shell splits it (:func:`shlex.split`), then walked against
a table of ``docker run`` flags, so we know which flags consume the next token as their
value and can find the image whatever precedes it. The client uses the result to build an
argv list; ``dockyter-server`` uses the same parse to check a request against its policy,
so both agree on what every token means however it is spelled (``--flag value``,
``--flag=value``, ``-fvalue``, ``-f=value``, ``-abc``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from .shellchars import shell_chars

# Flags of `docker run` that take a value, by canonical long name, with their one-letter forms.
VALUE_FLAGS: frozenset[str] = frozenset(
    """
    --add-host --annotation --attach --blkio-weight --blkio-weight-device --cap-add --cap-drop
    --cgroup-parent --cgroupns --cidfile --cpu-count --cpu-percent --cpu-period --cpu-quota
    --cpu-rt-period --cpu-rt-runtime --cpu-shares --cpus --cpuset-cpus --cpuset-mems --detach-keys
    --device --device-cgroup-rule --device-read-bps --device-read-iops --device-write-bps
    --device-write-iops --dns --dns-option --dns-search --domainname --entrypoint --env --env-file
    --expose --gpus --group-add --health-cmd --health-interval --health-retries
    --health-start-interval --health-start-period --health-timeout --hostname --io-maxbandwidth
    --io-maxiops --ip --ip6 --ipc --isolation --kernel-memory --label --label-file --link
    --link-local-ip --log-driver --log-opt --mac-address --memory --memory-reservation
    --memory-swap --memory-swappiness --mount --name --network --network-alias --oom-score-adj
    --pid --pids-limit --platform --publish --pull --restart --runtime --security-opt --shm-size
    --stop-signal --stop-timeout --storage-opt --sysctl --tmpfs --ulimit --user --userns --uts
    --volume --volume-driver --volumes-from --workdir
    """.split()
)

# Flags of `docker run` that are switches (they may still be written `--flag=true|false`).
BOOL_FLAGS: frozenset[str] = frozenset(
    """
    --detach --disable-content-trust --help --init --interactive --no-healthcheck
    --oom-kill-disable --privileged --publish-all --quiet --read-only --rm --sig-proxy --tty
    --use-api-socket
    """.split()
)

# The words Go's strconv.ParseBool accepts, as the docker CLI's flag parser (pflag) reads
# ``--switch=WORD``: nothing else turns a switch on or off.
TRUE_WORDS: frozenset[str] = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_WORDS: frozenset[str] = frozenset({"0", "f", "F", "FALSE", "false", "False"})

# Other spellings docker accepts for the same flag.
ALIASES: dict[str, str] = {"--net": "--network", "--net-alias": "--network-alias"}

SHORT_FLAGS: dict[str, str] = {
    "a": "--attach",
    "c": "--cpu-shares",
    "d": "--detach",
    "e": "--env",
    "h": "--hostname",
    "i": "--interactive",
    "l": "--label",
    "m": "--memory",
    "p": "--publish",
    "P": "--publish-all",
    "q": "--quiet",
    "t": "--tty",
    "u": "--user",
    "v": "--volume",
    "w": "--workdir",
}

_NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?"  # registry host[:port]/
    rf"{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"  # repository path
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"  # :tag
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"  # @digest
)


class DockerArgsError(ValueError):
    """The docker arguments cannot be understood; the message says which token and why."""


@dataclass(frozen=True)
class DockerOption:
    """One ``docker run`` option as the runtime will understand it."""

    name: str  # canonical long name, e.g. "--volume" for "-v" or "--volume=..."
    value: str | None  # the value; for a switch: None, or the "true"/"false" written after "="
    written: tuple[str, ...]  # the tokens exactly as the user wrote them, or as a server re-spelled them
    requested: tuple[str, ...] = ()  # when re-spelled: the tokens as the user wrote them (for messages)

    @property
    def as_written(self) -> str:
        """The option as the user wrote it, for messages (``--net host``, ``-v /:/h``)."""
        return " ".join(self.requested or self.written) or self.name

    @property
    def enabled(self) -> bool:
        """For a switch: whether it is on (``--rm`` and ``--rm=true`` are, ``--rm=false`` is not)."""
        return self.value is None or self.value not in FALSE_WORDS

    def spelled(self) -> str:
        """The option as one token built from what was understood: ``--name=value``, and for a
        switch ``--name`` or ``--name=false``.

        The docker CLI's parser (pflag) reads this token one way only, whatever the value holds
        (a leading ``-``, an ``=``, nothing at all), and it can take nothing from the next token.
        """
        if self.name in BOOL_FLAGS:
            return self.name if self.enabled else f"{self.name}=false"
        return f"{self.name}={self.value or ''}"


@dataclass(frozen=True)
class RunArgs:
    """``[DOCKER ARGS...] IMAGE`` split into options and image."""

    options: tuple[DockerOption, ...]
    image: str

    def argv(self) -> list[str]:
        """The options as written, then the image: ready to follow ``docker run``."""
        return [token for option in self.options for token in option.written] + [self.image]

    def values(self, name: str) -> list[str]:
        """Every value given for the option ``name`` (canonical long name), in order."""
        return [o.value for o in self.options if o.name == name and o.value is not None]

    def has(self, name: str) -> bool:
        """Whether the option ``name`` is present (and, for a switch, turned on)."""
        return any(o.name == name and o.enabled for o in self.options)

    def __str__(self) -> str:
        return shlex.join(self.argv())


def split_line(line: str, *, comments: bool = False) -> list[str]:
    """Split ``line`` like a POSIX shell would, with a clear error for unbalanced quotes.

    With ``comments``, an unquoted ``#`` that starts a word ends the line, as in a shell
    (``img  # note``); a ``#`` inside a word (``MSG=a#b``) is kept, unlike shlex's own option.
    """
    text = strip_comment(line) if comments else line
    try:
        return shlex.split(text)
    except ValueError as error:  # shlex says "No closing quotation" / "No escaped character"
        raise DockerArgsError(f"cannot split {line!r}: {str(error).lower()}") from None


def strip_comment(line: str) -> str:
    """``line`` up to its first unquoted ``#`` at the start of a word."""
    word_start = True
    for index, char, role in shell_chars(line):
        if role == "plain" and char == "#" and word_start:
            return line[:index]
        word_start = role == "plain" and char.isspace()
    return line


def parse_options(tokens: list[str]) -> tuple[tuple[DockerOption, ...], list[str]]:
    """Consume leading ``docker run`` options from ``tokens``.

    Returns the options and the remaining tokens (the first is the image, if any).
    """
    options: list[DockerOption] = []
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if token == "--" or not token.startswith("-") or token == "-":
            break
        if token.startswith("--"):
            option, position = _parse_long(tokens, position)
            options.append(option)
        else:
            parsed, position = _parse_short(tokens, position)
            options.extend(parsed)
    rest = tokens[position:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    return tuple(options), rest


def parse_run_args(line_or_tokens: str | list[str], *, allow_command: bool = False, comments: bool = False) -> RunArgs:
    """Parse ``[DOCKER ARGS...] IMAGE`` (``comments``: see :func:`split_line`).

    Tokens after the image would become a command that replaces the cell, so they are an
    error unless ``allow_command`` is set (then they are ignored by this function).
    """
    if isinstance(line_or_tokens, str):
        tokens = split_line(line_or_tokens, comments=comments)
    else:
        tokens = list(line_or_tokens)
    options, rest = parse_options(tokens)
    if not rest:
        raise DockerArgsError("no image given: the last argument must be an image, e.g. 'ubuntu:24.04'")
    image, extra = rest[0], rest[1:]
    check_image(image)
    if extra and not allow_command:
        raise DockerArgsError(
            f"unexpected {shlex.join(extra)!r} after the image {image!r}: "
            "the image must come last (docker options go before it)"
        )
    return RunArgs(options, image)


def check_image(image: str) -> None:
    """Raise :class:`DockerArgsError` unless ``image`` is a well-formed image reference."""
    if image.startswith("-"):
        raise DockerArgsError(f"expected an image, found the option {image!r}")
    if not IMAGE_REFERENCE.fullmatch(image):
        raise DockerArgsError(f"{image!r} is not a valid image reference")


def _parse_long(tokens: list[str], position: int) -> tuple[DockerOption, int]:
    token = tokens[position]
    written_name, has_inline, inline_value = token.partition("=")
    name = ALIASES.get(written_name, written_name)
    if name in BOOL_FLAGS:
        value = inline_value if has_inline else None
        if value is not None and value not in TRUE_WORDS | FALSE_WORDS:
            raise DockerArgsError(f"{written_name} is a switch: it takes no value (found {token!r})")
        return DockerOption(name, value, (token,)), position + 1
    if name in VALUE_FLAGS or has_inline:
        # An unknown flag written --flag=value is passed through (runtimes such as podman have
        # their own); the server's policy refuses whatever it does not know.
        if has_inline:
            return DockerOption(name, inline_value, (token,)), position + 1
        if position + 1 >= len(tokens):
            raise DockerArgsError(f"{written_name} needs a value")
        return DockerOption(name, tokens[position + 1], (token, tokens[position + 1])), position + 2
    raise DockerArgsError(
        f"unknown docker run option {written_name!r}; if it takes a value, write it as {written_name}=VALUE"
    )


def _parse_short(tokens: list[str], position: int) -> tuple[list[DockerOption], int]:
    """``-it``, ``-v a:b``, ``-va:b``, ``-e=X=1``: switches may be grouped; a value flag ends the group.

    As pflag reads it: ``-X=`` followed by something is that something, but ``-e=`` alone is the value ``=``.
    """
    token = tokens[position]
    letters = token[1:]
    options: list[DockerOption] = []
    for index, letter in enumerate(letters):
        if letter == "=" and index > 0:
            raise DockerArgsError(f"cannot understand {token!r}: '=' after a switch")
        name = SHORT_FLAGS.get(letter)
        if name is None:
            raise DockerArgsError(f"unknown docker run option '-{letter}' in {token!r}")
        if name in BOOL_FLAGS:
            remainder = letters[index + 1 :]
            if remainder.startswith("="):  # -d=false
                value = remainder[1:]
                if value not in TRUE_WORDS | FALSE_WORDS:
                    raise DockerArgsError(f"-{letter} is a switch: it takes no value (found {token!r})")
                options.append(DockerOption(name, value, (token,)))
                return options, position + 1
            options.append(DockerOption(name, None, (token,) if len(letters) == 1 else (f"-{letter}",)))
            continue
        remainder = letters[index + 1 :]
        if remainder:
            value = remainder[1:] if len(remainder) > 1 and remainder.startswith("=") else remainder
            written = (token,) if index == 0 else (f"-{letter}{remainder}",)
            options.append(DockerOption(name, value, written))
            return options, position + 1
        if position + 1 >= len(tokens):
            raise DockerArgsError(f"-{letter} ({name}) needs a value")
        options.append(DockerOption(name, tokens[position + 1], (f"-{letter}", tokens[position + 1])))
        return options, position + 2
    return options, position + 1
