"""The bare runtime side of every comparison, and the bookkeeping around containers.

A bare run is what a user would type in a terminal: ``docker run --rm IMAGE bash -lc CMD``,
started directly with :mod:`subprocess`. It also carries ``--label io.dockyter.bench=RUN`` so
that the benchmark finds and removes anything it started, whatever happens. RUN identifies
one benchmark run (``$DOCKYTER_BENCH_RUN``, set by run.py for its workers): two runs sharing
an engine (a smoke test in a test suite, say) never remove each other's containers.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

BENCH_LABEL = "io.dockyter.bench"
RUN_VARIABLE = "DOCKYTER_BENCH_RUN"
MANAGED_LABEL = "io.dockyter.managed"  # dockyter.wire.contract.MANAGED_LABEL: on every container Dockyter starts
OWNER_LABEL = "io.dockyter.owner"
SERVER_LABEL = "io.dockyter.server"
DEFAULT_IMAGE = "dockyter-test/bash:1"

# A line of printable ASCII, repeated; the output figures send N copies of a 1 MB block of it.
LINE = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
BLOCK_BYTES = 1_000_000


def docker(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``docker ARGS``, output captured as text; never raises on a non-zero exit."""
    return subprocess.run(
        ["docker", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_id() -> str:
    """This benchmark run's id: the value of the bench label on everything it starts."""
    return os.environ.get(RUN_VARIABLE) or "manual"


def bare_argv(image: str, command: str, extra: Sequence[str] = (), cli: str = "docker") -> list[str]:
    """What a user would type for one command in a fresh container (plus our cleanup label)."""
    return [cli, "run", "--rm", "--label", f"{BENCH_LABEL}={run_id()}", *extra, image, "bash", "-lc", command]


def run_bare(argv: Sequence[str], *, stdout: int | None = subprocess.DEVNULL, timeout: float = 300.0) -> float:
    """Run ``argv`` to its end; return the seconds it took. Raises if it fails."""
    start = time.perf_counter()
    done = subprocess.run(
        list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)} exited with {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}"
        )
    return seconds


def output_command(blocks: int) -> str:
    """A shell command printing ``blocks`` MB of text fast (``cat`` of a 1 MB file, not ``yes``'s 63-byte writes)."""
    return (
        f"yes {LINE} | head -c {BLOCK_BYTES} > /tmp/block; "
        f"i=0; while [ $i -lt {blocks} ]; do cat /tmp/block; i=$((i+1)); done"
    )


def relabel(argv: Sequence[str], name: str) -> list[str]:
    """Dockyter's own ``docker run`` argv, made runnable directly: a fresh ``--name``, and
    Dockyter's labels swapped for the benchmark's (same number of flags, so the same cost)."""
    out = list(argv)
    for index, word in enumerate(out[:-1]):
        if word == "--name":
            out[index + 1] = name
        elif word == "--label" and out[index + 1].startswith("io.dockyter."):
            key = out[index + 1].split("=", 1)[0]
            suffix = "" if key == MANAGED_LABEL else "." + key.rsplit(".", 1)[-1]
            out[index + 1] = f"{BENCH_LABEL}{suffix}={run_id()}"
    return out


def bench_container_name() -> str:
    return "dockyter-bench-" + os.urandom(6).hex()


# -- finding and removing what we started -------------------------------------------------------

# A container of rootful podman's (figure 19) is named "podman:NAME" in the lists below.
PODMAN = "podman:"


def podman_here() -> bool:
    """Whether rootful podman can be asked (installed, and this process is root)."""
    return shutil.which("podman") is not None and os.geteuid() == 0


