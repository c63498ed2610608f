"""%%docker on a real engine through a real InteractiveShell.

What depends on the engine (the cell's shell, its streams, exit codes, the stop ladder) runs on
every engine: Docker, podman and rootless podman (``engine_cell``, engine_fixtures.py). What
only Dockyter and IPython decide (options, variables, usage errors) runs on Docker alone.
"""

import os
import re
import signal
import subprocess
import threading
import time

import pytest
from helpers import wait_until
from kernels import containers_of

from dockyter.errors import ContainerExitError, Interrupted

pytestmark = pytest.mark.docker


def test_whole_cell_runs_in_one_shell(engine_cell, engine_image):
    run = engine_cell(
        f"%%docker {engine_image}\n"
        "cd /tmp\n"
        "GREETING=hello\n"
        'for i in 1 2; do echo "$GREETING $i from $(pwd)"; done\n'
        "cat <<EOF\nheredoc $GREETING\nEOF\n"
    )
    assert run.error is None
    assert run.stdout == "hello 1 from /tmp\nhello 2 from /tmp\nheredoc hello\n"


def test_stdout_and_stderr_stay_apart(engine_cell, engine_image):
    run = engine_cell(f"%%docker {engine_image}\necho out; echo err >&2")
    assert run.stdout == "out\n"
    assert run.stderr == "err\n"


def test_quoted_docker_arguments(cell, test_image, tmp_path):
    folder = tmp_path / "path with space"
    folder.mkdir()
    (folder / "data.txt").write_text("from the host\n")
    run = cell(f'%%docker -e MSG="a b" -v "{folder}:/data" {test_image}\necho "[$MSG]"; cat /data/data.txt')
    assert run.stdout == "[a b]\nfrom the host\n"


def test_python_variables_expand_on_the_magic_line(cell, ip, test_image):
    ip.user_ns["image_name"] = test_image
    ip.user_ns["value"] = 41
    run = cell("%%docker -e N={value + 1} $image_name\necho $N")
    assert run.stdout == "42\n"


def test_cell_text_is_not_expanded_by_ipython(cell, ip, test_image):
    ip.user_ns["HOME"] = "python-side"
    try:
        run = cell(f"%%docker -e X=container-side {test_image}\necho $X {{braces}}")
    finally:
        del ip.user_ns["HOME"]  # the shell is shared by the tests that follow
    assert run.stdout == "container-side {braces}\n"


def test_exit_code_is_recorded_and_raised(engine_cell, engine_shell, engine_image):
    run = engine_cell(f"%%docker {engine_image}\necho before; exit 3")
    assert isinstance(run.error, ContainerExitError)
    assert isinstance(run.error, subprocess.CalledProcessError)
    assert run.error.returncode == 3
    assert engine_shell.user_ns["_exit_code"] == 3
    assert "exited with status 3" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ("nosuchcommand", 127, "command not found in the container"),
        ("/etc/passwd", 126, "could not be executed"),
    ],
    ids=["not-found-127", "not-executable-126"],
)
def test_exit_codes_that_mean_the_command_could_not_run(engine_cell, engine_image, body, code, words):
    run = engine_cell(f"%%docker {engine_image}\n{body}")
    assert run.error.returncode == code
    assert words in str(run.error)
    assert engine_cell("print(_exit_code)").stdout == f"{code}\n"


def test_no_raise_error(cell, ip, test_image):
    run = cell(f"%%docker --no-raise-error {test_image}\nexit 4")
    assert run.error is None
    assert ip.user_ns["_exit_code"] == 4


def test_raise_on_error_trait(cell, ip, test_image):
    ip.run_line_magic("config", "Dockyter.raise_on_error = False")
    assert cell(f"%%docker {test_image}\nexit 5").error is None
    assert ip.user_ns["_exit_code"] == 5
    assert isinstance(cell(f"%%docker --raise-error {test_image}\nexit 5").error, ContainerExitError)


