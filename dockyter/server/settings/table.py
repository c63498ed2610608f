"""The settings table of ``docs/server.md``, generated from the settings' definitions.

``python -m dockyter.server.settings`` prints it; a test checks that the page matches.
"""

from __future__ import annotations

import shlex

from .fields import CONFIG_ENV, default_of, definitions, env_of, flag_of, kind_of


def settings_markdown() -> str:
    """The settings table of ``docs/server.md``."""
    rows = [
        "| setting (config file key) | flag | environment variable | default | meaning |",
        "| --- | --- | --- | --- | --- |",
        f"| — | `--config PATH` | `{CONFIG_ENV}` | none | TOML file of settings, keys as in the first column |",
    ]
    for definition in definitions():
        kind = kind_of(definition)
        default = default_of(definition)
        if kind == "table":
            name = f"`[{definition.name}.NAME]`"
            rows.append(f"| {name} | — | — | none | {definition.metadata['help'].replace('|', chr(92) + '|')} |")
            continue
        if kind == "bool":
            flag = f"`{flag_of(definition)}` / `--no-{flag_of(definition)[2:]}`"
            shown = "true" if default else "false"
        elif kind == "auth":
            flag = f"`{flag_of(definition)} {definition.metadata.get('metavar')}` / `--no-auth`"
            shown = f"`{default}`"
        else:
            flag = f"`{flag_of(definition)} {definition.metadata.get('metavar') or 'VALUE'}`"
            if kind == "list":
                flag += " (repeatable)"
            if kind == "list":
                shown = ", ".join(f"`{item}`" for item in default) or "none"
            elif kind == "command":
                shown = f"`{shlex.join(default)}`" if default else "none"
            else:
                shown = f"`{default}`" if default != "" else "empty"
        help_text = definition.metadata["help"].replace("|", "\\|")
        rows.append(f"| `{definition.name}` | {flag} | `{env_of(definition)}` | {shown} | {help_text} |")
    return "\n".join(rows) + "\n"
