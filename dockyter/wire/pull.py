"""Pulling an image with progress: layers done of total, and bytes, as the engine reports them.

The engine's API (``POST /images/create``) streams one JSON message per layer event, with
byte counts while a layer downloads. We reach it through the container CLI's own
connection (``docker system dial-stdio``), so a remote ``DOCKER_HOST`` or context works and
no new dependency is needed. When that is not possible (a CLI without ``dial-stdio``, a
registry that wants the credentials only the CLI reads, podman without its API service),
``docker pull`` itself runs and its per-layer lines still give layers done of total, without
bytes. ``podman pull`` writes other lines (``Copying blob sha256:...`` as each layer starts,
``Copying config`` once they are all there), which give the same count, without saying which
layers were new.

Client and server both use this module; it imports nothing from IPython.
"""

from __future__ import annotations

import functools
import http.client
import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlencode

from .images import normalise

POLL = 0.2  # seconds between checks for an interrupt while waiting for the engine
PULL_TIMEOUT = 3600.0  # a pull that makes no progress for this long is abandoned
# Layer statuses that mean the layer is here. "Copied": podman pull's lines say no more.
COPIED = "Copied"
LAYER_DONE = ("Pull complete", "Already exists", COPIED)
# podman's compatible API ends a new layer at "Download complete" (Docker's goes on to "Pull complete").
NEW_AT_THE_END = ("Pull complete", "Download complete")


class PullFailed(Exception):
    """The image could not be pulled; the message is the engine's or the registry's reason."""


@dataclass
class PullProgress:
    """What a pull has done so far, from the engine's messages."""

    image: str
    layers: dict[str, str] = field(default_factory=dict)  # layer id -> its last status
    current: dict[str, int] = field(default_factory=dict)  # layer id -> bytes downloaded
    total: dict[str, int] = field(default_factory=dict)  # layer id -> its size, once known
    started: float = field(default_factory=time.monotonic)

    def feed(self, message: dict[str, Any]) -> None:
        """One message of the engine's pull stream (or one parsed ``docker pull`` line)."""
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail")
            reason = detail.get("message") if isinstance(detail, dict) else None
            raise PullFailed(str(reason or message.get("error")))
        layer, status = message.get("id"), message.get("status")
        if not isinstance(layer, str) or not isinstance(status, str):
            return
        if status.startswith("Pulling from") or layer == normalise(self.image).rsplit(":", 1)[-1]:
            return  # "1: Pulling from ux/bash": about the tag, not a layer
        self.layers[layer] = status
        detail = message.get("progressDetail") or {}
        if status == "Downloading" and isinstance(detail, dict):
            if isinstance(detail.get("current"), int):
                self.current[layer] = detail["current"]
            if isinstance(detail.get("total"), int) and detail["total"] > 0:
                self.total[layer] = detail["total"]
        elif status in ("Download complete", "Pull complete", "Extracting", "Verifying Checksum"):
            if layer in self.total:
                self.current[layer] = self.total[layer]

    @property
    def layers_done(self) -> int:
        return sum(status in LAYER_DONE for status in self.layers.values())

    @property
    def bytes_done(self) -> int:
        return sum(self.current.values())

    @property
    def bytes_total(self) -> int:
        return sum(self.total.values())

    @property
    def layers_new(self) -> int:
        return sum(status in NEW_AT_THE_END for status in self.layers.values())

    @property
    def knows_new(self) -> bool:
        """Whether the messages said which layers were new (podman pull's lines do not)."""
        return COPIED not in self.layers.values()

    def line(self) -> str:
        """``pulling IMAGE: 2/5 layers, 12.3/45.6 MB``."""
        return progress_line(self.event())

    def summary(self) -> str:
        """``pulled IMAGE: 5 layers (3 new), 45.6 MB in 4.2 s``."""
        return summary_line(self.event(done=True))

    def event(self, done: bool = False) -> dict[str, Any]:
        """The ``pull`` event of the API's NDJSON stream (docs/api.md)."""
        event: dict[str, Any] = {
            "event": "pull",
            "image": self.image,
            "layers_done": self.layers_done,
            "layers": len(self.layers),
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "done": done,
        }
        if done:
            if self.knows_new:
                event["layers_new"] = self.layers_new
            event["seconds"] = round(time.monotonic() - self.started, 1)
        return event


