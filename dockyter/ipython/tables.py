"""The tables the magics show: an HTML table in Jupyter, aligned text in a terminal.

``display()`` picks the form the frontend prefers. Two shapes, one renderer: rows of a label and
its value (``%docker_status``, ``%docker_config``, ``%docker_profile``), whose text starts with
the title; and rows under named columns (``%docker_session``), whose text starts with the names.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any


class Table:
    """``rows`` of strings: label and value, or one value per name of ``columns``."""

    def __init__(self, title: str, rows: Sequence[Sequence[str]], columns: Sequence[str] | None = None) -> None:
        self.title = title
        self.rows = [tuple(row) for row in rows]
        self.columns = tuple(columns) if columns is not None else None

    def _repr_html_(self) -> str:
        caption = f"<caption style='text-align:left'><b>{html.escape(self.title)}</b></caption>"
        if self.columns is None:  # a label, then its value as code
            body = "".join(
                f"<tr>{_cell('th', label)}{_cell('td', f'<code>{html.escape(value)}</code>', escaped=True)}</tr>"
                for label, value in self.rows
            )
        else:
            head = "<tr>" + "".join(_cell("th", name) for name in self.columns) + "</tr>"
            body = head + "".join("<tr>" + "".join(_cell("td", value) for value in row) + "</tr>" for row in self.rows)
        return f"<table>{caption}{body}</table>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's pretty printer
        printer.text(str(self))

    def __str__(self) -> str:
        if self.columns is None:
            return "\n".join([self.title, *(f"  {line}" for line in _aligned(self.rows))])
        return "\n".join(_aligned([self.columns, *self.rows]))

    def __repr__(self) -> str:
        return str(self)


def _cell(tag: str, text: str, *, escaped: bool = False) -> str:
    return f"<{tag} style='text-align:left'>{text if escaped else html.escape(text)}</{tag}>"


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Each row's values in columns two spaces apart, as wide as their widest value."""
    if not rows:
        return []
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in rows]
