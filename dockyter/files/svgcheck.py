"""Whether an SVG file is only a picture: no script, no event handler, no embedded document.

An SVG is XML that a browser may render inline, where ``<script>``, ``onload="..."``, a
``javascript:`` link or a ``<foreignObject>`` holding HTML would run in the notebook's page.
JupyterLab shows SVG output through an ``<img>``, where none of that runs, but other frontends
insert it into the page. So a file that holds any of them is not shown as an image at all: one
line says why. Plotting tools (gnuplot, matplotlib, Graphviz) write none of them.

The file is read with expat as it is, with entity declarations refused (no entity expansion
attacks, no external entities: expat never fetches them anyway).
"""

from __future__ import annotations

import re
import xml.parsers.expat

# Elements that run or embed something: scripts, HTML inside SVG, other documents, animation
# elements that can set an attribute (an href) to a script URL.
ACTIVE_ELEMENTS = frozenset({"script", "foreignobject", "iframe", "embed", "object", "handler", "listener"})
SETTERS = frozenset({"set", "animate"})  # <set attributeName="href" to="javascript:...">
LINK_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "from", "to", "values"})  # local names
SCRIPT_URL = re.compile(r"^\s*(javascript|vbscript|data\s*:\s*text/html)", re.IGNORECASE)
MAX_DEPTH = 256


class _Active(Exception):
    """The SVG holds something that runs; the message says what."""


def svg_problem(data: bytes) -> str | None:
    """Why ``data`` may not be shown as an SVG image, or None when it is only a picture."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=None)
    depth = 0
    root: list[str] = []

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise _Active(f"nested deeper than {MAX_DEPTH} elements")
        local = name.rsplit(":", 1)[-1].lower()
        if not root:
            root.append(local)
        if local in ACTIVE_ELEMENTS:
            raise _Active(f"it holds a <{local}> element")
        for attribute, value in attributes.items():
            lowered = attribute.lower().rsplit(":", 1)[-1]  # xlink:href is href
            if lowered.startswith("on"):
                raise _Active(f"it holds an event handler ({attribute}=)")
            if lowered in LINK_ATTRIBUTES and SCRIPT_URL.match(value):
                raise _Active(f"it holds a script link ({attribute}=)")
            if local in SETTERS and lowered == "attributename" and value.lower().rsplit(":", 1)[-1] == "href":
                raise _Active(f"it holds an animation that sets a link (<{local} attributeName={value}>)")

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    def entity(*_: object) -> None:
        raise _Active("it declares XML entities")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.EntityDeclHandler = entity
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except _Active as active:
        return f"not shown as an image: {active}"
    except xml.parsers.expat.ExpatError as error:
        return f"not shown as an image: not well-formed XML ({xml.parsers.expat.ErrorString(error.code)}, line {error.lineno})"
    if root != ["svg"]:
        return "not shown as an image: its root element is not <svg>"
    return None
