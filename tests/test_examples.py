"""The example notebooks in examples/ run top to bottom, cleanly, each in a fresh kernel.

They are executed exactly as ``examples/execute.py`` executes them to produce the committed
outputs (its ``execute`` and ``problems`` are imported from there), in the order 01..07, each
from a temporary copy, with the images of the test fixtures passed through the environment
(``DOCKYTER_EXAMPLE_IMAGE``, ``DOCKYTER_EXAMPLE_PYTHON_IMAGE``, ``DOCKYTER_EXAMPLE_PLOT_IMAGE``).

What fails a notebook (``problems`` in examples/execute.py):

* any error output, even in a cell nbclient would allow (``raises-exception``): the notebooks
  show expected failures without raising (``--no-raise-error``, ``try``/``except``);
* "Traceback" anywhere on stderr;
* a stderr line starting with ``Dockyter:`` (a problem Dockyter reports) in a cell that is not
  tagged ``expect-dockyter-message``, and a tagged cell that prints no such line. The command's
  own stderr (``echo ... >&2``) is fine: it is part of what the notebooks demonstrate.

And the notebook must leave nothing behind: no container (``no_leftover_containers``) and no
``dockyter-server`` (notebook 03 starts one and stops it in its last cells).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from helpers import wait_until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_spec = importlib.util.spec_from_file_location("examples_execute", EXAMPLES / "execute.py")
assert _spec is not None and _spec.loader is not None
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

EXPECTED = [
    "01_local_cli.ipynb",
    "02_ml_tool_in_docker.ipynb",
    "03_api_backend.ipynb",
    "04_config_profiles.ipynb",
    "05_redirect.ipynb",
    "06_sessions.ipynb",
    "07_files.ipynb",
]
NEEDS_PYTHON_IMAGE = {"02_ml_tool_in_docker.ipynb"}
NEEDS_PLOT_IMAGE = {"07_files.ipynb"}


def test_the_examples_are_the_seven_notebooks_in_reading_order():
    assert [path.name for path in runner.notebooks()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_the_committed_notebook_carries_clean_outputs(name):
    """What GitHub and nbviewer show: every code cell ran, without errors, without run-time noise."""
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), "run `python examples/execute.py --test-images`"
    assert runner.problems(notebook) == []
    assert notebook.metadata["language_info"] == {"name": "python"}
    assert not any("execution" in cell.metadata for cell in notebook.cells)


@pytest.mark.parametrize("name", EXPECTED)
def test_the_links_in_the_notebook_lead_somewhere(name):
    from test_docs_snippets import LINK, anchors

    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    broken = []
    for cell in notebook.cells:
        for match in LINK.finditer(cell.source) if cell.cell_type == "markdown" else ():
            path, _, anchor = match["target"].partition("#")
            if re.match(r"^[a-z]+:", path):
                continue
            destination = (EXAMPLES / path).resolve()
            if not destination.exists() or (
                anchor and destination.suffix == ".md" and anchor not in anchors(destination)
            ):
                broken.append(match["target"])
    assert not broken, f"{name} links to nothing: {broken}"


def _executed(source: str, *outputs: dict, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, outputs=[nbformat.v4.new_output(**output) for output in outputs])
    cell.metadata["tags"] = list(tags)
    return nbformat.v4.new_notebook(cells=[cell])


def _stderr(text: str) -> dict:
    return {"output_type": "stream", "name": "stderr", "text": text}


@pytest.mark.parametrize(
    ("notebook", "complaint"),
    [
        (
            _executed("1/0", {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "x", "traceback": []}),
            "ZeroDivisionError",
        ),
        (_executed("f()", _stderr("Traceback (most recent call last):\n")), "a traceback on stderr"),
        (_executed("%%docker img", _stderr("Dockyter: no container engine answers\n")), "unexpected message"),
        (_executed("%%docker img", tags=(runner.EXPECTED_MESSAGE_TAG,)), "printed no Dockyter: line"),
    ],
)
def test_problems_finds_what_fails_a_notebook(notebook, complaint):
    (problem,) = runner.problems(notebook)
    assert complaint in problem


def test_problems_accepts_a_command_s_own_stderr_and_an_expected_message():
    assert runner.problems(_executed("%%docker img", _stderr("warning: from the command\n"))) == []
    tagged = _executed(
        "%%docker --timeout 1 img",
        _stderr("Dockyter: exit status 124: timed out\n"),
        tags=(runner.EXPECTED_MESSAGE_TAG,),
    )
    assert runner.problems(tagged) == []


def _notebook_servers() -> list[str]:
    """Command lines of running dockyter-servers that notebook 03 started (its --server-name)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"dockyter.server" in argv and any(arg.startswith(b"notebook-") for arg in argv):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


@pytest.mark.docker
@pytest.mark.kernel
@pytest.mark.timeout(900)  # a first run elsewhere may pull the public images
@pytest.mark.parametrize("name", EXPECTED)
def test_the_notebook_runs_cleanly_in_a_fresh_kernel(
    name: str, tmp_path: Path, test_image: str, request: pytest.FixtureRequest, no_leftover_containers: None
):
    images = {"DOCKYTER_EXAMPLE_IMAGE": test_image}
    if name in NEEDS_PYTHON_IMAGE:
        images["DOCKYTER_EXAMPLE_PYTHON_IMAGE"] = request.getfixturevalue("python_image")
    if name in NEEDS_PLOT_IMAGE:
        images["DOCKYTER_EXAMPLE_PLOT_IMAGE"] = request.getfixturevalue("plot_image")
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    copy = shutil.copy(EXAMPLES / name, cwd / name)
    servers_before = set(_notebook_servers())

    executed = runner.execute(nbformat.read(copy, as_version=4), cwd, runner.kernel_environment(home, images))

    problems = runner.problems(executed)
    assert not problems, f"{name} did not run cleanly:\n" + "\n".join(problems)

    def servers_left() -> set[str]:
        return set(_notebook_servers()) - servers_before

    wait_until(lambda: not servers_left(), timeout=30)
    assert not servers_left(), f"{name} left a dockyter-server running: {servers_left()}"


def test_the_files_notebook_shows_a_plot_an_svg_a_report_and_a_table_with_their_receipts():
    """What examples/07_files.ipynb committed: each kind of output, each carrying the run's receipt."""
    notebook = nbformat.read(EXAMPLES / "07_files.ipynb", as_version=4)
    shown = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    by_file = {o.metadata["dockyter"]["file"]: o for o in shown if "dockyter" in o.get("metadata", {})}
    assert by_file["waves.png"].data["image/png"]
    assert by_file["waves.svg"].data["image/svg+xml"].lstrip().startswith("<?xml")
    assert '<iframe sandbox=""' in by_file["report.html"].data["text/html"]
    assert "numbers.csv: 100 rows × 3 columns" in by_file["numbers.csv"].data["text/html"]
    assert by_file["metrics.json"].data["application/json"]["run"] == "demo"
    for output in by_file.values():
        receipt = output.metadata["dockyter"]["receipt"]
        assert receipt["digest"].startswith("sha256:") and receipt["image"] == "dockyter-test/gnuplot:1"
