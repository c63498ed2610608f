"""Run one real cell through Dockyter in a real IPython shell, as a notebook user would.

    python examples/demo.py [IMAGE]

IMAGE defaults to DOCKYTER_DEMO_IMAGE, then DOCKYTER_TEST_IMAGE, then dockyter-test/bash:1
(built locally by ``bash .ci/provision``; ``bash .ci/demo`` does both). Exits non-zero when
a cell fails.
"""

from __future__ import annotations

import os
import sys

from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config


def main(argv: list[str]) -> int:
    image = (
        argv[1]
        if len(argv) > 1
        else os.environ.get("DOCKYTER_DEMO_IMAGE") or os.environ.get("DOCKYTER_TEST_IMAGE") or "dockyter-test/bash:1"
    )
    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # leave the user's IPython history alone
    shell = InteractiveShell.instance(config=config)

    cells = [
        "%load_ext dockyter",
        f"%%docker {image}\necho hello from $(hostname) in a container\nuname -a",
        "%docker_status",
    ]
    for cell in cells:
        print(f"In: {cell}", flush=True)
        if not shell.run_cell(cell, store_history=False).success:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
