"""Memory stays flat however much a container prints: output is streamed, never accumulated."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.docker

MEASURE = r"""
import resource, sys
from dockyter.backends.base import RunRequest
from dockyter.backends.settings import StaticSettings
from dockyter.backends.docker.dockerbackend import DockerBackend
from dockyter.wire.dockerargs import parse_run_args
from dockyter.output import OutputSink

settings = StaticSettings()
backend = DockerBackend(settings)
def peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# warm up: imports, first run
backend.run(RunRequest(parse_run_args(sys.argv[1]), "true"), OutputSink(show=False))
before = peak_kb()
request = RunRequest(parse_run_args(sys.argv[1]), "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 150000000")
result = backend.run(request, OutputSink(show=False))
print(result.exit_code, peak_kb() - before)
"""


def test_large_output_does_not_grow_memory(test_image):
    done = subprocess.run([sys.executable, "-c", MEASURE, test_image], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    exit_code, growth_kb = map(int, done.stdout.split())
    assert exit_code == 0
    assert growth_kb < 20_000, f"peak memory grew by {growth_kb} KB for 150 MB of output"


THROUGH_A_CELL = r"""
import os, resource, sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "dockyter")
sys.stdout = open(os.devnull, "w")  # the cell's output goes nowhere, as if to a browser
def peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
shell.run_cell(f"%%docker {sys.argv[1]}\necho warm", store_history=True)
before = peak_kb()
shell.run_cell(f"%%docker {sys.argv[1]}\nyes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 150000000", store_history=True)
kept = sum(len(chunk) for output in shell.history_manager.outputs[shell.execution_count - 1] for chunk in output.bundle["stream"])
print(shell.user_ns["_exit_code"], peak_kb() - before, kept, file=sys.__stdout__)
"""


def test_ipython_output_history_does_not_keep_everything(test_image, isolated_home):
    # IPython 9 copies each cell's stdout into its output history for the kernel's lifetime;
    # Dockyter lets it keep the first MB of a run, not 150 MB.
    done = subprocess.run(
        [sys.executable, "-c", THROUGH_A_CELL, test_image], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    exit_code, growth_kb, kept = map(int, done.stdout.split())
    assert exit_code == 0
    assert 0 < kept <= 2 * 1024 * 1024
    assert growth_kb < 30_000, f"peak memory grew by {growth_kb} KB for 150 MB of output through a cell"
