"""What a request sends and what the engine reads of it (issue 19, defects 1, 2 and 7), over real HTTP.

Each defect's exact request goes to a real server with real containers, on this machine's
engine and on the three-node Swarm (``@under_each_executor``), and as session arguments
(sessions run on the engine only). Then the layers behind the fixes: no control character in
any text field but the command, mount targets the engine reads as the policy did (a comma or a
quote in a path stays in it), and a value-less ``--env`` refused in every spelling.
"""

from __future__ import annotations

import json

import httpx
import pytest
from helpers import docker
from servers import under_each_executor

pytestmark = pytest.mark.docker


def raw_post(server, path: str, body: str) -> httpx.Response:
    """POST ``body`` exactly as written (JSON escapes such as a lone ``\\ud800`` included)."""
    headers = server.headers(**{"Content-Type": "application/json"})
    return httpx.post(server.url + path, content=body.encode("ascii"), headers=headers, timeout=60)


def create_session(server, args: str, **fields: str) -> httpx.Response:
    return httpx.post(server.url + "/sessions", json={"args": args, **fields}, headers=server.headers(), timeout=60)


def session_mounts(container: str) -> list[dict[str, object]]:
    """The mounts of a running container, as the engine made them."""
    answer = docker("inspect", "--format", "{{json .Mounts}}", container)
    assert answer.returncode == 0, answer.stderr
    mounts: list[dict[str, object]] = json.loads(answer.stdout)
    return mounts


# -- defect 1: a newline in a -v target turned a read-only mount writable ------------------------------


@under_each_executor
def test_defect_1_a_newline_in_a_mount_target_is_a_400_and_writes_nothing(dockyter_server, run_image, host_dir):
    ro = host_dir / "ro"
    ro.mkdir()
    server = dockyter_server(allowed_mounts=[str(ro)])
    # The request, with /srv/ro replaced by a read-only allowed root of our own.
    body = {"args": f"-v '{ro}:/h\nx:ro' -u 0 {run_image}", "cmd": "touch /h/m"}
    response = server.execute(body)
    assert response.status_code == 400, response.text
    argument = repr(f"{ro}:/h\nx:ro")
    assert response.json()["detail"] == (
        f"args contains U+000A (line feed) in the argument {argument}: no argument may hold a control character"
    )
    assert list(ro.iterdir()) == []
    assert server.containers() == []


def test_defect_1_as_session_arguments_too(dockyter_server, test_image, host_dir):
    ro = host_dir / "ro"
    ro.mkdir()
    server = dockyter_server(allowed_mounts=[str(ro)])
    response = create_session(server, f"-v '{ro}:/h\nx:ro' -u 0 {test_image}")
    assert response.status_code == 400, response.text
    assert "U+000A (line feed)" in response.json()["detail"]
    assert httpx.get(server.url + "/sessions", headers=server.headers()).json() == {"sessions": []}
    assert list(ro.iterdir()) == []


@under_each_executor
def test_a_comma_or_a_quote_in_a_target_stays_in_it_and_the_mount_stays_read_only(dockyter_server, run_image, host_dir):
    """Without control characters, what csv.writer would have written is still one field for docker's CSV reader."""
    ro = host_dir / "ro"
    ro.mkdir()
    server = dockyter_server(allowed_mounts=[str(ro)])
    for target in ("/h,readonly=false", '/h"x', '/h","readonly=false'):
        quoted = target.replace("'", "'\\''")
        reply = server.execute(
            {
                "cmd": f"touch '{quoted}/m' && echo WROTE; ls -d '{quoted}'",
                "args": f"-v '{ro}:{quoted}:ro' -u 0 {run_image}",
            }
        )
        assert reply.status_code == 200, reply.text
        result = reply.json()
        assert "WROTE" not in result["stdout"] and "Read-only file system" in result["stderr"], result
        assert result["stdout"] == f"{target}\n", result
    assert list(ro.iterdir()) == []


