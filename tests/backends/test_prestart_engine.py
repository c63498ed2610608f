"""Prestarted containers on a real engine, through the docker backend, without IPython.

Each test compares a prestarted ("warm") run with a cold one where it can: what the command
sees, how it ends, what is left. ``WARM`` in a command tells which it was.
"""

from __future__ import annotations

import _thread
import os
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from helpers import docker, wait_until

from dockyter.backends.base import RunRequest, RunResult
from dockyter.backends.docker.dockerbackend import DockerBackend
from dockyter.files.runfolder import kernel_root
from dockyter.output import OutputSink
from dockyter.wire.contract import owner_id
from dockyter.wire.dockerargs import parse_run_args
from dockyter.wire.sessionprotocol import new_token

pytestmark = pytest.mark.docker

# Prints "warm" in a prestarted container, "cold" in any other: there the command's parent is
# the waiter, not the init.
WARM = 'if [ "$PPID" = 1 ]; then echo cold; else echo warm; fi'
# What a command can see of where and how it runs, apart from the container's own identity.
PROBE = (
    'env | sort; id; pwd; umask; ulimit -a; hostname | sed s/^/host=/; echo "$0 $-"; ls -l /proc/self/fd/0; '
    "grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs|Seccomp|Sig(Ign|Blk))' /proc/self/status; "
    "awk '{print $5, $6}' /proc/self/mountinfo | sort; ls -a /tmp"
)


def new_backend(**overrides: object) -> DockerBackend:
    values: dict[str, object] = dict(
        docker_command=["docker"],
        base_run_args=["--log-driver", "none"],
        stop_grace=1.0,
        prestart=1,
        prestart_limit=4,
        prestart_idle=600.0,
    )
    values.update(overrides)
    return DockerBackend(SimpleNamespace(**values))  # type: ignore[arg-type]


@pytest.fixture
def backend(no_leftover_containers) -> Iterator[DockerBackend]:
    made = new_backend()
    yield made
    made.close()


@pytest.fixture
def cold_backend(no_leftover_containers) -> Iterator[DockerBackend]:
    made = new_backend(prestart=0)
    yield made
    made.close()


class Ran:
    """One request run to the end, its output captured."""

    def __init__(self, backend: DockerBackend, line: str, command: str, timeout: float | None = None, merge=False):
        self.request = RunRequest(args=parse_run_args(line), command=command, timeout=timeout, merge_stderr=merge)
        sink = OutputSink(show=False, capture=True)
        started = time.monotonic()
        self.result: RunResult = backend.run(self.request, sink)
        self.seconds = time.monotonic() - started
        self.stdout = sink.text("stdout")
        self.stderr = sink.text("stderr")
        self.code = self.result.exit_code


def ready(backend: DockerBackend, line: str, timeout: float = 60) -> None:
    """Prestart ``line`` and wait until its container is ready."""
    request = RunRequest(args=parse_run_args(line), command="")
    backend.prestart(request)
    assert backend.prestart_line(request) is not None, backend.prestart_rows(request)
    assert wait_until(lambda: any(n for _, n, _ in backend.prestarted.counts()), timeout=timeout), (
        backend.prestart_rows(request)
    )


def without_hostname(text: str) -> str:
    return "".join(row for row in text.splitlines(keepends=True) if not row.startswith(("HOSTNAME=", "host=")))


def gone(name: str) -> bool:
    return docker("container", "inspect", name).returncode != 0


def prestarted_names() -> list[str]:
    """This process's prestarted containers (other test runs may share the engine)."""
    mine = f"label=io.dockyter.owner={owner_id()}"
    listing = docker("ps", "-a", "--filter", "label=io.dockyter.prestart", "--filter", mine, "--format", "{{.Names}}")
    return listing.stdout.split()


def test_each_command_gets_a_fresh_container(backend, test_image):
    ready(backend, test_image)
    first = Ran(backend, test_image, f"touch /tmp/left-behind; hostname; {WARM}")
    ready(backend, test_image)
    second = Ran(backend, test_image, f"ls /tmp/left-behind 2>/dev/null || echo absent; hostname; {WARM}")
    assert first.code == second.code == 0
    first_host, first_kind = first.stdout.split()
    absent, second_host, second_kind = second.stdout.split()
    assert (first_kind, second_kind, absent) == ("warm", "warm", "absent")
    assert first_host != second_host