def _count(event: dict[str, Any], name: str) -> int:
    value = event.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def progress_line(event: dict[str, Any]) -> str:
    """The progress line for a ``pull`` event (ours, or one a server sent)."""
    image, layers = event.get("image"), _count(event, "layers")
    if not layers:
        return f"pulling {image}..."
    text = f"pulling {image}: {_count(event, 'layers_done')}/{layers} layers"
    if _count(event, "bytes_total"):
        text += f", {megabytes(_count(event, 'bytes_done'))}/{megabytes(_count(event, 'bytes_total'))} MB"
    return text


def summary_line(event: dict[str, Any]) -> str:
    """The line a finished pull leaves: ``pulled IMAGE: 5 layers (3 new), 45.6 MB in 4.2 s``."""
    text = f"pulled {event.get('image')}"
    if _count(event, "layers"):
        text += f": {_count(event, 'layers')} layers"
        if "layers_new" in event:
            text += f" ({_count(event, 'layers_new')} new)"
    if _count(event, "bytes_total"):
        text += f", {megabytes(_count(event, 'bytes_total'))} MB"
    seconds = event.get("seconds")
    return text + (f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else "")


def megabytes(count: int) -> str:
    return f"{count / 1e6:.1f}"


def last_value(values: list[str]) -> str | None:
    """The value docker uses when a flag is given several times: the last one."""
    return values[-1] if values else None


def needs_pull(pull_flag: str | None) -> bool:
    """Whether a run with ``--pull VALUE`` (None: not given) should be preceded by our pull."""
    return pull_flag is None or pull_flag in ("missing", "always")


def needs_credentials(reason: str) -> bool:
    """Whether a refused pull may succeed with the CLI's stored registry credentials."""
    reason = reason.lower()
    return any(word in reason for word in ("denied", "unauthorized", "authentication required", "credentials"))


# -- talking to the engine -----------------------------------------------------------------------


class _Pipe:
    """What ``http.client.HTTPResponse`` needs of a socket: a file to read the reply from."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def makefile(self, *args: Any, **kwargs: Any) -> IO[bytes]:
        return self.stream


Started = Callable[[subprocess.Popen[bytes]], None]  # told of each process a source starts
# The environment of the CLI processes a pull starts; None: this process's own.
Environment = Mapping[str, str] | None


def api_messages(
    docker_command: Sequence[str], image: str, platform: str | None, env: Environment, started: Started
) -> Iterator[dict[str, Any]]:
    """The engine's pull stream for ``image``, through ``docker system dial-stdio``.

    Raises OSError when the CLI cannot dial, PullFailed when the engine refuses.
    """
    query = {"fromImage": normalise(image)}
    if platform:
        query["platform"] = platform
    process = subprocess.Popen(
        [*docker_command, "system", "dial-stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    started(process)
    assert process.stdin is not None and process.stdout is not None
    try:
        # stdin stays open until the reply ends: closing it makes the engine cancel the pull.
        process.stdin.write(
            f"POST /images/create?{urlencode(query)} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n".encode()
        )
        process.stdin.flush()
        response = http.client.HTTPResponse(_Pipe(process.stdout))  # type: ignore[arg-type]
        try:
            response.begin()
        except (http.client.HTTPException, OSError) as error:
            stderr = process.stderr.read().decode(errors="replace").strip() if process.stderr else ""
            raise OSError(stderr or f"no HTTP answer through dial-stdio: {error}") from None
        if response.status != 200:
            body = response.read().decode(errors="replace")
            try:
                reason = json.loads(body).get("message") or body
            except (ValueError, AttributeError):
                reason = body
            raise PullFailed(reason.strip() or f"the engine answered {response.status}")
        while line := response.readline():
            if line.strip():
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    yield message
    finally:
        for stream in (process.stdin, process.stdout, process.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if process.poll() is None:
            process.kill()
        process.wait()


# podman pull's lines: "Copying blob sha256:HEX" as a layer starts (with " done" or
# " skipped: already exists" after it in some versions), "Copying config sha256:HEX" once all are here.
PODMAN_BLOB = re.compile(r"Copying blob (?:sha256:)?([0-9a-f]{12})[0-9a-f]*(?: (done|skipped: already exists))?$")
PODMAN_CONFIG = "Copying config"
PODMAN_STATUS = {None: "Downloading", "done": COPIED, "skipped: already exists": "Already exists"}
CLI_ERROR_PREFIXES = ("Error response from daemon: ", "Error: ")  # docker's, podman's


def cli_line_messages(line: str, started: list[str]) -> list[dict[str, Any]]:
    """The messages one line of ``docker pull`` or ``podman pull`` stands for.

    ``started``: the podman layers seen so far, all done once the config is copied.
    """
    blob = PODMAN_BLOB.match(line)
    if blob:
        layer, status = blob.group(1), PODMAN_STATUS[blob.group(2)]
        started.append(layer)
        return [{"id": layer, "status": status}]
    if line.startswith(PODMAN_CONFIG):
        return [{"id": layer, "status": COPIED} for layer in started]
    layer, colon, status = line.partition(": ")
    if colon and " " not in layer and not line.startswith(CLI_ERROR_PREFIXES):
        return [{"id": layer, "status": status}]  # docker's "abc123: Pull complete"
    return []


def cli_reason(line: str) -> str:
    """The CLI's last line, without its "Error: " words: why the pull failed."""
    for prefix in CLI_ERROR_PREFIXES:
        line = line.removeprefix(prefix)
    return line


