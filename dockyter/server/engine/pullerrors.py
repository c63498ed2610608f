"""What a client is told when an image cannot be pulled: one line, never the engine's words.

The engine's reason for a failed pull quotes the registry: its address, the first bytes of
its answer (``malformed HTTP response "..."``), the difference between a refused connection,
a timeout and a TLS error. Handed to a client, that is a probe of whatever the engine's host
can reach. So the client is told ``cannot pull IMAGE: not found``, ``access denied``, ``the
registry refused: too many requests`` or ``the registry did not answer``, and the engine's
whole text goes to the server's log (a ``pull_failed`` line).

A pull can fail in three places, and each goes through here:

* the server's own pull (:mod:`dockyter.wire.pull`, run by :mod:`.execution`): :func:`pull_failure`;
* the container CLI's implicit pull (``docker run`` / ``docker create`` with ``--pull``), whose
  lines open the CLI's stderr: :class:`CliPullLines` takes them off a stream, and
  :func:`cli_pull_failure` reads them in collected output (a session's start-up);
* a Swarm node's pull, which the task's status reports: :func:`task_pull_failure`.
"""

from __future__ import annotations

import json
import logging
import re

log = logging.getLogger("dockyter.server")

# The kinds of failure a client may learn, and words of the engine's text that mean each.
_NOT_FOUND = ("manifest unknown", "not found", "no such image", "does not exist", "name unknown")
_DENIED = ("denied", "unauthorized", "authentication required", "forbidden", "no basic auth credentials")
_TOO_MANY = ("toomanyrequests", "too many requests", "rate limit")
_NO_SPACE = ("no space left",)
_ENGINE_DOWN = ("cannot connect to the docker daemon", "is the docker daemon running", "cannot connect to podman")

# The docker CLI's own lines while it pulls (its stderr without a terminal), and after.
_UNABLE = "Unable to find image '"
_PULL_LINE = re.compile(
    r"\S+: (Pulling from \S+|Pulling fs layer|Waiting|Downloading.*|Verifying Checksum|Download complete"
    r"|Extracting.*|Pull complete|Already exists)|Digest: \S+|Pulling from \S+"
)
_PULL_DONE = re.compile(r"Status: (Downloaded newer image|Image is up to date) for \S+")
_ERROR = re.compile(r"(?:docker: )?Error response from daemon: (?P<reason>.*)")
LINE_LIMIT = 4096  # bytes of a first line held back to tell a pull line from the container's own


def summary(reason: str) -> str:
    """What kind of failure the engine's ``reason`` is, in words that say nothing of the registry's answer."""
    text = reason.lower()
    not_found = any(sign in text for sign in _NOT_FOUND)
    denied = any(sign in text for sign in _DENIED)
    if not_found and denied:
        return "not found, or access denied"  # Docker Hub says both of a repository it will not show
    if not_found:
        return "not found"
    if denied:
        return "access denied"
    if any(sign in text for sign in _TOO_MANY):
        return "the registry refused: too many requests"
    if any(sign in text for sign in _NO_SPACE):
        return "no space left on the server's engine"
    if any(sign in text for sign in _ENGINE_DOWN):
        return "the server's container engine did not answer"
    return "the registry did not answer"


def pull_failure(image: str, reason: str) -> str:
    """``cannot pull IMAGE: <summary>`` for the client; the engine's ``reason`` goes to the log."""
    log.warning(json.dumps({"event": "pull_failed", "image": image, "engine": reason}))
    return f"cannot pull {image}: {summary(reason)}"


class CliPullLines:
    """Takes the container CLI's own pull lines off the start of the stream that carries its stderr.

    ``docker run`` and ``docker create`` print, before the container exists, ``Unable to find
    image 'IMAGE' locally`` (or, with ``--pull always``, ``TAG: Pulling from REPO``), the pull's
    lines, and either ``Status: Downloaded newer image for IMAGE`` or ``docker: Error response
    from daemon: REASON`` and a hint. Those lines are dropped, a failure becomes the one line
    ``docker: cannot pull IMAGE: <summary>``, and everything from the first other line on
    passes untouched. Only a first line that could still become one of the CLI's is held back.
    """

    def __init__(self, image: str) -> None:
        self.image = image
        self.failure: str | None = None  # the client's line, once a pull failed
        self._openings = (_UNABLE, f"{_tag_of(image)}: Pulling from ")
        self._state = "first"  # first line -> "pulling" -> "passing"; or "failed" (the CLI ends)
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        """The part of ``data`` the client may see now."""
        if self._state == "passing":
            return data
        self._pending += data
        shown: list[bytes] = []
        while self._state in ("first", "pulling", "failed"):
            line, newline, rest = self._pending.partition(b"\n")
            if not newline:
                if self._state == "first" and not self._may_open(self._pending):
                    self._state = "passing"
                break
            self._pending = rest
            shown.append(self._line(line.decode(errors="replace"), line + b"\n"))
        if self._state == "passing":
            shown.append(self._pending)
            self._pending = b""
        return b"".join(shown)

    def flush(self) -> bytes:
        """What is held back when the stream ends."""
        held = b"" if self._state == "failed" else self._pending
        self._pending = b""
        self._state = "passing"
        return held

    def _may_open(self, start: bytes) -> bool:
        """Whether a first line beginning with ``start`` may still be one of the CLI's pull lines."""
        text = start.decode(errors="replace")
        return len(start) < LINE_LIMIT and any(o.startswith(text) or text.startswith(o) for o in self._openings)

    def _line(self, text: str, raw: bytes) -> bytes:
        """One whole line: what of it the client sees."""
        if self._state == "failed":
            return b""  # the CLI's hint after its error; nothing else comes, the container never started
        if self._state == "first":
            if not text.startswith(self._openings):
                self._state = "passing"
                return raw
            self._state = "pulling"
            return b""
        if _PULL_LINE.fullmatch(text):
            return b""
        if _PULL_DONE.fullmatch(text):
            self._state = "passing"  # the image is here: what follows is the container's
            return b""
        error = _ERROR.fullmatch(text)
        if error:
            self._state = "failed"
            self.failure = pull_failure(self.image, error.group("reason"))
            return f"docker: {self.failure}\n".encode()
        self._state = "passing"
        return raw


def cli_pull_failure(image: str, output: str) -> str | None:
    """``cannot pull IMAGE: <summary>`` when the CLI's collected ``output`` opens with a failed pull."""
    lines = CliPullLines(image)
    lines.feed(output.encode())
    lines.flush()
    return lines.failure


def task_pull_failure(image: str, error: str) -> str | None:
    """``cannot pull IMAGE: ...`` when a Swarm task was rejected for want of its image.

    A node that cannot pull logs why and reports only ``No such image: IMAGE``: the server
    cannot tell which failure it was, and says so.
    """
    if "no such image" not in error.lower():
        return None
    log.warning(json.dumps({"event": "pull_failed", "image": image, "engine": error}))
    return f"cannot pull {image}: the node could not pull it (not found, access denied, or no answer)"


def _tag_of(image: str) -> str:
    """The id docker's pull lines give the image: its tag, its digest, or ``latest``."""
    name, at, digest = image.partition("@")
    if at:
        return digest
    last = name.rsplit("/", 1)[-1]
    return last.rpartition(":")[2] if ":" in last else "latest"
