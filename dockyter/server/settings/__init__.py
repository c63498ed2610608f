"""Every ``dockyter-server`` setting, defined once and read from three places.

Each field of :class:`~dockyter.server.settings.fields.Settings` carries its help text and its
command-line flag; from that one definition come the ``argparse`` options (``dockyter-server
--help``), the environment variables (``DOCKYTER_SERVER_<NAME>``), the keys of the TOML config
file and the settings table in ``docs/server.md`` (``python -m dockyter.server.settings``
prints it; a test checks that the page matches).

``fields``    the definitions, the checks of a value, and what is derived from them once
``tokens``    the accepted bearer tokens, from ``tokens`` and ``token_file``
``sources``   flags, environment and TOML file, with their precedence (``load_settings``)
``table``     the documentation table
``__main__``  ``python -m dockyter.server.settings``: print it

May import: :mod:`dockyter.wire`, and the checks a value is held to: ``policy/allowlist``,
``policy/registries``, ``policy/groupgrants``, ``engine/engineenv``, ``swarm/loopbackcheck`` and ``swarm/swarmargs``
(none of which imports the settings back). Never the policy itself, an executor or FastAPI.
"""
