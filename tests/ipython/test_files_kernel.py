"""Through a real kernel (nbclient), with the docker backend and through a real dockyter-server: a PNG,
an SVG, an HTML file and a CSV written to $DOCKYTER_OUT arrive as image/png, image/svg+xml, text/html
and a table, each output carrying the receipt of the run, whose digest is what `docker image inspect`
says."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import nbformat
import pytest
from helpers import docker

pytestmark = [pytest.mark.docker, pytest.mark.kernel]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_spec = importlib.util.spec_from_file_location("examples_execute", EXAMPLES / "execute.py")
assert _spec is not None and _spec.loader is not None
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><circle r="4" cx="4" cy="4"/></svg>'
CELL = f"""
echo {base64.b64encode(PNG).decode()} | base64 -d > $DOCKYTER_OUT/dot.png
echo '{SVG}' > $DOCKYTER_OUT/dot.svg
echo '<h1>Report</h1><script>document.title = "ran"</script>' > $DOCKYTER_OUT/report.html
printf 'city,rain\\nBrest,1200\\nNice,700\\n' > $DOCKYTER_OUT/rain.csv
echo wrote four files
"""


def execute(cells: list[str], tmp_path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    executed = runner.execute(notebook, cwd, runner.kernel_environment(home), timeout=120)
    assert runner.problems(executed) == []
    return executed


def displayed(cell: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {o.metadata["dockyter"]["file"]: o for o in cell.outputs if o.output_type == "display_data"}


def four_files(cell: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """The CELL's outputs by file, checked: the PNG, the SVG, the sandboxed HTML and the table."""
    assert [o.text for o in cell.outputs if o.output_type == "stream"] == ["wrote four files\n"]
    outputs = displayed(cell)
    assert list(outputs) == ["dot.png", "dot.svg", "rain.csv", "report.html"]
    assert base64.b64decode(outputs["dot.png"].data["image/png"]) == PNG
    assert outputs["dot.svg"].data["image/svg+xml"].strip() == SVG
    assert outputs["report.html"].data["text/html"].count('<iframe sandbox=""') == 1
    return outputs


def test_files_arrive_as_rich_outputs_with_their_receipt(tmp_path, test_image, no_leftover_containers):
    notebook = execute(["%load_ext dockyter", f"%%docker {test_image}\n{CELL}"], tmp_path)
    outputs = four_files(notebook.cells[1])
    table = outputs["rain.csv"].data["text/html"]
    assert "rain.csv: 2 rows × 2 columns, 30 bytes" in table and "<td>Brest</td><td>1200</td>" in table
    image_id = docker("image", "inspect", "--format", "{{.Id}}", test_image).stdout.strip()
    for output in outputs.values():
        receipt = output.metadata["dockyter"]["receipt"]
        assert (receipt["image"], receipt["digest"], receipt["exit_code"]) == (test_image, image_id, 0)
        assert receipt["backend"] == "docker" and receipt["argv"][:2] == ["docker", "run"]


def test_files_arrive_through_a_real_server_with_the_digest_it_ran(tmp_path, test_image, dockyter_server):
    server = dockyter_server()
    setup = (
        f"%config Dockyter.api_url = {server.url!r}\n"
        f"%config Dockyter.api_token = {server.token!r}\n"
        "%config Dockyter.backend = 'api'"
    )
    notebook = execute(["%load_ext dockyter", setup, f"%%docker {test_image}\n{CELL}"], tmp_path)
    outputs = four_files(notebook.cells[2])
    assert "<td>Brest</td><td>1200</td>" in outputs["rain.csv"].data["text/html"]
    image_id = docker("image", "inspect", "--format", "{{.Id}}", test_image).stdout.strip()
    receipt = outputs["dot.png"].metadata["dockyter"]["receipt"]
    assert (receipt["image"], receipt["digest"], receipt["exit_code"]) == (test_image, image_id, 0)
    assert receipt["backend"] == "api" and receipt["argv"] == [test_image, "bash", "-lc"]
