"""The bearer tokens a server accepts, from the ``tokens`` setting and the ``token_file``."""

from __future__ import annotations

import re
from pathlib import Path

MIN_TOKEN_LENGTH = 16

_TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def read_token_table(tokens: list[str], token_file: str) -> dict[str, str]:
    """Tokens by name; raises ValueError (naming the token, never showing it) for a bad entry."""
    entries = list(tokens)
    if token_file:
        try:
            text = Path(token_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read the token file {token_file!r}: {error}") from None
        entries += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    table: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        name, colon, token = entry.partition(":")
        if not colon:
            name, token = f"token-{number}", entry
        if not _TOKEN_NAME.fullmatch(name):
            raise ValueError(f"token name {name!r} must be letters, digits, '_', '.', '@', '-'")
        if len(token) < MIN_TOKEN_LENGTH or not (token.isascii() and token.isprintable()) or " " in token:
            raise ValueError(
                f"the token named {name!r} must be at least {MIN_TOKEN_LENGTH} printable ASCII characters without spaces"
            )
        if name in table:
            raise ValueError(f"two tokens are named {name!r}")
        table[name] = token
    return table
