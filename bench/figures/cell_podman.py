"""Figure 19: ``%%docker IMAGE`` running ``true`` with ``Dockyter.docker_command = ["podman"]`` (rootful),
against the bare ``podman run`` in the same run.

The same three variants as figure 1 (:mod:`bench.figures.startup`), on podman: the cell, the
bare ``podman run --rm IMAGE bash -lc true`` as typed, and the exact argv Dockyter runs,
started directly; and Dockyter's own time, the cell minus the life of the ``podman run`` it
started. Needs podman with the bench image in its storage (``bash .ci/provision`` as root).
"""

from __future__ import annotations

from ..context import Context
from ..ipy import new_shell, run_cell, timed_cell
from ..report import FigureResult
from ..runtime import podman, podman_here
from .startup import startup_figure, watched
from .util import docker_backend_argv

NUMBER = 19
TITLE = "`%%docker` cell running `true` on rootful podman"


def measure(ctx: Context) -> FigureResult:
    if not podman_here():
        raise RuntimeError("rootful podman is not here (bash .ci/provision, as root, installs it)")
    if podman("image", "inspect", "--format", "{{.Id}}", ctx.image).returncode != 0:
        raise RuntimeError(f"podman's storage lacks {ctx.image} (bash .ci/podman loads the test images)")
    shell = new_shell()
    run_cell(shell, "%config Dockyter.docker_command = ['podman']")
    cell = f"%%docker {ctx.image}\ntrue"
    own: list[float] = []
    return startup_figure(
        ctx,
        FigureResult(NUMBER, TITLE),
        command="true",
        dockyter=watched(lambda: timed_cell(shell, cell), own),
        dockyter_side=f"InteractiveShell.run_cell({cell!r}) -> "
        + docker_backend_argv(shell, ctx.image, "true", shown=True),
        control_argv=docker_backend_argv(shell, ctx.image, "true"),
        target=1.05,
        own=own,
        own_label="cell time - podman CLI life",
        cli="podman",
    )