def test_success_sets_exit_code_zero(cell, ip, test_image):
    ip.user_ns["_exit_code"] = 99
    assert cell(f"%%docker {test_image}\ntrue").error is None
    assert ip.user_ns["_exit_code"] == 0


def test_out_and_err_capture_instead_of_showing_as_bash_does(cell, ip, test_image):
    run = cell(f"%%docker --out o --err e {test_image}\necho kept; echo oops >&2")
    assert (run.stdout, run.stderr) == ("", "")
    assert (ip.user_ns["o"], ip.user_ns["e"]) == ("kept\n", "oops\n")
    only_out = cell(f"%%docker --out o {test_image}\necho kept; echo shown >&2")
    assert (only_out.stdout, only_out.stderr, ip.user_ns["o"]) == ("", "shown\n", "kept\n")


def test_tee_shows_and_captures(cell, ip, test_image):
    run = cell(f"%%docker --tee --out o --err e {test_image}\necho shown; echo oops >&2")
    assert (run.stdout, run.stderr) == ("shown\n", "oops\n")
    assert (ip.user_ns["o"], ip.user_ns["e"]) == ("shown\n", "oops\n")
    assert "--tee shows what --out VAR or --err VAR store" in str(cell(f"%%docker --tee {test_image}\ntrue").error)


def test_timeout_zero_lifts_the_configured_timeout_for_one_cell(cell, ip, test_image, no_leftover_containers):
    ip.run_line_magic("config", "Dockyter.timeout = 1")
    assert cell(f"%%docker --timeout 0 {test_image}\nsleep 2; echo outlived").stdout == "outlived\n"
    limited = cell(f"%%docker --no-raise-error {test_image}\nsleep 5; echo never")
    assert ip.user_ns["_exit_code"] == 124 and "never" not in limited.stdout
    ip.run_line_magic("config", "Dockyter.timeout = 0")


def test_a_typo_in_dockyters_own_options_says_which_was_meant(cell, test_image):
    run = cell(f"%%docker --no-raise-eror {test_image}\ntrue")
    assert (
        str(run.error)
        == "%%docker: unknown option '--no-raise-eror': did you mean --no-raise-error (a %%docker option)?"
    )
    assert "did you mean --timeout (a %%docker option)?" in str(cell(f"%%docker --timeot 5 {test_image}\ntrue").error)
    assert "unknown docker run option '--volumn': did you mean --volume?" in str(
        cell(f"%%docker --volumn /a:/b {test_image}\ntrue").error
    )
    late = cell(f"%%docker -e A=1 --timeout 5 {test_image}\ntrue")
    assert "--timeout is a %%docker option: put it before the docker arguments" in str(late.error)


def test_double_dash_separates_options(cell, ip, test_image):
    run = cell(f"%%docker --tee --out o -- -e V=1 {test_image}\necho $V")
    assert ip.user_ns["o"] == "1\n"
    assert run.stdout == "1\n"


def test_timeout_stops_the_container(engine, engine_cell, engine_shell, engine_image):
    started = time.monotonic()
    run = engine_cell(f"%%docker --timeout 1 {engine_image}\necho started; sleep 60; echo never")
    assert run.stdout.startswith("started\n")
    assert "never" not in run.stdout
    assert engine_shell.user_ns["_exit_code"] == 124
    assert isinstance(run.error, ContainerExitError)
    assert "timed out after 1 s" in str(run.error)
    assert time.monotonic() - started < 1 + 2 + 5  # the timeout, stop_grace, the removal
    assert wait_until(lambda: stopped(run.error) not in engine.containers_of(os.getpid()), timeout=10)


def stopped(error: BaseException | None) -> str:
    """The container a timeout stopped, by the name Dockyter's one line gives (a prestarted
    container for the same line may be running by then)."""
    found = re.search(r"container (dockyter-\w+) stopped", str(error))
    assert found, error
    return found.group(1)


