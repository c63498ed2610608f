"""Runaway output through a real kernel: few messages, the first at once, and a cap on what is shown."""

from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.kernel]


def stream_messages(run) -> list[dict]:
    return [message for message in run.of_type("stream")]


def test_a_runaway_loop_sends_few_messages_and_stops_at_the_cap(no_leftover_containers, kernel, test_image):
    """`while true; do echo spam; done`, interrupted: the output goes out in batches (at most one
    flush per 50 ms of each stream, where each read used to be a message), and only
    Dockyter.max_output bytes of it are shown, with one line saying how much was not."""
    msg_id = kernel.submit(f"%%docker {test_image}\nwhile true; do echo spam; done")
    first = kernel.collect(msg_id, until="spam")
    started = time.monotonic()
    time.sleep(3)
    kernel.manager.interrupt_kernel()
    rest = kernel.collect(msg_id, timeout=60)
    seconds = time.monotonic() - started
    messages = [m for m in first.of_type("stream") + rest.of_type("stream")]
    shown = "".join(m["content"]["text"] for m in messages if m["content"]["name"] == "stdout")
    notice = "".join(m["content"]["text"] for m in messages if m["content"]["name"] == "stderr")
    assert len(messages) <= 2 * 25 * (seconds + 2), len(messages)  # 20 flushes a second, and ipykernel's own
    # the first 1 MB, cut after its last whole line (or, where the cut falls in the first few bytes of
    # a read, after them: that line is then ended, so that the notice has a line of its own)
    lines = shown.split("\n")
    assert 1_000_000 - len("spam\n") < len(shown.encode()) <= 1_000_001, len(shown.encode())
    assert lines[-1] == "" and set(lines[:-2]) == {"spam"} and "spam".startswith(lines[-2])
    assert notice.startswith("Dockyter: ") and notice.endswith(
        " more output not shown (Dockyter.max_output shows the first 1.0 MB of a cell); "
        "%%docker --out VAR (and --err VAR) keeps all of it\n"
    ), notice
    assert rest.reply["ename"] == "Interrupted"


def test_the_cap_counts_what_it_hides_and_out_keeps_it_all(no_leftover_containers, kernel, test_image):
    kernel.run("%config Dockyter.max_output = 100000")
    big = f"%%docker {test_image}\nhead -c 3000000 /dev/zero | tr '\\0' x; echo; echo done >&2"
    run = kernel.run(big)
    assert run.stdout == "x" * 100000 + "\n"  # one long line, cut, and ended: the notice stands on a line of its own
    assert run.stderr == (
        "Dockyter: 2.9 MB more output not shown (Dockyter.max_output shows the first 100.0 kB of a cell); "
        "%%docker --out VAR (and --err VAR) keeps all of it\n"
    )
    kept = kernel.run(big.replace("%%docker ", "%%docker --out everything ", 1))
    assert kept.stdout == "" and kept.stderr == "done\n"
    assert kernel.run("print(len(everything))").stdout == "3000001\n"
    kernel.run("%config Dockyter.max_output = 0")  # no limit
    assert len(kernel.run(big).stdout) == 3000001


def test_the_first_byte_and_a_lone_partial_line_are_not_held(no_leftover_containers, kernel, test_image):
    run = kernel.run(f"%%docker {test_image}\necho first; printf 'working...'; sleep 2; echo ' done'")
    assert run.stdout == "first\nworking... done\n"
    assert run.arrival(" done") - run.arrival("working...") > 1.5  # 'working...' was shown before the sleep
