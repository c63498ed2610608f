"""A receipt for every run: which image (by digest) ran which command, where, how it ended.

A tag is not an image: ``python:3.12`` today is not ``python:3.12`` next month. Each run that
reached a backend leaves a :class:`Receipt`: the image as asked, its digest (the repository
digest where the image has one, otherwise its image ID), the effective argv after profiles,
shorthands and, through the API, the server's policy, the OCI runtime, the node, the exit code
and the duration. The backend says what it knows in :class:`RunFacts`; the core adds the rest.
``_docker_runs`` holds the last :data:`RUNS_KEPT` receipts, ``%docker_history`` shows them, and
the rich outputs of a run carry their receipt in their metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

RUNS_KEPT = 100  # receipts in _docker_runs, oldest dropped first


@dataclass(frozen=True)
class RunFacts:
    """What a backend knows of a run it made: the image it resolved, how it started the container, where."""

    digest: str | None = None  # repository digest (name@sha256:...), or the image ID when there is none
    image_id: str | None = None  # sha256:... of the image the engine ran
    argv: tuple[str, ...] = ()  # the command line that started it (through the API: the server's words)
    runtime: str | None = None  # the OCI runtime: runc, runsc, crun...
    node: str | None = None  # the engine's host name (a Swarm node, through the API)


@dataclass(frozen=True)
class Receipt:
    """One run, as ``_docker_runs`` and the outputs' metadata keep it."""

    image: str  # as asked
    digest: str | None
    image_id: str | None
    argv: tuple[str, ...]
    runtime: str | None
    node: str | None
    exit_code: int
    duration: float  # seconds, from asking the backend to its answer
    started: str  # UTC, ISO 8601
    backend: str
    session: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for a notebook's metadata."""
        data = asdict(self)
        data["argv"] = list(self.argv)
        return data

    def row(self) -> tuple[str, ...]:
        """The receipt as a ``%docker_history`` row."""
        where = " / ".join(part for part in (self.backend, self.runtime, self.node) if part)
        return (
            self.started[11:19],
            self.image + (f" (session {self.session})" if self.session else ""),
            short_digest(self.digest),
            str(self.exit_code),
            f"{self.duration:.2f} s",
            where,
        )


HISTORY_COLUMNS = ("started (UTC)", "image", "digest", "exit", "took", "where")


def short_digest(digest: str | None) -> str:
    """``name@sha256:0123456789ab`` / ``sha256:0123456789ab``: enough to tell images apart in a table."""
    if not digest:
        return "-"
    name, at, value = digest.rpartition("@")
    algorithm, colon, hexa = value.partition(":")
    short = f"{algorithm}:{hexa[:12]}" if colon else value[:19]
    return f"{name}@{short}" if at else short


class RunLog:
    """The last receipts, oldest first. ``receipts`` is the very list ``_docker_runs`` names: kept in place."""

    def __init__(self, kept: int = RUNS_KEPT) -> None:
        self.kept = kept
        self.receipts: list[Receipt] = []

    def add(self, receipt: Receipt) -> None:
        self.receipts.append(receipt)
        del self.receipts[: -self.kept]

    def rows(self, last: int | None = None) -> Sequence[tuple[str, ...]]:
        return [receipt.row() for receipt in (self.receipts[-last:] if last else self.receipts)]
