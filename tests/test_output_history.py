"""IPython 9 keeps a copy of every cell's output in ``history_manager.outputs``; a long run must not.

Dockyter writes around that copy past ``HISTORY_LIMIT``, recognising IPython's per-cell capture
(``InteractiveShell._tee``) by name. These tests use a real InteractiveShell and fail loudly when
an IPython release changes that capture, instead of letting kernel memory grow silently again.
"""

import io
import sys

from IPython.utils.capture import capture_output

from dockyter import output
from dockyter.output import HISTORY_LIMIT, OutputSink


def kept(shell, count: int) -> int:
    return sum(
        len(chunk) for record in shell.history_manager.outputs.get(count, []) for chunk in record.bundle["stream"]
    )


def test_the_capture_is_recognised_inside_a_cell(ip):
    seen = {}
    ip.user_ns["_probe"] = lambda: seen.update(recognised=output.untracked_write(sys.stdout) != sys.stdout.write)
    with capture_output():
        ip.run_cell("_probe()", store_history=True)
    assert seen["recognised"], (
        f"IPython's per-cell capture is no longer {output.TEE_QUALNAME}: update dockyter/output.py"
    )


def test_a_long_run_reaches_the_cell_but_not_the_history(ip):
    chunk = "x" * 65536 + "\n"
    chunks = 4 * HISTORY_LIMIT // len(chunk)
    sink = OutputSink()  # one run
    ip.user_ns["_emit"] = lambda: [sink.write("stdout", chunk) for _ in range(chunks)]
    with capture_output() as captured:
        ip.run_cell(
            "emitted = _emit()", store_history=True
        )  # no ";": a stored quiet cell would quieten later unstored ones
    assert len(captured.stdout) == chunks * len(chunk)  # every character reached the cell
    assert HISTORY_LIMIT <= kept(ip, ip.execution_count - 1) <= HISTORY_LIMIT + len(chunk)


def test_outside_a_cell_the_write_is_the_streams_own():
    stream = io.StringIO()
    assert output.untracked_write(stream) == stream.write
