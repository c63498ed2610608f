"""The kernel side's short container-CLI commands (``kill``, ``rm``, ``exec``, ``ps``, ``stats``).

The docker backend and the sessions run them the same way: captured as text, in a session of
their own (a Ctrl-C meant for the cell must not reach them), and given up on after
``CONTROL_TIMEOUT`` seconds (:mod:`dockyter.wire.contract`, as the server's). ``dockyter-server`` has its asyncio twin in
:mod:`dockyter.server.engine.control`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from ...wire.contract import CONTROL_TIMEOUT


def control(runtime: Sequence[str], *args: str) -> subprocess.CompletedProcess[str] | None:
    """``RUNTIME ARGS``, captured; None when the runtime is missing or does not answer in time."""
    try:
        return subprocess.run(
            [*runtime, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CONTROL_TIMEOUT,
            start_new_session=True,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
