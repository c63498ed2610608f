"""After a run: its files shown as outputs, one line for each that cannot be, and kept where asked.

Files appear when the run has ended, not as they are written: a file being written is not yet
a picture, and a run's files are shown together, in name order, after its output. What is not
shown (a link, a FIFO, a device, a file over a limit, an SVG with a script, a CSV the ``csv``
module cannot read) is one ``Dockyter:`` line each on stderr, naming the file as
``$DOCKYTER_OUT/NAME``; what lies beyond ``max_files`` is one line for all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..errors import say
from ..wire.outfolder import Collected, size_text
from .keep import save
from .render import render


class Display(Protocol):
    """Shows one MIME bundle with its metadata (IPython's ``display(..., raw=True)``, given by the extension)."""

    def __call__(self, data: dict[str, Any], metadata: dict[str, Any]) -> None: ...


def show(collected: Collected, receipt: Mapping[str, Any] | None, display: Display | None, *, trust_html: bool) -> None:
    """Each file as an output (through ``display``; None: a terminal without one, plain lines), each problem one line."""
    for found in collected.files:
        if found.data is None:
            say(f"$DOCKYTER_OUT/{found.name}: {found.problem or 'not read'}")
            continue
        output = render(found, receipt, trust_html=trust_html)
        if output.problem:
            say(f"$DOCKYTER_OUT/{found.name} ({size_text(found.size)}): {output.problem}")
            continue
        if display is not None:
            display(output.data, output.metadata)
        else:
            print(output.data["text/plain"])
    if collected.omitted_note:
        say(f"$DOCKYTER_OUT: {collected.omitted_note}")


def save_to(collected: Collected, folder: str) -> None:
    """``--save-files DIR``: write the files read whole below ``folder``; one line per failure."""
    _, problems = save(collected, folder)
    for problem in problems:
        say(f"$DOCKYTER_OUT/{problem}")
