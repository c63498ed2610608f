"""Loading and unloading the extension on an IPython shell, leaving no trace after unload."""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from .. import errors
from ..backends.registry import known_backends
from ..core import Dockyter
from . import completion
from .magics import DockyterMagics
from .redirect import Redirection

# The core registered on each shell, so unload (and tests) can find it.
_ATTRIBUTE = "_dockyter"


def load(shell: InteractiveShell) -> Dockyter:
    existing: Dockyter | None = getattr(shell, _ATTRIBUTE, None)
    if existing is not None:
        return existing
    core = Dockyter(ipython=shell)
    core.attach_redirection(Redirection(shell, core.run_bang))
    configurables: list[Any] = shell.configurables  # IPython annotates it as a list of shells
    configurables.append(core)  # %config Dockyter finds it here
    shell.register_magics(DockyterMagics(shell, core))
    setattr(shell, _ATTRIBUTE, core)
    # dockyter.toml goes over the IPython config the instance was created with, before the
    # cleanup starts, so that cleanup uses the backend the file chose.
    core.announcer.problems(core.config_problems)  # IPython config values the traits refused
    core.layers.load_file(announce=core.announcer.problems)
    core.cleanup_in_background()
    core.start_prestarting()  # `!` redirected by the configuration: its container starts now
    completion.install(shell, completion_sources(core))
    errors.use_colour(lambda: str(getattr(shell, "colors", "")).lower() != "nocolor")
    if core.cleans_up_here():  # a local engine: list its images now, so the first TAB has names
        core.active_backend.images.refresh_in_background()
    return core


def completion_sources(core: Dockyter) -> completion.Sources:
    """What the completers offer, read from this instance at each TAB."""
    return completion.Sources(
        images=lambda: core.active_backend.images.names(),
        profiles=lambda: sorted(core.layers.file.profiles),
        sessions=core.session_names,
        jobs=core.job_names,
        backends=known_backends,
    )


def unload(shell: InteractiveShell) -> None:
    core: Dockyter | None = getattr(shell, _ATTRIBUTE, None)
    if core is None:
        return
    core.shutdown()
    completion.uninstall(shell)
    errors.use_colour(None)
    manager = shell.magics_manager
    magics = manager.registry.pop(DockyterMagics.__name__, None)
    if magics is not None:
        for kind, names in magics.magics.items():
            for name in names:
                if manager.magics[kind].get(name) is not None:
                    del manager.magics[kind][name]
    for configurable in (magics, core):
        if configurable in shell.configurables:
            shell.configurables.remove(configurable)
    delattr(shell, _ATTRIBUTE)
