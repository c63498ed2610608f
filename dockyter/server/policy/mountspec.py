"""The value of ``--mount``, read as the docker CLI reads it and written so that it reads back the same.

The docker CLI reads ``--mount`` (for ``docker run`` and ``docker service create`` alike) with
Go's ``encoding/csv``, and keeps only the first record: fields are split at commas; a field that
starts with a double quote runs to the next lone quote, holds commas, and reads ``""`` as one
quote; a quote anywhere else is an error; a line break ends the record, and with it every field
after it (``readonly`` included). CPython's ``csv.writer`` before 3.11.9 and 3.12.3 leaves a
``\\n`` unquoted, so the value is written here, by rules of our own: a field is quoted unless
every character of it is plainly safe, and a field with a line break or any other control
character is never written at all (:mod:`.textcheck` refuses them long before).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable

from .textcheck import CONTROL

# Characters a field may hold unquoted: nothing Go's CSV reader or the CLI's trimming treats specially.
_PLAIN = re.compile(r"[A-Za-z0-9_./:=+@%~-]*")


def read_fields(spec: str) -> list[str]:
    """The fields of a ``--mount`` value (its first record, as the docker CLI keeps)."""
    return next(csv.reader([spec]), [])


def write_fields(fields: Iterable[str]) -> str:
    """One ``--mount`` value of ``fields``, each quoted unless plainly safe, that Go's CSV reader reads back as ``fields``.

    Raises ValueError for a field holding a control character: no quoting makes every reader agree on those.
    """
    written = []
    for field in fields:
        if CONTROL.search(field):
            raise ValueError(f"a --mount field cannot hold a control character: {field!r}")
        written.append(field if _PLAIN.fullmatch(field) else '"' + field.replace('"', '""') + '"')
    return ",".join(written)


def mount_value(keys: dict[str, str | None]) -> str:
    """``type=bind,source=...``: each key with its value (None: a key written alone, ``readonly``)."""
    return write_fields(key if value is None else f"{key}={value}" for key, value in keys.items())
