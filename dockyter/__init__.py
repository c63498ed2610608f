"""Dockyter: run notebook cells and ``!`` commands inside containers.

``%load_ext dockyter`` creates the :class:`~dockyter.core.Dockyter` configurable and
registers its magics (:class:`~dockyter.ipython.magics.DockyterMagics`). Importing this package
stays cheap: the magics, IPython and the backends are imported only when the extension
is loaded.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.4.0"


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext dockyter``: the Dockyter configurable and its magics on ``ipython``."""
    from .ipython.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Called by ``%unload_ext dockyter``: leave the shell exactly as it was."""
    from .ipython.extension import unload

    unload(ipython)
