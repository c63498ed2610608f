"""Fuzzing the HTTP surface: no input gives a 5xx, and no container outlives its request.

Schemathesis generates requests, valid and invalid, from the server's own /openapi.json and
checks each answer against it; a second property test sends random commands and options to
real containers; a third sends hostile bind-mount sources. All are bounded (a few dozen
examples) so they stay well under two minutes.

Each runs against a server on this machine's engine and against one on the three-node Swarm
(``@under_each_executor``). An execution on the Swarm costs seconds where one on the engine
costs a fraction of one, so the Swarm gets fewer examples (``SWARM_SHARE``) of the same
generators: real hostile requests to a live Swarm server all the same.
"""

from __future__ import annotations

import os
import shlex

import httpx
import pytest
import schemathesis
from helpers import wait_until
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from servers import under_each_executor

pytestmark = pytest.mark.docker

FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,  # the same examples every run: no state kept between runs
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SWARM_SHARE = 0.2  # of each test's examples, against the Swarm executor


def examples(count: int, executor_kind: str) -> int:
    """How many examples a test with ``count`` on the engine runs against ``executor_kind``."""
    return count if executor_kind == "engine" else max(5, round(count * SWARM_SHARE))


@pytest.fixture
def server(dockyter_server):
    # Short limits so that whatever the fuzzer makes the containers do ends quickly. Any image
    # may be asked for, so generated requests get as far as `docker run` (pull="never": a
    # missing image fails at once, exit status 125).
    return dockyter_server(max_timeout=3, max_concurrent=2, max_output_bytes=65536, allowed_images=["*"])


@under_each_executor
def test_schemathesis_finds_no_server_error(server, executor_kind):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    auth = {"Authorization": f"Bearer {server.token}"}
    strategy = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE, headers=auth),
        schema.as_strategy(GenerationMode.NEGATIVE, headers=auth),
        schema.as_strategy(GenerationMode.POSITIVE),  # and without a token
    )

    @settings(FUZZ, max_examples=examples(50, executor_kind))
    @given(case=strategy)
    def fuzz(case):
        response = case.call(base_url=server.url, timeout=30)
        case.validate_response(response, checks=CHECKS)

    fuzz()
    assert wait_until(lambda: not server.containers(), timeout=15)


@under_each_executor
def test_random_commands_and_options_in_real_containers(server, run_image, executor_kind):
    options = st.lists(
        st.sampled_from(
            ["-e X=1", "-e 'Y=a b'", "-w /tmp", "-u 65534", "--read-only", "--tmpfs /t", "-i", "--rm", "--init", "-e"]
        ),
        max_size=3,
    )
    bodies = st.fixed_dictionaries(
        {"cmd": st.text(max_size=40), "args": options.map(lambda opts: " ".join([*opts, run_image]))},
        optional={
            "timeout": st.one_of(st.none(), st.floats(min_value=0.01, max_value=1e9), st.integers(-5, 5)),
            "merge_stderr": st.booleans(),
            "shell": st.sampled_from([["bash", "-lc"], ["sh", "-c"], ["bash"], ["x" * 5]]),
        },
    )

    @settings(FUZZ, max_examples=examples(25, executor_kind))
    @given(body=bodies, stream=st.booleans())
    def run(body, stream):
        headers = {"Authorization": f"Bearer {server.token}"}
        if stream:
            headers["Accept"] = "application/x-ndjson"
        response = httpx.post(server.url + "/execute", json=body, headers=headers, timeout=30)
        assert response.status_code < 500, response.text
        assert response.status_code in (200, 400, 403, 422, 429), response.text
        if response.status_code == 200 and stream:
            last = response.text.splitlines()[-1]
            assert '"event": "exit"' in last, response.text

    run()
    assert wait_until(lambda: not server.containers(), timeout=15)


@under_each_executor
def test_random_mount_sources_never_get_a_server_error_nor_create_anything(
    dockyter_server, run_image, tmp_path, executor_kind
):
    """Hostile bind sources, in every spelling, against roots of each kind: a 403 or a run, nothing made."""
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    (ro / "a").mkdir(parents=True)
    (rw / "a").mkdir(parents=True)
    os.symlink("/etc", ro / "etc")
    os.symlink("/", rw / "root")
    server = dockyter_server(max_timeout=5, allowed_mounts=[str(ro), f"{rw}:rw", "/"])
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    names = st.sampled_from(
        [
            "..",
            ".",
            "",
            "a",
            "etc",
            "root",
            "missing",
            "x" * 300,
            "proc",
            "1",
            "run",
            "docker",
            "containerd",
            "\x01",
            "é",
            "a,b",
            "a b",
        ]
    )
    bases = st.sampled_from(
        [str(ro), str(rw), "", "/proc/1", "/run", "/var/run/docker", "/var/lib/docker", "/sys", "/dev"]
    )
    sources = st.builds(lambda base, parts: "/".join([base, *parts]) or "/", bases, st.lists(names, max_size=4))
    spellings = st.sampled_from(
        ["-v {}:/h", "-v {}:/h:ro", "--mount type=bind,source={},target=/h,readonly", "--mount=type=bind,src={},dst=/h"]
    )

    @settings(FUZZ, max_examples=examples(40, executor_kind))
    @given(source=sources, spelling=spellings)
    def probe(source, spelling):
        args = f"{shlex.quote(spelling.format(source))} {run_image}"
        response = httpx.post(
            server.url + "/execute",
            json={"cmd": "ls /h >/dev/null", "args": args},
            headers=server.headers(),
            timeout=30,
        )
        assert response.status_code in (200, 400, 403), response.text
        assert httpx.get(server.url + "/health", timeout=10).status_code == 200

    probe()
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before
    assert wait_until(lambda: not server.containers(), timeout=15)
