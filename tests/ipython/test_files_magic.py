"""$DOCKYTER_OUT through a real InteractiveShell and real containers: what a container makes, the cell shows.

Each test writes files from inside a container, as a tool would (or as a hostile one would),
and checks the outputs IPython's display machinery received, their metadata, and the one
`Dockyter:` line for each file that cannot be shown.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from dataclasses import dataclass

import pytest
from helpers import docker, wait_until
from IPython.utils.capture import capture_output

from dockyter.files.runfolder import kernel_root

pytestmark = pytest.mark.docker

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="teal"/></svg>'


@dataclass
class Shown:
    error: BaseException | None
    stdout: str
    stderr: str
    outputs: list  # IPython's RichOutput: .data, .metadata

    def by_file(self):
        return {output.metadata["dockyter"]["file"]: output for output in self.outputs}

    @property
    def lines(self):
        return [line for line in self.stderr.splitlines() if line.startswith("Dockyter:")]


def run(ip, text: str) -> Shown:
    with capture_output() as captured:
        result = ip.run_cell(text)
    return Shown(result.error_in_exec or result.error_before_exec, captured.stdout, captured.stderr, captured.outputs)


def writes(script: str) -> str:
    """A cell body that first puts the test's PNG in $DOCKYTER_OUT, then runs ``script``."""
    return f"echo {base64.b64encode(PNG).decode()} | base64 -d > $DOCKYTER_OUT/plot.png\n{script}"


def no_folder_left(ip) -> bool:
    """Whether every run folder is gone, once the containers prestarted after the run (each with
    a folder of its own, for the next command) are let go."""
    ip.run_line_magic("config", "Dockyter.prestart = 0")
    return wait_until(lambda: os.listdir(kernel_root()) == [], timeout=40)


def test_images_html_markdown_json_and_tables_arrive_as_rich_outputs(ip, test_image):
    shown = run(
        ip,
        f"%%docker {test_image}\n"
        + writes(
            f"echo '{SVG}' > $DOCKYTER_OUT/fig.svg\n"
            "echo '<h1>Report</h1><script>parent.alert(1)</script>' > $DOCKYTER_OUT/report.html\n"
            "printf 'x,y\\n1,2\\n3,4\\n' > $DOCKYTER_OUT/data.csv\n"
            "echo '{\"loss\": [0.5, 0.25]}' > $DOCKYTER_OUT/metrics.json\n"
            "printf '# Notes\\n\\n*done*\\n' > $DOCKYTER_OUT/notes.md\n"
            "mkdir $DOCKYTER_OUT/sub && head -c 3000 /dev/zero > $DOCKYTER_OUT/sub/model.bin\n"
            "echo made"
        ),
    )
    assert shown.error is None and shown.stdout == "made\n" and shown.stderr == ""
    files = shown.by_file()
    assert list(files) == [
        "data.csv",
        "fig.svg",
        "metrics.json",
        "notes.md",
        "plot.png",
        "report.html",
        "sub/model.bin",
    ]
    assert base64.b64decode(files["plot.png"].data["image/png"]) == PNG
    assert files["fig.svg"].data["image/svg+xml"].strip() == SVG
    assert '<iframe sandbox=""' in files["report.html"].data["text/html"]
    assert "data.csv: 2 rows × 2 columns, 12 bytes" in files["data.csv"].data["text/html"]
    assert files["metrics.json"].data["application/json"] == {"loss": [0.5, 0.25]}
    assert "<em>done</em>" in files["notes.md"].data["text/html"]
    assert files["sub/model.bin"].data == {"text/plain": "sub/model.bin (3.0 KB)"}
    receipt = files["plot.png"].metadata["dockyter"]["receipt"]
    assert receipt == ip.user_ns["_docker_runs"][-1].to_dict()
    assert receipt["image"] == test_image and receipt["exit_code"] == 0


def test_a_cell_that_writes_nothing_shows_nothing_extra_and_leaves_no_folder(ip, test_image):
    shown = run(ip, f'%%docker {test_image}\necho "[$DOCKYTER_OUT]"; ls -A "$DOCKYTER_OUT" | wc -l')
    assert (shown.error, shown.stdout, shown.stderr, shown.outputs) == (None, "[/dockyter/out]\n0\n", "", [])
    assert no_folder_left(ip), os.listdir(kernel_root())