def cli_messages(
    docker_command: Sequence[str], image: str, platform: str | None, env: Environment, started: Started
) -> Iterator[dict[str, Any]]:
    """``docker pull``'s lines (``abc123: Pull complete``), or podman's, as messages without byte counts."""
    argv = [*docker_command, "pull", *(["--platform", platform] if platform else []), image]
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    started(process)
    assert process.stdout is not None
    last = ""
    layers: list[str] = []
    try:
        for raw in process.stdout:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            last = line
            yield from cli_line_messages(line, layers)
        if process.wait() != 0:
            raise PullFailed(cli_reason(last) or "docker pull failed")
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()
        process.wait()


def pull(
    docker_command: Sequence[str],
    image: str,
    platform: str | None,
    on_progress: Callable[[PullProgress], None],
    cancelled: Callable[[], bool] = lambda: False,
    env: Environment = None,
) -> PullProgress:
    """Pull ``image``, calling ``on_progress`` after each message; returns the final progress.

    The messages are read in a thread, so a KeyboardInterrupt reaches the caller within
    ``POLL`` seconds even while the engine is silent; the pull's process is then ended. So
    does ``cancelled()`` turning true (PullFailed "cancelled"), for callers in other threads.
    The CLI runs in ``env`` (the server gives its fixed one), or in this process's environment.
    """
    progress = PullProgress(image)
    for source in (api_messages, cli_messages):
        try:
            messages = functools.partial(source, docker_command, image, platform, env)  # takes `started`
            for message in _polled(messages, cancelled):
                progress.feed(message)
                on_progress(progress)
            return progress
        except OSError:
            continue  # this CLI cannot dial its engine: docker pull instead
        except PullFailed as error:
            if source is cli_messages or not needs_credentials(str(error)):
                raise
            # The registry wants the credentials that only the CLI reads: docker pull, with them.
            progress = PullProgress(image)
    raise PullFailed(f"{docker_command[0]!r} cannot pull images")


_END = object()


def _polled(
    source: Callable[[Started], Iterator[dict[str, Any]]], cancelled: Callable[[], bool]
) -> Iterator[dict[str, Any]]:
    """``source``'s messages read in a thread, handed over with a bounded wait (see :func:`pull`).

    When the consumer stops early (an interrupt), the source's process is killed, which ends
    the reading thread too.
    """
    box: queue.Queue[Any] = queue.Queue()
    processes: list[subprocess.Popen[bytes]] = []

    def read() -> None:
        try:
            for message in source(processes.append):
                box.put(message)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            box.put(error)
        box.put(_END)

    thread = threading.Thread(target=read, name="dockyter-pull", daemon=True)
    thread.start()
    quiet_since = time.monotonic()
    try:
        while True:
            try:
                item = box.get(timeout=POLL)
            except queue.Empty:
                if cancelled():
                    raise PullFailed("cancelled") from None
                if time.monotonic() - quiet_since > PULL_TIMEOUT:
                    raise PullFailed(f"no progress for {PULL_TIMEOUT:g} s") from None
                continue
            quiet_since = time.monotonic()
            if cancelled():
                raise PullFailed("cancelled")
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        thread.join(timeout=5)