def test_the_command_gets_the_interrupt_before_it_is_killed(engine_cell, engine_image):
    # Docker's init (tini) signals the shell's process group; podman's (catatonit) the shell
    # only, so Dockyter sends it to the container's processes from inside.
    run = engine_cell(
        f"%%docker --timeout 2 {engine_image}\ntrap 'echo got INT; exit 7' INT; echo started; sleep 60; echo missed"
    )
    assert run.error.returncode == 124
    assert run.stdout.startswith("started\ngot INT\n") and "missed" not in run.stdout


def test_a_command_that_ignores_signals_is_still_stopped_at_once(engine, engine_cell, engine_image):
    # podman's `rm --force` alone would wait 10 s for SIGTERM to work before it kills.
    started = time.monotonic()
    run = engine_cell(f"%%docker --timeout 2 {engine_image}\ntrap '' TERM INT; echo started; sleep 60")
    assert run.error.returncode == 124
    assert time.monotonic() - started < 2 + 2 + 5  # the timeout, stop_grace, the removal
    assert wait_until(lambda: stopped(run.error) not in engine.containers_of(os.getpid()), timeout=10)


def test_timeout_trait(cell, ip, test_image, no_leftover_containers):
    ip.run_line_magic("config", "Dockyter.timeout = 1.0")
    run = cell(f"%%docker --no-raise-error {test_image}\nsleep 60")
    assert ip.user_ns["_exit_code"] == 124
    assert "timed out" in run.stderr


def test_multibyte_characters_split_across_reads(cell, test_image):
    # é is \xc3\xa9: the two bytes arrive in separate reads
    run = cell(
        f"%%docker {test_image}\nprintf '\\303'; sleep 0.3; printf '\\251\\n'; printf '\\342\\202'; sleep 0.3; printf '\\254\\n'"
    )
    assert run.stdout == "é\n€\n"


def test_partial_lines_are_passed_through(cell, test_image):
    run = cell(f"%%docker {test_image}\nfor i in 1 2 3; do printf '\\r%s%%' $i; done; echo")
    assert run.stdout == "\r1%\r2%\r3%\n"


def test_empty_line_uses_default_args(cell, ip, test_image):
    ip.run_line_magic("config", f"Dockyter.default_args = '-e FROM=defaults {test_image}'")
    assert cell("%%docker\necho $FROM").stdout == "defaults\n"


def test_sh_shell_for_images_without_bash(engine_cell, engine_shell, engine_sh_image):
    # podman's init says "failed to exec pid1" and exits 1: Dockyter reads it as Docker's 127.
    run = engine_cell(f"%%docker --no-raise-error {engine_sh_image}\necho hi")
    assert engine_shell.user_ns["_exit_code"] == 127
    assert "the image has no 'bash': for images without bash, set %config Dockyter.shell = ['sh', '-c']" in run.stderr
    engine_shell.run_line_magic("config", "Dockyter.shell = ['sh', '-c']")
    assert engine_cell(f"%%docker {engine_sh_image}\necho hi from sh").stdout == "hi from sh\n"


def test_a_container_killed_for_memory_says_so_and_leaves_nothing_in_the_folder(
    engine_cell, engine_image, isolated_home, engine_differs
):
    engine_differs(
        "rootless podman on cgroup v1 cannot limit memory: --memory is ignored ('Resource limits are not "
        "supported and ignored on cgroups V1 rootless systems'), so nothing is killed for it",
        "podman-rootless",
    )
    run = engine_cell(
        f"%%docker --memory 64m --memory-swap 64m {engine_image}\nx=$(head -c 300000000 /dev/zero | tr '\\0' a)"
    )
    assert run.error.returncode == 137 and "ran out of memory" in str(run.error)
    # podman's conmon marks it with an empty file `oom` in the folder `podman run` started in
    assert list(isolated_home.iterdir()) == []


