"""Each file as a notebook output, with every byte treated as hostile: no script runs unless asked for."""

from __future__ import annotations

import base64
import html
import os
import re

import pytest

from dockyter.files.csvtable import ROWS_SHOWN, read_table
from dockyter.files.keep import as_dict, save
from dockyter.files.render import CONTENT_POLICY, render
from dockyter.files.svgcheck import svg_problem
from dockyter.wire.outfolder import Collected, FoundFile

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 8
RECEIPT = {"image": "img:1", "digest": "sha256:abc"}
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="5" height="5"/></svg>'


def shown(name: str, data: bytes, **options):
    return render(FoundFile(name, len(data), data=data), RECEIPT, **options)


def test_an_image_is_its_base64_with_the_receipt_in_its_metadata():
    output = shown("plot.png", PNG)
    assert output.problem is None
    assert base64.b64decode(output.data["image/png"]) == PNG
    assert output.data["text/plain"] == "<image plot.png (16 bytes)>"
    assert output.metadata == {
        "dockyter": {"file": "plot.png", "size": 16, "media_type": "image/png", "receipt": RECEIPT}
    }


def test_a_file_named_png_that_is_not_one_is_a_line():
    output = shown("plot.png", b"<script>alert(1)</script>")
    assert set(output.data) == {"text/plain"} and output.problem is None


def test_an_svg_picture_is_shown_as_svg():
    assert shown("fig.svg", SVG).data["image/svg+xml"] == SVG.decode()


@pytest.mark.parametrize(
    ("svg", "why"),
    [
        (b"<svg><script>alert(1)</script></svg>", "it holds a <script> element"),
        (b'<svg xmlns:s="http://www.w3.org/2000/svg"><s:script/></svg>', "it holds a <script> element"),
        (b'<svg><rect onclick="x()"/></svg>', "it holds an event handler (onclick=)"),
        (b'<svg><a href=" JavaScript:x()"><text>t</text></a></svg>', "it holds a script link (href=)"),
        (b'<svg><a xlink:href="data:text/html,&lt;script&gt;"/></svg>', "it holds a script link (xlink:href=)"),
        (b"<svg><foreignObject><div/></foreignObject></svg>", "it holds a <foreignobject> element"),
        (b'<svg><set attributeName="href" to="javascript:x()"/></svg>', "it holds an animation that sets a link"),
        (b'<svg><animate attributeName="xlink:href" values="a"/></svg>', "it holds an animation that sets a link"),
        (b'<!DOCTYPE s [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]><svg>&b;</svg>', "it declares XML entities"),
        (b"<html><body/></html>", "its root element is not <svg>"),
        (b"<svg><unclosed></svg>", "not well-formed XML"),
        (b"<svg>" * 300 + b"</svg>" * 300, "nested deeper than 256 elements"),
    ],
)
def test_an_svg_that_could_run_anything_is_not_an_image(svg, why):
    problem = svg_problem(svg)
    assert problem is not None and why in problem
    assert shown("x.svg", svg).problem == problem


def test_html_is_sandboxed_no_script_runs_and_nothing_is_fetched():
    page = b'<h1>Report</h1><script>alert(document.cookie)</script><img src="https://tracker.example/x.png">"\'&'
    frame = shown("report.html", page).data["text/html"]
    # Outside the srcdoc attribute there is no markup of the file's at all.
    outside = re.sub(r'srcdoc="[^"]*"', "", frame)
    assert "<script" not in outside and "tracker" not in outside and "Report" not in outside
    assert 'sandbox=""' in frame  # no allow-scripts, no allow-same-origin, no allow-forms, no allow-popups
    srcdoc = html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))
    assert srcdoc.startswith(f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}">')
    assert srcdoc.endswith(page.decode())
    assert "default-src 'none'" in CONTENT_POLICY and "script" not in CONTENT_POLICY


def test_a_hostile_name_cannot_break_out_of_the_frame():
    frame = shown('"><script>alert(1)</script>.html', b"x").data["text/html"]
    assert "<script>" not in frame


