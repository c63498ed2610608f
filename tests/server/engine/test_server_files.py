"""A real server on 127.0.0.1, real containers: what a run leaves in $DOCKYTER_OUT comes back as
``file`` events, within the server's limits, whatever the container made of the folder; every
run's ``receipt`` names the digest `docker image inspect` gives; the folders are the server's own
and are gone after the run. The Swarm executor has none (`/health` says so)."""

from __future__ import annotations

import base64
import json
import os

import httpx
import pytest
from helpers import docker, wait_until

pytestmark = pytest.mark.docker

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><circle r="4" cx="4" cy="4"/></svg>'
FOUR_FILES = f"""
echo {base64.b64encode(PNG).decode()} | base64 -d > $DOCKYTER_OUT/dot.png
echo '{SVG}' > $DOCKYTER_OUT/dot.svg
echo '<h1>Report</h1>' > $DOCKYTER_OUT/report.html
printf 'city,rain\\nBrest,1200\\n' > $DOCKYTER_OUT/rain.csv
echo wrote
"""
# What a hostile command makes of its folder: links out of it, a FIFO, a name with an escape
# sequence, a file over the limit, a directory link; each gets one event with a problem.
HOSTILE = """
cd "$DOCKYTER_OUT"
ln -s /etc/passwd passwd
ln -s / root
mkfifo pipe
printf x > "$(printf 'evil\\033[2Jname')"
head -c 5000 /dev/zero > big.bin
echo fine > ok.txt
"""


def run_events(server, body: dict) -> list[dict]:
    with server.stream(body) as events:
        return list(events)


def image_digest(image: str) -> str:
    """What the receipt must say: the image's repository digest, else its ID (docker image inspect)."""
    found = json.loads(docker("image", "inspect", image).stdout)[0]
    return (found.get("RepoDigests") or [found["Id"]])[0]


@pytest.fixture
def files_server(dockyter_server, tmp_path):
    """A server whose run folders are below tmp_path (to see that none is left)."""
    return dockyter_server(files_dir=str(tmp_path), max_file_bytes=1000)


def left_in(path) -> list[str]:
    return [
        os.path.relpath(os.path.join(top, name), path) for top, dirs, files in os.walk(path) for name in dirs + files
    ]


def test_files_come_back_as_events_then_the_receipt(files_server, test_image, tmp_path):
    events = run_events(files_server, {"cmd": FOUR_FILES, "args": test_image})
    kinds = [event["event"] for event in events]
    assert kinds == ["start", "stdout", "file", "file", "file", "file", "receipt", "exit"]
    files = {event["name"]: event for event in events if event["event"] == "file"}
    assert {name: event["media_type"] for name, event in files.items()} == {
        "dot.png": "image/png",
        "dot.svg": "image/svg+xml",
        "rain.csv": "text/csv",
        "report.html": "text/html",
    }
    assert base64.b64decode(files["dot.png"]["data"]) == PNG and files["dot.png"]["size"] == len(PNG)
    assert base64.b64decode(files["dot.svg"]["data"]).decode().strip() == SVG
    receipt = events[-2]
    image_id = docker("image", "inspect", "--format", "{{.Id}}", test_image).stdout.strip()
    assert receipt["image"] == test_image and receipt["image_id"] == image_id
    assert receipt["digest"] == image_digest(test_image)
    assert receipt["argv"] == [test_image, "bash", "-lc"] and receipt["runtime"] == "runc"
    assert receipt["node"] == json.loads(docker("info", "--format", "{{json .Name}}").stdout)
    assert events[-1]["code"] == 0
    assert [path for path in left_in(tmp_path) if "/" in path] == []  # each run's folder is removed


def test_the_plain_reply_keeps_the_original_fields_and_adds_files_and_receipt(files_server, test_image):
    reply = files_server.execute({"cmd": FOUR_FILES, "args": test_image})
    assert reply.status_code == 200
    body = reply.json()
    assert (body["stdout"], body["stderr"], body["exit_code"]) == ("wrote\n", "", 0)
    assert [entry["name"] for entry in body["files"]] == ["dot.png", "dot.svg", "rain.csv", "report.html"]
    assert body["receipt"]["digest"] == image_digest(test_image)


def test_hostile_entries_are_one_problem_each_and_nothing_outside_is_read(files_server, test_image):
    events = run_events(files_server, {"cmd": HOSTILE, "args": test_image})
    files = {event["name"]: event for event in events if event["event"] == "file"}
    assert {name: event.get("problem") for name, event in files.items()} == {
        "big.bin": "5.0 KB, over max_file_bytes (1.0 KB): not read",
        "evil\\x1b[2Jname": None,
        "ok.txt": None,
        "passwd": "a symbolic link: not read",
        "pipe": "a named pipe (FIFO): not read",
        "root": "a symbolic link: not read",
    }
    assert base64.b64decode(files["ok.txt"]["data"]) == b"fine\n"
    assert not any("data" in files[name] for name in ("passwd", "root", "pipe", "big.bin"))
    assert events[-1]["code"] == 0


