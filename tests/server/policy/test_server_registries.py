"""An image cannot make the engine talk to this host: ``allowed_registries``, and pull errors in one line.

The exact request of the report: the image ``127.0.0.1:PORT/x/y:z``, where a real listener on
PORT (every local address, IPv4 and IPv6) records whether anything connected. Before the fix
the engine sent it HTTP requests, and the ``exit`` message quoted the first bytes of its
answer. Now the request is a 403 before anything reaches the engine, from ``/execute``, from
``POST /sessions`` and on the Swarm, in every spelling of this host the engine or the C
library reads, and nothing connects.

A registry the operator names is pulled from (the tests' own registries are on 127.0.0.1),
and when that pull fails the client gets ``cannot pull IMAGE: <kind>``, never the registry's
answer: the server's own pull, the CLI's implicit pull (an image the server had seen, removed
behind its back) and a session's start.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import skip_or_fail
from helpers import docker, wait_until
from servers import under_each_executor

from dockyter.server.policy.registries import RegistryRules, registry_of
from dockyter.server.settings.fields import Settings, SettingsError
from dockyter.server.settings.sources import load_settings

SECRET = b"SECRET-REPLY-" + secrets.token_hex(4).encode()  # what the internal service answers


class Listener:
    """A TCP service on one port (``port``, or a free one) of every local address (0.0.0.0 and ::)
    that answers SECRET, as an internal service would, and records who connected."""

    def __init__(self, port: int = 0) -> None:
        self.v4 = socket.create_server(("0.0.0.0", port))
        self.port = self.v4.getsockname()[1]
        self.v6 = socket.create_server(("::", self.port), family=socket.AF_INET6, dualstack_ipv6=False)
        self.connections: list[tuple[str, bytes]] = []
        self._threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in (self.v4, self.v6)]
        for thread in self._threads:
            thread.start()

    def _serve(self, server: socket.socket) -> None:
        while True:
            try:
                client, address = server.accept()
            except OSError:
                return
            with client:
                client.settimeout(2)
                try:
                    first = client.recv(200)
                    client.sendall(SECRET + b"\r\n\r\n")
                except OSError:
                    first = b""
                self.connections.append((address[0], first))

    def close(self) -> None:
        for server in (self.v4, self.v6):
            server.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    service = Listener()
    yield service
    service.close()


# -- which part of an image is the registry (distribution/reference's splitDockerDomain) ---------


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("python", "docker.io"),
        ("python:3.12", "docker.io"),
        ("library/python:3.12", "docker.io"),
        ("team/tool/sub:1", "docker.io"),
        ("docker.io/library/python", "docker.io"),
        ("index.docker.io/library/python", "docker.io"),
        ("registry.example.org/team/tool:1", "registry.example.org"),
        ("registry:5000/tool", "registry:5000"),
        ("localhost/tool", "localhost"),
        ("Localhost/tool", "Localhost"),  # an upper-case first part is a host name
        ("MyHost/tool", "MyHost"),
        ("127.0.0.1:18999/x/y:z", "127.0.0.1:18999"),
        ("[::1]:5000/x", "[::1]:5000"),
        ("2130706433:80/x", "2130706433:80"),
        ("localhost:5000/x@sha256:" + "a" * 64, "localhost:5000"),
    ],
)
def test_the_registry_is_what_docker_takes_it_to_be(image, registry):
    assert registry_of(image) == registry


def test_by_default_only_docker_hub_is_allowed():
    rules = RegistryRules(Settings(auth=False).allowed_registries)
    assert rules.refusal("python:3.12") is None
    assert rules.refusal("docker.io/library/python") is None
    assert rules.refusal("index.docker.io/library/python") is None
    assert rules.refusal("127.0.0.1:18999/x/y:z") == (
        "the image '127.0.0.1:18999/x/y:z' is not allowed: its registry 127.0.0.1:18999 is not (allowed: docker.io)"
    )
    assert rules.refusal("ghcr.io/org/tool:1") is not None


INTERNAL_SPELLINGS = [
    "127.0.0.1:{port}",
    "127.1:{port}",  # inet_aton's short forms, hexadecimal, octal and one number
    "2130706433:{port}",
    "0x7f.1:{port}",
    "0177.0.0.1:{port}",
    "0:{port}",
    "0.0.0.0:{port}",  # connecting to it reaches this host
    "[::1]:{port}",
    "[0:0:0:0:0:0:0:1]:{port}",
    "[::]:{port}",
    "[::ffff:7f00:1]:{port}",  # IPv4-mapped
    "[64:ff9b::7f00:1]:{port}",  # NAT64
    "localhost:{port}",
    "LOCALHOST:{port}",
    "Localhost",  # a first part with upper case is a host: Localhost:443
    "registry.localhost:{port}",
    "10.213.0.2:5000",
    "172.16.0.1",
    "192.168.1.1:{port}",
    "169.254.169.254",  # a cloud's metadata service
    "100.64.0.1",
    "[fe80::1]:{port}",
    "[fd00::1]:{port}",
    "224.0.0.1:{port}",
]


@pytest.mark.parametrize("host", INTERNAL_SPELLINGS)
def test_a_wildcard_never_allows_an_internal_address(host):
    rules = RegistryRules(["*"])
    image = f"{host.format(port=18999)}/x/y:z"
    refusal = rules.refusal(image)
    assert refusal is not None and refusal.startswith(f"the image {image!r} is not allowed: its registry "), refusal
    assert "\n" not in refusal


def test_a_name_is_resolved_and_refused_when_it_points_inside():
    hostname = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(hostname, None)}
    except OSError:
        addresses = set()
    refusal = RegistryRules(["*"]).refusal(f"{hostname}:18999/x/y:z")
    assert refusal is not None
    if addresses:  # this machine's own name resolves to one of its own addresses
        assert f"its registry {hostname}:18999 resolves to an internal address (" in refusal, (refusal, addresses)
    else:
        assert refusal.endswith("does not resolve on the server"), refusal
    assert RegistryRules(["*"]).refusal("no-such-host.invalid/x").endswith("does not resolve on the server")


def test_public_registries_pass_a_wildcard_and_named_ones_pass_wherever_they_are():
    assert RegistryRules(["*"]).refusal("8.8.8.8/x") is None
    assert RegistryRules(["*"]).refusal("[2001:4860:4860::8888]:443/x") is None
    assert RegistryRules(["*.example.org"]).refusal("8.8.8.8/x") is not None  # the pattern does not match
    named = RegistryRules(["docker.io", "10.213.0.2:5000", "LOCALHOST:5000", "[::1]:5000"])
    for image in ("10.213.0.2:5000/t/bash:1", "localhost:5000/x", "[::1]:5000/x", "python"):
        assert named.refusal(image) is None, image
    assert named.refusal("10.213.0.2:5001/t/bash:1") is not None  # the port is part of the name
    assert named.refusal("10.213.0.2/t/bash:1") is not None


def test_the_setting_is_read_like_every_other(tmp_path):
    assert load_settings(["--no-auth"], {}).allowed_registries == ["docker.io"]
    flags = ["--no-auth", "--allow-registry", "docker.io", "--allow-registry=10.213.0.2:5000"]
    assert load_settings(flags, {}).allowed_registries == ["docker.io", "10.213.0.2:5000"]
    environ = {"DOCKYTER_SERVER_ALLOWED_REGISTRIES": "docker.io,*.example.org", "DOCKYTER_SERVER_AUTH": "false"}
    assert load_settings([], environ).allowed_registries == ["docker.io", "*.example.org"]
    config = tmp_path / "server.toml"
    config.write_text('auth = false\nallowed_registries = ["registry.lab:5000"]\n')
    assert load_settings(["--config", str(config)], {}).allowed_registries == ["registry.lab:5000"]
    for bad in ("registry.lab/team", "", "reg istry", "http://registry.lab"):
        with pytest.raises(SettingsError, match="allowed_registries: .* is not a registry host"):
            Settings(auth=False, allowed_registries=[bad])


# -- the exact request, and nothing connects --------------------------------------------------------


@pytest.mark.docker
@under_each_executor
def test_the_reported_image_is_refused_and_nothing_connects(dockyter_server, listener):
    server = dockyter_server(pull="missing")
    image = f"127.0.0.1:{listener.port}/x/y:z"
    for stream in (False, True):
        headers = server.headers(**({"Accept": "application/x-ndjson"} if stream else {}))
        reply = httpx.post(server.url + "/execute", json={"args": image, "cmd": "true"}, headers=headers, timeout=60)
        assert reply.status_code == 403, reply.text
        assert reply.json() == {
            "detail": f"the image '{image}' is not allowed: its registry 127.0.0.1:{listener.port} is not "
            f"(allowed: {', '.join(server.settings.allowed_registries)})"
        }
    time.sleep(1)
    assert listener.connections == []


@pytest.mark.docker
def test_every_spelling_of_this_host_is_refused_even_under_a_wildcard(dockyter_server, listener):
    server = dockyter_server(pull="always", allowed_registries=["*"])
    hostname = socket.gethostname()
    for host in [*INTERNAL_SPELLINGS, f"{hostname}:{{port}}", f"{hostname.upper()}:{{port}}"]:
        image = f"{host.format(port=listener.port)}/x/y:z"
        for path, body in (("/execute", {"args": image, "cmd": "true"}), ("/sessions", {"args": image})):
            reply = httpx.post(server.url + path, json=body, headers=server.headers(), timeout=60)
            if reply.status_code == 400 and "[" in image:  # IPv6 references: not in the grammar dockerargs reads
                assert reply.json() == {"detail": f"args: {image!r} is not a valid image reference"}
                continue
            assert reply.status_code == 403, (path, image, reply.text)
            assert reply.json()["detail"].startswith(f"the image {image!r} is not allowed: its registry "), reply.text
    time.sleep(1)
    assert listener.connections == []


# -- a registry the operator named: pulled from, and its failures told in one line -------------------


class OwnRegistry:
    """Debian's docker-registry on one port of 127.0.0.1 for one test, to be stopped mid-test."""

    def __init__(self, work: Path, base_image: str) -> None:
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        if not Path(binary).exists():
            skip_or_fail("docker-registry is not installed (bash .ci/provision installs it, as root)")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        config = work / "registry.yml"
        config.write_text(
            f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
            f"http:\n  addr: {self.host}\n"
        )
        self.process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.image = f"{self.host}/dockyter-pull/{secrets.token_hex(4)}:1"
        assert wait_until(self._answers, timeout=15), "the registry did not start"
        for step in (("tag", base_image, self.image), ("push", self.image), ("rmi", self.image)):
            answer = docker(*step, timeout=120)
            assert answer.returncode == 0, f"docker {step[0]}: {answer.stderr}"

    def _answers(self) -> bool:
        try:
            return httpx.get(f"http://{self.host}/v2/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _pull_failures(caplog) -> list[dict]:
    lines = [json.loads(record.getMessage()) for record in caplog.records if "pull_failed" in record.getMessage()]
    return [line for line in lines if line.get("event") == "pull_failed"]


@pytest.mark.docker
def test_a_failed_pull_is_one_line_and_the_registrys_answer_stays_in_the_log(dockyter_server, listener, caplog):
    caplog.set_level(logging.WARNING, logger="dockyter.server")
    registry = f"127.0.0.1:{listener.port}"
    server = dockyter_server(pull="missing", allowed_registries=["docker.io", registry])
    image = f"{registry}/x/y:z"
    with server.stream({"args": image, "cmd": "echo never"}) as events:
        seen = list(events)
    final = seen[-1]
    assert final == {
        "event": "exit",
        "code": 125,
        "reason": "not_started",
        "message": f"cannot pull {image}: the registry did not answer",
    }
    assert SECRET.decode() not in json.dumps(seen)
    assert listener.connections, "the operator named this registry: the engine did ask it"
    # Session creation pulls through the CLI: one line too.
    reply = httpx.post(server.url + "/sessions", json={"args": image}, headers=server.headers(), timeout=120)
    assert reply.status_code == 400, reply.text
    assert reply.json() == {"detail": f"cannot pull {image}: the registry did not answer"}
    # The whole story is in the server's log, for the operator.
    logged = _pull_failures(caplog)
    assert {line["image"] for line in logged} == {image}
    assert any(SECRET.decode() in line["engine"] for line in logged), logged


@pytest.mark.docker
def test_the_clis_own_pull_is_summarised_too(dockyter_server, test_image, tmp_path, caplog):
    """An image the server has seen, removed from the engine behind its back: `docker run` pulls it itself."""
    caplog.set_level(logging.WARNING, logger="dockyter.server")
    registry = OwnRegistry(tmp_path, test_image)
    try:
        server = dockyter_server(pull="missing", allowed_registries=["docker.io", registry.host])
        body = {"args": registry.image, "cmd": "echo ran; echo err >&2"}
        first = server.execute(body).json()
        assert (first["exit_code"], first["stdout"], first["stderr"]) == (0, "ran\n", "err\n"), first
        # Gone from the engine; the server still counts it as present, so the CLI pulls: its lines are not output.
        assert docker("rmi", registry.image).returncode == 0
        again = server.execute(body).json()
        assert (again["exit_code"], again["stdout"], again["stderr"]) == (0, "ran\n", "err\n"), again
        assert docker("rmi", registry.image).returncode == 0
        # Now the registry is gone and something else answers on its port.
        registry.stop()
        impostor = Listener(registry.port)
        try:
            for merged in (False, True):
                reply = server.execute({**body, "merge_stderr": merged}).json()
                line = f"docker: cannot pull {registry.image}: the registry did not answer\n"
                assert reply["exit_code"] == 125, reply
                assert (reply["stdout"], reply["stderr"]) == ((line, "") if merged else ("", line)), reply
        finally:
            impostor.close()
        assert impostor.connections, "the CLI did pull, from what answered on the registry's port"
        assert any(registry.image == line["image"] for line in _pull_failures(caplog))
    finally:
        registry.stop()
        docker("rmi", registry.image)


@pytest.mark.docker
def test_an_image_the_named_registry_lacks_is_not_found(dockyter_server, test_image, tmp_path):
    registry = OwnRegistry(tmp_path, test_image)
    try:
        server = dockyter_server(pull="missing", allowed_registries=[registry.host])
        missing = f"{registry.host}/dockyter-pull/missing:1"
        reply = server.execute({"args": missing, "cmd": "true"}).json()
        assert (reply["exit_code"], reply["message"]) == (125, f"cannot pull {missing}: not found"), reply
    finally:
        registry.stop()


# -- on a Swarm: the server refuses before any service exists; a node's failed pull is one line -----


@pytest.mark.swarm
def test_a_swarm_server_refuses_a_registry_it_was_not_told_of(swarm_server, swarm_image):
    server = swarm_server(allowed_registries=["docker.io"])  # not the cluster's own registry
    registry = swarm_image.split("/", 1)[0]
    reply = server.execute({"args": swarm_image, "cmd": "true"})
    assert reply.status_code == 403
    assert reply.json() == {
        "detail": f"the image '{swarm_image}' is not allowed: its registry {registry} is not (allowed: docker.io)"
    }
    assert server.containers() == []


@pytest.mark.swarm
def test_a_node_that_cannot_pull_says_so_in_one_line(swarm_server, swarm_cluster, caplog):
    caplog.set_level(logging.WARNING, logger="dockyter.server")
    server = swarm_server(max_timeout=60)
    image = f"{swarm_cluster.registry}/no/such-image:1"
    reply = server.execute({"args": image, "cmd": "true"}).json()
    assert reply["exit_code"] == 125
    assert reply["stderr"] == (
        f"docker: cannot pull {image}: the node could not pull it (not found, access denied, or no answer)\n"
    )
    assert any(line["image"] == image for line in _pull_failures(caplog))