def test_a_session_mount_is_what_the_policy_approved(dockyter_server, test_image, host_dir):
    ro = host_dir / "ro"
    (ro / "a,b").mkdir(parents=True)
    server = dockyter_server(allowed_mounts=[str(ro)])
    session = create_session(server, f"-v '{ro}/a,b:/h,readonly=false:ro' -u 0 {test_image}").json()
    try:
        [mount] = session_mounts(session["container"])
        assert (mount["Source"], mount["Destination"], mount["RW"]) == (f"{ro}/a,b", "/h,readonly=false", False)
    finally:
        httpx.delete(f"{server.url}/sessions/{session['id']}", headers=server.headers(), timeout=60)


@under_each_executor
def test_a_tmpfs_target_with_commas_is_a_tmpfs_not_a_bind_mount(dockyter_server, run_image, host_dir):
    """With the default settings, on a Swarm: the translation to ``--mount type=tmpfs,target=/a,type=bind,
    source=DIR`` unquoted (the later keys win) mounted any host path of the node at /a, writable, as root."""
    server = dockyter_server()
    target = f"/a,type=bind,source={host_dir}"
    reply = server.execute(
        {
            "cmd": f"touch '{target}/m' /a/m; grep -c ' {target} tmpfs' /proc/mounts; grep -c ' /a ' /proc/mounts",
            "args": f"--tmpfs '{target}' -u 0 {run_image}",
        }
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["stdout"] == "1\n0\n", reply.json()
    assert "touch: /a/m: No such file or directory" in reply.json()["stderr"]
    assert list(host_dir.iterdir()) == []


# -- every mount's target: absolute and normalised -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ("-v {ro}:ro", "the container path 'ro' must be absolute"),
        ("-v {ro}:/h/../etc:ro", "must be written normalised, as /etc"),
        ("-v //h", "must be written normalised, as /h"),
        ("--mount type=bind,src={ro},dst=/h/.,ro", "must be written normalised, as /h"),
        ("--mount type=tmpfs,destination=h", "the container path 'h' must be absolute"),
        ("--tmpfs /run/:size=1m", "must be written normalised, as /run"),
        ("-v '{ro}:/h :ro'", "must not hold control characters or surrounding spaces"),
    ],
)
def test_every_mount_target_is_absolute_and_normalised(dockyter_server, test_image, host_dir, args, why):
    ro = host_dir / "ro"
    ro.mkdir()
    server = dockyter_server(allowed_mounts=[str(ro)])
    response = server.execute({"cmd": "true", "args": f"{args.format(ro=ro)} {test_image}"})
    assert response.status_code == 403, response.text
    assert why in response.json()["detail"]


# -- defect 2: a bare -e NAME copied the server's environment into the container ---------------------------


BARE_ENV = [
    "-e DOCKYTER_SERVER_TOKENS",
    "--env DOCKYTER_SERVER_TOKENS",
    "--env=DOCKYTER_SERVER_TOKENS",
    "-eDOCKYTER_SERVER_TOKENS",
    "-e=DOCKYTER_SERVER_TOKENS",
    "-ie DOCKYTER_SERVER_TOKENS",
    "-e X=1 -e DOCKYTER_SERVER_TOKENS",
]


@under_each_executor
def test_defect_2_a_value_less_env_is_refused_in_every_spelling(dockyter_server, run_image, monkeypatch):
    monkeypatch.setenv("DOCKYTER_SERVER_TOKENS", "alice:secret-token-of-alice-0123456789")
    server = dockyter_server()
    for spelling in BARE_ENV:
        response = server.execute({"cmd": "echo $DOCKYTER_SERVER_TOKENS", "args": f"{spelling} {run_image}"})
        assert response.status_code == 403, (spelling, response.text)
        detail = response.json()["detail"]
        assert detail.endswith(
            "is not allowed: a variable without a value is copied from the server's environment: write NAME=VALUE"
        ), detail
        assert "secret-token-of-alice" not in detail
    for spelling, why in (
        ("-e=", "a variable needs a name"),
        ("--env=", "without a value"),
        ("-e ''", "without a value"),
    ):
        response = server.execute({"cmd": "true", "args": f"{spelling} {run_image}"})
        assert response.status_code == 403 and why in response.json()["detail"], (spelling, response.text)
    assert server.containers() == []


