"""A trait for command words (``shell``, ``docker_command``, ``base_run_args``).

``%config Dockyter.shell = 'sh -c'`` gives a string where a list of words is expected;
traitlets would keep it as the single word ``'sh -c'``. Here a string is split as a POSIX
shell would split it, so it means what a user who typed it meant. :func:`words_setting`
declares such a setting.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from traitlets import List, TraitError, Unicode


class Argv(List):  # type: ignore[type-arg]
    """A list of strings; a string given instead is split like a shell would (``'sh -c'`` -> ``['sh', '-c']``)."""

    def __init__(self, default_value: list[str], **kwargs: Any) -> None:
        super().__init__(Unicode(), default_value=default_value, **kwargs)

    def set(self, obj: Any, value: Any) -> None:
        # traitlets' List.set would wrap a string as one word, before any validation sees it
        if isinstance(value, str):
            try:
                value = shlex.split(value)
            except ValueError as error:  # unbalanced quotes
                raise TraitError(f"cannot split {value!r} into words: {str(error).lower()}") from None
        super().set(obj, value)


def words_setting(default: Sequence[str], help: str, *, minlen: int = 0) -> Argv:
    """A configurable :class:`Argv` setting: the shape ``shell``, ``docker_command`` and ``base_run_args`` share."""
    trait = Argv(default_value=list(default), minlen=minlen, help=help)
    trait.tag(config=True)
    return trait
