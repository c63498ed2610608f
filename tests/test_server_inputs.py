"""What a request sends and what the engine reads of it (issue 19, defect 7), over real HTTP.

No control character in any text field but the command, and one 400 for every text field.
"""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = pytest.mark.docker


def raw_post(server, path: str, body: str) -> httpx.Response:
    """POST ``body`` exactly as written (JSON escapes such as a lone ``\\ud800`` included)."""
    headers = server.headers(**{"Content-Type": "application/json"})
    return httpx.post(server.url + path, content=body.encode("ascii"), headers=headers, timeout=60)


def create_session(server, args: str, **fields: str) -> httpx.Response:
    return httpx.post(server.url + "/sessions", json={"args": args, **fields}, headers=server.headers(), timeout=60)


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
