"""``%%docker --bg`` and ``%docker_jobs``: background jobs from the magics (the work is in :mod:`dockyter.jobs`)."""

from __future__ import annotations

from typing import Any

from ..core import Dockyter
from ..jobs import Job, Jobs
from ..runspec import RunSpec
from .grammar import Parsed
from .tables import Table


def start_job(core: Dockyter, spec: RunSpec, proc: str | None, namespace: dict[str, Any]) -> Job:
    """Start ``spec`` in the background; its streams and handle go into the variables asked for."""
    job = core.start_job(spec)
    for variable, stream in spec.store.items():
        namespace[variable] = job.stdout if stream == "stdout" else job.stderr
    if proc is not None:
        namespace[proc] = job
    names = [*spec.store, *([proc] if proc else [])]
    kept = f"; {', '.join(names)} set" if names else ""
    print(
        f"Dockyter: job {job.id} runs in the background ({job.image}, container {job.container}){kept}; "
        f"%docker_jobs lists it, %docker_jobs stop {job.id} stops it"
    )
    return job


def jobs_command(core: Dockyter, parsed: Parsed) -> Table | None:
    """Carry out a ``%docker_jobs`` line read by its grammar; a table to show, or None (it printed)."""
    if parsed.verb is None:
        rows = core.job_rows()
        if not rows:
            print("Dockyter: no background jobs; %%docker --bg IMAGE starts one")
            return None
        return Table("Dockyter jobs", rows, columns=Jobs.COLUMNS)
    which = parsed.words["JOB"]
    if which == "--all":
        stopped = core.jobs.stop_all() if core.job_names() else []
        listed = ": " + ", ".join(map(str, stopped)) if stopped else ""
        print(f"Dockyter: stopped {len(stopped)} job(s){listed}")
        return None
    job = core.jobs.get(which)
    if not job.running:
        print(f"Dockyter: job {job.id} had already ended: {job.state}")
        return None
    code = job.stop()
    if code is None:
        print(f"Dockyter: job {job.id} is stopping (its image is still being pulled); %docker_jobs shows when it has")
    else:
        print(f"Dockyter: job {job.id} stopped (exit status {code}); container {job.container} removed")
    return None
