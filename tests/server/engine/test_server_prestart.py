"""Prestarted containers on a real ``dockyter-server``: each serves one request of its token and plan.

The policy checks every request first: a request it now answers differently never reaches a
container made for the old answer. What a command sees equals what it sees in a container made
for it; a timeout and a cancel stop a prestarted container as any other; one token cannot take
another's; the budget holds; nothing is left behind.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from pathlib import Path

import httpx
import pytest
from helpers import docker, wait_until
from servers import RunningServer, under_each_runtime

pytestmark = pytest.mark.docker

# What a command can see of where and how it runs, apart from the container's own identity.
PROBE = (
    "env | grep -v ^HOSTNAME= | sort; id; pwd; umask; ulimit -a; ls -l /proc/self/fd/0 | sed 's/.* 0 ->/0 ->/'; "
    "grep -E '^(Cap|NoNewPrivs|Seccomp|Sig(Ign|Blk))' /proc/self/status; awk '{print $5, $6}' /proc/self/mountinfo | sort"
)


def served(server: RunningServer) -> int:
    return int(server.executor.prestarts.served)


def wait_ready(server: RunningServer, who: str = "tester", count: int = 1) -> None:
    prestarts = server.executor.prestarts
    assert wait_until(lambda: prestarts.counts(who)["ready"] >= count, timeout=60), prestarts.counts(who)


def run(server: RunningServer, cmd: str, args: str, token: str | None = None, **more: object) -> dict[str, object]:
    reply = server.execute({"cmd": cmd, "args": args, **more}, token=token)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


@under_each_runtime
def test_each_request_gets_a_fresh_prestarted_container(dockyter_server, run_image):
    server = dockyter_server(prestart=1)
    first = run(server, "touch /tmp/left-behind; hostname", run_image)  # cold: its line is filled after it
    wait_ready(server)
    second = run(server, "ls /tmp/left-behind 2>/dev/null || echo absent; hostname", run_image)
    assert served(server) == 1
    wait_ready(server)
    third = run(server, "ls /tmp/left-behind 2>/dev/null || echo absent; hostname; exit 3", run_image)
    assert served(server) == 2
    hosts = {str(first["stdout"]).split()[0], *(str(reply["stdout"]).split()[1] for reply in (second, third))}
    assert len(hosts) == 3
    assert str(second["stdout"]).startswith("absent\n") and third["exit_code"] == 3
    assert wait_until(lambda: not server.exists(str(third["execution_id"])), timeout=15)


def test_what_a_command_sees_equals_a_container_made_for_it(dockyter_server, run_image):
    cold_server = dockyter_server(prestart=0)
    warm_server = dockyter_server(prestart=1)
    args = f"--user 65534:65534 --workdir /tmp -e STAGE=dev {run_image}"
    cold = run(cold_server, PROBE, args)
    run(warm_server, "true", args)
    wait_ready(warm_server)
    warm = run(warm_server, PROBE, args)
    assert served(warm_server) == 1
    assert "uid=65534" in str(cold["stdout"]) and "STAGE=dev" in str(cold["stdout"])
    assert (warm["stdout"], warm["stderr"], warm["exit_code"]) == (cold["stdout"], cold["stderr"], cold["exit_code"])


@under_each_runtime
def test_a_timeout_and_a_cancel_stop_a_prestarted_container(dockyter_server, run_image):
    server = dockyter_server(prestart=1)
    run(server, "true", run_image)
    wait_ready(server)
    started = time.monotonic()
    timed_out = run(server, "echo started; sleep 60; echo never", run_image, timeout=1)
    assert (timed_out["exit_code"], timed_out["reason"], timed_out["stdout"]) == (124, "timeout", "started\n")
    assert time.monotonic() - started < 15 and served(server) == 1
    assert not server.exists(str(timed_out["execution_id"]))
    wait_ready(server)
    with server.stream({"cmd": "echo started; sleep 60", "args": run_image}) as events:
        start = next(events)
        assert next(events) == {"event": "stdout", "data": "started\n"}
        answer = httpx.post(f"{server.url}/executions/{start['id']}/cancel", headers=server.headers(), timeout=60)
        assert answer.json() == {"id": start["id"], "cancelled": True}
        assert not server.exists(start["id"])  # removed before the cancel answered
        rest = list(events)
    assert rest[-1]["code"] == 130 and served(server) == 2


def test_the_policy_checks_every_request_before_a_prestarted_container_serves_it(dockyter_server, run_image, host_dir):
    project = host_dir / "project"
    project.mkdir()
    (project / "old").write_text("")
    server = dockyter_server(prestart=1, allowed_mounts=[str(host_dir)])
    args = f"-v {project}:/data:ro {run_image}"
    assert run(server, "ls /data", args)["stdout"] == "old\n"
    wait_ready(server)
    # The folder is replaced by another one at the same path: the same plan, another folder.
    shutil.rmtree(project)
    project.mkdir()
    (project / "new").write_text("")
    assert run(server, "ls /data", args)["stdout"] == "new\n"
    assert served(server) == 0  # the container holding the old folder did not serve it
    wait_ready(server)
    # Now the path leads out of what the operator allowed: the policy refuses, as it always did.
    shutil.rmtree(project)
    project.symlink_to("/etc")
    refused = server.execute({"cmd": "ls /data", "args": args})
    assert refused.status_code == 403, refused.text
    assert served(server) == 0


def test_a_server_restarted_with_another_policy_answers_with_it(dockyter_server, run_image, host_dir):
    (host_dir / "data").mkdir()
    name = "test-" + secrets.token_hex(4)
    args = f"-v {host_dir / 'data'}:/data:ro {run_image}"
    first = dockyter_server(prestart=1, server_name=name, allowed_mounts=[str(host_dir)])
    run(first, "true", args)
    wait_ready(first)
    first.stop()  # its containers go with it, prestarted ones included
    assert not first.containers()
    second = dockyter_server(prestart=1, server_name=name)  # the operator no longer allows the mount
    assert second.execute({"cmd": "true", "args": args}).status_code == 403


def test_one_token_cannot_take_another_tokens_containers(dockyter_server, run_image):
    other_token = "o" * 24
    server = dockyter_server(prestart=1, tokens=["tester:" + "t" * 24, f"other:{other_token}"])
    run(server, "true", run_image, token=other_token)
    wait_ready(server, "other")
    for _ in range(3):  # the first token's requests: its own containers, or cold ones
        run(server, "true", run_image)
    assert server.executor.prestarts.counts("other")["ready"] == 1
    before = served(server)
    run(server, "true", run_image, token=other_token)
    assert served(server) == before + 1


def test_the_budget_holds_and_the_fullest_token_gives_way(dockyter_server, run_image):
    server = dockyter_server(prestart=2, prestart_max=2, tokens=["tester:" + "t" * 24, "other:" + "o" * 24])
    run(server, "true", run_image)
    wait_ready(server, count=2)
    run(server, "true", run_image, token="o" * 24)
    wait_ready(server, "other")
    prestarts = server.executor.prestarts
    counts = prestarts.counts("tester"), prestarts.counts("other")
    assert sum(c["ready"] + c["starting"] for c in counts) <= 2 and counts[1]["ready"] >= 1
    assert wait_until(lambda: len(server.containers()) <= 2, timeout=15)


def test_a_memory_budget_smaller_than_one_container_prestarts_none(dockyter_server, run_image):
    server = dockyter_server(prestart=1, memory="512m", prestart_memory="256m")
    run(server, "true", run_image)
    time.sleep(1)
    assert server.executor.prestarts.counts("tester") == {"ready": 0, "starting": 0}
    assert not server.containers()


def test_an_image_rebuilt_under_its_tag_is_used_at_once(dockyter_server, run_image, tmp_path):
    tag = f"dockyter-test/prestart-{secrets.token_hex(4)}:1"

    def build(version: str) -> None:
        folder = tmp_path / version
        folder.mkdir()
        (folder / "Dockerfile").write_text(f"FROM {run_image}\nRUN echo {version} > /version\n")
        assert docker("build", "-q", "-t", tag, str(folder), timeout=300).returncode == 0

    try:
        build("one")
        server = dockyter_server(prestart=1)
        assert run(server, "cat /version", tag)["stdout"] == "one\n"
        wait_ready(server)
        build("two")
        assert run(server, "cat /version", tag)["stdout"] == "two\n"
        assert served(server) == 0
        wait_ready(server)
        assert run(server, "cat /version", tag)["stdout"] == "two\n"
        assert served(server) == 1
    finally:
        docker("rmi", "-f", tag)


def test_the_check_of_what_the_engine_made_runs_ahead_of_time(dockyter_server, run_image, caplog):
    # The operator's extra_run_args make the engine add what no plan has: a request is refused (as
    # before), and a container prestarted for the same plan is compared and removed unstarted too.
    caplog.set_level(logging.INFO, logger="dockyter.server")
    server = dockyter_server(prestart=1, extra_run_args=["--env", "SMUGGLED=1"])
    assert server.execute({"cmd": "echo ran", "args": run_image}).status_code == 403
    prestarts = server.executor.prestarts
    loop = server.executor._sweeper.get_loop()  # the server's event loop

    async def prestart_the_plan() -> None:
        plan = server.app.state.policy.check(run_image, None)
        key = prestarts.key(plan, "tester")
        prestarts.refill(key, plan, "tester")
        await asyncio.gather(*prestarts._tasks)

    asyncio.run_coroutine_threadsafe(prestart_the_plan(), loop).result(timeout=120)
    [(when, why)] = prestarts._failed.values()
    assert why.startswith("the engine did not make what the policy approved: the environment variable 'SMUGGLED'")
    assert sum('"engine_disagrees"' in record.getMessage() for record in caplog.records) == 2
    assert prestarts.counts("tester") == {"ready": 0, "starting": 0}
    assert not server.containers()


def test_idle_containers_are_removed(dockyter_server, run_image):
    server = dockyter_server(prestart=1, prestart_idle=1.0, reap_interval=1.0)
    run(server, "true", run_image)
    wait_ready(server)
    assert wait_until(lambda: server.executor.prestarts.counts("tester")["ready"] == 0, timeout=15)
    assert wait_until(lambda: not server.containers(), timeout=15)


def test_nothing_is_left_when_the_server_stops(dockyter_server, run_image, tmp_path: Path):
    server = dockyter_server(prestart=2)
    run(server, "true", run_image)
    run(server, "true", f"-e OTHER=1 {run_image}")  # one ready, some starting when it stops
    assert server.containers()
    server.stop()
    assert not server.containers()


def test_health_says_how_many_of_the_tokens_containers_are_ready(dockyter_server, run_image):
    other_token = "o" * 24
    server = dockyter_server(prestart=1, tokens=["tester:" + "t" * 24, f"other:{other_token}"])

    def health(token: str | None = None) -> dict[str, object]:
        return dict(httpx.get(server.url + "/health", headers=server.headers(token), timeout=30).json())

    assert health()["prestarted"] == {"ready": 0, "starting": 0}
    run(server, "true", run_image)
    assert wait_until(lambda: health()["prestarted"] == {"ready": 1, "starting": 0}, timeout=60)
    assert health(other_token)["prestarted"] == {"ready": 0, "starting": 0}  # each token its own
    assert "prestarted" not in health("x" * 30) and "prestarted" not in httpx.get(server.url + "/health").json()
    off = dockyter_server(prestart=0)
    assert "prestarted" not in httpx.get(off.url + "/health", headers=off.headers(), timeout=30).json()
