"""``%%docker --help``, ``%docker --help`` and ``%%docker?``: one usage, generated from the option table."""

from dockyter.ipython.magiclines import CELL


def test_cell_help_prints_the_usage_and_runs_nothing(ip, cell):
    ip.run_line_magic("config", "Dockyter.docker_command = ['no-such-runtime']")  # a run would fail loudly
    run = cell("%%docker --help\necho hi")
    assert run.error is None and run.stderr == ""
    assert run.stdout.startswith("usage: %%docker [OPTIONS] [--] [DOCKER ARGS...] [IMAGE]")
    for option in CELL.options:
        assert option.name in run.stdout
    assert "_exit_code" not in ip.user_ns


def test_an_empty_cell_with_help_is_answered_by_the_line_magic(ip, cell):
    # IPython refuses an empty-bodied cell magic before Dockyter sees it, and points at the line magic
    refused = cell("%%docker --help")
    assert "%docker" in str(refused.error)
    run = cell("%docker --help")
    assert run.stdout.startswith("usage: %docker [DOCKER ARGS...] IMAGE")
    assert "usage: %%docker [OPTIONS]" in run.stdout
    assert ip._dockyter.default_args == "" and ip._dockyter.redirect is False


def test_the_docstrings_are_the_usage(ip):
    doc = ip.find_cell_magic("docker").__doc__
    assert "--timeout SECONDS" in doc and "--profile NAME" in doc and "python --version" in doc
    assert ip.find_line_magic("docker").__doc__.startswith("usage: %docker")


def test_docker_flags_still_pass_untouched(ip, cell):
    # --help among docker flags belongs to docker (`docker run --help`), not to Dockyter
    ip.run_line_magic("config", "Dockyter.docker_command = ['no-such-runtime']")
    run = cell("%%docker -e A=1 --help img\necho hi")
    assert "'no-such-runtime' was not found" in str(run.error)
    assert "usage: %%docker" not in run.stdout


def test_every_magic_with_arguments_answers_help_and_its_docstring_is_that_help(ip, cell):
    for magic in ("docker_session", "docker_backend", "docker_profile", "docker_config"):
        run = cell(f"%{magic} --help")
        assert run.error is None and run.stdout.startswith(f"usage: %{magic}"), (magic, run)
        assert ip.find_line_magic(magic).__doc__ == run.stdout.removesuffix("\n"), magic
    assert ip._dockyter.backend == "docker"  # --help chose no backend
    assert cell("%docker_session help").stdout.startswith("usage: %docker_session ")
    assert ip.find_line_magic("docker_on").__doc__.startswith("usage: %docker_on\n")
