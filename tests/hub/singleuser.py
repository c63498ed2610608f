"""The Python environment that runs the test hub's single-user servers and their kernels.

The recipe places the site-wide IPython profile at ``etc/ipython/ipython_config.py`` under the
prefix of that environment, where IPython reads it for every kernel. The test suite's own
``.venv`` must not get it (every other kernel test would load it), so the hub gets a venv of its
own: no packages of its own, the suite's packages through a ``.pth`` file, Jupyter's data and
server configuration (JupyterLab's assets, its server extension) linked from the suite's prefix.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SITE_PROFILE = REPOSITORY / "profile_default" / "ipython_config.py"


def make_environment(prefix: Path, profile: Path = SITE_PROFILE) -> Path:
    """A venv at ``prefix`` that sees the suite's packages, with ``profile`` as its site-wide IPython profile."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    own_site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    suite_site = sysconfig.get_path("purelib")
    # An "import" line of a .pth file runs at start-up: addsitedir also reads the suite's own
    # .pth files (the editable install of dockyter among them).
    (own_site / "dockyter-test-suite.pth").write_text(f"import site; site.addsitedir({suite_site!r})\n")
    for shared in ("share/jupyter", "etc/jupyter"):
        target = Path(sys.prefix) / shared
        if target.is_dir():
            (prefix / shared).parent.mkdir(parents=True, exist_ok=True)
            (prefix / shared).symlink_to(target)
    site_profile = prefix / "etc" / "ipython" / "ipython_config.py"
    site_profile.parent.mkdir(parents=True)
    shutil.copyfile(profile, site_profile)
    return prefix
