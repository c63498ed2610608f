"""The engine's local images, listed in the background so that nothing a user types waits for it.

Tab completion offers these names, and a run asks whether its image is already here before
deciding to pull it with a progress line. Both must be instant, so the list is a cache: a
read returns what is known now and, when that is older than ``max_age``, starts one refresh
in a background thread. Nothing here imports IPython.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

# Lists the local images as "repository:tag" names; None when the engine cannot be asked.
Lister = Callable[[], "list[str] | None"]


def normalise(reference: str) -> str:
    """``ubuntu`` -> ``ubuntu:latest``, as the engine names it; a digest or tag is kept."""
    if "@" in reference:
        return reference
    last = reference.rsplit("/", 1)[-1]
    return reference if ":" in last else f"{reference}:latest"


def familiar(reference: str) -> str:
    """A repository as people write it: ``docker.io/library/python`` -> ``python``."""
    for prefix in ("docker.io/", "index.docker.io/"):
        if reference.startswith(prefix):
            reference = reference[len(prefix) :]
            return reference[len("library/") :] if reference.startswith("library/") else reference
    return reference


def repository(image: str) -> str:
    """The repository of an image reference, as people write it: its name without tag or digest."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return familiar(name[:colon] if colon > slash else name)


def choose_digest(image: str, image_id: str | None, repo_digests: Sequence[str]) -> str | None:
    """What a receipt calls the digest of ``image``: the repository digest of the repository asked
    for (``python@sha256:...``), else the image's first one, else its image ID."""
    wanted = repository(image)
    for entry in repo_digests:
        if familiar(entry.split("@", 1)[0]) == wanted:
            return entry
    return repo_digests[0] if repo_digests else image_id


class LocalImages:
    """A background-refreshed list of local image names."""

    def __init__(self, lister: Lister, max_age: float = 30.0) -> None:
        self._lister = lister
        self.max_age = max_age
        self._names: list[str] = []
        self._listed_at: float | None = None  # monotonic time of the last successful listing
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None

    def names(self) -> list[str]:
        """The names known now (possibly none yet); refreshes in the background when stale."""
        if self._listed_at is None or time.monotonic() - self._listed_at > self.max_age:
            self.refresh_in_background()
        return list(self._names)

    def known(self, reference: str) -> bool:
        """Whether ``reference`` was listed last time (a cheap hint, never a promise)."""
        return normalise(reference) in self._names

    def note(self, reference: str) -> None:
        """Record an image that has just arrived (pulled), without waiting for the next listing."""
        name = normalise(reference)
        with self._lock:
            if name not in self._names:
                self._names = sorted([*self._names, name])

    def refresh_in_background(self) -> threading.Thread | None:
        """Start one listing unless one is already running; returns its thread."""
        with self._lock:
            if self._refreshing is not None and self._refreshing.is_alive():
                return self._refreshing
            thread = threading.Thread(target=self.refresh, name="dockyter-images", daemon=True)
            self._refreshing = thread
        thread.start()
        return thread

    def refresh(self) -> None:
        """List now (blocking); a failed listing keeps the previous names."""
        try:
            listed = self._lister()
        except Exception:  # noqa: BLE001 - a background chore must never disturb the kernel
            listed = None
        if listed is not None:
            with self._lock:
                self._names = sorted(set(listed))
                self._listed_at = time.monotonic()
