"""Containers found by a label, and a label's value on each, read the same way from docker and podman.

``docker ps --format '{{.Label "KEY"}}'`` gives a label's value in the listing itself, but
podman's ``ps`` rows have no ``.Label`` (podman 4.3: "can't evaluate field Label", exit 125,
after the first row), and their ``{{.Labels}}`` is a Go map where Docker's is ``k=v,k=v``.
So the containers are listed by name with ``ps --filter label=KEY`` (both CLIs), then read
with ``container inspect``, whose ``{{index .Config.Labels "KEY"}}`` both answer. Docker
writes the name ``/NAME`` there, and a missing label ``<no value>``; a container removed in
between makes ``inspect`` exit non-zero while it still writes the others.

The kernel's ``%docker_cleanup`` and the server's clean-up both use it; each runs the two
commands its own way (a blocking subprocess, an asyncio one).
"""

from __future__ import annotations

from collections.abc import Sequence


def list_argv(label: str, value: str | None = None, *, running_only: bool = False) -> list[str]:
    """``ps`` arguments that print the name of each container with ``label`` (``=value``), one a line."""
    wanted = label if value is None else f"{label}={value}"
    return ["ps", *(() if running_only else ("-a",)), "--filter", f"label={wanted}", "--format", "{{.Names}}"]


def names(listing: str) -> list[str]:
    """The container names of ``list_argv``'s output."""
    return listing.split()


def inspect_argv(label: str, containers: Sequence[str]) -> list[str]:
    """``container inspect`` arguments that print ``NAME<TAB>VALUE`` of ``label`` for each container."""
    return ["container", "inspect", "--format", f'{{{{.Name}}}}\t{{{{index .Config.Labels "{label}"}}}}', *containers]


def values(inspected: str) -> dict[str, str]:
    """``inspect_argv``'s output as name -> the label's value ('' when the container has none)."""
    found = {}
    for line in inspected.splitlines():
        name, tab, value = line.partition("\t")
        if tab and name:
            found[name.lstrip("/")] = "" if value == "<no value>" else value
    return found