def test_defect_2_as_session_arguments_too(dockyter_server, test_image, monkeypatch):
    monkeypatch.setenv("DOCKYTER_SERVER_TOKENS", "alice:secret-token-of-alice-0123456789")
    server = dockyter_server()
    for spelling in BARE_ENV:
        response = create_session(server, f"{spelling} {test_image}")
        assert response.status_code == 403, (spelling, response.text)
        assert "copied from the server's environment" in response.json()["detail"]


@under_each_executor
def test_approved_options_reach_the_engine_as_the_policy_read_them(dockyter_server, run_image, host_dir):
    """Spellings the docker CLI could read otherwise: values with '=' or a leading '-', groups, empty values."""
    ro = host_dir / "ro"
    ro.mkdir()
    (ro / "f").write_text("data\n")
    server = dockyter_server(allowed_mounts=[str(ro)])
    args = f"-ie A=--rm -eB= --env=C==x -w=/tmp -u=0 -l=x=--y -v{ro}:/d:ro --rm=True {run_image}"
    reply = server.execute({"cmd": 'echo "$A|$B|$C|$(pwd)|$(id -u)"; cat /d/f', "args": args}).json()
    assert reply["stdout"] == "--rm||=x|/tmp|0\ndata\n", reply


# -- defect 7, and every text field ------------------------------------------------------------------------


def test_defect_7_a_lone_surrogate_in_a_session_name_is_a_400(dockyter_server, test_image):
    server = dockyter_server()
    response = raw_post(server, "/sessions", json.dumps({"args": test_image})[:-1] + ', "name": "\\ud800"}')
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "name contains a lone surrogate, which is not valid Unicode text"


CONTROLS = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_no_control_character_in_any_text_field_but_the_command(dockyter_server, test_image, char):
    server = dockyter_server()
    name = f"U+{ord(char):04X}"
    refused = [
        ("/execute", {"cmd": "true", "args": f"-l 'x=a{char}b' {test_image}"}, "args"),
        ("/execute", {"cmd": "true", "args": f"-w '/tmp/{char}' {test_image}"}, "args"),
        ("/execute", {"cmd": "true", "args": f"{test_image}{char}"}, "args"),
        ("/execute", {"cmd": "true", "args": test_image, "shell": ["bash", f"-c{char}"]}, "shell[1]"),
        ("/sessions", {"args": f"-e 'X={char}' {test_image}"}, "args"),
        ("/sessions", {"args": test_image, "name": f"a{char}b"}, "name"),
    ]
    for path, body, field in refused:
        response = httpx.post(server.url + path, json=body, headers=server.headers(), timeout=60)
        assert response.status_code == 400, (path, body, response.text)
        detail = response.json()["detail"]
        assert detail.startswith(f"{field} contains ") and (name in detail or "NUL character" in detail), detail
    assert server.containers() == []


def test_the_command_is_a_script_newlines_and_all(dockyter_server, test_image):
    server = dockyter_server()
    reply = server.execute({"cmd": "echo a\necho b\r\nprintf '\\t|\\033|\\n'", "args": test_image}).json()
    assert reply["stdout"] == "a\nb\r\n\t|\x1b|\n", reply
    session = create_session(server, test_image).json()
    try:
        url = f"{server.url}/sessions/{session['id']}/execute"
        answer = httpx.post(url, json={"cmd": "X=1\necho $X"}, headers=server.headers(), timeout=60).json()
        assert answer["stdout"] == "1\n", answer
        response = raw_post(server, f"/sessions/{session['id']}/execute", '{"cmd": "echo \\ud800"}')
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == "cmd contains a lone surrogate, which is not valid Unicode text"
    finally:
        httpx.delete(f"{server.url}/sessions/{session['id']}", headers=server.headers(), timeout=60)