@pytest.mark.parametrize(
    "options",
    ["", "--user 65534:65534 --workdir /tmp --env GREETING=hi --env PASSED --hostname fixed --read-only"],
    ids=["defaults", "user-workdir-env"],
)
def test_what_the_command_sees_equals_a_cold_run(backend, cold_backend, test_image, options, monkeypatch):
    monkeypatch.setenv("PASSED", "from the kernel")
    line = f"{options} {test_image}"
    cold = Ran(cold_backend, line, f"{PROBE}; {WARM}")
    ready(backend, line)
    warm = Ran(backend, line, f"{PROBE}; {WARM}")
    assert (cold.code, warm.code) == (0, 0), (cold.stderr, warm.stderr)
    assert cold.stdout.endswith("cold\n") and warm.stdout.endswith("warm\n")
    if "--hostname" not in options:  # a fresh container's own name: different in any two runs
        cold.stdout, warm.stdout = (without_hostname(run.stdout) for run in (cold, warm))
    assert warm.stdout.removesuffix("warm\n") == cold.stdout.removesuffix("cold\n")
    assert warm.stderr == cold.stderr


@pytest.mark.parametrize("command", ["exit 7", "kill -TERM $$", "kill -KILL $$", "kill -INT $$", "true"])
def test_exit_statuses_equal_a_cold_runs(backend, cold_backend, test_image, command):
    cold = Ran(cold_backend, test_image, command)
    ready(backend, test_image)
    [name] = prestarted_names()
    warm = Ran(backend, test_image, command)
    assert warm.code == cold.code and warm.result.reason is None
    assert wait_until(lambda: gone(name), timeout=15)  # it ran there: a cold run would have left it waiting


def test_output_that_looks_like_a_frame_does_not_end_the_command(backend, test_image):
    ready(backend, test_image)
    fake = new_token()
    ran = Ran(
        backend,
        test_image,
        f"printf '\\037{fake}:0\\n\\037{fake}\\n'; printf '\\037{fake}\\n' >&2; sleep 0.5; echo after",
    )
    assert ran.code == 0
    assert ran.stdout == f"\x1f{fake}:0\n\x1f{fake}\nafter\n"
    assert ran.stderr == f"\x1f{fake}\n"


def test_merged_output_keeps_its_order(backend, test_image):
    ready(backend, test_image)
    ran = Ran(backend, test_image, "echo one; echo two >&2; echo three; exit 4", merge=True)
    assert (ran.stdout, ran.stderr, ran.code) == ("one\ntwo\nthree\n", "", 4)


def test_a_long_command_with_every_kind_of_line_arrives_whole(backend, test_image):
    ready(backend, test_image)
    script = (
        "cat <<'END'\n  lead\\ing \\\\ back\tslash\n\n'quoted' \"double\" $HOME é\nEND\nprintf 'no newline at the end'"
    )
    ran = Ran(backend, test_image, script)
    assert ran.stdout == "  lead\\ing \\\\ back\tslash\n\n'quoted' \"double\" $HOME é\nno newline at the end"


def interrupt_after(seconds: float) -> None:
    threading.Timer(seconds, _thread.interrupt_main).start()


def test_an_interrupt_stops_the_prestarted_container(backend, test_image):
    ready(backend, test_image)
    [name] = prestarted_names()
    interrupt_after(1.0)
    ran = Ran(backend, test_image, "echo started; sleep 60; echo never")
    assert ran.code == 130 and ran.result.reason == "interrupted"
    assert ran.stdout == "started\n" and ran.seconds < 15
    assert wait_until(lambda: gone(name), timeout=15)


def test_a_timeout_stops_the_prestarted_container(backend, test_image):
    ready(backend, test_image)
    [name] = prestarted_names()
    ran = Ran(backend, test_image, "echo started; sleep 60; echo never", timeout=1.0)
    assert ran.code == 124 and ran.result.reason == "timeout"
    assert ran.stdout == "started\n" and ran.seconds < 15
    assert wait_until(lambda: gone(name), timeout=15)


@pytest.fixture
def built(tmp_path, test_image) -> Iterator[callable]:
    """``built(tag, dockerfile_lines)`` builds an image FROM the test image; removed afterwards."""
    tags: list[str] = []

    def build(tag: str, *lines: str, files: dict[str, str] | None = None) -> str:
        folder = tmp_path / f"context-{len(tags)}"
        folder.mkdir()
        for name, text in (files or {}).items():
            (folder / name).write_text(text)
            (folder / name).chmod(0o755)
        (folder / "Dockerfile").write_text("\n".join([f"FROM {test_image}", *lines]) + "\n")
        answer = docker("build", "-q", "-t", tag, str(folder), timeout=300)
        assert answer.returncode == 0, answer.stderr
        tags.append(tag)
        return tag

    yield build
    if tags:
        docker("rmi", "-f", *set(tags))


