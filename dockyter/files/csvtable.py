"""A CSV or TSV file as a table of its first rows, with its size said: HTML for a notebook, text for a terminal.

Every cell is escaped (the file is the container's, and hostile), long cells and wide rows are
cut, and the whole file is parsed once to count its rows, within the size limit it was read
under. A file the ``csv`` module cannot read is one line saying why, not a table.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass

from ..wire.outfolder import size_text

ROWS_SHOWN = 20  # rows after the header
COLUMNS_SHOWN = 30
CELL_CHARS = 120  # characters of one cell; longer ones end with an ellipsis
FIELD_LIMIT = 1 << 20  # characters one field may hold before the file is refused


@dataclass(frozen=True)
class CsvTable:
    """The head of a delimited file, and how much it holds."""

    header: list[str]
    rows: list[list[str]]  # at most ROWS_SHOWN
    row_count: int  # rows after the header
    column_count: int  # the widest row's
    size: int

    def caption(self, name: str) -> str:
        rows = f"{self.row_count:,} row{'' if self.row_count == 1 else 's'}"
        shown = f"; the first {len(self.rows)} shown" if self.row_count > len(self.rows) else ""
        columns = f"{self.column_count:,} column{'' if self.column_count == 1 else 's'}"
        return f"{name}: {rows} × {columns}, {size_text(self.size)}{shown}"

    def html(self, name: str) -> str:
        def cells(tag: str, row: list[str]) -> str:
            return "".join(f"<{tag}>{html.escape(_cut(value))}</{tag}>" for value in row[:COLUMNS_SHOWN])

        more = "<th>…</th>" if self.column_count > COLUMNS_SHOWN else ""
        head = f"<thead><tr>{cells('th', self.header)}{more}</tr></thead>"
        body = "".join(f"<tr>{cells('td', row)}</tr>" for row in self.rows)
        caption = f"<caption style='text-align:left'>{html.escape(self.caption(name))}</caption>"
        return f"<table>{caption}{head}<tbody>{body}</tbody></table>"

    def text(self, name: str) -> str:
        shown = [[_cut(value, 30) for value in row[:COLUMNS_SHOWN]] for row in [self.header, *self.rows]]
        width = max((len(row) for row in shown), default=0)
        widths = [max((len(row[i]) for row in shown if i < len(row)), default=0) for i in range(width)]
        lines = ["  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip() for row in shown]
        return "\n".join([self.caption(name), *lines])


def read_table(data: bytes, delimiter: str) -> CsvTable | str:
    """``data`` as a table, or one line saying why it cannot be one."""
    text = data.decode("utf-8-sig", errors="replace")
    previous = csv.field_size_limit(FIELD_LIMIT)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header: list[str] | None = None
        rows: list[list[str]] = []
        count = width = 0
        for row in reader:
            width = max(width, len(row))
            if header is None:
                header = row
                continue
            count += 1
            if len(rows) < ROWS_SHOWN:
                rows.append(row)
    except csv.Error as error:
        return f"not shown as a table: {error}"
    finally:
        csv.field_size_limit(previous)
    if header is None:
        return "an empty table"
    return CsvTable(header, rows, count, width, len(data))


def _cut(value: str, limit: int = CELL_CHARS) -> str:
    value = "".join(char if char.isprintable() else " " for char in value)
    return value if len(value) <= limit else value[: limit - 1] + "…"