def test_html_is_shown_as_it_is_only_when_the_user_trusts_it():
    page = b"<div id=x></div><script>document.getElementById('x').textContent = 'ran'</script>"
    assert shown("app.html", page, trust_html=True).data["text/html"] == page.decode()


def test_markdown_is_rendered_with_its_raw_html_escaped_and_no_script_links():
    text = b"# Title\n\n*fine* <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n[click](javascript:alert(1))\n"
    rendered = shown("notes.md", text).data["text/html"]
    assert "<h1>Title</h1>" in rendered and "<em>fine</em>" in rendered
    assert "<script" not in rendered and "<img" not in rendered
    assert 'href="javascript:' not in rendered
    assert "text/markdown" not in shown("notes.md", text).data  # no frontend renders its raw HTML


def test_json_is_a_tree_with_an_indented_text_form():
    output = shown("d.json", b'{"a": [1, 2], "b": "\xc3\xa9"}')
    assert output.data["application/json"] == {"a": [1, 2], "b": "é"}
    assert output.data["text/plain"].startswith('d.json (24 bytes)\n{\n  "a": [')


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"{nope", "not shown as JSON: Expecting property name enclosed in double quotes"),
        (b"\xff\xfe", "not shown as JSON: it is not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "not shown as JSON: nested too deeply"),
    ],
)
def test_json_that_cannot_be_read_is_one_line(data, why):
    assert shown("bad.json", data).problem.startswith(why)


def test_a_csv_is_a_table_of_its_first_rows_with_its_size_said_every_cell_escaped():
    rows = ["name,value"] + [f"row{i},<b>{i}</b>" for i in range(100)]
    data = ("\n".join(rows) + "\n").encode()
    output = shown("data.csv", data)
    table = output.data["text/html"]
    assert "data.csv: 100 rows × 2 columns, 1.6 KB; the first 20 shown" in table
    assert table.count("<tr>") == 1 + ROWS_SHOWN
    assert "<b>" not in table and "&lt;b&gt;0&lt;/b&gt;" in table
    assert output.data["text/plain"].splitlines()[1].split() == ["name", "value"]


def test_a_tsv_is_split_on_tabs():
    table = read_table(b"a\tb\n1\t2\n", "\t")
    assert not isinstance(table, str)
    assert (table.header, table.rows, table.row_count) == (["a", "b"], [["1", "2"]], 1)


def test_a_csv_with_a_field_too_large_is_one_line():
    assert shown("big.csv", b"a\n" + b"x" * (2 << 20) + b"\n").problem == (
        "not shown as a table: field larger than field limit (1048576)"
    )


def test_any_other_file_is_a_line_with_its_name_and_size():
    assert shown("model.bin", b"\0" * 2048).data == {"text/plain": "model.bin (2.0 KB)"}


def test_files_are_kept_by_name_and_saved_only_below_the_folder(tmp_path):
    outside = tmp_path / "outside.txt"
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "link.txt").symlink_to(outside)
    collected = Collected(
        [
            FoundFile("plot.png", 16, data=PNG),
            FoundFile("sub/d.csv", 2, data=b"a\n"),
            FoundFile("../escape.txt", 1, data=b"x"),
            FoundFile("/abs.txt", 1, data=b"x"),
            FoundFile("a//b", 1, data=b"x"),
            FoundFile("link.txt", 1, data=b"through a link"),
            FoundFile("fifo", 0, problem="a named pipe (FIFO): not read"),
        ]
    )
    assert set(as_dict(collected)) == {"plot.png", "sub/d.csv", "../escape.txt", "/abs.txt", "a//b", "link.txt"}
    saved, problems = save(collected, str(folder))
    assert saved == ["plot.png", "sub/d.csv"]
    assert (folder / "plot.png").read_bytes() == PNG and (folder / "sub" / "d.csv").read_bytes() == b"a\n"
    assert problems == [
        "../escape.txt: not saved: its name is not a plain relative path",
        "/abs.txt: not saved: its name is not a plain relative path",
        "a//b: not saved: its name is not a plain relative path",
        f"link.txt: not saved: {os.strerror(40)}",
    ]
    assert not outside.exists() and not (tmp_path / "escape.txt").exists()
