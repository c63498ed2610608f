"""What the [groups.NAME] tables of the server's TOML grant, and what a user in several groups gets."""

from __future__ import annotations

import pytest

from dockyter.server.policy.groupgrants import GroupGrant, GroupTableError, grant_for, read_group_tables

WHERE = "'server.toml'"

TABLES = {
    "gpu": {"allowed_flags": ["gpus"], "max_concurrent_per_token": 3},
    "staff": {"allowed_mounts": ["/srv/shared:rw"], "max_sessions_per_token": 0, "max_timeout": 7200},
    "students": {"max_concurrent_per_token": 1, "sessions": False, "max_timeout": 600},
}


@pytest.fixture
def grants() -> dict[str, GroupGrant]:
    return read_group_tables(TABLES, WHERE)


def test_one_group_gets_its_own_table(grants) -> None:
    gpu = grant_for(grants, ["gpu"])
    assert gpu.groups == ("gpu",)
    assert gpu.allowed_flags == ("--gpus",)  # the canonical spelling, as allowed_flags reads it
    assert gpu.limits() == {"max_concurrent_per_token": 3}
    students = grant_for(grants, ["students", "no-table"])
    assert students.groups == ("students",)
    assert students.limits() == {"max_concurrent_per_token": 1, "max_timeout": 600.0, "sessions": False}


def test_a_group_without_a_table_and_no_group_grant_nothing(grants) -> None:
    for groups in ([], ["no-table"], ()):
        nothing = grant_for(grants, groups)
        assert nothing == GroupGrant() and nothing.is_empty and nothing.describe() == "nothing"


def test_several_groups_get_the_union_and_the_most_generous_limit(grants) -> None:
    both = grant_for(grants, ["students", "gpu", "staff"])
    assert both.groups == ("gpu", "staff", "students")
    assert both.allowed_flags == ("--gpus",) and both.allowed_mounts == ("/srv/shared:rw",)
    assert both.max_concurrent_per_token == 3  # gpu's 3 beats students' 1
    assert both.max_sessions_per_token == 0  # staff: no limit of its own
    assert both.max_timeout == 7200.0
    assert both.sessions is False  # only students says, so students decides
    # A limit no group of the user sets is the server-wide one (None here).
    assert grant_for(grants, ["gpu"]).max_timeout is None
    # 0 ("no limit of its own") is the most generous of the per-token limits.
    zero = read_group_tables({"a": {"max_concurrent_per_token": 0}, "b": {"max_concurrent_per_token": 5}}, WHERE)
    assert grant_for(zero, ["a", "b"]).max_concurrent_per_token == 0
    sessions = read_group_tables({"a": {"sessions": False}, "b": {"sessions": True}}, WHERE)
    assert grant_for(sessions, ["a", "b"]).sessions is True


def test_the_log_line_says_what_a_grant_gives(grants) -> None:
    assert grant_for(grants, ["gpu", "students"]).describe() == (
        "allowed_flags += --gpus; max_concurrent_per_token = 3; max_timeout = 600.0; sessions = False"
    )


@pytest.mark.parametrize(
    "tables, message",
    [
        (
            {"gpu": {"allowed_flags": ["--privileged"]}},
            "[groups.gpu] in 'server.toml': allowed_flags: --privileged can never be allowed: it gives the container full access to the host",
        ),
        (
            {"gpu": {"allowed_flags": ["-v", "--device"]}},
            "allowed_flags: --device can never be allowed: it gives the container a host device",
        ),
        ({"gpu": {"allowed_flags": ["--bogus"]}}, "allowed_flags: '--bogus' is not a docker run option"),
        ({"staff": {"allowed_mounts": ["srv/shared"]}}, "allowed_mounts: 'srv/shared' must be an absolute path"),
        (
            {"x": {"allowed_registries": ["http://r.example"]}},
            "allowed_registries: 'http://r.example' is not a registry host",
        ),
        (
            {"x": {"allowed_images": "python:*"}},
            "[groups.x] in 'server.toml': allowed_images must be an array of strings",
        ),
        (
            {"x": {"max_concurrent": 1}},
            "[groups.x] in 'server.toml': unknown key 'max_concurrent' (a group may set allowed_flags",
        ),
        ({"x": {"max_concurrent_per_token": -1}}, "max_concurrent_per_token must be an integer, 0 or more"),
        ({"x": {"max_concurrent_per_token": True}}, "max_concurrent_per_token must be an integer, 0 or more"),
        ({"x": {"max_timeout": 0}}, "max_timeout must be a number of seconds greater than 0"),
        ({"x": {"max_timeout": float("inf")}}, "max_timeout must be a number of seconds greater than 0"),
        ({"x": {"sessions": "no"}}, "sessions must be true or false"),
        ({"x": ["--gpus"]}, "groups.x in 'server.toml' must be a table, like [groups.x]"),
        ({"a\nb": {}}, "a hub group's name is printable"),
    ],
)
def test_a_bad_table_is_one_line_naming_the_group(tables, message) -> None:
    with pytest.raises(GroupTableError) as caught:
        read_group_tables(tables, WHERE)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
