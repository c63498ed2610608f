"""Docker's CLI or podman's: what the docker backend asks of each engine, and how podman's answers are read."""

from __future__ import annotations

import pytest

from dockyter.backends.docker.flavour import DOCKER, Flavour, flavour_of, init_exit_status, top_memory
from dockyter.wire import labelled
from dockyter.wire.dockerargs import parse_run_args
from dockyter.wire.pull import PullFailed, PullProgress, cli_line_messages, cli_reason

PODMAN = Flavour(podman=True)
ROOTLESS = Flavour(podman=True, rootless=True)


@pytest.mark.docker
def test_each_engine_is_told_apart(engine):
    flavour = flavour_of(engine.command)
    assert (flavour.podman, flavour.rootless) == (engine.is_podman, engine.rootless)


def test_a_cli_that_cannot_be_asked_counts_as_dockers_and_is_asked_again():
    assert flavour_of(["no-such-container-cli"]) is DOCKER


def test_podman_removes_at_once_and_whatever_is_already_gone():
    assert DOCKER.remove_argv() == ("rm", "--force", "--volumes")
    assert PODMAN.remove_argv() == ("rm", "--force", "--volumes", "--time", "0", "--ignore")


def test_podman_interrupts_from_inside_unless_the_pid_namespace_is_shared():
    own = parse_run_args("-e A=1 img:1")
    assert DOCKER.interrupt_argv("c", own) == ("kill", "--signal", "INT", "c")
    assert PODMAN.interrupt_argv("c", own) == ("exec", "c", "sh", "-c", "kill -INT -1")
    # `kill -1` in the host's pid namespace would signal every process the container may signal
    assert PODMAN.interrupt_argv("c", parse_run_args("--pid host img:1")) == ("kill", "--signal", "INT", "c")
    assert PODMAN.interrupt_argv("c", parse_run_args("--pid=container:db img:1"))[0] == "kill"
    assert PODMAN.interrupt_argv("c", parse_run_args("--pid private img:1"))[0] == "exec"


def test_image_names_as_users_write_them():
    assert PODMAN.image_name("localhost/dockyter-test/bash:1") == "dockyter-test/bash:1"
    assert PODMAN.image_name("docker.io/library/ubuntu:24.04") == "docker.io/library/ubuntu:24.04"
    # for Docker, localhost/ names a registry: another image
    assert DOCKER.image_name("localhost/tool:1") == "localhost/tool:1"


def test_only_rootless_podman_needs_keep_id_for_as_me():
    assert (DOCKER.as_me_userns(), PODMAN.as_me_userns(), ROOTLESS.as_me_userns()) == (None, None, "keep-id")


def test_catatonits_failure_to_start_the_shell_is_127_or_126():
    missing = "ERROR (catatonit:6): failed to exec pid1: No such file or directory\n"
    assert init_exit_status(1, missing) == 127
    assert init_exit_status(1, "ERROR (catatonit:6): failed to exec pid1: Permission denied\n") == 126
    assert init_exit_status(1, "something else failed\n") == 1  # a command's own status 1
    assert init_exit_status(2, missing) == 2  # catatonit says it with status 1 only


def test_memory_from_podman_top():
    assert top_memory("RSS\n1356\n2048\n") == "3.3MiB"
    assert top_memory("RSS\n") is None
    assert top_memory("Error: no such container\n") is None


def test_labels_read_from_either_inspect():
    listing = labelled.names("dockyter-a\ndockyter-b\n")
    assert labelled.inspect_argv("io.dockyter.owner", listing)[-2:] == ["dockyter-a", "dockyter-b"]
    docker_says = "/dockyter-a\thost:1:2\n/dockyter-b\t<no value>\n"
    podman_says = "dockyter-a\thost:1:2\ndockyter-b\t\n"
    assert labelled.values(docker_says) == labelled.values(podman_says) == {"dockyter-a": "host:1:2", "dockyter-b": ""}


def test_podman_pull_lines_count_layers_without_saying_which_were_new():
    lines = """Trying to pull 127.0.0.1:5000/pt/img:1...
Getting image source signatures
Copying blob sha256:4e8cb278fd47239d6b51d8c612270262c16a16ab4ccd74209d84015eacf4d5bd
Copying blob sha256:85d2753366136b88e6787fc521677b8f6ba173526de534bfeaf3f50219908d4d
Copying config sha256:bcd366a4aeec2aa3aa973ad2b39ead670354e961634e0794ed1c2a25981b6545
Writing manifest to image destination
Storing signatures
bcd366a4aeec2aa3aa973ad2b39ead670354e961634e0794ed1c2a25981b6545""".splitlines()
    progress, started, seen = PullProgress("127.0.0.1:5000/pt/img:1"), [], []
    for line in lines:
        for message in cli_line_messages(line, started):
            progress.feed(message)
        seen.append(progress.line())
    assert seen[3] == "pulling 127.0.0.1:5000/pt/img:1: 0/2 layers"
    assert seen[-1] == "pulling 127.0.0.1:5000/pt/img:1: 2/2 layers"
    assert progress.summary().startswith("pulled 127.0.0.1:5000/pt/img:1: 2 layers in ")
    assert "layers_new" not in progress.event(done=True)


def test_a_pull_lines_failure_is_its_reason_and_no_layer():
    failure = "Error: initializing source docker://h/x:1: reading manifest 1 in h/x: manifest unknown: manifest unknown"
    assert cli_line_messages(failure, []) == []
    assert (
        cli_reason(failure)
        == "initializing source docker://h/x:1: reading manifest 1 in h/x: manifest unknown: manifest unknown"
    )
    assert cli_reason("Error response from daemon: manifest for x:1 not found") == "manifest for x:1 not found"
    assert cli_line_messages("abc123: Pull complete", []) == [{"id": "abc123", "status": "Pull complete"}]
    with pytest.raises(PullFailed, match="boom"):
        PullProgress("x:1").feed({"error": "boom"})


def test_podmans_api_service_ends_new_layers_at_download_complete():
    progress = PullProgress("x:1")
    for message in [
        {"status": "Already exists", "id": "aaa"},
        {"status": "Pulling fs layer", "id": "bbb"},
        {"status": "Download complete", "id": "bbb"},
    ]:
        progress.feed(message)
    assert progress.summary().startswith("pulled x:1: 2 layers (1 new) in ")
