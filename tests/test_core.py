"""The core ``Dockyter`` configurable on its own: no IPython shell, one run path, two askers."""

from subprocess import CalledProcessError

import pytest

from dockyter.core import Dockyter, parse_args
from dockyter.errors import BadUsage, ContainerExitError
from dockyter.runspec import RunSpec, bang_asker, cell_asker


@pytest.fixture
def core(recording_backend):
    return Dockyter(backend="recording", timeout=9.0)


def test_a_cell_that_fails_raises_with_a_hint(core, recording_backend):
    recording_backend.exit_code = 127
    with pytest.raises(ContainerExitError) as raised:
        core.run(RunSpec("nosuchtool", args=parse_args("img:1")), cell_asker(True))
    assert raised.value.returncode == 127 and raised.value.hint == "command not found in the container"
    [(request, _)] = recording_backend.requests
    assert (request.args.image, request.command, request.timeout, request.shell) == (
        "img:1",
        "nosuchtool",
        9.0,
        ("bash", "-lc"),
    )


def test_without_raising_a_failure_is_one_line(core, recording_backend, capsys):
    recording_backend.exit_code = 126
    ran = core.run(RunSpec("./x", args=parse_args("img:1")), cell_asker(False))
    assert ran is not None and ran.result.exit_code == 126
    assert capsys.readouterr().err.startswith("Dockyter: exit status 126: the command in the container could not")


def test_a_bang_says_its_hint_and_raises_only_when_asked(core, recording_backend, capsys):
    core.default_args = "img:2"
    recording_backend.exit_code = 126
    assert core.run_bang("true", capture=True, written="true") == ""
    assert capsys.readouterr().err.startswith("Dockyter: the command in the container could not be executed")
    # 125 without the runtime's own error line is the command's status: nothing to explain
    recording_backend.exit_code = 125
    assert core.run_bang("true", capture=True, written="true") == ""
    assert capsys.readouterr().err == ""
    with pytest.raises(CalledProcessError):
        core.run(RunSpec("true", written="true"), bang_asker(True))


def test_no_image_is_bad_usage_for_a_cell_and_one_line_for_a_bang(core, capsys):
    with pytest.raises(BadUsage, match="no image configured"):
        core.run(RunSpec("true"), cell_asker(True))
    assert core.run(RunSpec("true"), bang_asker(False)) is None
    assert "Dockyter: no image configured" in capsys.readouterr().err
