"""Media types of a run's files, and the file events a client takes from a server it does not trust."""

from __future__ import annotations

import base64

from dockyter.wire.outfiles import FileEvents, file_event, media_type, omitted_event
from dockyter.wire.outfolder import Collected, FileLimits, FoundFile

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def test_media_types_by_extension_confirmed_by_the_first_bytes():
    assert media_type("plot.PNG", PNG) == "image/png"
    assert media_type("plot.png", b"<script>") == "application/octet-stream"
    assert media_type("photo.jpeg", b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert media_type("anim.gif", b"GIF89a...") == "image/gif"
    assert media_type("fig.svg", b"<svg/>") == "image/svg+xml"
    assert media_type("report.htm", b"") == "text/html"
    assert media_type("notes.md", b"") == "text/markdown"
    assert media_type("data.tsv", b"") == "text/tab-separated-values"
    assert media_type("archive.tar.gz", b"") == "application/octet-stream"
    assert media_type("no-extension", b"") == "application/octet-stream"


def test_a_file_event_and_back():
    event = file_event(FoundFile("sub/plot.png", len(PNG), data=PNG))
    assert event == {
        "event": "file",
        "name": "sub/plot.png",
        "media_type": "image/png",
        "size": len(PNG),
        "data": base64.b64encode(PNG).decode(),
    }
    events = FileEvents(FileLimits(1000, 10, 1000))
    events.take(event)
    events.take(file_event(FoundFile("link", 0, problem="a symbolic link: not read")))
    assert events.collected.files == [
        FoundFile("sub/plot.png", len(PNG), data=PNG),
        FoundFile("link", 0, problem="a symbolic link: not read"),
    ]


def test_an_omitted_event_only_when_something_was_omitted():
    assert omitted_event(Collected()) is None
    assert omitted_event(Collected([], 3, "3 more entries not read (max_files = 1)")) == {
        "event": "files_omitted",
        "count": 3,
        "message": "3 more entries not read (max_files = 1)",
    }


def test_a_hostile_server_gets_one_line_per_bad_event_and_nothing_kept_past_the_kernels_limits():
    events = FileEvents(FileLimits(max_file_bytes=10, max_files=5, max_total_bytes=15))
    events.take({"event": "file", "name": "big.bin", "size": 3, "data": base64.b64encode(b"x" * 11).decode()})
    events.take({"event": "file", "name": "ok.bin", "size": 10, "data": base64.b64encode(b"y" * 10).decode()})
    events.take({"event": "file", "name": "over-run.bin", "size": 6, "data": base64.b64encode(b"z" * 6).decode()})
    events.take({"event": "file", "name": "bad.bin", "data": "@@@="})
    events.take({"event": "file", "name": "\x1b]0;title\x07\n../../etc/x", "data": "", "size": "many"})
    events.take({"event": "file", "name": 42, "data": ""})
    events.take({"event": "file", "name": "sixth", "data": ""})
    events.take({"event": "files_omitted", "count": 7, "message": "7 more\x1b[2J"})
    files = events.collected.files
    assert [(f.name, f.data is not None, f.problem) for f in files] == [
        ("big.bin", False, "over this kernel's limits (10 bytes left): not kept"),
        ("ok.bin", True, None),
        ("over-run.bin", False, "over this kernel's limits (5 bytes left): not kept"),
        ("bad.bin", False, "the server sent data that is not base64: not kept"),
        ("\\x1b]0;title\\x07\\x0a../../etc/x", True, None),
    ]
    assert events.collected.omitted == 1 + 1 + 7  # the nameless one counts as a problem past max_files
    assert events.collected.omitted_note == "7 more\\x1b[2J"
