"""A minimal Dockyter-compatible API server: the original contract and nothing more.

    python examples/minimal_server.py [--host 127.0.0.1] [--port 8000]

then, in a notebook: ``%docker_backend api http://127.0.0.1:8000``.

EXAMPLE FOR TRUSTED LOCAL USE ONLY. It has no authentication and no policy: whoever can
reach it can run any image with any ``docker run`` flag (``--privileged``, ``-v /:/host``),
which is root on this machine. It listens on 127.0.0.1 by default; do not expose it.
For anything shared, run ``dockyter-server`` instead (tokens, policy, streaming, cancel).

It is meant as a starting point for your own backend (a job queue, Kubernetes, ...): the
whole contract is two endpoints,

* ``GET /health``: any 2xx answer means "available";
* ``POST /execute`` with JSON ``{"cmd": ..., "args": ...}``: run ``cmd`` with ``bash -lc``
  in a fresh container made from ``args`` (docker options, then the image), and answer
  JSON ``{"stdout": ..., "stderr": ...}`` once it is done.

The Dockyter client also works with such a server, only with less: output arrives when the
command ends, the exit status is taken as 0, and an interrupt can only close the connection
(this server then lets the command run to its end). See docs/api.md for the extensions.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def run_in_container(cmd: str, args: str) -> dict[str, str]:
    """``docker run --rm ARGS bash -lc CMD``, from an argv list: no host shell ever sees the text."""
    argv = [
        "docker", "run", "--rm",
        "--label", "io.dockyter.managed=1",  # lets `docker ps --filter label=...` find leftovers
        *shlex.split(args),  # options then the image, split as a POSIX shell would
        "bash", "-lc", cmd,
    ]  # fmt: skip
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    return {"stdout": done.stdout, "stderr": done.stderr}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self.reply(200, {"status": "ok"})
        else:
            self.reply(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        if self.path != "/execute":
            self.reply(404, {"detail": "Not Found"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            cmd, args = body["cmd"], body["args"]
            if not isinstance(cmd, str) or not isinstance(args, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self.reply(422, {"detail": 'expected JSON {"cmd": "...", "args": "..."}'})
            return
        try:
            result = run_in_container(cmd, args)
        except ValueError as error:  # shlex: unbalanced quotes in args
            self.reply(400, {"detail": f"cannot split args: {error}"})
            return
        except FileNotFoundError:
            self.reply(503, {"detail": "the docker CLI is not installed on the server"})
            return
        self.reply(200, result)

    def reply(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description="Minimal Dockyter API server (trusted local use only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    options = parser.parse_args()
    server = ThreadingHTTPServer((options.host, options.port), Handler)  # one thread per request
    print(f"minimal Dockyter API on http://{options.host}:{server.server_address[1]} (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
