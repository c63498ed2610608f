"""One message per problem, in our words, as a user meets it in a real kernel.

Docker's own complaint is said once, in the red line (never also as its raw usage text); the
most common docker habits (``-it``, ``-v $PWD:/work``) get one line that names what they
wrote; a bad setting is one sentence, not traitlets' text.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator

import pytest
from helpers import docker
from kernels import Execution, Kernel, start_kernel

pytestmark = [pytest.mark.docker, pytest.mark.kernel]

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """One kernel for the walk, with Dockyter loaded and its HOME in a temporary folder."""
    folder = tmp_path_factory.mktemp("walk")
    started = start_kernel(folder, {"HOME": str(folder), "XDG_CONFIG_HOME": str(folder), "DOCKYTER_CONFIG": ""})
    try:
        assert started.run("%load_ext dockyter").reply["status"] == "ok"
        # The walk is about messages. Prestarted containers live as long as the kernel (the whole
        # module here) and would outlive each test's leftover check: cold runs only.
        started.run("%config Dockyter.prestart = 0")
        yield started
    finally:
        started.shutdown()


def red_lines(run: Execution) -> list[str]:
    """The error lines the notebook shows (an error's traceback), without colours."""
    return [ANSI.sub("", line) for error in run.of_type("error") for line in error["content"]["traceback"]]


@pytest.mark.parametrize("flags", ["-it", "-ti", "-i -t"])
def test_it_is_answered_in_one_line_naming_both(walk, test_image, flags, no_leftover_containers):
    run = walk.run(f"%%docker {flags} {test_image}\necho never")
    first, second = ("-t", "-i") if flags == "-ti" else ("-i", "-t")
    assert run.stderr == (
        f"UsageError: {first} and {second} refused: a cell has no keyboard input and no terminal to give the "
        "container; drop both: its output streams live without them\n"
    )
    assert run.stdout == "" and run.reply["ename"] == "UsageError"


def test_dockers_complaint_is_said_once_in_our_line(walk, test_image, no_leftover_containers):
    """A name taken, --pull never without the image, a bad volume mode, an unknown flag: nothing ran,
    and the red line alone says docker's reason (no raw "docker: Error response..." nor usage text)."""
    taken = f"dyt-taken-{secrets.token_hex(3)}"
    assert docker("create", "--name", taken, test_image, "true").returncode == 0
    try:
        cases = [
            (
                f"--name {taken} {test_image}",
                f'Conflict. The container name "/{taken}" is already in use by container "',
            ),
            ("--pull never dockyter-test/no-such-image:1", "No such image: dockyter-test/no-such-image:1"),
            (f"-v /tmp:/x:zz {test_image}", "invalid mode: zz"),
            (f"--frobnicate=1 {test_image}", "unknown flag: --frobnicate"),
        ]
        for line, reason in cases:
            run = walk.run(f"%%docker {line}\necho never")
            [red] = red_lines(run)
            assert red.startswith(f"Dockyter: the container did not start: {reason}"), red
            assert (run.stdout, run.stderr) == ("", ""), line
            assert run.reply["ename"] == "ContainerNotStarted"
            assert walk.run("print(_exit_code)").stdout == "125\n"
    finally:
        docker("rm", "--force", taken)
    # the same for `!`: one line, no raw text
    walk.run(f"%docker --frobnicate=1 {test_image}")
    bang = walk.run("!echo never")
    assert (bang.stdout, bang.stderr) == ("", "Dockyter: the container did not start: unknown flag: --frobnicate\n")
    walk.run("%docker_off")


def test_a_commands_own_error_output_is_never_held_back_long(walk, test_image, no_leftover_containers):
    """stderr that starts like docker's complaint but comes from a running container is shown, whole."""
    run = walk.run(f'%%docker {test_image}\necho "Error: retrying" >&2; sleep 2; echo done')
    assert (run.stdout, run.stderr, run.reply["status"]) == ("done\n", "Error: retrying\n", "ok")
    assert run.arrival("done") - run.arrival("Error: retrying") > 1  # shown before the command ended


PWD_HINT = (
    "$PWD in '-v $PWD:/work' was not expanded: IPython expands $name on a magic line from Python variables, "
    "not from the environment; write --here (mounts the kernel's folder and starts there), or {os.getcwd()}"
)


def test_dollar_pwd_is_the_hint_even_when_the_line_has_an_image_variable(walk, test_image, no_leftover_containers):
    """IPython expands nothing on a line where one $name is not Python's; what it would have expanded
    ($image, {expression}, $$) is expanded, and $PWD gets its hint, not $image a wrong one."""
    walk.run(f"image = {test_image!r}; stage = 'demo'")
    for code in ("%%docker -v $PWD:/work $image\nls /work", "%docker -v $PWD:/work $image"):
        run = walk.run(code)
        assert (run.stdout, run.stderr) == ("", f"UsageError: {PWD_HINT}\n"), code
    run = walk.run("%docker_session start s -v $PWD:/work $image")
    assert run.stderr == f"UsageError: %docker_session: {PWD_HINT}\n"
    unknown = walk.run("%%docker $IMAGE\ntrue")
    assert unknown.stderr == (
        "UsageError: $IMAGE in '$IMAGE' was not expanded: IPython expands $name on a magic line from Python "
        "variables, not from the environment; write {os.environ['IMAGE']}\n"
    )
    # a line with an environment variable docker may keep: the rest is expanded as IPython would
    ran = walk.run("%%docker -e WHO=$USER -e STAGE={stage.upper()} -e DOLLAR=$$x $image\necho $WHO $STAGE $DOLLAR")
    assert (ran.stdout, ran.stderr) == ("$USER DEMO $x\n", "")


def test_dropping_a_profile_says_where_bang_runs_now(walk, test_image, tmp_path_factory):
    folder = walk.run("import os; print(os.getcwd())").stdout.strip()
    with open(f"{folder}/dockyter.toml", "w") as file:
        file.write(f'[profiles]\nposix = "{test_image}"\n')
    walk.run("%docker_config reload")
    walk.run("%config Dockyter.default_args = ''")
    walk.run("%docker_profile posix")
    off = walk.run("%docker_profile --off")
    assert (
        off.stdout
        == "Dockyter: profile 'posix' dropped (default_args back as before); `!` runs on this machine again.\n"
    )
    walk.run(f"%docker {test_image}")
    walk.run("%docker_profile posix")
    back = walk.run("%docker_profile --off")
    assert (
        back.stdout == f"Dockyter: profile 'posix' dropped (default_args back as before); `!` runs in {test_image}.\n"
    )
    off = walk.run("%docker_off")
    assert off.stdout == "Dockyter: `!` runs on this machine again; %docker_on to run it in containers.\n"
    typo = walk.run("%docker_profile --of")
    assert typo.stderr == "UsageError: %docker_profile: unknown option '--of': did you mean --off?\n"
    os.remove(f"{folder}/dockyter.toml")
    walk.run("%docker_config reload")


def test_a_refused_setting_is_one_line_in_our_words(walk):
    for value, reason, stays in [
        ("-5", "it must be at least 0", "0.0"),
        ("'soon'", "expected a number, found a string ('soon')", "0.0"),
    ]:
        run = walk.run(f"%config Dockyter.timeout = {value}")
        assert (
            run.stderr == f"Dockyter: %config: Dockyter.timeout = {value} refused: {reason} (timeout stays {stays})\n"
        )
    empty = walk.run("%config Dockyter.docker_command = []")
    assert empty.stderr == (
        "Dockyter: %config: Dockyter.docker_command = [] refused: it must not be empty (docker_command stays ['docker'])\n"
    )


def test_status_shows_what_a_cell_runs_from_the_start(walk):
    walk.run("%docker_off")
    walk.run("%config Dockyter.default_args = ''")
    [shown] = walk.run("%docker_status").of_type("display_data")
    text = shown["content"]["data"]["text/plain"]
    [row] = [line for line in text.splitlines() if line.strip().startswith("a cell runs")]
    assert re.fullmatch(
        r"  a cell runs +docker run --rm --init --name dockyter-[0-9a-f]+ --label io\.dockyter\.managed=1 "
        r"--label io\.dockyter\.owner=\S+ --env TINI_KILL_PROCESS_GROUP=1 --log-driver none IMAGE bash -lc '<cell>'",
        row,
    ), row
