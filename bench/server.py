"""A real ``dockyter-server`` in its own process, as a platform team would run it.

It is started as ``python -m dockyter.server --config FILE`` (what the ``dockyter-server``
command runs) on 127.0.0.1 with a fresh token and its own ``server_name``, so its start-up
clean-up never touches anyone else's containers. Everything else keeps the server's defaults
(network none, memory and CPU limits, dropped capabilities...) except what a figure needs:
``max_concurrent`` for 32 executions at once, ``max_output_bytes`` for 200 MB of output,
``allowed_mounts`` for the latency FIFO.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _toml_value(value: Any) -> str:
    return json.dumps(value)  # strings, numbers, booleans and string arrays are spelled alike in TOML


@dataclass
class BenchServer:
    """``with BenchServer(workdir, max_concurrent=64) as server:`` then ``server.url``, ``server.token``."""

    workdir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    token: str = field(default_factory=lambda: "bench-" + secrets.token_urlsafe(24))
    name: str = field(default_factory=lambda: "bench-" + secrets.token_hex(4))
    url: str = ""
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """Everything written to the server's config file."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "tokens": [f"bench:{self.token}"],
            "server_name": self.name,
            # Figures 1-14 measure a container made for each execution, as they always did;
            # figure 15 asks for prestarted ones.
            "prestart": 0,
            **self.overrides,
        }

    def start(self) -> BenchServer:
        self.port = free_port()
        settings = self.settings
        config = self.workdir / f"{self.name}.toml"
        config.write_text("".join(f"{key} = {_toml_value(value)}\n" for key, value in settings.items()))
        log = open(self.workdir / f"{self.name}.log", "wb")  # noqa: SIM115 - the server writes it until it stops
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYTER_SERVER_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dockyter.server", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=environment,
            start_new_session=True,
        )
        log.close()
        self.url = f"http://127.0.0.1:{settings['port']}"
        deadline = time.monotonic() + START_TIMEOUT
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dockyter-server did not start: {self.log_tail()}")
            time.sleep(0.05)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as answer:
                return 200 <= answer.status < 300
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, size: int = 1500) -> str:
        try:
            return (self.workdir / f"{self.name}.log").read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    def executions(self) -> list[dict[str, Any]]:
        """The server's log record of each execution so far (its JSON log lines with ``"event": "execution"``)."""
        records = []
        try:
            text = (self.workdir / f"{self.name}.log").read_text(errors="replace")
        except OSError:
            return []
        for line in text.splitlines():
            if '"execution"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == "execution":
                records.append(record)
        return records

    def stop(self) -> None:
        """SIGTERM (the server then stops and removes its running containers), SIGKILL if it hangs."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_argv(self, image: str, command: str) -> list[str] | None:
        """The ``docker run`` argv of what this server runs for ``command`` in ``image`` (None if unknown).

        Built with the server's own policy and executor code, with the same settings: the
        server's ``docker create`` argv as one ``docker run``, without the check of what the
        engine made that the server runs between create and start (figure 13 measures it).
        """
        try:
            from dockyter.server.engine.engineexecutor import EngineExecutor
            from dockyter.server.engine.execution import Execution
            from dockyter.server.policy.requestpolicy import Policy
            from dockyter.server.settings.sources import load_settings

            settings = load_settings(["--config", str(self.workdir / f"{self.name}.toml")], environ={})
            plan = Policy(settings).check(image, None)
            argv = Execution(EngineExecutor(settings), plan, command, settings.max_timeout, False, "bench").argv()
            verb = len(settings.docker_command)
            return [*argv[:verb], "run", *argv[verb + 1 :]]
        except Exception:  # noqa: BLE001 - the control comparison is optional; say so in the report
            return None
