"""The notebook's folder and the user's own files: --here, --as-me, their traits, and the line checks.

The tests run as root, whose uid is 0 like a container's default user: to see that --as-me
really passes the kernel's uid:gid, os.getuid/os.getgid are made to answer 1234:5678 (the
only stand-in here), and the engine then writes files with that owner. That runs on Docker and
rootful podman. Rootless podman runs as its own user, whose container root is that user and
whose other container uids are its subordinate ids: there a kernel run as the rootless user
(``engine_kernel``) is the test, with the user's real uid and its own folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from IPython.utils.capture import capture_output

pytestmark = pytest.mark.docker

ROOTFUL = pytest.mark.parametrize("engine", ["docker", "podman"], indirect=True)


@pytest.fixture
def kernel_uid(monkeypatch, isolated_home):
    os.chown(isolated_home, 1234, 5678)  # the notebook's folder is its user's
    monkeypatch.setattr(os, "getuid", lambda: 1234)
    monkeypatch.setattr(os, "getgid", lambda: 5678)
    return 1234, 5678


@ROOTFUL
def test_here_mounts_the_kernels_folder_and_starts_there(engine_cell, isolated_home, engine_image):
    (isolated_home / "data.txt").write_text("from the notebook's folder\n")
    run = engine_cell(f"%%docker --here {engine_image}\npwd; cat data.txt; echo written > out.txt")
    assert run.stdout == f"{isolated_home}\nfrom the notebook's folder\n"
    assert (isolated_home / "out.txt").read_text() == "written\n"


@ROOTFUL
def test_as_me_writes_files_that_belong_to_the_kernels_user(engine_cell, isolated_home, engine_image, kernel_uid):
    run = engine_cell(f"%%docker --here --as-me {engine_image}\nid -u; id -g; echo mine > mine.txt")
    assert run.stdout == "1234\n5678\n"
    stat = (isolated_home / "mine.txt").stat()
    assert (stat.st_uid, stat.st_gid) == kernel_uid


@ROOTFUL
def test_the_traits_do_it_for_bang_commands_and_an_explicit_workdir_wins(
    engine_cell, engine_shell, isolated_home, engine_image, kernel_uid
):
    engine_shell.run_line_magic("config", "Dockyter.here = True")
    engine_shell.run_line_magic("config", "Dockyter.as_me = True")
    engine_cell(f"%docker {engine_image}")
    assert engine_cell("!pwd; id -u").stdout == f"{isolated_home}\n1234\n"
    assert engine_cell(f"%%docker -w /tmp {engine_image}\npwd").stdout == "/tmp\n"
    engine_cell("%docker_off")
    engine_shell.run_line_magic("config", "Dockyter.here = False")
    engine_shell.run_line_magic("config", "Dockyter.as_me = False")


@pytest.mark.kernel
@pytest.mark.parametrize("engine", ["podman-rootless"], indirect=True)
def test_rootless_here_and_as_me_write_files_that_belong_to_the_user(engine, engine_kernel, engine_image):
    kernel, user = engine_kernel, engine.user
    folder = Path(kernel.run("import os; print(os.getcwd())").stdout.strip())
    (folder / "data.txt").write_text("from the notebook's folder\n")
    # --here alone: the container's root is the user on the host
    here = kernel.run(f"%%docker --here {engine_image}\npwd; id -u; cat data.txt; echo root > root.txt")
    assert here.stdout == f"{folder}\n0\nfrom the notebook's folder\n", here.stderr
    # --as-me: the user's own uid and gid inside too (--userns keep-id), and files that are the user's
    as_me = kernel.run(f"%%docker --here --as-me {engine_image}\nid -u; id -g; echo mine > mine.txt")
    assert as_me.stdout == f"{user.uid}\n{user.gid}\n", as_me.stderr
    for written in ("root.txt", "mine.txt"):
        stat = (folder / written).stat()
        assert (stat.st_uid, stat.st_gid) == (user.uid, user.gid), written


def test_through_the_api_backend_where_the_servers_policy_allows_the_mount(
    cell, ip, isolated_home, test_image, kernel_uid, dockyter_server
):
    pytest.importorskip("fastapi", reason="dockyter-server needs the 'server' extra")
    allowing = dockyter_server(allowed_mounts=[f"{isolated_home}:rw"])
    ip.run_line_magic("config", f"Dockyter.api_token = {allowing.token!r}")
    with capture_output():
        ip.run_line_magic("docker_backend", f"api {allowing.url}")
    run = cell(f"%%docker --here --as-me {test_image}\npwd; echo api > api.txt")
    assert run.stdout == f"{isolated_home}\n", run.stderr
    assert (isolated_home / "api.txt").stat().st_uid == 1234
    refusing = dockyter_server()  # no allowed mounts
    ip.run_line_magic("config", f"Dockyter.api_token = {refusing.token!r}")
    ip.run_line_magic("config", f"Dockyter.api_url = {refusing.url!r}")
    denied = cell(f"%%docker --here {test_image}\npwd")
    assert str(denied.error).startswith("the API refused the request: ") and "\n" not in str(denied.error)


def test_a_session_through_the_api_backend_has_them_too(
    cell, ip, isolated_home, test_image, kernel_uid, dockyter_server
):
    pytest.importorskip("fastapi", reason="dockyter-server needs the 'server' extra")
    allowing = dockyter_server(allowed_mounts=[f"{isolated_home}:rw"])
    ip.run_line_magic("config", f"Dockyter.api_token = {allowing.token!r}")
    with capture_output():
        ip.run_line_magic("docker_backend", f"api {allowing.url}")
    started = cell(f"%docker_session start remote --here --as-me {test_image}")
    assert started.error is None and "a terminal in it" not in started.stdout  # its container is the server's
    run = cell("%%docker --session remote\npwd; id -u; echo api > session.txt")
    assert run.stdout == f"{isolated_home}\n1234\n", run.stderr
    assert (isolated_home / "session.txt").stat().st_uid == 1234
    ip.run_line_magic("config", "Dockyter.here = True")  # the trait, for a session the policy refuses
    refusing = dockyter_server()
    ip.run_line_magic("config", f"Dockyter.api_token = {refusing.token!r}")
    ip.run_line_magic("config", f"Dockyter.api_url = {refusing.url!r}")
    denied = cell(f"%docker_session start elsewhere {test_image}")
    assert "could not start" in str(denied.error) and str(isolated_home) in str(denied.error), denied.error
    ip.run_line_magic("config", "Dockyter.here = False")
    cell("%docker_session stop --all")


def test_dollar_pwd_is_explained_in_one_line(cell, ip, test_image):
    assert "PWD" not in ip.user_ns and "HOME" not in ip.user_ns  # else IPython expands them, as it should
    run = cell(f"%%docker -v $PWD:/work {test_image}\nls /work")
    assert str(run.error) == (
        "$PWD in '-v $PWD:/work' was not expanded: IPython expands $name on a magic line from Python "
        "variables, not from the environment; write --here (mounts the kernel's folder and starts there), "
        "or {os.getcwd()}"
    )
    assert "$HOME in" in str(cell(f"%docker -v $HOME/d:/d {test_image}").error)


def test_a_python_variable_named_like_it_is_expanded_as_usual(cell, ip, isolated_home, test_image):
    ip.user_ns["PWD"] = str(isolated_home)
    assert cell(f"%%docker -v $PWD:/work {test_image}\necho ok").stdout == "ok\n"
    del ip.user_ns["PWD"]


def test_an_eaten_backslash_is_a_warning(cell, test_image):
    run = cell(f"%%docker -e P=C:\\Users\\me {test_image}\necho $P")
    assert run.stdout == "C:Usersme\n"
    assert run.stderr == (
        "Dockyter: the line is split as a shell would, so a backslash escapes the next character: "
        "P=C:\\Users\\me became P=C:Usersme; quote it ('P=C:\\Users\\me') to keep the backslashes\n"
    )
    quoted = cell(f"%%docker -e 'P=C:\\Users\\me' {test_image}\necho $P")
    assert (quoted.stdout, quoted.stderr) == ("C:\\Users\\me\n", "")