def test_hostile_files_get_one_line_each_and_break_nothing(ip, test_image):
    shown = run(
        ip,
        f"%%docker {test_image}\n"
        + writes(
            "cd $DOCKYTER_OUT\n"
            "ln -s /etc/passwd passwd-link; ln -s / root-link; ln -s ../../../etc up-link\n"
            "mkfifo pipe; mknod disk b 8 0; mknod null c 1 3\n"
            "truncate -s 1099511627776 sparse\n"
            "head -c 20000000 /dev/zero > big.bin\n"
            "echo x > \"$(printf 'red\\033[31m\\nname')\"\n"
            "printf '<svg><script>alert(1)</script></svg>' > evil.svg\n"
            "printf 'not,a\\n\"csv' > broken.csv\n"
            "echo done"
        ),
    )
    assert shown.error is None and shown.stdout == "done\n"
    assert "Traceback" not in shown.stderr
    assert shown.lines == [
        "Dockyter: $DOCKYTER_OUT/big.bin: 20.0 MB, over max_file_bytes (10.0 MB): not read",
        "Dockyter: $DOCKYTER_OUT/disk: a device node: not read",
        "Dockyter: $DOCKYTER_OUT/evil.svg (36 bytes): not shown as an image: it holds a <script> element",
        "Dockyter: $DOCKYTER_OUT/null: a device node: not read",
        "Dockyter: $DOCKYTER_OUT/passwd-link: a symbolic link: not read",
        "Dockyter: $DOCKYTER_OUT/pipe: a named pipe (FIFO): not read",
        "Dockyter: $DOCKYTER_OUT/root-link: a symbolic link: not read",
        "Dockyter: $DOCKYTER_OUT/sparse: 1.1 TB, over max_file_bytes (10.0 MB): not read",
        "Dockyter: $DOCKYTER_OUT/up-link: a symbolic link: not read",
    ]
    files = shown.by_file()
    assert set(files) == {"broken.csv", "plot.png", "red\\x1b[31m\\x0aname"}  # the CSV module reads that one
    assert ip.user_ns["_exit_code"] == 0
    again = run(ip, f"%%docker {test_image}\necho still fine")  # the kernel goes on
    assert (again.error, again.stdout) == (None, "still fine\n")


def test_ten_thousand_files_are_one_line_after_the_first_hundred(ip, test_image):
    shown = run(ip, f"%%docker {test_image}\ncd $DOCKYTER_OUT; for i in $(seq 10000); do : > f$i; done")
    assert shown.error is None
    assert len(shown.outputs) == 100
    assert shown.lines == ["Dockyter: $DOCKYTER_OUT: 9,900 more entries not read (max_files = 100)"]


def test_limits_are_settings(ip, test_image):
    ip.run_line_magic("config", "Dockyter.max_file_bytes = 10")
    ip.run_line_magic("config", "Dockyter.max_files_bytes = 15")
    shown = run(
        ip, f"%%docker {test_image}\ncd $DOCKYTER_OUT; echo 123456789 > a; echo 123456789 > b; echo 12345678901 > c"
    )
    assert list(shown.by_file()) == ["a"]
    assert shown.lines == [
        "Dockyter: $DOCKYTER_OUT/b: 10 bytes, over what is left of max_files_bytes (5 bytes): not read",
        "Dockyter: $DOCKYTER_OUT/c: 12 bytes, over max_file_bytes (10 bytes): not read",
    ]


def test_files_off_gives_no_folder(ip, test_image):
    ip.run_line_magic("config", "Dockyter.files = False")
    shown = run(ip, f'%%docker {test_image}\necho "[${{DOCKYTER_OUT-unset}}]"; ls /dockyter 2>&1 | head -1')
    assert shown.stdout.splitlines()[0] == "[unset]"
    assert shown.outputs == []


def test_files_go_to_a_variable_and_a_folder(ip, test_image, tmp_path):
    target = tmp_path / "saved"
    shown = run(
        ip,
        f"%%docker --files made --save-files {target} {test_image}\n"
        + writes("mkdir $DOCKYTER_OUT/sub; echo a,b > $DOCKYTER_OUT/sub/t.csv; ln -s /etc/passwd $DOCKYTER_OUT/l"),
    )
    assert shown.error is None
    assert ip.user_ns["made"] == {"plot.png": PNG, "sub/t.csv": b"a,b\n"}
    assert (target / "plot.png").read_bytes() == PNG and (target / "sub" / "t.csv").read_bytes() == b"a,b\n"
    assert sorted(os.listdir(target)) == ["plot.png", "sub"]
    assert len(shown.outputs) == 2  # still shown


def test_files_of_a_run_that_fails_are_shown_before_the_error(ip, test_image):
    shown = run(ip, f"%%docker {test_image}\n" + writes("exit 3"))
    assert shown.error is not None and ip.user_ns["_exit_code"] == 3
    assert list(shown.by_file()) == ["plot.png"]


def test_a_container_user_other_than_root_writes_there_too(ip, test_image):
    shown = run(
        ip, f"%%docker --user 1234:1234 {test_image}\n" + writes("mkdir $DOCKYTER_OUT/d; echo x > $DOCKYTER_OUT/d/y")
    )
    assert shown.error is None and list(shown.by_file()) == ["d/y", "plot.png"]
    assert no_folder_left(ip), os.listdir(kernel_root())  # removed, whoever owned what was in it


def test_html_runs_its_scripts_only_when_trusted(ip, test_image):
    page = "<p id=x></p><script>document.getElementById('x').textContent='ran'</script>"
    sandboxed = run(ip, f'%%docker {test_image}\necho "{page}" > $DOCKYTER_OUT/app.html')
    trusted = run(ip, f'%%docker --trust-html {test_image}\necho "{page}" > $DOCKYTER_OUT/app.html')
    assert sandboxed.outputs[0].data["text/html"].startswith("<div")
    assert trusted.outputs[0].data["text/html"] == page + "\n"


