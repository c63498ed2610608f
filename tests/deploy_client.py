"""A notebook's side of the deployment test, run inside the test cluster's network.

tests/server/swarm/test_swarm_deploy.py runs this program in the network namespace of the cluster's hub
(the addresses of the deployed proxy exist only there), with an /etc/hosts of its own that
names the proxy's node ``dockyter.example.org``. It prints one JSON object per line, each as
soon as it happens, so that the test can act while a run is still going:

    deploy_client.py cell URL CA TOKEN ARGS CMD       the real Dockyter API client runs CMD:
                                                      {"stdout"|"stderr": TEXT} per chunk, then
                                                      {"exit_code": N, "reason": ..., "message": ...}
                                                      or {"error": MESSAGE}, the client's one line
    deploy_client.py request METHOD URL CA [TOKEN] [JSON]
                                                      one plain HTTPS request: {"status": N, "body": ...}

CA is the certificate of the authority that signed the proxy's certificate: TLS is verified.
"""

from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any

from dockyter.backends.api.apibackend import APIBackend
from dockyter.backends.base import RunRequest
from dockyter.backends.settings import StaticSettings
from dockyter.errors import DockyterError
from dockyter.output import OutputSink, Stream
from dockyter.wire.dockerargs import parse_run_args


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


class LineSink(OutputSink):
    """Every chunk, as it arrives, as one JSON line on stdout."""

    def __init__(self) -> None:
        super().__init__(show=False)

    def write(self, stream: Stream, text: str) -> None:
        if text:
            emit({stream: text})


def cell(url: str, ca: str, token: str, args: str, command: str) -> None:
    backend = APIBackend(StaticSettings(api_url=url, api_token=token, api_ca_bundle=ca))
    try:
        result = backend.run(RunRequest(parse_run_args(args), command), LineSink())
    except DockyterError as error:  # what a notebook shows as one line
        emit({"error": str(error)})
        return
    finally:
        backend.close()
    emit({"exit_code": result.exit_code, "reason": result.reason, "message": result.message})


def request(method: str, url: str, ca: str, token: str = "", body: str = "") -> None:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    prepared = urllib.request.Request(url, data=body.encode() or None, headers=headers, method=method)
    context = ssl.create_default_context(cafile=ca)
    try:
        with urllib.request.urlopen(prepared, context=context, timeout=30) as reply:
            status, text = reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    emit({"status": status, "body": json.loads(text) if text else None})


if __name__ == "__main__":
    what, *rest = sys.argv[1:]
    {"cell": cell, "request": request}[what](*rest)
