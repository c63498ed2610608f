"""The loopback check program (``dockyter/server/swarm/loopback_only.c``), built and run for real.

It runs first in every Swarm task of a server with ``swarm_isolation = "nodes"``; these tests
run it in network namespaces with and without interfaces besides ``lo``: this machine's own,
a fresh one (``unshare -n``), and containers of the local engine with and without a network,
which is what a node with ``--bridge none`` and a node with a default bridge give a task.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyter.server.settings.fields import SettingsError
from dockyter.server.settings.sources import make_settings
from dockyter.server.swarm.loopbackcheck import MAX_SIZE, build, main, program_problem, target

REFUSED = 125


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)


def alone(program: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the check in a fresh network namespace, which has ``lo`` only."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a fresh network namespace needs root and unshare")
    return run("unshare", "--net", str(program), *argv, env=env)


def test_it_is_a_small_static_program(loopback_program: Path):
    assert program_problem(loopback_program) is None
    assert loopback_program.stat().st_size < 64 * 1024  # far below Swarm's config limit
    # Static: no program interpreter (a dynamic one would need the image's C library).
    assert b"ld-linux" not in loopback_program.read_bytes()


def test_in_a_namespace_with_only_lo_it_runs_the_command_with_its_arguments_and_status(loopback_program: Path):
    done = alone(loopback_program, "sh", "-c", 'printf "%s|" "$0" "$@"; exit 7', "zero", "a b", "", "c'\"d")
    assert done.returncode == 7, done.stderr
    assert done.stdout == "zero|a b||c'\"d|"
    assert done.stderr == ""


def test_it_refuses_where_there_is_an_interface_besides_lo(loopback_program: Path, tmp_path: Path):
    marker = tmp_path / "ran"
    done = run(str(loopback_program), "sh", "-c", f"touch {marker}")
    assert done.returncode == REFUSED
    assert not marker.exists()
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("dockyter: the cell was not run: this task has the network interface ")
    assert "--bridge none" in line


def test_it_finds_the_command_through_path_and_says_what_is_missing(loopback_program: Path):
    path = "/nonexistent:" + os.environ.get("PATH", "/usr/bin:/bin")
    found = alone(loopback_program, "echo", "found", env={"PATH": path})
    assert (found.returncode, found.stdout) == (0, "found\n")
    missing = alone(loopback_program, "no-such-shell", "-c", "true", env={"PATH": path})
    assert missing.returncode == 127
    assert missing.stderr == "dockyter: cannot run no-such-shell: not found in this image\n"
    not_a_program = alone(loopback_program, "/etc/passwd")
    assert not_a_program.returncode == 126
    assert not_a_program.stderr == "dockyter: cannot run /etc/passwd: permission denied\n"
    # Without PATH: docker's default one, as `docker run` has.
    bare = alone(loopback_program, "sh", "-c", "echo bare", env={})
    assert (bare.returncode, bare.stdout) == (0, "bare\n")


def test_without_a_command_it_says_how_to_use_it(loopback_program: Path):
    done = alone(loopback_program)
    assert done.returncode == REFUSED
    assert done.stderr == "usage: loopback-only PROGRAM [ARGS...]\n"


@pytest.mark.docker
@pytest.mark.parametrize(
    ("network", "refused"), [("none", False), ("bridge", True)], ids=["bridge-none-node", "default-bridge-node"]
)
def test_in_containers_it_tells_a_task_without_a_network_from_one_on_a_bridge(
    loopback_program: Path, docker_cli: list[str], sh_image: str, network: str, refused: bool, tmp_path: Path
):
    # As in a Swarm task: the entrypoint, read-only and executable, in an image without bash;
    # the user's options (here --user and --read-only) do not change what it sees.
    path = target("0123abcd")
    mount = f"type=bind,source={loopback_program},target={path},readonly"
    done = run(
        *docker_cli, "run", "--rm", "--network", network, "--user", "4400", "--read-only", "--cap-drop", "ALL",
        "--mount", mount, "--entrypoint", path, sh_image, "sh", "-c", "echo the cell ran; exit 3",
    )  # fmt: skip
    if refused:
        assert done.returncode == REFUSED
        assert done.stdout == ""
        assert "this task has the network interface eth0 besides lo" in done.stderr
    else:
        assert (done.returncode, done.stdout, done.stderr) == (3, "the cell ran\n", "")


@pytest.mark.docker
def test_an_image_that_covers_the_checks_directory_makes_the_task_fail_without_running(
    loopback_program: Path, docker_cli: list[str], sh_image: str, tmp_path: Path
):
    # An image built to hide the check: a volume it declares deeper than the check, through a
    # symbolic link of its own to /.dockyter, is mounted after the check and covers it. Not
    # knowing the secret directory, it cannot put a program of its own there: nothing runs.
    (tmp_path / "Dockerfile").write_text(
        f"FROM {sh_image}\nRUN mkdir -p /a/b/c /.dockyter && ln -s /.dockyter /a/b/c/d\nVOLUME /a/b/c/d\n"
    )
    image = "dockyter-test/covers-the-check:" + os.urandom(4).hex()
    built = run(*docker_cli, "build", "-q", "-t", image, str(tmp_path))
    assert built.returncode == 0, built.stderr
    try:
        path = target(os.urandom(16).hex())
        done = run(
            *docker_cli, "run", "--rm", "--network", "none",
            "--mount", f"type=bind,source={loopback_program},target={path},readonly",
            "--entrypoint", path, image, "sh", "-c", "echo the cell ran",
        )  # fmt: skip
        assert done.returncode != 0
        assert "the cell ran" not in done.stdout
        assert "no such file or directory" in done.stderr
    finally:
        run(*docker_cli, "rmi", "-f", image)


def test_the_build_command_writes_the_program_and_refuses_nonsense(tmp_path: Path, capsys):
    out = tmp_path / "check"
    assert main([str(out)]) == 0
    assert program_problem(out) is None
    assert main([]) == 2
    assert main(["--help"]) == 2
    assert "usage: python -m dockyter.server.swarm.loopbackcheck OUTPUT" in capsys.readouterr().err


def test_settings_refuse_a_missing_or_wrong_program(tmp_path: Path, loopback_program: Path):
    swarm = {"executor": "swarm", "auth": False}
    with pytest.raises(SettingsError, match="swarm_isolation nodes needs loopback_check: build it with"):
        make_settings({**swarm, "swarm_isolation": "nodes"})
    with pytest.raises(SettingsError, match="cannot be read"):
        make_settings({**swarm, "swarm_isolation": "nodes", "loopback_check": str(tmp_path / "missing")})
    script = tmp_path / "script"
    script.write_text('#!/bin/sh\nexec "$@"\n')
    with pytest.raises(SettingsError, match="is not a program: build it with"):
        make_settings({**swarm, "swarm_isolation": "nodes", "loopback_check": str(script)})
    huge = tmp_path / "huge"
    huge.write_bytes(b"\x7fELF" + bytes(MAX_SIZE))
    with pytest.raises(SettingsError, match="more than a Swarm config holds"):
        make_settings({**swarm, "swarm_isolation": "nodes", "loopback_check": str(huge)})
    with pytest.raises(SettingsError, match="swarm_isolation must be overlay or nodes, not 'bridge'"):
        make_settings({**swarm, "swarm_isolation": "bridge"})
    with pytest.raises(SettingsError, match="swarm_isolation isolates Swarm tasks: it needs executor swarm"):
        make_settings({"auth": False, "swarm_isolation": "nodes", "loopback_check": str(loopback_program)})
    # Set but unused (as the server image sets it for every executor): no complaint, and no check.
    assert make_settings({"auth": False, "loopback_check": "/nowhere"}).loopback_check == "/nowhere"
    assert make_settings({**swarm, "loopback_check": "/nowhere"}).swarm_isolation == "overlay"
    settings = make_settings({**swarm, "swarm_isolation": "nodes", "loopback_check": str(loopback_program)})
    assert settings.swarm_isolation == "nodes"


def test_a_build_without_a_compiler_says_so(tmp_path: Path):
    from dockyter.server.swarm.loopbackcheck import LoopbackCheckError

    with pytest.raises(LoopbackCheckError, match="no C compiler 'no-such-cc' to build the loopback check with"):
        build(tmp_path / "x", compiler="no-such-cc")
