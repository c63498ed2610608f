"""Loading and unloading the extension on an IPython shell, leaving no trace after unload."""

from __future__ import annotations

from typing import Any

from .magics import Dockyter

# The magics instance registered on each shell, so unload can find and remove it.
_ATTRIBUTE = "_dockyter_magics"


def load(shell: Any) -> Dockyter:
    existing = getattr(shell, _ATTRIBUTE, None)
    if existing is not None:
        return existing
    magics = Dockyter(shell=shell)
    shell.register_magics(magics)
    setattr(shell, _ATTRIBUTE, magics)
    # dockyter.toml goes over the IPython config the instance was created with, before the
    # cleanup starts, so that cleanup uses the backend the file chose.
    magics.layers.load_file()
    magics.cleanup_in_background()
    return magics


def unload(shell: Any) -> None:
    magics: Dockyter | None = getattr(shell, _ATTRIBUTE, None)
    if magics is None:
        return
    magics.shutdown()
    manager = shell.magics_manager
    for kind, names in magics.magics.items():
        for name in names:
            if manager.magics[kind].get(name) is not None:
                del manager.magics[kind][name]
    manager.registry.pop(type(magics).__name__, None)
    if magics in shell.configurables:
        shell.configurables.remove(magics)
    delattr(shell, _ATTRIBUTE)
