"""A failed pull in one line: what kind of failure the engine's words are, and the CLI's own pull lines.

The engine's texts here are the ones it printed on this machine (docker CLI 28, engine 20.10)
for the requests of test_server_registries.py, which checks the same through a real server.
"""

from __future__ import annotations

import pytest

from dockyter.server.engine.pullerrors import CliPullLines, cli_pull_failure, summary, task_pull_failure

IMAGE = "127.0.0.1:5000/t/bash:1"
FAILED_RUN = (
    f"Unable to find image '{IMAGE}' locally\n"
    'docker: Error response from daemon: Get "http://127.0.0.1:5000/v2/": net/http: HTTP/1.x transport '
    'connection broken: malformed HTTP response "SECRET"\n'
    "\n"
    "Run 'docker run --help' for more information\n"
)
PULLED_RUN = (
    f"Unable to find image '{IMAGE}' locally\n"
    "1: Pulling from t/bash\n"
    "a3ed95caeb02: Pulling fs layer\n"
    "a3ed95caeb02: Download complete\n"
    "a3ed95caeb02: Pull complete\n"
    "Digest: sha256:f1b9cbd99ea77a921517c973454d99f2742a79bbdffce79268157fffaeffb654\n"
    f"Status: Downloaded newer image for {IMAGE}\n"
)


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ('Get "http://127.0.0.1:5000/v2/": malformed HTTP response "SECRET"', "the registry did not answer"),
        (
            'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
            "the registry did not answer",
        ),
        ('Get "https://x.example:5000/v2/": dial tcp: lookup x.example: no such host', "the registry did not answer"),
        (
            "Get https://r.example/v2/: net/http: request canceled (Client.Timeout exceeded)",
            "the registry did not answer",
        ),
        ("manifest for r:5000/t/missing:1 not found: manifest unknown: manifest unknown", "not found"),
        (
            "pull access denied for nope, repository does not exist or may require 'docker login'",
            "not found, or access denied",
        ),
        ("unauthorized: authentication required", "access denied"),
        ("toomanyrequests: You have reached your pull rate limit.", "the registry refused: too many requests"),
        ("write /var/lib/docker/tmp/x: no space left on device", "no space left on the server's engine"),
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock",
            "the server's container engine did not answer",
        ),
    ],
)
def test_the_kind_of_failure_and_nothing_of_the_answer(reason, kind):
    assert summary(reason) == kind


def test_a_failed_cli_pull_becomes_one_line_whatever_the_chunks():
    line = f"docker: cannot pull {IMAGE}: the registry did not answer\n".encode()
    whole = FAILED_RUN.encode()
    for size in (1, 3, 7, 64, len(whole)):
        lines = CliPullLines(IMAGE)
        shown = b"".join(lines.feed(whole[at : at + size]) for at in range(0, len(whole), size)) + lines.flush()
        assert shown == line, size
        assert lines.failure == f"cannot pull {IMAGE}: the registry did not answer"
    assert cli_pull_failure(IMAGE, FAILED_RUN) == f"cannot pull {IMAGE}: the registry did not answer"


def test_a_successful_cli_pull_leaves_only_the_containers_output():
    output = PULLED_RUN + "the container's own line\nUnable to find image 'x' locally\n"
    lines = CliPullLines(IMAGE)
    shown = b"".join(lines.feed(chunk.encode()) for chunk in output.splitlines(keepends=True)) + lines.flush()
    assert shown == b"the container's own line\nUnable to find image 'x' locally\n"
    assert lines.failure is None
    # With --pull always the CLI starts with the tag's line instead.
    always = PULLED_RUN.split("\n", 1)[1] + "ran\n"
    lines = CliPullLines(IMAGE)
    assert lines.feed(always.encode()) + lines.flush() == b"ran\n"


def test_output_that_cannot_be_a_pull_line_is_not_held_back():
    lines = CliPullLines(IMAGE)
    assert lines.feed(b"progress 10%") == b"progress 10%"  # no newline yet, and not a pull line: passed at once
    assert lines.feed(b"\rprogress 20%") == b"\rprogress 20%"
    held = CliPullLines(IMAGE)
    assert held.feed(b"Unable to fi") == b""  # could still be the CLI's: held until the line ends
    assert held.feed(b"nd a friend\n") == b"Unable to find a friend\n"
    assert held.flush() == b""
    long = CliPullLines(IMAGE)
    assert long.feed(b"Unable to find image '" + b"x" * 5000) != b""  # a line longer than the CLI's is not held


def test_a_swarm_task_without_its_image_is_one_line():
    said = task_pull_failure(IMAGE, f"No such image: {IMAGE}")
    assert said == f"cannot pull {IMAGE}: the node could not pull it (not found, access denied, or no answer)"
    assert task_pull_failure(IMAGE, "starting container failed: no such file") is None