def test_an_image_rebuilt_under_its_tag_is_used_at_once(backend, built):
    tag = f"dockyter-test/prestart-{new_token()[:8]}:1"
    built(tag, "RUN echo one > /version")
    ready(backend, tag)
    [old] = prestarted_names()
    built(tag, "RUN echo two > /version")
    ran = Ran(backend, tag, f"cat /version; {WARM}")
    assert ran.stdout == "two\ncold\n"  # the old one may not serve it: it ran cold
    assert wait_until(lambda: gone(old), timeout=15)
    ready(backend, tag)
    assert Ran(backend, tag, f"cat /version; {WARM}").stdout == "two\nwarm\n"


def test_an_entrypoints_output_reaches_the_command_cell(backend, cold_backend, built):
    entry = '#!/bin/sh\necho entrypoint says hi\necho to stderr >&2\nexec "$@"\n'
    tag = built(
        f"dockyter-test/prestart-{new_token()[:8]}:1",
        "COPY entry.sh /entry.sh",
        'ENTRYPOINT ["/entry.sh"]',
        files={"entry.sh": entry},
    )
    cold = Ran(cold_backend, tag, "echo command")
    ready(backend, tag)
    warm = Ran(backend, tag, f"echo command; {WARM}")
    assert cold.stdout == "entrypoint says hi\ncommand\n"
    assert warm.stdout == "entrypoint says hi\ncommand\nwarm\n"
    assert warm.stderr == cold.stderr == "to stderr\n"


def test_an_image_without_sh_runs_cold_and_says_why(backend, built):
    tag = built(f"dockyter-test/prestart-{new_token()[:8]}:1", "RUN rm /bin/sh")
    first = Ran(backend, tag, "echo cold is fine")
    assert first.stdout == "cold is fine\n"
    request = RunRequest(args=parse_run_args(tag), command="")
    assert wait_until(lambda: any("no sh" in row[1] for row in backend.prestart_rows(request)), timeout=60)
    assert Ran(backend, tag, "echo still fine").stdout == "still fine\n"
    assert not prestarted_names()


def test_an_image_without_the_runs_shell_runs_cold_and_the_engine_says_why(backend, sh_image):
    first, second = Ran(backend, sh_image, "echo never"), None
    request = RunRequest(args=parse_run_args(sh_image), command="")
    assert wait_until(lambda: any("has no bash" in row[1] for row in backend.prestart_rows(request)), timeout=60)
    second = Ran(backend, sh_image, "echo never")
    for ran in (first, second):  # both cold, with the init's own words, which Dockyter explains
        assert ran.code == 127 and "exec bash failed: No such file or directory" in ran.stderr
    assert not prestarted_names()


def test_a_replaced_bind_source_is_not_served_by_the_old_container(backend, test_image, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "old").write_text("")
    line = f"-v {folder}:/data {test_image}"
    ready(backend, line)
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
    folder.mkdir()
    (folder / "new").write_text("")
    ran = Ran(backend, line, f"ls /data; {WARM}")
    assert ran.stdout == "new\ncold\n"


