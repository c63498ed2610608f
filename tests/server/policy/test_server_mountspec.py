"""The ``--mount`` value the server writes: quoted by rules of its own, read back as the same fields.

The real reader is the docker CLI's (Go's encoding/csv): tests/server/policy/test_server_inputs.py mounts paths
with commas and quotes through a real server and checks what the engine made. Here, the rules.
"""

from __future__ import annotations

import pytest

from dockyter.server.policy.mountspec import mount_value, read_fields, write_fields


@pytest.mark.parametrize(
    ("fields", "written"),
    [
        (
            ["type=bind", "source=/srv/data", "target=/d", "readonly=true"],
            "type=bind,source=/srv/data,target=/d,readonly=true",
        ),
        (["source=/a,b", "target=/x"], '"source=/a,b",target=/x'),
        (['target=/h"x'], '"target=/h""x"'),
        (['target=/h","readonly=false'], '"target=/h"",""readonly=false"'),
        (["target=/with space", "readonly"], '"target=/with space",readonly'),
        (["target=/\u00e9t\u00e9 "], '"target=/\u00e9t\u00e9 "'),
    ],
)
def test_fields_are_quoted_unless_plainly_safe_and_read_back_the_same(fields, written):
    assert write_fields(fields) == written
    assert read_fields(written) == fields


@pytest.mark.parametrize("char", ["\n", "\r", "\x00", "\x1b", "\x85", "\u2028"])
def test_a_control_character_is_never_written(char):
    with pytest.raises(ValueError, match="cannot hold a control character"):
        write_fields(["type=bind", f"target=/h{char}x", "readonly=true"])


def test_keys_with_and_without_values():
    assert mount_value({"type": "volume", "target": "/c", "readonly": None}) == "type=volume,target=/c,readonly"