def podman(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``podman ARGS`` (rootful), output captured as text; never raises on a non-zero exit."""
    return subprocess.run(
        ["podman", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
    )


def containers(label_filter: str) -> dict[str, dict[str, str]]:
    """Containers (running or not) matching ``label_filter``, with their Dockyter labels."""
    fmt = "\t".join(
        ["{{.Names}}", f'{{{{.Label "{OWNER_LABEL}"}}}}', f'{{{{.Label "{SERVER_LABEL}"}}}}', "{{.Status}}"]
    )
    answer = docker("ps", "-a", "--filter", f"label={label_filter}", "--format", fmt)
    found = {}
    for row in answer.stdout.splitlines():
        name, owner, server, status = (row.split("\t") + ["", "", "", ""])[:4]
        if name:
            found[name] = {"owner": owner, "server": server, "status": status}
    if podman_here():
        found.update({PODMAN + name: labels for name, labels in podman_containers(label_filter).items()})
    return found


def podman_containers(label_filter: str) -> dict[str, dict[str, str]]:
    """The same from rootful podman, whose ``ps`` has no ``.Label``: listed, then inspected."""
    names = podman("ps", "-a", "--filter", f"label={label_filter}", "--format", "{{.Names}}").stdout.split()
    if not names:
        return {}
    fmt = "\t".join(
        ["{{.Name}}", f'{{{{index .Config.Labels "{OWNER_LABEL}"}}}}', f'{{{{index .Config.Labels "{SERVER_LABEL}"}}}}']
    )
    found = {}
    for row in podman("container", "inspect", "--format", fmt, *names).stdout.splitlines():
        name, owner, server = (row.split("\t") + ["", "", ""])[:3]
        if name:
            found[name] = {"owner": owner, "server": server, "status": ""}
    return found


def ours(owner_ids: Sequence[str], server_prefixes: Sequence[str]) -> list[str]:
    """Containers this benchmark run started: its bare ones, and Dockyter's owned by one of its
    workers or started by one of its servers (whose names begin with one of ``server_prefixes``)."""
    names = set(containers(f"{BENCH_LABEL}={run_id()}"))
    for name, labels in containers(MANAGED_LABEL).items():
        if labels["owner"] in owner_ids or any(labels["server"].startswith(p) for p in server_prefixes if p):
            names.add(name)
    return sorted(names)


def remove(names: Sequence[str]) -> None:
    on_podman = [name.removeprefix(PODMAN) for name in names if name.startswith(PODMAN)]
    on_docker = [name for name in names if not name.startswith(PODMAN)]
    if on_docker:
        docker("rm", "-f", *on_docker)
    if on_podman:
        podman("rm", "--force", "--time", "0", "--ignore", *on_podman)


def settle_and_collect(owner_ids: Sequence[str], server_prefixes: Sequence[str], wait: float = 10.0) -> list[str]:
    """Our containers still there after ``wait`` seconds (``--rm`` removal is asynchronous)."""
    deadline = time.monotonic() + wait
    while True:
        left = ours(owner_ids, server_prefixes)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.5)


# -- checks and facts ---------------------------------------------------------------------------------


def engine_problem(image: str) -> str | None:
    """Why the benchmark cannot run (no engine, no image), or None."""
    try:
        answer = docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"no container engine answers `docker info` ({error}); bash .ci/provision starts one"
    if answer.returncode != 0:
        return (
            f"no container engine answers `docker info`: {answer.stderr.strip()[-300:]} (bash .ci/provision starts one)"
        )
    if docker("image", "inspect", image).returncode != 0:
        return f"the image {image} is missing (bash .ci/provision builds it)"
    return None


def machine() -> dict[str, str]:
    """The machine the numbers came from."""
    facts: dict[str, str] = {}
    facts["cores"] = str(os.cpu_count())
    cpu = _first_match(Path("/proc/cpuinfo"), "model name")
    if cpu:
        facts["cpu"] = cpu
    memory = _first_match(Path("/proc/meminfo"), "MemTotal")
    if memory:
        facts["memory"] = f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB"
    facts["kernel"] = platform.release()
    server = docker("version", "--format", "{{.Server.Version}}")
    client = docker("version", "--format", "{{.Client.Version}}")
    facts["engine"] = f"Docker Engine {server.stdout.strip() or '?'} (CLI {client.stdout.strip() or '?'})"
    info = docker(
        "info",
        "--format",
        "{{.Driver}} storage, cgroup {{.CgroupVersion}} ({{.CgroupDriver}}), runtime {{.DefaultRuntime}}",
    )
    if info.returncode == 0:
        facts["engine setup"] = info.stdout.strip()
    if podman_here():  # figure 19
        version = podman("version", "--format", "{{.Client.Version}}").stdout.strip() or "?"
        setup = podman("info", "--format", "{{.Store.GraphDriverName}} storage, {{.Host.OCIRuntime.Name}}")
        facts["podman"] = f"podman {version} (rootful), {setup.stdout.strip() or '?'}"
    facts["python"] = platform.python_version()
    try:
        import IPython

        facts["ipython"] = IPython.__version__
    except ImportError:  # pragma: no cover
        pass
    return facts


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _first_match(path: Path, key: str) -> str | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