def test_a_changed_file_in_a_bound_folder_is_seen_by_the_prestarted_container(backend, test_image, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    line = f"-v {folder}:/data {test_image}"
    ready(backend, line)
    (folder / "written-after").write_text("fresh\n")
    assert Ran(backend, line, f"cat /data/written-after; {WARM}").stdout == "fresh\nwarm\n"


def test_a_variable_passed_through_is_read_when_the_command_runs(backend, test_image, monkeypatch):
    monkeypatch.setenv("STAGE", "before")
    line = f"-e STAGE {test_image}"
    ready(backend, line)
    monkeypatch.setenv("STAGE", "after")
    assert Ran(backend, line, f"echo $STAGE; {WARM}").stdout == "after\ncold\n"


@pytest.mark.parametrize(
    "options",
    [
        "--name x",
        "-p 8080",
        "--publish-all",
        "--pull always",
        "--env-file /dev/null",
        "--network container:other",
        "--volumes-from other",
        "--mount 'type=bind,\"source=/tmp\",target=/t'",
        "--podman-only=1",
    ],
)
def test_lines_that_cannot_wait_run_cold_and_say_why(options, test_image):
    backend = new_backend()
    request = RunRequest(args=parse_run_args(f"{options} {test_image}"), command="")
    assert backend.prestart_line(request) is None
    [why] = [row for label, row in backend.prestart_rows(request) if label == "! runs cold"]
    assert options.split()[0].split("=")[0] in why


def test_idle_containers_are_let_go(no_leftover_containers, test_image):
    backend = new_backend(prestart_idle=1.0)
    try:
        ready(backend, test_image)
        assert wait_until(lambda: not prestarted_names(), timeout=15)
        assert not backend.prestarted.counts()
    finally:
        backend.close()


def test_the_line_used_longest_ago_gives_way_to_the_cap(no_leftover_containers, test_image):
    backend = new_backend(prestart_limit=1)
    try:
        ready(backend, test_image)
        [first] = prestarted_names()
        ready(backend, f"-e OTHER=1 {test_image}")
        assert wait_until(lambda: prestarted_names() and first not in prestarted_names(), timeout=15)
        [(line, ready_count, starting)] = backend.prestarted.counts()
        assert "OTHER" in str(line) and ready_count + starting == 1
    finally:
        backend.close()


def test_prestart_0_starts_nothing(cold_backend, test_image):
    cold_backend.prestart(RunRequest(args=parse_run_args(test_image), command=""))
    Ran(cold_backend, test_image, "true")
    time.sleep(1)
    assert not prestarted_names()
    assert cold_backend.prestart_rows(None) == [("prestarted", "none: Dockyter.prestart = 0")]


def test_a_prestarted_container_is_labelled_as_ours(backend, test_image):
    ready(backend, test_image)
    [name] = prestarted_names()
    labels = docker("inspect", "--format", "{{json .Config.Labels}}", name).stdout
    assert '"io.dockyter.managed":"1"' in labels and f'"io.dockyter.owner":"{owner_id()}"' in labels


def test_closing_the_backend_ends_its_containers_by_themselves(no_leftover_containers, test_image):
    backend = new_backend()
    ready(backend, test_image)
    backend.prestart(RunRequest(args=parse_run_args(f"-e MORE=1 {test_image}"), command=""))  # still starting
    backend.close()
    assert wait_until(lambda: not prestarted_names(), timeout=15)


def test_twenty_commands_in_a_row_each_get_a_fresh_container(backend, test_image):
    ready(backend, test_image)
    hosts = [Ran(backend, test_image, f"hostname; {WARM}").stdout.split() for _ in range(20)]
    assert len({host for host, _ in hosts}) == 20
    assert [kind for _, kind in hosts] == ["warm"] * 20  # each waits for the next one, already starting


def run_folders() -> list[str]:
    """The run folders of this process's $DOCKYTER_OUT root (made and removed per run)."""
    return sorted(os.listdir(kernel_root()))


def test_a_prestarted_container_brings_its_files_back_and_its_receipt(backend, test_image):
    ready(backend, test_image)
    warm = Ran(backend, test_image, f'printf 1,2 > "$DOCKYTER_OUT/t.csv"; {WARM}')
    assert (warm.code, warm.stdout) == (0, "warm\n"), warm.stderr
    assert warm.result.files is not None
    assert [(found.name, found.data) for found in warm.result.files.files] == [("t.csv", b"1,2")]
    image_id = docker("image", "inspect", "--format", "{{.Id}}", test_image).stdout.strip()
    assert warm.result.facts is not None and warm.result.facts.image_id == image_id
    # Its folder went with its run; the container prestarted for the next one has its own.
    wait_until(lambda: len(run_folders()) == 1, timeout=30)
    backend.close()
    assert wait_until(lambda: run_folders() == [], timeout=40), run_folders()


def test_a_run_without_files_never_takes_a_container_that_has_a_folder(backend, test_image):
    ready(backend, test_image)  # a line whose runs want $DOCKYTER_OUT (the default)
    request = RunRequest(args=parse_run_args(test_image), command=f'echo "[$DOCKYTER_OUT]"; {WARM}', files=None)
    sink = OutputSink(show=False, capture=True)
    result = backend.run(request, sink)
    assert (result.exit_code, sink.text("stdout"), result.files) == (0, "[]\ncold\n", None)
