"""Anonymous volumes (`-v /data`, an image's VOLUME) go with the container that made them, on every path.

The kernel's paths (a stop, a session's end, %docker_cleanup) run on every engine (``engine``);
the server's on Docker.

`docker run --rm` removes them when a container ends by itself; a `docker rm -f` that gets
there first (a deleted session, a cancel, a start-up or sweep clean-up, a kernel's stop
ladder) left them behind, dangling, forever. Each test writes 20 MB into one, removes its
container the way the path under test does, and asks the engine whether that very volume is
still there (not a count of dangling volumes: other tests run on the same engine). Named
volumes are never ours to remove: they stay.
"""

from __future__ import annotations

import secrets
import signal
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from helpers import docker, wait_until
from servers import start_server_process
from shells import run_cell

from dockyter.wire.contract import owner_id

pytestmark = pytest.mark.docker

WRITE_20_MB = "head -c 20000000 /dev/zero > /data/f && du -k /data/f"


VOLUMES = '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}'


def volumes_of(container: str, engine=None) -> list[str]:
    """The names of the volumes (anonymous or named, not bind mounts) mounted in ``container``
    (on ``engine``, an engines.Engine; default Docker)."""
    run = engine.run if engine is not None else docker
    return run("inspect", "--format", VOLUMES, container).stdout.split()


def volume_exists(name: str, engine=None) -> bool:
    run = engine.run if engine is not None else docker
    return run("volume", "inspect", name).returncode == 0


def dangling() -> set[str]:
    return set(docker("volume", "ls", "--quiet", "--filter", "dangling=true").stdout.split())


def wrote_20_mb(du_output: str) -> bool:
    return int(du_output.split()[0]) >= 19_000  # KiB


@pytest.fixture
def named_volume() -> Iterator[str]:
    """A named volume of the test's own, removed afterwards (whatever the test did)."""
    name = "dockyter-test-keep-" + secrets.token_hex(4)
    assert docker("volume", "create", name).returncode == 0
    yield name
    docker("volume", "rm", "--force", name)


@pytest.fixture
def cleanup_volumes() -> Iterator[list[str]]:
    """Volumes a failing test may leave: removed afterwards, so that a failure leaves nothing either."""
    found: list[str] = []
    yield found
    for name in found:
        docker("volume", "rm", "--force", name)


# -- dockyter-server ---------------------------------------------------------------------------------


def test_deleting_a_session_removes_its_anonymous_volume_and_keeps_named_ones(
    dockyter_server, test_image, named_volume, cleanup_volumes
):
    server = dockyter_server(allowed_volumes=["dockyter-test-keep-*"])
    made = httpx.post(
        server.url + "/sessions",
        json={"args": f"-v /data -v {named_volume}:/keep {test_image}"},
        headers=server.headers(),
        timeout=60,
    )
    assert made.status_code == 201, made.text
    session = made.json()
    wrote = httpx.post(
        f"{server.url}/sessions/{session['id']}/execute",
        json={"cmd": WRITE_20_MB},
        headers=server.headers(),
        timeout=60,
    ).json()
    assert wrote["exit_code"] == 0 and wrote_20_mb(wrote["stdout"]), wrote
    anonymous = [name for name in volumes_of(session["container"]) if name != named_volume]
    cleanup_volumes.extend(anonymous)
    assert len(anonymous) == 1 and volume_exists(anonymous[0])

    deleted = httpx.delete(f"{server.url}/sessions/{session['id']}", headers=server.headers(), timeout=60)
    assert deleted.json() == {"id": session["id"], "deleted": True}
    # Gone before DELETE answers, as the container is; never listed as dangling.
    assert not volume_exists(anonymous[0])
    assert anonymous[0] not in dangling()
    assert volume_exists(named_volume)


def test_a_cancelled_execution_removes_its_anonymous_volume(dockyter_server, test_image, cleanup_volumes):
    server = dockyter_server()
    # SIGINT and SIGTERM ignored: only the server's kill and removal end it.
    body = {"cmd": f"trap '' INT TERM; {WRITE_20_MB} && echo ready; sleep 600", "args": f"-v /data {test_image}"}
    with server.stream(body) as events:
        start = next(events)
        printed = ""
        while not printed.endswith("ready\n"):
            printed += next(event for event in events if event["event"] == "stdout")["data"]
        assert wrote_20_mb(printed)
        container = "dockyter-" + start["id"]
        [volume] = volumes_of(container)
        cleanup_volumes.append(volume)
        cancelled = httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(), timeout=60)
        assert cancelled.status_code == 200
    assert wait_until(lambda: not volume_exists(volume), timeout=10)


