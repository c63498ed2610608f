"""What IPython would have expanded on a magic line, when one name stopped it expanding anything.

IPython expands ``$name`` and ``{expression}`` on a magic line from Python (``var_expand``), but
all or nothing: one name that is not a Python variable (``$PWD``, ``$HOME``) and the whole line
reaches the magic untouched, ``$image`` and ``$$`` included. ``-v $PWD:/work $image`` then fails
on ``'$image' is not a valid image reference``, which blames the wrong word. Here each field is
expanded on its own, as IPython's formatter would, and one that cannot be is left as written, so
the magic sees the line IPython would have given it and can explain ``$PWD`` itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from string import Formatter
from typing import Any

from IPython.utils.text import DollarFormatter

Field = tuple[str, str | None, str, str | None, str]  # literal, field, spec, conversion, as written


class _Fields(DollarFormatter):
    """IPython's ``$name`` / ``{expression}`` reading, each field with the text it was written as."""

    def fields(self, line: str) -> Iterator[Field]:
        for literal, name, spec, conversion in Formatter.parse(self, line):
            start, text = 0, ""
            for found in self._dollar_pattern_ignore_single_quote.finditer(literal):
                before, dollar = found.group(1, 2)
                if dollar.startswith("$"):  # $$name: a literal $name
                    text += before + dollar
                else:
                    yield text + before, dollar, "", None, f"${dollar}"
                    text = ""
                start = found.end()
            written = None if name is None else "{" + name + (f"!{conversion}" if conversion else "")
            written = None if written is None else written + (f":{spec}" if spec else "") + "}"
            yield text + literal[start:], name, spec or "", conversion, written or ""

    def value(self, field: Field, namespace: Mapping[str, Any]) -> str:
        _, name, spec, conversion, _ = field
        assert name is not None
        expression = f"{name}:{spec}" if spec else name
        return str(self.format_field(self.convert_field(eval(expression, dict(namespace)), conversion), ""))


def expand_known(line: str, namespace: Mapping[str, Any]) -> str:
    """``line`` as IPython would have expanded it, had it not given up: each field that can be is
    expanded (``$$`` becomes ``$``), and one that cannot (``$PWD``) is left as written.

    A line IPython did expand has no field left, and comes back as it is.
    """
    reader = _Fields()
    try:
        fields = list(reader.fields(line))
    except ValueError:  # a lone '{': IPython could not read it either
        return line
    if all(name is None for _, name, _, _, _ in fields) and "$$" not in line:
        return line
    out = []
    for field in fields:
        literal, name, _, _, written = field
        out.append(literal)
        if name is not None:
            try:
                out.append(reader.value(field, namespace))
            except Exception:  # noqa: BLE001 - as IPython: a field that cannot be expanded stays as written
                out.append(written)
    return "".join(out)
