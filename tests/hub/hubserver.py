"""A real JupyterHub on 127.0.0.1, with its real proxy, configured by the recipe's own file.

``Hub.start`` runs ``jupyterhub`` on ``tests/hub/jupyterhub_config.py``, which loads
``docs/jupyterhub/jupyterhub_config.py`` unchanged. Users log in through the hub's REST API
(``POST /hub/api/users/NAME/tokens`` with their name and password, as any script can) and drive
everything else with the token they get, as JupyterLab drives it with its cookie.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from helpers import docker, wait_until

from dockyter.server.sessions.sessioncontainer import SERVER_SESSION_LABEL
from dockyter.wire.contract import SERVER_LABEL
from dockyter.wire.waiter import PRESTART_LABEL

HERE = Path(__file__).resolve().parent
RECIPE = HERE.parents[1] / "docs" / "jupyterhub" / "jupyterhub_config.py"
SERVER_CONFIG = HERE.parents[1] / "docs" / "jupyterhub" / "server.toml"  # the recipe's dockyter-server TOML
TEST_CONFIG = HERE / "jupyterhub_config.py"
START_TIMEOUT = 60.0  # seconds for the hub, or a single-user server, to answer
# Seconds for the hub to stop its servers and proxy after SIGTERM. It stops a server with SIGINT,
# then SIGTERM after 10 s and SIGKILL 5 s later (LocalProcessSpawner's timeouts), so a hanging
# server costs it 15 s.
STOP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HubError(AssertionError):
    """The hub answered something a test did not expect (its log's tail included)."""


@dataclass
class User:
    """A hub user logged in through the REST API: ``token`` is the API token they got."""

    name: str
    token: str
    hub: Hub

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A hub REST API request (``path`` below /hub/api) with this user's token."""
        return self.hub.api(method, path, token=self.token, **kwargs)

    @property
    def server_url(self) -> str:
        """The user's default single-user server, through the proxy."""
        return f"{self.hub.url}/user/{self.name}"

    def server(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to the user's single-user server (``path`` below /user/NAME), with their token."""
        headers = {"Authorization": f"token {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.server_url}{path}", headers=headers, timeout=30, **kwargs)

    def start_server(self) -> None:
        """Start the user's default server (if it is not running) and wait until the hub says it is ready."""
        if self.model().get("server"):
            return
        answer = self.api("POST", f"/users/{self.name}/server")
        if answer.status_code not in (201, 202):
            raise self.hub.error(f"starting {self.name}'s server", answer)
        if not wait_until(lambda: self.model().get("server"), timeout=START_TIMEOUT, interval=0.3):
            raise self.hub.error(f"{self.name}'s server did not become ready", answer)

    def stop_server(self) -> None:
        """Stop the user's default server and wait until the hub says it is gone."""
        answer = self.api("DELETE", f"/users/{self.name}/server")
        if answer.status_code not in (202, 204):
            raise self.hub.error(f"stopping {self.name}'s server", answer)
        if not wait_until(lambda: not self.model().get("servers"), timeout=STOP_TIMEOUT, interval=0.3):
            raise self.hub.error(f"{self.name}'s server did not stop", answer)

    def shut_down_kernels(self) -> None:
        """Shut down every kernel of the user's running server (as its Kernels panel's "Shut Down All" does)."""
        if not self.model().get("server"):
            return
        for kernel in self.server("GET", "/api/kernels").json():
            self.server("DELETE", f"/api/kernels/{kernel['id']}")

    def model(self) -> dict[str, Any]:
        answer = self.api("GET", f"/users/{self.name}")
        if answer.status_code != 200:
            raise self.hub.error(f"reading {self.name}'s model", answer)
        model: dict[str, Any] = answer.json()
        return model


@dataclass
class Hub:
    """A running hub: its public URL (the proxy), the users' shared password, its work folder."""

    work: Path
    singleuser_prefix: Path  # the Python environment of the single-user servers and their kernels
    password: str
    run_mark: str  # DOCKYTER_HUB_RUN, in the environment of every process the hub starts
    url: str = ""  # public: the proxy
    api_url: str = ""  # the hub's own API, as single-user servers and services reach it ($JUPYTERHUB_API_URL)
    service_url: str = ""  # dockyter-server, the hub's managed service "dockyter", as kernels reach it
    server_name: str = ""  # its server_name: the io.dockyter.server label of every container it makes
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.work / "jupyterhub.log"

    @classmethod
    def start(cls, work: Path, singleuser_prefix: Path, proxy_command: str, server_settings: dict[str, str]) -> Hub:
        """Start the hub; ``server_settings`` are dockyter-server settings that the test machine adds to
        the recipe's TOML file (through the service's environment, which wins over the file)."""
        hub = cls(work, singleuser_prefix, password=secrets.token_urlsafe(16), run_mark=secrets.token_hex(8))
        public_port = free_port()
        hub_port = free_port()
        service_port = free_port()
        hub.url = f"http://127.0.0.1:{public_port}"
        hub.api_url = f"http://127.0.0.1:{hub_port}/hub/api"
        hub.service_url = f"http://127.0.0.1:{service_port}"
        hub.server_name = f"hub-{hub.run_mark}"
        server_settings = {"server_name": hub.server_name, **server_settings}
        inherited = {name: value for name, value in os.environ.items() if not name.startswith("DOCKYTER_SERVER_")}
        environment = {
            **inherited,
            **{f"DOCKYTER_SERVER_{name.upper()}": value for name, value in server_settings.items()},
            "DOCKYTER_HUB_SERVICE_PORT": str(service_port),
            "DOCKYTER_HUB_SERVER_COMMAND": str(Path(sys.executable).parent / "dockyter-server"),
            "DOCKYTER_HUB_SERVER_CONFIG": str(SERVER_CONFIG),
            "DOCKYTER_HUB_RECIPE": str(RECIPE),
            "DOCKYTER_HUB_WORK": str(work),
            "DOCKYTER_HUB_SINGLEUSER_PREFIX": str(singleuser_prefix),
            "DOCKYTER_HUB_PUBLIC_PORT": str(public_port),
            "DOCKYTER_HUB_PORT": str(hub_port),
            "DOCKYTER_HUB_PROXY_API_PORT": str(free_port()),
            "DOCKYTER_HUB_PROXY_COMMAND": proxy_command,
            "DOCKYTER_HUB_PASSWORD": hub.password,
            "DOCKYTER_HUB_RUN": hub.run_mark,
            "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
        }
        with hub.log.open("wb") as log:
            hub.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(TEST_CONFIG)],
                cwd=work,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the test's Ctrl-C reaches the hub only through stop()
            )
        if not wait_until(lambda: hub._answers(f"{hub.url}/hub/api"), timeout=START_TIMEOUT, interval=0.3):
            hub.stop()
            raise HubError(f"the hub did not answer within {START_TIMEOUT:g} s:\n{hub.log_tail()}")
        if not wait_until(lambda: hub._answers(f"{hub.service_url}/health"), timeout=START_TIMEOUT, interval=0.3):
            hub.stop()
            raise HubError(f"the service dockyter did not answer within {START_TIMEOUT:g} s:\n{hub.log_tail()}")
        return hub

    def _answers(self, url: str) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise HubError(f"the hub exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return requests.get(url, timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        """A request to the hub's REST API, through the proxy (``path`` below /hub/api)."""
        headers = {"Authorization": f"token {token}"} if token else {}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs)

    def login(self, name: str) -> User:
        """Log ``name`` in with the shared password through the REST API: a new token of theirs."""
        auth = {"username": name, "password": self.password}
        answer = self.api("POST", f"/users/{name}/tokens", json={"auth": auth, "note": "dockyter tests"})
        if answer.status_code != 201:
            raise self.error(f"logging {name} in", answer)
        return User(name, answer.json()["token"], self)

    def kernel_pids(self, user: str) -> list[int]:
        """The process ids of the kernels of ``user``'s server."""
        return [pid for pid, command in marked_processes(self.run_mark, user) if "ipykernel_launcher" in command]

    def service(self, method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
        """A request to dockyter-server, the hub's service, as a kernel sends it: straight to its URL."""
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.service_url}{path}", headers=headers, timeout=30, **kwargs)

    def server_containers(self, prestarted: bool = False) -> list[str]:
        """The containers the service has now (running or not): executions and sessions, by their
        labels, whose value is ``server_name:instance``; with ``prestarted``, also those it started
        ahead of need (the recipe keeps the server's default, ``prestart = 1``), which no request
        has taken yet."""
        found = []
        for label in (SERVER_LABEL, SERVER_SESSION_LABEL):
            row = f'{{{{.Names}}}}\t{{{{.Label "{label}"}}}}\t{{{{.Label "{PRESTART_LABEL}"}}}}'
            answer = docker("ps", "-a", "--filter", f"label={label}", "--format", row)
            assert answer.returncode == 0, answer.stderr
            rows = (line.split("\t") for line in answer.stdout.splitlines())
            found += [
                name
                for name, value, waiting in rows
                if value.startswith(f"{self.server_name}:") and (prestarted or waiting != "1")
            ]
        return sorted(found)

    def service_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The JSON lines dockyter-server logged so far (a managed service writes to the hub's log)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
                message = record.get("message")
                if isinstance(message, str) and message.startswith("{"):  # an event of its own, as JSON
                    record.update(json.loads(message))
            except ValueError:
                continue
            if record.get("logger", "").startswith("dockyter") and (event is None or record.get("event") == event):
                found.append(record)
        return found

    def error(self, what: str, answer: requests.Response) -> HubError:
        return HubError(f"{what}: {answer.status_code} {answer.text[:500]}\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM: the hub stops every single-user server and the proxy, then exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise HubError(f"the hub did not stop within {STOP_TIMEOUT:g} s:\n{self.log_tail()}") from None


def marked_processes(mark: str, user: str | None = None) -> list[tuple[int, str]]:
    """Processes (pid, command line) whose environment has DOCKYTER_HUB_RUN=``mark``.

    With ``user``: only those of that hub user's server (JUPYTERHUB_USER), its kernels included.
    """
    wanted = {f"DOCKYTER_HUB_RUN={mark}".encode()}
    if user is not None:
        wanted.add(f"JUPYTERHUB_USER={user}".encode())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not wanted <= set((entry / "environ").read_bytes().split(b"\0")):
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if command:  # a zombie has no command line: it is gone, only not yet reaped
            found.append((int(entry.name), command))
    return found
