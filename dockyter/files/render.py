"""Each file of ``$DOCKYTER_OUT`` as a notebook output: a MIME bundle and its metadata (no IPython here).

By media type (:func:`dockyter.wire.outfiles.media_type`):

* PNG, JPEG and GIF: the image (its first bytes must say so);
* SVG: the image, unless it holds anything that runs (:mod:`~dockyter.files.svgcheck`);
* HTML: inside ``<iframe sandbox srcdoc=...>`` with a Content-Security-Policy that loads
  nothing from anywhere: no script runs, no form is sent, nothing is fetched. With
  ``trust_html`` (``--trust-html``), the file's own HTML, scripts and all;
* Markdown: rendered here to HTML by markdown-it-py with raw HTML off (it is escaped) and its
  link check (no ``javascript:`` links): the bundle holds that HTML, never the Markdown a
  frontend would render with raw HTML on;
* JSON: the parsed value (a tree in JupyterLab), with an indented text form;
* CSV and TSV: a table of the first rows with the size said (:mod:`~dockyter.files.csvtable`);
* anything else: one line with its name and size.

Every bundle has a ``text/plain`` form, for terminals, and its metadata names the file and
carries the run's receipt (``metadata["dockyter"]``), so a saved notebook says which image made
which output.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..wire.outfiles import media_type
from ..wire.outfolder import FoundFile, size_text
from .csvtable import read_table
from .svgcheck import svg_problem

# What the sandboxed document may load: images and fonts written inline, its own styles; nothing else.
CONTENT_POLICY = "default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'"
FRAME_HEIGHT = 420  # pixels; the frame can be resized by its corner
JSON_TEXT_CHARS = 4000  # of the indented text form of a JSON file


@dataclass(frozen=True)
class Output:
    """One display: a MIME bundle (``data``) and its ``metadata``; or, with ``problem``, one line instead."""

    data: dict[str, Any]
    metadata: dict[str, Any]
    problem: str | None = None


def render(found: FoundFile, receipt: Mapping[str, Any] | None, *, trust_html: bool = False) -> Output:
    """The output for one file read whole; ``problem`` set when it cannot be shown as its type says."""
    assert found.data is not None
    kind = media_type(found.name, found.data)
    metadata = {"dockyter": {"file": found.name, "size": found.size, "media_type": kind, "receipt": receipt}}
    plain = f"{found.name} ({size_text(found.size)})"
    data: dict[str, Any] | str = _bundle(kind, found, plain, trust_html)
    if isinstance(data, str):  # a reason it could not be shown as its type
        return Output({"text/plain": plain}, metadata, problem=data)
    data.setdefault("text/plain", plain)
    return Output(data, metadata)


def _bundle(kind: str, found: FoundFile, plain: str, trust_html: bool) -> dict[str, Any] | str:
    data = found.data or b""
    if kind in ("image/png", "image/jpeg", "image/gif"):
        return {kind: base64.b64encode(data).decode("ascii"), "text/plain": f"<image {plain}>"}
    if kind == "image/svg+xml":
        problem = svg_problem(data)
        if problem:
            return problem
        return {kind: data.decode("utf-8", errors="replace"), "text/plain": f"<image {plain}>"}
    if kind == "text/html":
        text = data.decode("utf-8", errors="replace")
        return {"text/html": text if trust_html else sandboxed(text, found.name, plain)}
    if kind == "text/markdown":
        return {"text/html": markdown_html(data.decode("utf-8", errors="replace")), "text/plain": plain}
    if kind == "application/json":
        return _json(data, plain)
    if kind in ("text/csv", "text/tab-separated-values"):
        table = read_table(data, "\t" if kind == "text/tab-separated-values" else ",")
        if isinstance(table, str):
            return table
        return {"text/html": table.html(found.name), "text/plain": table.text(found.name)}
    return {"text/plain": plain}


def sandboxed(document: str, name: str, caption: str) -> str:
    """``document`` in a frame where no script runs and nothing is fetched, under a one-line caption.

    ``sandbox=""`` turns off scripts, forms, pop-ups, top-level navigation and the frame's
    origin; the Content-Security-Policy, first in the document, keeps it from loading anything
    (a tracking pixel, a remote style sheet). ``srcdoc`` holds the document escaped, as an
    attribute value: it cannot end the frame's tag.
    """
    policy = f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}">'
    frame = (
        f'<iframe sandbox="" srcdoc="{html.escape(policy + document, quote=True)}" title="{html.escape(name, quote=True)}" '
        'referrerpolicy="no-referrer" style="width:100%;height:100%;border:0"></iframe>'
    )
    return (
        f"<div style='font-size:smaller;opacity:0.7'>{html.escape(caption)}, sandboxed: no scripts</div>"
        f"<div style='height:{FRAME_HEIGHT}px;resize:vertical;overflow:hidden;border:1px solid #ccc'>{frame}</div>"
    )


def markdown_html(text: str) -> str:
    """Markdown as HTML, its raw HTML escaped and its script links refused (markdown-it-py)."""
    from markdown_it import MarkdownIt  # only when a Markdown file is shown

    return str(MarkdownIt("commonmark", {"html": False}).render(text))


def _json(data: bytes, plain: str) -> dict[str, Any] | str:
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return "not shown as JSON: it is not UTF-8"
    except RecursionError:
        return "not shown as JSON: nested too deeply"
    except ValueError as error:
        return f"not shown as JSON: {str(error).splitlines()[0]}"
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False)
    except RecursionError:
        return "not shown as JSON: nested too deeply"
    if len(text) > JSON_TEXT_CHARS:
        text = text[:JSON_TEXT_CHARS] + "\n…"
    bundle: dict[str, Any] = {"text/plain": f"{plain}\n{text}"}
    if isinstance(value, dict | list):  # JupyterLab's JSON viewer shows an object or an array
        bundle["application/json"] = value
    return bundle
