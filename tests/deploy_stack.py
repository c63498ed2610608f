"""docs/deploy/ deployed for real on the test cluster of ``.ci/cluster``, for tests/server/swarm/test_swarm_deploy.py.

What an operator does by README.md, done by a test: the server and proxy images pushed to the
cluster's registry, a throwaway certificate authority and a certificate for
``dockyter.example.org``, a tokens file, and ``docker stack deploy`` of the shipped stack file
with its variables set (images, allowed images, the node's engine socket). Notebook requests
come from inside the cluster's network (the hub's namespace) through the proxy, with TLS
verified, by ``deploy_client.py``.

``remove`` undoes all of it: the stack (services, network, secrets, config), and the images on
every node. The registry keeps the pushed images (it lives and dies with the cluster, and
nothing else reads those names).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster import Cluster
from helpers import docker, wait_until

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "docs" / "deploy"
CLIENT = Path(__file__).resolve().parent / "deploy_client.py"
HOST_NAME = "dockyter.example.org"  # the shipped Caddyfile's; the client's own /etc/hosts maps it to the proxy
URL = f"https://{HOST_NAME}"
# The images .ci/images builds (bash .ci/images --all), and their names in the cluster's registry.
SERVER_IMAGE = "dockyter-test/server:1"
PROXY_IMAGE = "dockyter-test/caddy:1"
READY_TIMEOUT = 90.0  # seconds for the replicas and the proxy to answer through TLS
GONE_TIMEOUT = 60.0  # seconds for the stack's containers and network to leave the nodes


def image_problem() -> str | None:
    """Why the deployment's images cannot be used (missing, or the server's built from other source)."""
    for image in (SERVER_IMAGE, PROXY_IMAGE):
        if docker("image", "inspect", image).returncode != 0:
            return f"the image {image} is missing: bash .ci/images --all builds it"
    built = docker("image", "inspect", "--format", '{{index .Config.Labels "io.dockyter.source-sha256"}}', SERVER_IMAGE)
    source = subprocess.run(
        ["bash", str(DEPLOY / "build-server-image.sh"), "--source-sha256"], capture_output=True, text=True
    )
    if built.stdout.strip() != source.stdout.strip():
        return f"the image {SERVER_IMAGE} holds another version of the package: bash .ci/images --all rebuilds it"
    return None


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``command``, its output captured; AssertionError with its stderr when it fails."""
    answer = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, **kwargs)
    assert answer.returncode == 0, f"{' '.join(command[:4])} ...: {answer.stderr.strip()}"
    return answer