def test_bang_commands_show_their_files_too(ip, test_image):
    ip.run_line_magic("docker", test_image)
    shown = run(ip, f"!echo {base64.b64encode(PNG).decode()} | base64 -d > $DOCKYTER_OUT/p.png")
    assert list(shown.by_file()) == ["p.png"]
    captured = run(ip, "lines = !echo a,b > $DOCKYTER_OUT/t.csv; echo said")
    assert ip.user_ns["lines"] == ["said"] and list(captured.by_file()) == ["t.csv"]
    ip.run_line_magic("docker_off", "")


def test_each_session_cell_gets_a_fresh_folder_and_late_writes_go_nowhere(ip, test_image):
    ip.run_line_magic("docker_session", f"start files {test_image}")
    try:
        first = run(
            ip,
            "%%docker --session files\n"
            + writes("echo $DOCKYTER_OUT; (sleep 1; echo late > $DOCKYTER_OUT/late.txt) >/dev/null 2>&1 &"),
        )
        second = run(ip, "%%docker --session files\necho $DOCKYTER_OUT; sleep 2; ls -A $DOCKYTER_OUT | wc -l")
        # The next cell's folder made ahead, as a link: that cell gets none, and not this one's either.
        third = run(ip, "%%docker --session files\necho x > $DOCKYTER_OUT/x.txt; ln -s /etc /dockyter/out/4")
        fourth = run(ip, '%%docker --session files\necho "[${DOCKYTER_OUT-none}]"')
    finally:
        ip.run_line_magic("docker_session", "stop files")
    assert first.stdout == "/dockyter/out/1\n" and list(first.by_file()) == ["plot.png"]
    assert second.stdout == "/dockyter/out/2\n0\n" and second.outputs == []  # the late write hit a folder now gone
    assert list(third.by_file()) == ["x.txt"]
    assert fourth.stdout == "[none]\n" and fourth.outputs == []
    assert fourth.lines == ["Dockyter: cannot make a folder for $DOCKYTER_OUT: File exists; this cell has none"]
    receipt = ip.user_ns["_docker_runs"][-1]
    assert receipt.session == "files" and receipt.digest and receipt.image == test_image
    assert no_folder_left(ip), os.listdir(kernel_root())


def test_a_run_interrupted_while_it_writes_leaves_nothing_and_shows_what_was_written(ip, test_image):
    timer = threading.Timer(1.5, lambda: os.kill(os.getpid(), 2))
    timer.start()
    try:
        shown = run(
            ip, f"%%docker {test_image}\n" + writes("while :; do echo x >> $DOCKYTER_OUT/log.txt; sleep 0.05; done")
        )
    finally:
        timer.cancel()
    assert isinstance(shown.error, KeyboardInterrupt)
    assert sorted(shown.by_file()) == ["log.txt", "plot.png"]
    assert ip.user_ns["_docker_runs"][-1].exit_code == 130
    assert no_folder_left(ip), os.listdir(kernel_root())


def test_receipts_name_the_image_the_engine_ran(ip, test_image, sh_image):
    run(ip, f"%%docker {test_image}\ntrue")
    ip.run_line_magic("config", "Dockyter.shell = ['sh', '-c']")  # the sh image has no bash
    run(ip, f"%%docker --no-raise-error {sh_image}\nexit 4")
    first, second = ip.user_ns["_docker_runs"][-2:]
    for receipt, image in ((first, test_image), (second, sh_image)):
        inspected = docker("image", "inspect", "--format", "{{.Id}} {{json .RepoDigests}}", image).stdout.split(" ", 1)
        assert receipt.image_id == inspected[0]
        assert receipt.digest == (
            inspected[0] if inspected[1].strip() == "[]" else re.findall(r'"([^"]+)"', inspected[1])[0]
        )
    assert second.exit_code == 4 and second.duration > 0
    assert first.argv[:2] == ("docker", "run") and first.argv[-1] == "true\n"
    assert "--volume" in first.argv and "DOCKYTER_OUT=/dockyter/out" in first.argv
    info = docker("info", "--format", "{{.DefaultRuntime}} {{.Name}}").stdout.split()
    assert (first.runtime, first.node) == (info[0], info[1])
    shown = run(ip, "%docker_history")
    assert test_image in shown.stdout or any(test_image in str(o.data) for o in shown.outputs)


def test_a_pulled_image_s_receipt_is_its_repository_digest(ip, registry):
    image = registry.push_fresh_image(megabytes=1)
    run(ip, f"%%docker {image}\ntrue")
    receipt = ip.user_ns["_docker_runs"][-1]
    digests = docker("image", "inspect", "--format", '{{join .RepoDigests " "}}', image).stdout.split()
    assert receipt.digest in digests and receipt.digest.startswith(image.rsplit(":", 1)[0] + "@sha256:")
