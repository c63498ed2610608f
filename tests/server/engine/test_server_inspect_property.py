"""A property of the engine executor: every accepted request's container is exactly the approved plan.

Hypothesis writes option lists in every spelling the policy accepts (``-v``, ``--volume=``,
``--mount`` with each key alias and readonly form, ``-e``/``--env``/``-eNAME``, value-less
``-e``, ``-l``, ``-u``, ``-w``, ``--tmpfs``, ``--read-only``, ``--network``/``--net``), whose
paths, names and values hold control characters, quotes, commas, equals signs, colons and
non-ASCII text. For each request:

1. the real policy checks it; a refusal ends the example;
2. the container the server would start is created with the executor's own ``docker create``
   argv on the real engine, and ``docker inspect`` of it is compared with the approved plan by
   this test's own reading (:func:`differences_from_plan`, written apart from the server's
   :mod:`~dockyter.server.engine.containercheck`); the server's check must find a difference exactly
   when this one does: it lets through no container that differs from its plan, and refuses
   none that does not;
3. the request goes through a real server, with a command that tries to write into every
   mount point it has: a request whose container differs is refused (403, or 400 when a layer
   before the policy refuses its text), one that does not runs; nothing is ever written below
   the read-only root.

``DOCKYTER_PROPERTY_EXAMPLES`` sets the number of examples (40 by default, well under a minute
here). The engine executor only: the Swarm's check of a service's spec is exercised by
tests/server/engine/test_server_enginecheck.py.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import docker
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from dockyter.server.engine.containercheck import differences
from dockyter.server.policy.plan import Plan
from dockyter.server.servererrors import ArgsUnreadable, PolicyError

pytestmark = pytest.mark.docker

EXAMPLES = int(os.environ.get("DOCKYTER_PROPERTY_EXAMPLES", "40"))
# Tries to write in every mount point, then says which user it ran as.
PROBE = "for d in $(cut -d' ' -f5 /proc/self/mountinfo); do touch \"$d/.probe\" 2>/dev/null; done; id -u"

SPECIAL = ["\n", "\r", "\t", "\x01", "\x7f", "'", '"', ",", "=", ":", " ", "\\", "$", "é", "中", "\u2028", ".."]
word = st.lists(st.sampled_from([*"abxyz019_-.", *SPECIAL]), min_size=1, max_size=6).map("".join)
plain = st.text(st.sampled_from(list("abxyz019_-")), min_size=1, max_size=6)
targets = st.lists(st.one_of(plain, plain, word), min_size=1, max_size=2).map(lambda parts: "/" + "/".join(parts))
names = st.one_of(st.from_regex(r"[A-Z_][A-Z0-9_]{0,5}", fullmatch=True), word)
values = st.one_of(plain, word, st.just(""))
target_key = st.sampled_from(["target", "dst", "destination"])


@pytest.fixture(scope="module")
def roots() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="dockyter-inspect-"))
    base.chmod(0o755)
    for path in ("ro/a/b", "rw"):
        (base / path).mkdir(parents=True)
    for path in ("ro", "ro/a", "ro/a/b", "rw"):
        (base / path).chmod(0o777)  # so that only the mount's read-only flag keeps a write out
    yield base
    shutil.rmtree(base)


@pytest.fixture(scope="module")
def server(roots) -> Iterator[Any]:
    from servers import start_server

    running = start_server(allowed_mounts=[f"{roots}/ro", f"{roots}/rw:rw"], allowed_networks=["bridge"])
    yield running
    running.stop()


def bind(roots: Path) -> st.SearchStrategy[list[str]]:
    sources = st.sampled_from(["ro", "ro/a", "ro/a/b", "rw"]).map(lambda relative: f"{roots}/{relative}")
    modes = st.sampled_from(["", ":ro", ":rw", ":ro,rprivate", ":z"])
    readonly = st.sampled_from([None, "readonly", "ro", "readonly=true", "ro=1", "readonly=false", "ro=0"])

    def mount(source: str, target: str, key: str, source_key: str, flag: str | None, order: int) -> str:
        fields = ["type=bind", f"{source_key}={source}", f"{key}={target}"] + ([flag] if flag else [])
        return ",".join(fields[order:] + fields[:order])

    mounts = st.builds(
        mount, sources, targets, target_key, st.sampled_from(["source", "src"]), readonly, st.integers(0, 3)
    )
    return st.one_of(
        st.builds(lambda s, t, m: ["-v", f"{s}:{t}{m}"], sources, targets, modes),
        st.builds(lambda s, t, m: [f"--volume={s}:{t}{m}"], sources, targets, modes),
        mounts.map(lambda spec: ["--mount", spec]),
        mounts.map(lambda spec: [f"--mount={spec}"]),
    )


OTHER_OPTIONS: st.SearchStrategy[list[str]] = st.one_of(
    targets.map(lambda t: ["-v", t]),  # anonymous volumes
    st.builds(lambda k, t: ["--mount", f"type=volume,{k}={t}"], target_key, targets),
    st.builds(lambda k, t: ["--mount", f"{k}={t}"], target_key, targets),
    targets.map(lambda t: ["--tmpfs", t]),
    targets.map(lambda t: [f"--tmpfs={t}:size=1m"]),
    st.builds(lambda k, t: ["--mount", f"type=tmpfs,{k}={t}"], target_key, targets),
    st.builds(lambda n, v: ["-e", f"{n}={v}"], names, values),
    st.builds(lambda n, v: [f"--env={n}={v}"], names, values),
    st.builds(lambda n, v: [f"-e{n}={v}"], names, values),
    st.sampled_from(["HOME", "PATH", "DOCKYTER_UNSET_VARIABLE"]).map(lambda n: ["-e", n]),  # the CLI fills these
    st.builds(lambda n, v: ["-l", f"{n}={v}"], names, values),
    st.builds(lambda n, v: [f"--label={n}={v}"], names, values),
    names.map(lambda n: ["--label", n]),
    st.sampled_from(["0", "65534", "1000:1000", "65534:65534"]).map(lambda u: ["-u", u]),
    st.sampled_from(["0", "65534"]).map(lambda u: [f"--user={u}"]),
    targets.map(lambda t: ["-w", t]),
    targets.map(lambda t: [f"--workdir={t}"]),
    st.sampled_from([["--read-only"], ["--read-only=true"], ["--read-only=false"]]),
    st.sampled_from([["--network", "none"], ["--net=bridge"], ["--network=bridge"]]),
)


def clean(path: str) -> str:
    """A mount target as the engine stores it (Go's path.Clean)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned


def differences_from_plan(plan: Plan, container: dict[str, Any], image: dict[str, Any]) -> list[str]:
    """This test's own reading of whether ``container`` is exactly what ``plan`` approved.

    Only what the generated options change, and the server's confinement, which they must not.
    """
    config, host, own = container["Config"], container["HostConfig"], image["Config"]
    found = []
    last = {option.name: option.value for option in plan.args.options}
    # Mounts: exactly the approved ones (anonymous volumes have a random 64-hex name).
    made = sorted(
        (m["Type"], m["Source"] if m["Type"] == "bind" else m.get("Name", ""), m["Destination"], m["RW"])
        for m in container["Mounts"]
    )
    made = [
        (kind, "" if re.fullmatch(r"[0-9a-f]{64}", source) else source, target, rw) for kind, source, target, rw in made
    ]
    wanted = sorted((m.kind, m.source, clean(m.target), not m.readonly) for m in plan.mounts)
    if made != wanted:
        found.append(f"mounts {made} != {wanted}")
    tmpfs = {}
    for value in plan.args.values("--tmpfs"):
        target, _, options = value.partition(":")
        tmpfs[clean(target)] = options
    if {clean(k): v for k, v in (host.get("Tmpfs") or {}).items()} != tmpfs:
        found.append(f"tmpfs {host.get('Tmpfs')} != {tmpfs}")
    # Environment: the image's own entries, then exactly what the plan and the server set.
    env = {}
    for value in [*plan.args.values("--env"), "TINI_KILL_PROCESS_GROUP=1"]:
        name = value.split("=", 1)[0]
        env[name] = value
    for entry in own.get("Env") or []:
        env.setdefault(entry.split("=", 1)[0], entry)
    if sorted(config.get("Env") or []) != sorted(env.values()):
        found.append("environment")
    labels = {**(own.get("Labels") or {})}
    for value in plan.args.values("--label"):
        name, _, text = value.partition("=")
        labels[name] = text
    server_labels = {k: v for k, v in (config.get("Labels") or {}).items() if k.startswith("io.dockyter.")}
    if {**labels, **server_labels} != (config.get("Labels") or {}) or len(server_labels) != 3:
        found.append(f"labels {config.get('Labels')} != {labels}")
    if (config.get("User") or "") != last.get("--user", own.get("User") or ""):
        found.append(f"user {config.get('User')!r}")
    if (config.get("WorkingDir") or "") != last.get("--workdir", own.get("WorkingDir") or ""):
        found.append(f"working directory {config.get('WorkingDir')!r}")
    if host["ReadonlyRootfs"] != plan.args.has("--read-only"):
        found.append("read-only root")
    if host["NetworkMode"] != last.get("--network", "none"):
        found.append(f"network {host['NetworkMode']!r}")
    confinement = (host["Privileged"], host["CapAdd"], host["CapDrop"], host["SecurityOpt"], host["Init"])
    if confinement != (False, None, ["ALL"], ["no-new-privileges"], True) or not host["AutoRemove"]:
        found.append(f"confinement {confinement}")
    return found


def inspect(kind: str, name: str) -> dict[str, Any]:
    answer = docker(kind, "inspect", name)
    assert answer.returncode == 0, answer.stderr
    found: dict[str, Any] = json.loads(answer.stdout)[0]
    return found


def written_below(root: Path) -> list[str]:
    return sorted(str(path) for path in root.rglob(".probe"))


def test_an_accepted_requests_container_is_exactly_its_plan(server, roots, test_image):
    from dockyter.server.engine.execution import Execution

    policy, executor = server.app.state.policy, server.executor
    defaults = (
        frozenset({"host"}) if docker("info", "--format", "{{.CgroupVersion}}").stdout.strip() == "1" else frozenset()
    )
    option_lists = st.lists(st.one_of(bind(roots), OTHER_OPTIONS, OTHER_OPTIONS), min_size=1, max_size=5)

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(options=option_lists)
    @example(options=[["-v", f"{roots}/ro:/h\nx:ro"], ["-u", "0"]])  # issue 19, defect 1
    @example(options=[["-e", "HOME"]])  # issue 19, defect 2: filled from the CLI's environment
    @example(options=[["--mount", f"type=bind,src={roots}/ro/a,dst=/h,ro"], ["-e", "A=b=c"], ["-l", "x"]])
    def check(options: list[list[str]]) -> None:
        args = " ".join(shlex.quote(token) for tokens in options for token in tokens) + f" {test_image}"
        try:
            plan = policy.check(args)
        except (ArgsUnreadable, PolicyError):
            event("refused by the policy")
            return
        execution = Execution(executor, plan, PROBE, 30, False, "tester")
        argv = execution.argv()
        created = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if created.returncode != 0:
            event("refused by the engine")  # an argument docker itself rejects: nothing made
            subprocess.run(["docker", "rm", "-f", "-v", execution.name], capture_output=True, timeout=60)
            return
        try:
            container = inspect("container", execution.name)
            image = inspect("image", container["Image"])
        finally:
            subprocess.run(["docker", "rm", "-f", "-v", execution.name], capture_output=True, timeout=60)
        ours = differences_from_plan(plan, container, image)
        theirs = differences(execution.expected(), container, image, defaults)
        assert bool(ours) == bool(theirs), (args, ours, theirs)
        event("differs from its plan" if ours else "exactly its plan")
        response = server.execute({"args": args, "cmd": PROBE})
        if response.status_code == 400:  # refused before the policy (a text no process should get): never run
            assert not response.json()["detail"].startswith("the engine did not make"), (args, response.text)
        elif ours:
            assert response.status_code == 403, (args, response.text)
            assert response.json()["detail"].startswith("the engine did not make what the policy approved: ")
        else:
            assert response.status_code == 200 and response.json()["reason"] is None, (args, response.text)
        assert written_below(roots / "ro") == []
        for probe in written_below(roots / "rw"):
            os.unlink(probe)

    check()
    assert not server.containers()
