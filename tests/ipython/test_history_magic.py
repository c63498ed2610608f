"""%docker_history and _docker_runs, with a backend that only records (no engine needed)."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from dockyter.receipts import Receipt, RunLog, short_digest


@pytest.fixture
def recording(ip, recording_backend):
    ip.run_line_magic("config", "Dockyter.backend = 'recording'")
    return recording_backend


def test_no_runs_yet_is_one_line(ip):
    with capture_output() as captured:
        ip.run_line_magic("docker_history", "")
    assert captured.stdout == "Dockyter: no runs yet in this kernel.\n"


def test_every_run_leaves_a_receipt_the_newest_last(ip, recording):
    recording.exit_code = 3
    for image in ("img:1", "img:2", "img:3"):
        ip.run_cell(f"%%docker --no-raise-error {image}\ntrue")
    runs = ip.user_ns["_docker_runs"]
    assert [(r.image, r.exit_code, r.backend, r.digest) for r in runs] == [
        ("img:1", 3, "recording", None),
        ("img:2", 3, "recording", None),
        ("img:3", 3, "recording", None),
    ]
    with capture_output() as captured:
        ip.run_line_magic("docker_history", "2")
    (table,) = captured.outputs
    text = table.data["text/plain"]
    assert "img:1" not in text and "img:2" in text and "img:3" in text
    assert text.splitlines()[0].split() == ["started", "(UTC)", "image", "digest", "exit", "took", "where"]


def test_a_run_that_could_not_start_leaves_no_receipt(ip, recording):
    ip.run_cell("%%docker\ntrue")  # no image configured: nothing reached a backend
    assert "_docker_runs" not in ip.user_ns and ip._dockyter.runs.receipts == []


@pytest.mark.parametrize("words", ["x", "0", "-1"])
def test_a_bad_count_is_one_usage_line(ip, words):
    with pytest.raises(UsageError, match="N is a number of runs"):
        ip.run_line_magic("docker_history", words)


def test_the_log_keeps_the_last_runs_in_the_same_list():
    log = RunLog(kept=2)
    kept = log.receipts
    for code in range(5):
        log.add(Receipt("i", None, None, (), None, None, code, 0.1, "2026-01-01T00:00:00.000+00:00", "docker"))
    assert kept is log.receipts and [r.exit_code for r in kept] == [3, 4]


def test_short_digests():
    assert short_digest("python@sha256:" + "0123456789abcdef" * 4) == "python@sha256:0123456789ab"
    assert short_digest("sha256:" + "f" * 64) == "sha256:ffffffffffff"
    assert short_digest(None) == "-"