def make_certificates(work: Path) -> None:
    """ca.crt, and tls.crt / tls.key for HOST_NAME signed by it (openssl, valid one day)."""
    (work / "san.cnf").write_text(f"subjectAltName=DNS:{HOST_NAME}\n")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=dockyter test CA",
         "-keyout", "ca.key", "-out", "ca.crt"], cwd=work)  # fmt: skip
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST_NAME}",
         "-keyout", "tls.key", "-out", "tls.csr"], cwd=work)  # fmt: skip
    run(["openssl", "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "1", "-extfile", "san.cnf", "-out", "tls.crt"], cwd=work)  # fmt: skip


@dataclass
class Deployment:
    """The deployed stack, and a notebook's view of it from inside the cluster's network."""

    cluster: Cluster
    stack: str
    work: Path  # the stack file's directory: tokens, certificates, the client's hosts file
    token: str  # alice's
    images: tuple[str, ...]  # the registry's names of the server and proxy images

    # -- set-up ----------------------------------------------------------------------------------

    @classmethod
    def prepare(cls, cluster: Cluster, work: Path) -> Deployment:
        """The files beside the stack file, as README.md asks for; nothing on the cluster yet."""
        registry = cluster.registry
        images = (f"{registry}/dockyter-deploy/server:1", f"{registry}/dockyter-deploy/proxy:1")
        deployment = cls(cluster, "dyt-deploy-" + secrets.token_hex(3), work, secrets.token_hex(16), images)
        for name in ("dockyter-stack.yml", "Caddyfile"):
            (work / name).write_text((DEPLOY / name).read_text())
        (work / "tokens.txt").write_text(f"alice:{deployment.token}\n")
        make_certificates(work)
        return deployment

    def deploy(self) -> None:
        """Push the images, then ``docker stack deploy`` the shipped file with its variables set."""
        self.push_images()
        environment = {
            **os.environ,
            "DOCKYTER_SERVER_IMAGE": self.images[0],
            "DOCKYTER_PROXY_IMAGE": self.images[1],
            "DOCKYTER_ALLOWED_IMAGES": f"{self.cluster.registry}/dockyter-test/*",
            # The cluster's registry is on a private network: pulled from only when named.
            "DOCKYTER_ALLOWED_REGISTRIES": self.cluster.registry,
            # The manager's own engine: on this cluster's nodes /var/run/docker.sock is the host's.
            "DOCKYTER_ENGINE_SOCKET": self.cluster.host.removeprefix("unix://"),
            # The test nodes run with --bridge none: the faster isolation, checked in each task by
            # the image's own loopback check (the default, overlay, is what the other Swarm tests use).
            "DOCKYTER_SWARM_ISOLATION": "nodes",
        }
        command = [*self.cluster.docker_command, "stack", "deploy", "--compose-file", "dockyter-stack.yml", self.stack]
        run(command, cwd=self.work, env=environment)

    def push_images(self) -> None:
        """The local images into the manager (``docker save | load``), then into the registry."""
        manager = self.cluster.docker_command
        saved = subprocess.Popen(["docker", "save", SERVER_IMAGE, PROXY_IMAGE], stdout=subprocess.PIPE)
        loaded = subprocess.run([*manager, "load", "-q"], stdin=saved.stdout, capture_output=True, text=True)
        assert saved.wait() == 0 and loaded.returncode == 0, f"loading the images into the manager: {loaded.stderr}"
        for local, remote in zip((SERVER_IMAGE, PROXY_IMAGE), self.images, strict=True):
            run([*manager, "tag", local, remote])
            run([*manager, "push", "-q", remote])

    def wait_ready(self) -> None:
        """Until both replicas and the proxy run and a request through the proxy reaches a replica."""

        def tasks_running() -> bool:
            states = self.tasks("server") + self.tasks("proxy")
            return len(states) == 3 and all(state.startswith("Running") for _, state in states)

        assert wait_until(tasks_running, timeout=READY_TIMEOUT, interval=1.0), f"not running: {self.describe()}"
        (self.work / "hosts").write_text(f"127.0.0.1 localhost\n{self.proxy_address()} {HOST_NAME}\n")
        answered = wait_until(
            lambda: self.request("GET", "/health").get("status") == 200, timeout=READY_TIMEOUT, interval=1.0
        )
        assert answered, f"{URL}/health does not answer through the proxy: {self.describe()}"

    # -- what Swarm made of it ----------------------------------------------------------------------

    def tasks(self, service: str) -> list[tuple[str, str]]:
        """(node, current state) of the tasks of a service of the stack that should be running."""
        command = ["service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}}\t{{.CurrentState}}"]
        # A manager busy with other tests' services may fail a request now and then: ask again.
        for _ in range(3):
            answer = self.cluster.docker(*command, f"{self.stack}_{service}")
            if answer.returncode == 0:
                break
            time.sleep(1.0)
        assert answer.returncode == 0, f"docker service ps {self.stack}_{service}: {answer.stderr.strip()}"
        rows = (line.partition("\t") for line in answer.stdout.splitlines())
        return [(node, state) for node, tab, state in rows if tab]

    def replica_container(self, slot: str) -> str:
        """The running container of server replica ``slot`` (on the manager, where replicas run)."""
        answer = self.cluster.docker(
            "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.stack}_server",
            "--filter", f"name={self.stack}_server.{slot}.",
        )  # fmt: skip
        return answer.stdout.strip()

    def proxy_address(self) -> str:
        """The address of the node the proxy runs on: it publishes port 443 there (host mode)."""
        node = self.tasks("proxy")[0][0]
        return self.cluster.docker("node", "inspect", "--format", "{{.Status.Addr}}", node).stdout.strip()

    def describe(self) -> str:
        """The stack's tasks and the last lines the servers logged, to explain a failure."""
        tasks = self.cluster.docker(
            "stack", "ps", "--no-trunc", "--format", "{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}", self.stack
        )
        logs = self.cluster.docker("service", "logs", "--tail", "10", f"{self.stack}_server")
        return "\n".join(
            text.strip() for text in (tasks.stdout, tasks.stderr, logs.stdout, logs.stderr) if text.strip()
        )

    # -- a notebook, inside the cluster's network --------------------------------------------------

    def client(self, *args: str) -> subprocess.Popen[str]:
        """deploy_client.py ARGS in the hub's network namespace, with HOST_NAME naming the proxy.

        ``ip netns exec`` gives the command a mount namespace of its own: the hosts file is
        bound over /etc/hosts there only.
        """
        command = [
            "ip", "netns", "exec", "dyt-hub", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
            str(self.work / "hosts"), sys.executable, str(CLIENT), *args,
        ]  # fmt: skip
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def start_cell(self, image: str, command: str) -> subprocess.Popen[str]:
        """The real Dockyter API client runs ``command``; read its records with ``next_record``."""
        return self.client("cell", URL, str(self.work / "ca.crt"), self.token, image, command)

    def cell(self, image: str, command: str) -> list[dict[str, Any]]:
        process = self.start_cell(image, command)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"the client failed: {err.strip()}"
        return [json.loads(line) for line in out.splitlines()]

    def request(self, method: str, path: str, *, token: str = "", body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One HTTPS request through the proxy: {"status": N, "body": ...}; {} when none could be made."""
        args = ["request", method, URL + path, str(self.work / "ca.crt"), token, json.dumps(body) if body else ""]
        process = self.client(*args)
        out, _ = process.communicate(timeout=60)
        return json.loads(out) if process.returncode == 0 and out else {}

    # -- tear-down -------------------------------------------------------------------------------

    def remove(self) -> list[str]:
        """Remove the stack and the images from every node; returns what is still there after."""
        self.cluster.docker("stack", "rm", self.stack)
        namespace = f"label=com.docker.stack.namespace={self.stack}"

        def left() -> list[str]:
            found = []
            for kind in ("service", "network", "secret", "config"):
                names = self.cluster.docker(kind, "ls", "-q", "--filter", namespace).stdout.split()
                found += [f"{kind} {name}" for name in names]
            for node in self.cluster.nodes:
                names = self.cluster.docker("ps", "-aq", "--filter", namespace, node=node).stdout.split()
                found += [f"container {name} on {node}" for name in names]
            return found

        wait_until(lambda: not left(), timeout=GONE_TIMEOUT, interval=1.0)
        for node in self.cluster.nodes:
            # A task's image is pulled by digest: listed by repository, its tag shows as <none>.
            repositories = [image.rsplit(":", 1)[0] for image in self.images] + [SERVER_IMAGE, PROXY_IMAGE]
            ids = {
                i for repo in repositories for i in self.cluster.docker("images", "-q", repo, node=node).stdout.split()
            }
            if ids:
                self.cluster.docker("image", "rm", "--force", *sorted(ids), node=node)
        return left()
