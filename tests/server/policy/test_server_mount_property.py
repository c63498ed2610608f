"""A property of the mount policy: a bind source is refused, or it is exactly the real directory meant.

Random sources are built from ``..``, ``.``, ``//``, visible links, links inside another user's
private directory, missing components and over-long names, below every kind of allowed root
(read-only, writable, a root that is a link, a read-only root inside a writable one and the
reverse). Each is checked twice by the real policy on the real file system: as root, and in a
forked child that switched to uid 4400, which cannot enter the private directories. No engine
runs: the policy decides what the engine gets (tests/server/policy/test_server_mounts.py runs containers).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from dockyter.server.policy.hostview import within
from dockyter.server.policy.requestpolicy import Policy
from dockyter.server.servererrors import PolicyError
from dockyter.server.settings.fields import Settings

IMAGE = "dockyter-test/bash:1"
OTHER_USER = 4321  # owns the private directories
SERVER_USER = 4400  # the unprivileged view

NAMES = [
    "..",
    ".",
    "",
    "a",
    "b",
    "f",
    "link_etc",
    "link_a",
    "priv",
    "link",
    "sub",
    "loop",
    "missing",
    "x",
    "inner",
    "scratch",
    "n" * 256,
]
ROOTS = ["ro", "rw", "data", "outer", "outer/inner", "top", "top/scratch", "real", ""]
SPELLINGS = [
    "-v {p}:/h",
    "-v {p}:/h:ro",
    "--volume={p}:/h:rw",
    "--mount type=bind,source={p},target=/h",
    "--mount type=bind,src={p},dst=/h,readonly",
]


@pytest.fixture(scope="module")
def tree() -> Iterator[Path]:
    """Allowed roots of every kind, with links, private directories and files in them."""
    base = Path(tempfile.mkdtemp(prefix="dockyter-property-"))
    base.chmod(0o755)
    for root in ("ro", "rw", "outer/inner", "top/scratch"):
        (base / root / "a" / "b").mkdir(parents=True)
        (base / root / "a" / "f").write_text("file")
        (base / root / "sub").mkdir()
        os.symlink("/etc", base / root / "link_etc")
        os.symlink("a", base / root / "link_a")
        os.symlink("loop", base / root / "loop")
        (base / root / "priv" / "sub").mkdir(parents=True)
        os.symlink("/etc", base / root / "priv" / "link")
        os.chown(base / root / "priv", OTHER_USER, OTHER_USER)
        (base / root / "priv").chmod(0o700)
    (base / "real" / "data" / "a" / "b").mkdir(parents=True)
    os.symlink(base / "real" / "data", base / "data")
    yield base
    shutil.rmtree(base)


@pytest.fixture(scope="module")
def policy(tree) -> Policy:
    mounts = [
        f"{tree}/ro",
        f"{tree}/rw:rw",
        f"{tree}/data",
        f"{tree}/outer:rw",
        f"{tree}/outer/inner",
        f"{tree}/top",
        f"{tree}/top/scratch:rw",
    ]
    return Policy(Settings(auth=False, allowed_mounts=mounts, docker_command=["false"]))


def check(policy: Policy, args: str) -> dict[str, Any]:
    try:
        plan = policy.check(args)
    except PolicyError as error:
        return {"refused": str(error)}
    return {"argv": plan.args.argv()}


class Unprivileged:
    """A forked child that switched to another user and checks requests with the same policy.

    Forked, not executed: the code is already loaded, so the child needs to read nothing the
    other user may not. One child serves every example, through two pipes of JSON lines.
    """

    def __init__(self, policy: Policy) -> None:
        requests, self._requests = os.pipe()
        self._answers, answers = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._requests)
            os.close(self._answers)
            os.setgroups([])
            os.setgid(SERVER_USER)
            os.setuid(SERVER_USER)
            with os.fdopen(requests) as inbox, os.fdopen(answers, "w") as outbox:
                for line in inbox:
                    try:
                        answer = check(policy, json.loads(line))
                    except BaseException as error:  # noqa: BLE001 - reported to the parent, which fails the test
                        answer = {"crash": repr(error)}
                    outbox.write(json.dumps(answer) + "\n")
                    outbox.flush()
            os._exit(0)
        os.close(requests)
        os.close(answers)
        self._out = os.fdopen(self._requests, "w")
        self._in = os.fdopen(self._answers)

    def check(self, args: str) -> dict[str, Any]:
        self._out.write(json.dumps(args) + "\n")
        self._out.flush()
        return json.loads(self._in.readline())

    def close(self) -> None:
        self._out.close()
        self._in.close()
        os.waitpid(self.pid, 0)


@pytest.fixture(scope="module")
def unprivileged(policy) -> Iterator[Unprivileged]:
    worker = Unprivileged(policy)
    yield worker
    worker.close()


def snapshot(base: Path) -> list[tuple[str, int, str]]:
    """Every name below ``base`` with its mode and link target (links are not followed)."""
    found = []
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode
            found.append((path, mode, os.readlink(path) if os.path.islink(path) else ""))
    return sorted(found)


def mounted(argv: list[str]) -> dict[str, str]:
    """The fields of the one ``--mount`` the engine would get."""
    assert argv[0].startswith("--mount=") and argv[1:] == [IMAGE], argv
    return dict(field.split("=", 1) for field in next(csv.reader([argv[0].removeprefix("--mount=")])))


def verify(policy: Policy, written: str, source: str, outcome: dict[str, Any]) -> str | None:
    """Fails unless ``outcome`` is a refusal naming ``written`` or a mount of exactly the real directory meant."""
    assert "crash" not in outcome, outcome
    if "refused" in outcome:
        assert outcome["refused"].startswith(f"{written} is not allowed: "), outcome
        return None
    fields = mounted(outcome["argv"])
    real = fields["source"]
    # Exactly what the path names for root (what `docker -v` would have mounted), with no link left in it.
    assert real == os.path.realpath(source), (source, real)
    assert os.path.realpath(real) == real and os.path.exists(real)
    roots = [(os.path.realpath(mount.path), mount.writable) for mount in policy.mounts]
    inside = [(root, writable) for root, writable in roots if within(real, root)]
    assert inside, f"{real} is outside every allowed root"
    assert not any(writable and real != root and within(real, root) for root, writable in roots), (
        f"{real} is below a writable root"
    )
    _, writable = max(inside, key=lambda match: len(match[0]))
    assert writable or fields.get("readonly") == "true", fields
    assert not within(real, "/etc") and not within(real, "/proc")
    return real


sources = st.builds(
    lambda root, names, slash: "/".join([root, *names]) + ("/" if slash else ""),
    st.sampled_from(ROOTS),
    st.lists(st.one_of(st.sampled_from(["a", "b", "sub", ".", ""]), st.sampled_from(NAMES)), max_size=5),
    st.booleans(),
)


@settings(
    max_examples=150, deadline=None, database=None, derandomize=True,
    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
)  # fmt: skip
@given(relative=sources, spelling=st.sampled_from(SPELLINGS))  # about one in five is accepted
@example(relative="ro/a/b", spelling="-v {p}:/h:ro")
@example(relative="rw/priv/link", spelling="-v {p}:/h")
@example(relative="ro/priv/sub", spelling="-v {p}:/h:ro")
@example(relative="ro/link_a/../a", spelling="-v {p}:/h:ro")
@example(relative="ro/a/../../ro/a", spelling="-v {p}:/h:ro")
@example(relative="data/a/b/../..", spelling="-v {p}:/h:ro")
@example(relative="top/scratch/a", spelling="-v {p}:/h")
def test_a_source_is_refused_or_names_exactly_the_real_directory(tree, policy, unprivileged, relative, spelling):
    source = f"{tree}/{relative}"
    written = spelling.format(p=source)
    before = snapshot(tree)
    as_root = verify(policy, written, source, check(policy, f"{written} {IMAGE}"))
    seen = verify(policy, written, source, unprivileged.check(f"{written} {IMAGE}"))
    # The unprivileged server never accepts what root would not, nor anything else than root would.
    event("accepted" if as_root else "refused")
    assert seen is None or seen == as_root
    # It cannot see below another user's private directory (the directory itself it can).
    assert seen is None or "/priv/" not in seen
    assert snapshot(tree) == before


@pytest.mark.parametrize(
    ("relative", "spelling", "expected"),
    [
        ("ro/a/b", "-v {p}:/h:ro", "ro/a/b"),
        ("ro//a/./b/", "--mount type=bind,src={p},dst=/h,readonly", "ro/a/b"),
        ("rw", "-v {p}:/h", "rw"),
        ("data/a", "-v {p}:/h:ro", "real/data/a"),
        ("data/a/b/../..", "-v {p}:/h:ro", "real/data"),
        ("top/scratch", "--volume={p}:/h:rw", "top/scratch"),
        ("outer", "-v {p}:/h", "outer"),
        ("ro/priv/sub", "-v {p}:/h:ro", "ro/priv/sub"),  # root can see into another user's private directory
    ],
)
def test_what_root_accepts(tree, policy, relative, spelling, expected):
    outcome = check(policy, f"{spelling.format(p=f'{tree}/{relative}')} {IMAGE}")
    assert "argv" in outcome, outcome
    assert mounted(outcome["argv"])["source"] == f"{tree}/{expected}"


def test_what_an_unprivileged_server_cannot_see_it_refuses(tree, unprivileged):
    written = f"-v {tree}/ro/priv/sub:/h:ro"
    assert unprivileged.check(f"{written} {IMAGE}") == {
        "refused": f"{written} is not allowed: {tree}/ro/priv/sub cannot be checked: permission denied to the server"
    }
