"""Execute the example notebooks in place, so that they carry fresh outputs.

    python examples/execute.py                      every notebook, 01 to 07
    python examples/execute.py examples/03_*.ipynb  some of them
    python examples/execute.py --test-images        with the local test images (as committed)

Each notebook runs top to bottom in a fresh kernel, in an empty temporary working directory,
with a temporary HOME and IPython directory, so that no ``dockyter.toml`` or IPython profile
of yours colours the outputs. A notebook is written back only when it ran cleanly (see
:func:`problems`), without run-time metadata such as cell timings.

The images come from ``DOCKYTER_EXAMPLE_IMAGE`` (bash), ``DOCKYTER_EXAMPLE_PYTHON_IMAGE``
(python3 with NumPy) and ``DOCKYTER_EXAMPLE_PLOT_IMAGE`` (gnuplot and python3), or the
notebooks' public defaults. ``--test-images`` sets them to the
images the test suite builds without a registry (``bash .ci/provision --all``); the committed
outputs come from those.

``tests/test_examples.py`` imports :func:`execute` and :func:`problems` from here, so the
suite runs the notebooks exactly as this script does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode

EXAMPLES = Path(__file__).resolve().parent

# Cells that deliberately show a "Dockyter: ..." message on stderr (a timeout, a hint) carry
# this tag; in every other cell such a line is a failure.
EXPECTED_MESSAGE_TAG = "expect-dockyter-message"

CELL_TIMEOUT = 600  # seconds; the first run on a new machine may pull or build an image

# What --test-images sets: example variable -> (test variable, its default), as in tests/helpers.py.
TEST_IMAGES = {
    "DOCKYTER_EXAMPLE_IMAGE": ("DOCKYTER_TEST_IMAGE", "dockyter-test/bash:1"),
    "DOCKYTER_EXAMPLE_PYTHON_IMAGE": ("DOCKYTER_TEST_PYTHON_IMAGE", "dockyter-test/python:1"),
    "DOCKYTER_EXAMPLE_PLOT_IMAGE": ("DOCKYTER_TEST_PLOT_IMAGE", "dockyter-test/gnuplot:1"),
}


def notebooks() -> list[Path]:
    """The example notebooks, in the order they are meant to be read (and run)."""
    return sorted(EXAMPLES.glob("[0-9][0-9]_*.ipynb"))


def test_images() -> dict[str, str]:
    """``DOCKYTER_EXAMPLE_*`` variables naming the local test images."""
    return {example: os.environ.get(test) or default for example, (test, default) in TEST_IMAGES.items()}


def kernel_environment(home: Path, images: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: ours, with a clean HOME and IPython directory, and ``images``."""
    env = {key: value for key, value in os.environ.items() if key not in ("DOCKYTER_CONFIG", "DOCKYTER_API_TOKEN")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        IPYTHONDIR=str(home / ".ipython"),
    )
    env.update(images or {})
    return env


def execute(notebook: NotebookNode, cwd: Path, env: dict[str, str], timeout: int = CELL_TIMEOUT) -> NotebookNode:
    """Run every cell of ``notebook`` in a fresh python3 kernel started in ``cwd`` with ``env``.

    Errors do not stop the run (``allow_errors``): every cell runs, so that the last cells,
    which stop what the first ones started, still do; :func:`problems` reports the errors.
    """
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=timeout,
        allow_errors=True,
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    return client.execute(env=env)


def problems(notebook: NotebookNode) -> list[str]:
    """Everything wrong in an executed notebook, one line each (empty: it ran cleanly).

    * an error output (an exception reached the cell, even one nbclient would allow);
    * "Traceback" in a stderr stream (an exception printed rather than raised);
    * a stderr line starting with "Dockyter:" (Dockyter reporting a problem) in a cell
      not tagged ``expect-dockyter-message``, and no such line in a cell that is tagged,
      so that the tag cannot outlive the message it announces.
    """
    found = []
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        first_line = (cell.source.splitlines() or [""])[0]
        where = f"cell {number} ({first_line[:60]})"
        stderr = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stderr")
        for output in cell.outputs:
            if output.output_type == "error":
                found.append(f"{where}: {output.ename}: {output.evalue}")
        if "Traceback" in stderr:
            found.append(f"{where}: a traceback on stderr:\n{stderr}")
        messages = [line for line in stderr.splitlines() if line.startswith("Dockyter:")]
        expected = EXPECTED_MESSAGE_TAG in cell.metadata.get("tags", [])
        if messages and not expected:
            found.append(f"{where}: unexpected message: {messages[0]}")
        if expected and not messages:
            found.append(f"{where}: tagged {EXPECTED_MESSAGE_TAG} but printed no Dockyter: line")
    return found


def tidy(notebook: NotebookNode) -> NotebookNode:
    """Make the committed file small and stable.

    Drops what changes from machine to machine without meaning anything (the Python version
    in ``language_info``, cell timings) and joins consecutive chunks of the same stream into
    one output, as Jupyter displays them anyway.
    """
    notebook.metadata["language_info"] = {"name": notebook.metadata.get("language_info", {}).get("name", "python")}
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        joined: list[NotebookNode] = []
        for output in cell.outputs:
            previous = joined[-1] if joined else None
            if (
                previous is not None
                and output.output_type == previous.output_type == "stream"
                and output.name == previous.name
            ):
                previous.text += output.text
            else:
                joined.append(output)
        cell.outputs = joined
    return notebook


def run_in_place(path: Path, images: dict[str, str] | None) -> list[str]:
    """Execute the notebook at ``path``; write it back only if it ran cleanly."""
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="dockyter-examples-") as scratch:
        cwd, home = Path(scratch) / "cwd", Path(scratch) / "home"
        cwd.mkdir()
        home.mkdir()
        executed = execute(notebook, cwd, kernel_environment(home, images))
    found = problems(executed)
    if not found:
        nbformat.write(tidy(executed), path)
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: all examples)")
    parser.add_argument("--test-images", action="store_true", help="use the local test images")
    args = parser.parse_args(argv)
    images = test_images() if args.test_images else None
    failed = 0
    for path in args.notebooks or notebooks():
        print(f"{path.name}: running", flush=True)
        found = run_in_place(path, images)
        for line in found:
            print(f"{path.name}: {line}", file=sys.stderr)
        print(f"{path.name}: {'NOT written' if found else 'written'}", flush=True)
        failed += bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
