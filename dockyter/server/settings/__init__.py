"""Every ``dockyter-server`` setting, defined once and read from three places.

Each field of :class:`Settings` carries its help text and its command-line flag; from that
one definition come the ``argparse`` options (``dockyter-server --help``), the environment
variables (``DOCKYTER_SERVER_<NAME>``), the keys of the TOML config file and the settings
table in ``docs/server.md`` (``python -m dockyter.server.settings`` prints it; a test checks
that the page matches). The pieces:

* :mod:`.fields` -- the definitions, the checks of a value, and what is derived from them once;
* :mod:`.tokens` -- the accepted bearer tokens, from ``tokens`` and ``token_file``;
* :mod:`.sources` -- flags, environment and TOML file, with their precedence;
* :mod:`.table` -- the documentation table.
"""

from __future__ import annotations

from .fields import (
    CONFIG_ENV,
    DEFAULT_ALLOWED_FLAGS,
    DEFAULT_SHELLS,
    ENV_PREFIX,
    Settings,
    SettingsError,
    default_of,
    definitions,
    env_of,
    flag_of,
    is_loopback,
    kind_of,
)
from .sources import build_parser, convert, load_settings, make_settings, read_config_file, read_environment
from .table import settings_markdown
from .tokens import MIN_TOKEN_LENGTH

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_ALLOWED_FLAGS",
    "DEFAULT_SHELLS",
    "ENV_PREFIX",
    "MIN_TOKEN_LENGTH",
    "Settings",
    "SettingsError",
    "build_parser",
    "convert",
    "default_of",
    "definitions",
    "env_of",
    "flag_of",
    "is_loopback",
    "kind_of",
    "load_settings",
    "make_settings",
    "read_config_file",
    "read_environment",
    "settings_markdown",
]
