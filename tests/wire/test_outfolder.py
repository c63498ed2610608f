"""Reading a run's $DOCKYTER_OUT as a hostile container may have left it: links, special files, odd names, floods."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from dockyter.wire.outfolder import MAX_DEPTH, FileLimits, collect, printable, size_text

LIMITS = FileLimits(max_file_bytes=1000, max_files=100, max_total_bytes=5000)


def by_name(collected):
    return {found.name: found for found in collected.files}


def test_regular_files_are_read_whole_in_name_order_with_subfolders(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"bee")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "z.csv").write_bytes(b"x,y\n")
    (tmp_path / "c.png").write_bytes(b"")
    collected = collect(str(tmp_path), LIMITS)
    assert [(f.name, f.data) for f in collected.files] == [("a/z.csv", b"x,y\n"), ("b.txt", b"bee"), ("c.png", b"")]
    assert collected.omitted == 0 and collected.omitted_note is None


def test_an_empty_folder_holds_nothing(tmp_path):
    assert collect(str(tmp_path), LIMITS).empty


def test_links_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"host secret")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "to-file").symlink_to(outside / "secret")
    (folder / "to-dir").symlink_to(outside)
    (folder / "dangling").symlink_to(tmp_path / "nothing")
    found = by_name(collect(str(folder), LIMITS))
    assert set(found) == {"to-file", "to-dir", "dangling"}
    assert all(f.data is None and f.problem == "a symbolic link: not read" for f in found.values())


def test_a_hard_link_is_just_another_name_for_a_file_of_the_folder(tmp_path):
    (tmp_path / "a").write_bytes(b"same")
    os.link(tmp_path / "a", tmp_path / "b")
    assert by_name(collect(str(tmp_path), LIMITS))["b"].data == b"same"


def test_a_fifo_is_named_and_never_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    done = []
    reader = threading.Thread(target=lambda: done.append(collect(str(tmp_path), LIMITS)), daemon=True)
    reader.start()
    reader.join(5)
    assert done, "reading the folder blocked on the FIFO"
    assert by_name(done[0])["pipe"].problem == "a named pipe (FIFO): not read"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root (CI runs as root)")
def test_a_device_node_is_named_and_never_opened(tmp_path):
    os.mknod(tmp_path / "disk", stat.S_IFBLK | 0o600, os.makedev(8, 0))
    os.mknod(tmp_path / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    found = by_name(collect(str(tmp_path), LIMITS))
    assert found["disk"].problem == found["zero"].problem == "a device node: not read"
    assert found["zero"].data is None


def test_a_huge_sparse_file_costs_nothing_and_is_one_line(tmp_path):
    with open(tmp_path / "sparse", "wb") as file:
        file.truncate(1 << 40)
    started = time.monotonic()
    found = by_name(collect(str(tmp_path), LIMITS))["sparse"]
    assert time.monotonic() - started < 1
    assert found.data is None and found.size == 1 << 40
    assert found.problem == "1.1 TB, over max_file_bytes (1.0 KB): not read"


def test_the_run_limit_counts_all_files_together(tmp_path):
    for name in "abcdefg":
        (tmp_path / name).write_bytes(b"x" * 900)
    found = collect(str(tmp_path), LIMITS).files
    assert [f.name for f in found if f.data is not None] == ["a", "b", "c", "d", "e"]  # 4500 bytes of 5000
    assert found[5].problem == "900 bytes, over what is left of max_files_bytes (500 bytes): not read"


def test_names_with_control_characters_bidi_marks_and_bad_utf8_are_printable(tmp_path):
    names = [b"red\x1b[31mname\n.txt", b"\xff\xfe.bin", "evil\u202egnp.exe".encode(), b"ok \xc3\xa9.csv"]
    for name in names:
        with open(os.path.join(os.fsencode(tmp_path), name), "wb") as file:
            file.write(b"1")
    shown = sorted(f.name for f in collect(str(tmp_path), LIMITS).files)
    assert shown == sorted(["red\\x1b[31mname\\x0a.txt", "\\xff\\xfe.bin", "evil\\u202egnp.exe", "ok é.csv"])
    assert all(name.isprintable() for name in shown)


def test_ten_thousand_files_are_read_up_to_max_files_and_counted_in_one_line(tmp_path):
    for index in range(10_000):
        (tmp_path / f"f{index:05}").write_bytes(b"")
    collected = collect(str(tmp_path), LIMITS)
    assert len(collected.files) == 100
    assert collected.omitted == 9_900
    assert collected.omitted_note == "9,900 more entries not read (max_files = 100)"


def test_folders_deeper_than_the_limit_are_one_line(tmp_path):
    path = tmp_path
    for _ in range(MAX_DEPTH + 5):
        path = path / "d"
        path.mkdir()
    (path / "deep.txt").write_bytes(b"x")
    found = collect(str(tmp_path), LIMITS).files
    assert [f.problem for f in found] == [f"a directory deeper than {MAX_DEPTH}: not entered"]


def test_a_file_that_cannot_be_read_is_one_line():
    """As a user other than the file's owner (nobody, in a child process, when the tests run as root)."""
    folder = tempfile.mkdtemp(prefix="dockyter-outfolder-")
    try:
        os.chmod(folder, 0o755)
        with open(os.path.join(folder, "private"), "wb") as file:
            file.write(b"x")
        os.chmod(os.path.join(folder, "private"), 0)
        script = (
            "import os, sys\n"
            "from dockyter.wire.outfolder import FileLimits, collect\n"
            "if os.geteuid() == 0: os.setgid(65534); os.setuid(65534)\n"
            "print(collect(sys.argv[1], FileLimits(10, 10, 10)).files[0].problem)\n"
        )
        answer = subprocess.run([sys.executable, "-c", script, folder], capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(folder)
    assert answer.stdout == "cannot be read: Permission denied\n"  # O_PATH opens it; reading it is refused


def test_a_folder_that_is_gone_is_one_problem(tmp_path):
    found = collect(str(tmp_path / "missing"), LIMITS).files
    assert [f.problem for f in found] == ["the folder cannot be read: No such file or directory"]


def test_the_folder_itself_as_a_link_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "x").write_bytes(b"x")
    (tmp_path / "link").symlink_to(real)
    assert collect(str(tmp_path / "link"), LIMITS).files[0].problem.startswith("the folder cannot be read")


