"""``dockyter-server``: read the settings, check them, serve until told to stop."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .settings.fields import SettingsError
from .settings.sources import load_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; returns the exit status (2 for bad settings)."""
    try:
        settings = load_settings(argv)
    except SettingsError as error:
        print(f"dockyter-server: error: {error}", file=sys.stderr)
        return 2
    # Imported only now: --help and setting errors stay fast and need no web framework.
    from .engine.enginekind import EngineCannotConfine
    from .engine.runtimes import RuntimeUnavailable
    from .http.app import create_app, hub_startup_problem
    from .http.connections import raise_open_file_limit
    from .http.serve import configure_logging, make_server

    configure_logging(settings.log_level)
    try:
        app = create_app(settings)
    except (RuntimeUnavailable, EngineCannotConfine) as error:
        print(f"dockyter-server: error: {error}", file=sys.stderr)
        return 2
    problem = hub_startup_problem(app)
    if problem:
        print(f"dockyter-server: error: {problem}", file=sys.stderr)
        return 2
    raise_open_file_limit()  # every connection and every CLI pipe is an open file
    server = make_server(app, settings)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
