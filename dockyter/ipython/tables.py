"""``%docker_status``: a small report that renders as a table in Jupyter and as text in a terminal."""

from __future__ import annotations

import html
from typing import Any


class StatusReport:
    """Rows of (label, value); ``display()`` picks HTML or plain text as the frontend prefers."""

    def __init__(self, title: str, rows: list[tuple[str, str]]) -> None:
        self.title = title
        self.rows = rows

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
            f"<td style='text-align:left'><code>{html.escape(value)}</code></td></tr>"
            for label, value in self.rows
        )
        return f"<table><caption style='text-align:left'><b>{html.escape(self.title)}</b></caption>{body}</table>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's pretty printer
        printer.text(str(self))

    def __str__(self) -> str:
        width = max((len(label) for label, _ in self.rows), default=0)
        lines = [self.title] + [f"  {label.ljust(width)}  {value}" for label, value in self.rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)