def test_a_directory_swapped_for_a_link_while_walked_is_not_followed(tmp_path, monkeypatch):
    """The walk opens each directory with O_NOFOLLOW and checks it is the inode it listed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"host")
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    real_stat = os.stat

    def swap_after_lstat(path, *args, **kwargs):
        info = real_stat(path, *args, **kwargs)
        if path == "sub" and kwargs.get("dir_fd") is not None:  # listed as a directory, then swapped
            os.rename(folder / "sub", tmp_path / "moved")
            (folder / "sub").symlink_to(outside)
        return info

    monkeypatch.setattr(os, "stat", swap_after_lstat)
    collected = collect(str(folder), LIMITS)
    assert (folder / "sub").is_symlink()  # the swap happened, mid-walk
    assert all(b"host" != f.data for f in collected.files)
    assert "sub/secret" not in by_name(collected)


def test_size_text_and_printable():
    assert [size_text(n) for n in (0, 1, 999, 1000, 12_345, 4_100_000, 2 * 10**9, 10**15)] == [
        "0 bytes",
        "1 byte",
        "999 bytes",
        "1.0 KB",
        "12.3 KB",
        "4.1 MB",
        "2.0 GB",
        "1000.0 TB",
    ]
    assert printable("plain.png") == "plain.png"
    assert printable("a\tb\x7f\x85\u2028") == "a\\x09b\\x7f\\x85\\u2028"


def test_limits_are_only_lowered():
    assert LIMITS.lowered(10_000, None, 10) == FileLimits(1000, 100, 10)
    assert LIMITS.lowered(-1, 5, None) == FileLimits(1000, 5, 5000)
