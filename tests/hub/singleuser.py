"""The Python environment that runs the test hub's single-user servers and their kernels.

The recipe places its site-wide IPython profile at ``etc/ipython/ipython_config.py`` under the
prefix of that environment, where IPython reads it for every kernel, and its
``jupyter_server_config.py`` at ``etc/jupyter/``, where the single-user server reads it. The test suite's own
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
RECIPE = REPOSITORY / "docs" / "jupyterhub"
SITE_PROFILE = RECIPE / "ipython_config.py"
SERVER_CONFIG = RECIPE / "jupyter_server_config.py"


def make_environment(prefix: Path, profile: Path = SITE_PROFILE) -> Path:
    """A venv at ``prefix`` that sees the suite's packages, with ``profile`` as its site-wide IPython profile."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    own_site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    suite_site = sysconfig.get_path("purelib")
    # An "import" line of a .pth file runs at start-up: addsitedir also reads the suite's own
    # .pth files (the editable install of dockyter among them).
    (own_site / "dockyter-test-suite.pth").write_text(f"import site; site.addsitedir({suite_site!r})\n")
    (prefix / "share").mkdir(exist_ok=True)
    (prefix / "share" / "jupyter").symlink_to(Path(sys.prefix) / "share" / "jupyter")
    # etc/jupyter: the suite's server configuration (JupyterLab's extension...) linked entry by
    # entry, beside the recipe's own jupyter_server_config.py.
    server_config = prefix / "etc" / "jupyter"
    server_config.mkdir(parents=True)
    for entry in (Path(sys.prefix) / "etc" / "jupyter").iterdir():
        (server_config / entry.name).symlink_to(entry)
    shutil.copyfile(SERVER_CONFIG, server_config / "jupyter_server_config.py")
    site_profile = prefix / "etc" / "ipython" / "ipython_config.py"
    site_profile.parent.mkdir(parents=True)
    shutil.copyfile(profile, site_profile)
    return prefix
