"""The policy of a hub user: the server-wide policy with what their groups' tables add, and nothing else.

No container runs here; tests/hub checks the same through a real hub and its users' notebooks.
"""

from __future__ import annotations

import pytest

from dockyter.server.policy.groupgrants import grant_for
from dockyter.server.policy.requestpolicy import Policy
from dockyter.server.servererrors import PolicyError
from dockyter.server.settings.fields import Settings

IMAGE = "dockyter-test/bash:1"


@pytest.fixture
def shared(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(shared) -> Settings:
    return Settings(
        auth="jupyterhub",
        hub_api_url="http://127.0.0.1:1/hub/api",
        allowed_images=["dockyter-test/*", "registry.example.org/*"],
        groups={
            "gpu": {"allowed_flags": ["--gpus"], "allowed_images": ["cuda/*"]},
            "staff": {"allowed_mounts": [f"{shared}:rw"], "allowed_registries": ["registry.example.org"]},
            "students": {"max_concurrent_per_token": 1, "sessions": False},
        },
    )


@pytest.fixture
def policy(settings) -> Policy:
    return Policy(settings)


def refusal(policy: Policy, args: str) -> str:
    with pytest.raises(PolicyError) as caught:
        policy.check(args)
    return str(caught.value)


def test_a_group_adds_what_its_table_allows_and_only_for_its_members(policy, settings) -> None:
    gpu = policy.for_grant(grant_for(settings.groups, ["gpu"]))
    assert gpu.check(f"--gpus all {IMAGE}").args.image == IMAGE
    assert gpu.check("cuda/base:12").args.image == "cuda/base:12"
    students = policy.for_grant(grant_for(settings.groups, ["students"]))
    for someone in (policy, students, policy.for_grant(grant_for(settings.groups, ["no-table"]))):
        assert refusal(someone, f"--gpus all {IMAGE}") == "--gpus all is not allowed by this server's policy"
        assert refusal(someone, "cuda/base:12").startswith("the image 'cuda/base:12' is not allowed")


def test_a_groups_mount_and_registry(policy, settings, shared) -> None:
    staff = policy.for_grant(grant_for(settings.groups, ["staff"]))
    plan = staff.check(f"-v {shared}:/shared {IMAGE}")
    assert [(m.kind, m.source, m.target, m.readonly) for m in plan.mounts] == [("bind", str(shared), "/shared", False)]
    assert staff.check("registry.example.org/team/tool:1").args.image == "registry.example.org/team/tool:1"
    assert "registry.example.org" in refusal(policy, "registry.example.org/team/tool:1")
    assert refusal(policy, f"-v {shared}:/shared {IMAGE}").startswith(f"-v {shared}:/shared")


def test_several_groups_get_the_union(policy, settings, shared) -> None:
    both = policy.for_grant(grant_for(settings.groups, ["gpu", "staff"]))
    plan = both.check(f"--gpus all -v {shared}:/shared {IMAGE}")
    assert plan.args.image == IMAGE and len(plan.mounts) == 1


def test_the_policy_of_a_set_of_groups_is_made_once_and_the_base_stays_as_it_was(policy, settings) -> None:
    grant = grant_for(settings.groups, ["gpu"])
    assert policy.for_grant(grant) is policy.for_grant(grant_for(settings.groups, ["gpu", "no-table"]))
    assert policy.for_grant(grant_for(settings.groups, [])) is policy
    assert "--gpus" not in policy.flags and policy.images == ["dockyter-test/*", "registry.example.org/*"]