def test_a_request_lowers_the_limits_never_raises_them(files_server, test_image):
    cmd = "cd $DOCKYTER_OUT && for n in $(seq 10000); do : > f$n; done; head -c 2000 /dev/zero > big"
    asked = {"max_file_bytes": 10**12, "max_files": 3, "max_files_bytes": 10**12}
    events = run_events(files_server, {"cmd": cmd, "args": test_image, "files": asked, "timeout": 60})
    files = [event for event in events if event["event"] == "file"]
    assert [event["name"] for event in files] == ["big", "f1", "f10"]
    assert files[0]["problem"] == "2.0 KB, over max_file_bytes (1.0 KB): not read"  # the server's 1000 holds
    omitted = [event for event in events if event["event"] == "files_omitted"]
    assert len(omitted) == 1 and omitted[0]["count"] == 10_001 - 3 + 0
    assert events[-1]["code"] == 0


def test_files_false_gives_no_folder(files_server, test_image, tmp_path):
    events = run_events(files_server, {"cmd": 'echo "[${DOCKYTER_OUT-none}]"', "args": test_image, "files": False})
    assert [(event["event"], event.get("data")) for event in events[1:-2]] == [("stdout", "[none]\n")]
    assert events[-2]["event"] == "receipt"


def test_a_session_gives_each_command_its_own_folder(files_server, test_image, tmp_path):
    headers = files_server.headers(Accept="application/x-ndjson")
    session = httpx.post(
        files_server.url + "/sessions", json={"args": test_image}, headers=files_server.headers(), timeout=60
    ).json()

    def command(cmd: str, **fields) -> list[dict]:
        url = f"{files_server.url}/sessions/{session['id']}/execute"
        with httpx.stream("POST", url, json={"cmd": cmd, **fields}, headers=headers, timeout=60) as response:
            assert response.status_code == 200
            return [json.loads(line) for line in response.iter_lines() if line]

    first = command('echo one > $DOCKYTER_OUT/a.txt; echo "$DOCKYTER_OUT"')
    assert [e.get("data") for e in first if e["event"] == "stdout"] == ["/dockyter/out/1\n"]
    assert [(e["name"], base64.b64decode(e["data"])) for e in first if e["event"] == "file"] == [("a.txt", b"one\n")]
    assert first[-2]["event"] == "receipt" and first[-2]["digest"] == image_digest(test_image)
    # The folder swapped for a link to / is refused, never followed; the next command's folder,
    # made ahead by the session as a link, is not used: that command gets none.
    second = command('rmdir "$DOCKYTER_OUT" && ln -s / "$DOCKYTER_OUT"; ln -s /etc /dockyter/out/3')
    assert [e.get("problem", "").split(":")[0] for e in second if e["event"] == "file"] == ["the folder cannot be read"]
    third = command('echo "[${DOCKYTER_OUT-none}]"')  # not the second's, which the shell still had
    assert [e.get("data") for e in third if e["event"] == "stdout"] == ["[none]\n"]
    assert [e for e in third if e["event"] == "file"] == []
    fourth = command("echo two > $DOCKYTER_OUT/b.txt", files={"max_file_bytes": 2})
    assert [(e["name"], e.get("problem")) for e in fourth if e["event"] == "file"] == [
        ("b.txt", "4 bytes, over max_file_bytes (2 bytes): not read")
    ]
    deleted = httpx.delete(f"{files_server.url}/sessions/{session['id']}", headers=files_server.headers(), timeout=60)
    assert deleted.status_code == 200
    assert [path for path in left_in(tmp_path) if "/" in path] == []  # the session's folder went with it


def test_without_files_health_does_not_offer_them(dockyter_server, test_image):
    server = dockyter_server(files=False)
    assert "files" not in httpx.get(server.url + "/health").json()["features"]
    events = run_events(server, {"cmd": 'echo "[${DOCKYTER_OUT-none}]" ', "args": test_image})
    assert [event.get("data") for event in events if event["event"] == "stdout"] == ["[none]\n"]