def test_missing_image_is_one_clear_line(engine_cell, engine_shell):
    run = engine_cell("%%docker dockyter-test/does-not-exist:1\necho hi")
    assert engine_shell.user_ns["_exit_code"] == 125
    assert "image is not available locally" in str(run.error)
    assert "Traceback" not in run.stdout + run.stderr
    never = engine_cell("%%docker --pull never dockyter-test/does-not-exist:1\ntrue")
    assert type(never.error).__name__ == "ContainerNotStarted" and never.error.returncode == 125
    assert str(never.error).startswith("the container did not start: ") and "does-not-exist" in str(never.error)


def test_many_lines_all_arrive(engine_cell, engine_image):
    run = engine_cell(f"%%docker {engine_image}\nseq 1 20000")
    lines = run.stdout.splitlines()
    assert lines[0] == "1" and lines[-1] == "20000" and len(lines) == 20000


@pytest.mark.parametrize(
    "line, message",
    [
        ("%%docker", "no image configured"),
        ("%%docker {image} extra", "unexpected 'extra' after the image"),
        ("%%docker -v", "needs a value"),
        ("%%docker --timeout x {image}", "number of seconds"),
        ("%%docker '{image}", "no closing quotation"),
        ("%%docker --bogus {image}", "unknown docker run option '--bogus'"),
    ],
)
def test_usage_errors_are_one_line(cell, ip, test_image, line, message):
    ip.user_ns.pop("_exit_code", None)
    run = cell(line.format(image=test_image) + "\necho never")
    assert "never" not in run.stdout
    assert message in run.stderr + run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    assert "_exit_code" not in ip.user_ns  # nothing ran


def test_interrupt_stops_the_container(ip, cell, test_image, no_leftover_containers):
    def interrupt_once_running():
        # this process's own container: other runs may share the engine
        wait_until(lambda: containers_of(os.getpid(), running_only=True), timeout=20)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)  # what a kernel interrupt does

    threading.Thread(target=interrupt_once_running, daemon=True).start()
    started = time.monotonic()
    run = cell(f"%%docker {test_image}\necho started; sleep 60")
    assert time.monotonic() - started < 15
    assert isinstance(run.error, Interrupted)
    assert isinstance(run.error, KeyboardInterrupt)
    assert ip.user_ns["_exit_code"] == 130
    stopped = re.search(r"interrupted: container (dockyter-\w+) stopped", run.stdout)
    assert stopped
    assert wait_until(lambda: stopped.group(1) not in containers_of(os.getpid()), timeout=10)
    # the shell keeps working
    assert cell(f"%%docker {test_image}\necho alive").stdout == "alive\n"


def test_a_cell_too_long_for_one_argument_is_one_clear_line(cell, test_image):
    run = cell(f"%%docker {test_image}\n" + "echo " + "x" * 200_000)
    assert "the cell is too long to pass as one argument" in str(run.error)
    assert "Traceback" not in run.stdout + run.stderr


def test_missing_runtime_sets_exit_code_and_says_one_line(cell, ip):
    ip.run_line_magic("config", "Dockyter.docker_command = ['no-such-runtime']")
    run = cell("%%docker busybox\necho hi")
    assert ip.user_ns["_exit_code"] == 127
    assert "'no-such-runtime' was not found on PATH" in str(run.error)
    assert run.stdout.count("\n") == 1 and "Traceback" not in run.stdout + run.stderr


def test_bang_without_configured_image_says_so(ip, cell):
    ip.run_line_magic("config", "Dockyter.redirect = True")
    run = cell("!echo hi")
    assert "no image configured" in run.stderr
    assert ip.user_ns["_exit_code"] == 2


def test_a_comment_on_the_magic_line(cell, ip, test_image):
    assert cell(f"%%docker -e A=1 {test_image}  # runs in the test image\necho $A").stdout == "1\n"
    cell(f"%docker {test_image}  # for the next commands")
    assert ip._dockyter.default_args == test_image
