"""``python -m dockyter.server.settings``: print the settings table of ``docs/server.md``."""

from .table import settings_markdown

print(settings_markdown(), end="")
