"""One-line explanations for exit codes that usually mean the runtime, not the command, failed."""

from __future__ import annotations

from collections.abc import Sequence

from .backends.base import EXIT_KILLED


def explain_exit(code: int, stderr_tail: str, shell: Sequence[str]) -> str | None:
    """A hint for ``code`` given the end of stderr, or None when the code speaks for itself."""
    tail = stderr_tail.lower()
    if "cannot connect to the docker daemon" in tail or "is the docker daemon running" in tail:
        return "no container engine answers: start the Docker daemon, or check DOCKER_HOST"
    if "permission denied" in tail and "docker.sock" in tail:
        return (
            "permission denied on the Docker socket: add your user to the 'docker' group, "
            "or set Dockyter.docker_command = ['sudo', 'docker']"
        )
    if "unable to find image" in tail or "pull access denied" in tail or "manifest unknown" in tail:
        return "the image is not available locally and could not be pulled: check its name, or build or pull it first"
    if code == 125:
        return "the container runtime refused to start the container: see its message above"
    if code == 126:
        return "the command in the container could not be executed (permission denied or not executable)"
    if code == 127:
        if shell and shell[0] in tail and ("executable file not found" in tail or "no such file" in tail):
            return (
                f"the image has no {shell[0]!r}: for images without bash, "
                "set %config Dockyter.shell = ['sh', '-c']"
            )
        return "command not found in the container"
    if code == EXIT_KILLED:
        return "the container was killed (SIGKILL), often because it ran out of memory"
    return None