@pytest.mark.swarm
@pytest.mark.parametrize("executor_kind", ["swarm"], indirect=True)
def test_the_swarm_executor_gives_no_folder_and_a_receipt_with_its_node(dockyter_server, run_image):
    server = dockyter_server()
    assert "files" not in httpx.get(server.url + "/health").json()["features"]
    events = run_events(server, {"cmd": 'echo "[${DOCKYTER_OUT-none}]"', "args": run_image})
    assert [event.get("data") for event in events if event["event"] == "stdout"] == ["[none]\n"]
    assert [event for event in events if event["event"] == "file"] == []
    node = next(event["node"] for event in events if event["event"] == "node")
    receipt = events[-2]
    assert receipt["event"] == "receipt" and receipt["node"] == node
    # Without pull = "always" the manager pins no digest: each node runs its own copy of the tag.
    assert (receipt["digest"], receipt["image_id"], receipt["runtime"]) == (None, None, None)
    assert receipt["image"] == run_image and receipt["argv"] == [run_image, "bash", "-lc"]
    assert events[-1]["code"] == 0


def test_a_stream_client_of_the_original_contract_reads_what_it_knows(files_server, test_image):
    """The events it does not know (file, receipt) come between its output and its exit: skipping
    them, it sees what it always saw, the exit last."""
    known = ("start", "stdout", "stderr", "heartbeat", "exit", "error")
    events = run_events(files_server, {"cmd": FOUR_FILES + "echo oops >&2; exit 4", "args": test_image})
    read = [event for event in events if event["event"] in known]
    # Two pipes: their events may come in either order.
    assert sorted((event["event"], event.get("data")) for event in read[1:-1]) == [
        ("stderr", "oops\n"),
        ("stdout", "wrote\n"),
    ]
    assert read[-1] == events[-1] == {"event": "exit", "code": 4, "reason": None, "message": None}
    assert {event["event"] for event in events} - set(known) == {"file", "receipt"}


@pytest.mark.parametrize(
    "files", [{"max_files": -1}, {"max_file_bytes": "lots"}, [1], {"max_files_bytes": 1.5}], ids=repr
)
def test_a_files_field_that_is_not_limits_is_refused_before_anything_runs(files_server, test_image, files):
    reply = files_server.execute({"cmd": "true", "args": test_image, "files": files})
    assert reply.status_code == 422, reply.text
    assert files_server.containers() == []


def test_no_mount_reaches_the_run_folders(dockyter_server, tmp_path, test_image):
    """Even below an allowed root: a mount that contains the run folders, or lies inside them, is refused."""
    runs, other = tmp_path / "runs", tmp_path / "other"
    runs.mkdir()
    other.mkdir()
    server = dockyter_server(files_dir=str(runs), allowed_mounts=[f"{tmp_path}:ro"], allowed_flags=["volume"])
    for source in (tmp_path, runs):
        reply = server.execute({"cmd": "true", "args": f"-v {source}:/x:ro {test_image}"})
        assert reply.status_code == 403, reply.text
        assert f"it contains the server's run folders in {runs}, which hold other runs' files" in reply.json()["detail"]
    with server.stream({"cmd": "sleep 5", "args": test_image}) as events:
        next(events)  # started: its run folder exists now
        [root] = runs.iterdir()
        [folder] = root.iterdir()
        reply = server.execute({"cmd": "true", "args": f"-v {folder}:/x:ro {test_image}"})
        assert reply.status_code == 403 and "it is inside the server's run folders" in reply.json()["detail"]
        assert server.execute({"cmd": "true", "args": f"-v {other}:/x:ro {test_image}"}).status_code == 200


def test_a_prestarted_container_sends_its_files_and_receipt_as_a_fresh_one(dockyter_server, test_image, tmp_path):
    server = dockyter_server(files_dir=str(tmp_path), prestart=1)
    run_events(server, {"cmd": "true", "args": test_image})  # a fresh container; its line is filled after it
    prestarts = server.executor.prestarts
    assert wait_until(lambda: prestarts.counts("tester")["ready"] == 1, timeout=60), prestarts.counts("tester")
    events = run_events(server, {"cmd": FOUR_FILES, "args": test_image})
    assert prestarts.served == 1
    assert [event["event"] for event in events] == [
        "start",
        "stdout",
        "file",
        "file",
        "file",
        "file",
        "receipt",
        "exit",
    ]
    files = {event["name"]: event for event in events if event["event"] == "file"}
    assert base64.b64decode(files["dot.png"]["data"]) == PNG
    assert events[-2]["digest"] == image_digest(test_image) and events[-1]["code"] == 0
    # A request that wants no files is of another line: it runs in a container made for it, with no folder.
    plain = run_events(server, {"cmd": 'echo "[$DOCKYTER_OUT]"', "args": test_image, "files": False})
    assert prestarts.served == 1 and [e["data"] for e in plain if e["event"] == "stdout"] == ["[]\n"]
    # The used container's folder went with its run: the one left is that of the container waiting now.
    assert wait_until(lambda: len([path for path in left_in(tmp_path) if "/" in path]) == 1, timeout=30)
