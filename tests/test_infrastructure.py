"""The test infrastructure itself: the local images, the helpers and the leftover guard."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from helpers import MANAGED_LABEL, OWNER_LABEL, docker, dockyter_containers, owned_elsewhere, wait_until

TESTS = Path(__file__).parent


def run(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    return docker("run", "--rm", "--log-driver", "none", image, *command)


# -- helpers (no engine needed) ----------------------------------------------------------------


def test_labels_match_the_package():
    from dockyter.wire.contract import MANAGED_LABEL as package_managed
    from dockyter.wire.contract import OWNER_LABEL as package_owner

    assert (MANAGED_LABEL, OWNER_LABEL) == (package_managed, package_owner)


def test_wait_until_returns_the_first_truthy_value():
    calls = iter([0, None, "done", "later"])
    assert wait_until(lambda: next(calls), timeout=5, interval=0.01) == "done"


def test_wait_until_gives_up_after_the_timeout():
    started = time.monotonic()
    assert wait_until(lambda: [], timeout=0.3, interval=0.05) == []
    assert 0.3 <= time.monotonic() - started < 2


def test_owned_elsewhere_spares_only_other_live_process_trees():
    from dockyter.wire.contract import owner_id

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert not owned_elsewhere(owner_id())  # this run
        assert not owned_elsewhere(owner_id(child.pid))  # a kernel this run started
        assert owned_elsewhere(owner_id(os.getppid()))  # alive, but not ours
    finally:
        child.kill()
        child.wait()
    assert not owned_elsewhere(owner_id(child.pid))  # gone: its container is a leftover
    assert owned_elsewhere(f"{socket.gethostname()}:{2**22 + 1}:1")  # gone, and older than this run: another's
    assert not owned_elsewhere("")


# -- images --------------------------------------------------------------------------------------


@pytest.mark.docker
def test_bash_image_has_bash_and_a_root_user(test_image):
    answer = run(test_image, "bash", "-c", 'echo "$BASH_VERSION"; whoami; id -u; hostname')
    assert answer.returncode == 0, answer.stderr
    version, user, uid, hostname = answer.stdout.split()
    assert re.match(r"\d+\.\d+", version)
    assert (user, uid) == ("root", "0")
    assert hostname


@pytest.mark.docker
def test_bash_image_has_a_writable_tmp(test_image):
    answer = run(test_image, "sh", "-c", "echo x > /tmp/f && cat /tmp/f && stat -c %a /tmp")
    assert answer.stdout.split() == ["x", "1777"], answer.stderr


@pytest.mark.docker
def test_sh_image_has_no_bash(sh_image):
    assert run(sh_image, "bash", "-c", "true").returncode in (126, 127)
    answer = run(sh_image, "sh", "-c", "echo ok")
    assert (answer.returncode, answer.stdout) == (0, "ok\n"), answer.stderr


@pytest.mark.docker
def test_python_image_imports_numpy(python_image):
    answer = run(python_image, "python3", "-c", "import numpy; print(numpy.ones(3).sum())")
    assert (answer.returncode, answer.stdout) == (0, "3.0\n"), answer.stderr


# -- leftover containers ---------------------------------------------------------------------------


@pytest.mark.docker
def test_dockyter_containers_lists_labelled_containers(test_image, no_leftover_containers):
    started = docker("run", "-d", "--label", f"{MANAGED_LABEL}=test", "--log-driver", "none", test_image, "sleep", "60")
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.strip()
    try:
        name = docker("inspect", "--format", "{{.Name}}", container_id).stdout.strip().lstrip("/")
        assert name in dockyter_containers()
    finally:
        docker("rm", "-f", container_id)
    assert name not in dockyter_containers()


@pytest.mark.docker
def test_leftover_checks_fail_and_clean_up(pytester, monkeypatch, test_image):
    # Whole pytest runs, in a subprocess, with this conftest and tests that forget containers:
    # the first under no_leftover_containers, the second caught by the session guard only.
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # for helpers and the other fixture modules
    monkeypatch.setenv("DOCKYTER_LEFTOVER_WAIT", "1")  # the leftovers here are on purpose
    pytester.makepyfile(
        test_forgets=f"""
        import subprocess

        def forget_a_container():
            subprocess.run(["docker", "run", "-d", "--label", "{MANAGED_LABEL}=test",
                            "{test_image}", "sleep", "60"], check=True, capture_output=True)

        def test_checked(no_leftover_containers):
            forget_a_container()

        def test_unchecked():
            forget_a_container()
        """
    )
    # schemathesis' plugin alone takes seconds to import, and nothing here needs it.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:schemathesis")
    result.stdout.fnmatch_lines(
        [
            "*Dockyter containers left behind by this test (now removed): *",
            "*Dockyter containers left behind: *",
            "*2 passed, 1 error*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = result.stdout.str()
    names = set(re.findall(r"left behind by this test \(now removed\): (\S+)", output))
    names |= set(re.findall(r"left behind: (\S+)\.", output))
    assert len(names) == 2 and not names & set(dockyter_containers())


@pytest.mark.docker
def test_the_readme_demo_runs_a_real_cell(test_image, tmp_path):
    # `bash .ci/demo` is provisioning (which this run has already done) and then this script.
    demo = Path(__file__).resolve().parents[1] / "examples" / "demo.py"
    import sys

    done = subprocess.run(
        [sys.executable, str(demo), test_image],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"hello from \w+ in a container", done.stdout)
    assert "Dockyter status" in done.stdout