def test_start_up_removes_the_anonymous_volumes_of_what_a_crashed_run_left(
    dockyter_server, test_image, cleanup_volumes
):
    name = "test-" + secrets.token_hex(4)
    left = "dockyter-left-" + secrets.token_hex(4)
    started = docker(
        "run", "-d", "--rm", "--init", "--name", left, "-v", "/data",
        "--label", "io.dockyter.managed=1", "--label", f"io.dockyter.server={name}:0123456789ab",
        test_image, "sleep", "600",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    [volume] = volumes_of(left)
    cleanup_volumes.append(volume)
    try:
        dockyter_server(server_name=name)
        assert docker("container", "inspect", left).returncode != 0
        assert not volume_exists(volume)
    finally:
        docker("rm", "--force", "--volumes", left)


def test_a_session_left_by_a_sigkilled_server_goes_with_its_volume_at_the_next_start(
    test_image, tmp_path, cleanup_volumes
):
    """The real `dockyter-server` process, SIGKILLed while a session runs a command, then started again."""
    name = "test-" + secrets.token_hex(4)
    log = tmp_path / "server.log"
    process, url = start_server_process(log, name)
    busy: dict[str, str] = {}
    try:
        sessions = []
        for _ in range(2):  # one idle at the crash, one busy
            made = httpx.post(url + "/sessions", json={"args": f"-v /data {test_image}"}, timeout=60)
            assert made.status_code == 201, made.text
            session = made.json()
            wrote = httpx.post(f"{url}/sessions/{session['id']}/execute", json={"cmd": WRITE_20_MB}, timeout=60).json()
            assert wrote["exit_code"] == 0 and wrote_20_mb(wrote["stdout"]), wrote
            [volume] = volumes_of(session["container"])
            cleanup_volumes.append(volume)
            sessions.append((session, volume))
        (idle, idle_volume), (busy, busy_volume) = sessions

        def sleep_in_the_busy_session() -> None:
            with httpx.Client(timeout=700) as client:
                try:
                    client.post(f"{url}/sessions/{busy['id']}/execute", json={"cmd": "sleep 600"})
                except httpx.HTTPError:
                    pass  # the server dies under it

        threading.Thread(target=sleep_in_the_busy_session, daemon=True).start()
        assert wait_until(lambda: "sleep" in docker("top", busy["container"]).stdout, timeout=10)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        # Started again at once: the busy session's container runs on (its shell is in `sleep`), and
        # this start-up removes it. (A kernel loading Dockyter on the same engine may get there first:
        # the container's owner, the killed server, is gone. Its clean-up removes the volume too.)
        process, url = start_server_process(log, name)
        assert docker("container", "inspect", busy["container"]).returncode != 0
        assert not volume_exists(busy_volume), "the start-up clean-up left the session's anonymous volume"
        assert busy_volume not in dangling()
        # The idle one's shell read end-of-file when the server died and exited; `--rm` took its volume.
        assert wait_until(lambda: not volume_exists(idle_volume), timeout=15)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
        if busy:
            docker("rm", "--force", "--volumes", busy["container"])


# -- the kernel's local backend, on every engine --------------------------------------------------------


@pytest.fixture
def engine_volumes(engine) -> Iterator[list[str]]:
    """Volumes of the engine a failing test may leave: removed afterwards."""
    found: list[str] = []
    yield found
    for name in found:
        engine.run("volume", "rm", "--force", name)


def _record_volumes(engine, find_container, found: list[str]) -> threading.Thread:
    """In a thread: wait for the container ``find_container()`` names, then note its volumes."""

    def watch() -> None:
        container = wait_until(find_container, timeout=30)
        if container:
            found.extend(wait_until(lambda: volumes_of(container, engine), timeout=10) or [])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def engine_named_volume(engine) -> Iterator[str]:
    """A named volume of the test's own on the engine, removed afterwards (whatever the test did)."""
    name = "dockyter-test-keep-" + secrets.token_hex(4)
    assert engine.run("volume", "create", name).returncode == 0
    yield name
    engine.run("volume", "rm", "--force", name)


def test_a_cell_stopped_by_its_timeout_removes_its_anonymous_volume(engine, engine_cell, engine_image, engine_volumes):
    name = "dockyter-vol-" + secrets.token_hex(4)
    watcher = _record_volumes(engine, lambda: engine.exists(name) and name, engine_volumes)
    # It ignores the stop ladder's SIGINT: the ladder's `docker rm` removes it, not `--rm`.
    run = engine_cell(
        f"%%docker --timeout 4 --no-raise-error --name {name} -v /data {engine_image}\n"
        f"trap '' INT; {WRITE_20_MB}; sleep 600"
    )
    watcher.join(30)
    assert f"container {name} stopped" in run.stderr, run.stderr
    assert len(engine_volumes) == 1
    assert not volume_exists(engine_volumes[0], engine)


def test_stopping_a_local_session_removes_its_anonymous_volume(engine, engine_cell, engine_image, engine_volumes):
    name = "vol" + secrets.token_hex(3)
    started = engine_cell(f"%docker_session start {name} -v /data {engine_image}")
    assert started.error is None, started.error
    [container] = [c for c, owner in engine.labelled(f"io.dockyter.session={name}").items() if owner == owner_id()]
    wrote = engine_cell(f"%%docker --session {name}\n{WRITE_20_MB}")
    assert wrote.error is None and wrote_20_mb(wrote.stdout), wrote.stdout
    engine_volumes.extend(volumes_of(container, engine))
    assert len(engine_volumes) == 1
    assert engine_cell(f"%docker_session stop {name}").stdout.startswith(f"Dockyter: session {name!r} stopped")
    assert not volume_exists(engine_volumes[0], engine)


def test_docker_cleanup_removes_an_orphans_anonymous_volume_and_keeps_named_ones(
    engine, engine_shell, engine_image, engine_named_volume, engine_volumes
):
    dead_owner = f"{socket.gethostname()}:{2**22 + 4321}:1"  # above pid_max's default: no such process
    orphan = "dockyter-orphan-" + secrets.token_hex(4)
    started = engine.run(
        "run", "-d", "--rm", "--name", orphan, "-v", "/data", "-v", f"{engine_named_volume}:/keep",
        "--label", "io.dockyter.managed=1", "--label", f"io.dockyter.owner={dead_owner}",
        engine_image, "sleep", "600",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    anonymous = [name for name in volumes_of(orphan, engine) if name != engine_named_volume]
    engine_volumes.extend(anonymous)
    try:
        assert orphan in run_cell(engine_shell, "%docker_cleanup").stdout
        assert not engine.exists(orphan)
        assert len(anonymous) == 1 and not volume_exists(anonymous[0], engine)
        assert volume_exists(engine_named_volume, engine)
    finally:
        engine.remove(orphan)
