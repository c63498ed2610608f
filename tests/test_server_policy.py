"""The server's policy, unit by unit: every refused spelling, what is allowed, and why.

No container runs here; tests/test_server_http.py checks that refusals reach clients as 403.
"""

from __future__ import annotations

import os

import pytest

from dockyter.dockerargs import DockerArgsError
from dockyter.server.policy import DEFAULT_SHELL, Policy, PolicyError, check_flag_names, parse_allowed_mounts
from dockyter.server.settings import Settings, SettingsError

IMAGE = "dockyter-test/bash:1"


@pytest.fixture
def mounts(tmp_path):
    """Two host directories an operator allows: one read-only, one writable."""
    ro = tmp_path / "shared"
    rw = tmp_path / "scratch"
    ro.mkdir()
    rw.mkdir()
    (rw / "sub").mkdir()
    return ro, rw


@pytest.fixture
def policy(mounts) -> Policy:
    ro, rw = mounts
    settings = Settings(
        auth=False,
        allowed_images=["dockyter-test/*", "python:3.*", "busybox"],
        allowed_mounts=[str(ro), f"{rw}:rw"],
        allowed_volumes=["cache-*"],
        allowed_networks=["lab"],
    )
    return Policy(settings)


def refused(policy: Policy, args: str) -> str:
    with pytest.raises(PolicyError) as error:
        policy.check(args)
    return str(error.value)


# -- refused whatever the spelling ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ("--privileged", "--privileged"),
        ("--privileged=true", "--privileged=true"),
        ("--privileged=1", "--privileged=1"),
        ("--privileged=false", "--privileged=false"),  # refused too: no need to say it at all
        ("--net host", "--net host"),
        ("--net=host", "--net=host"),
        ("--network host", "--network host"),
        ("--network=host", "--network=host"),
        ("--network=HOST", "--network=HOST"),
        ("--net container:other", "--net container:other"),
        ("--pid=host", "--pid=host"),
        ("--pid host", "--pid host"),
        ("--pid container:other", "--pid container:other"),
        ("--ipc host", "--ipc host"),
        ("--ipc=host", "--ipc=host"),
        ("--uts=host", "--uts=host"),
        ("--uts host", "--uts host"),
        ("--userns=host", "--userns=host"),
        ("--userns host", "--userns host"),
        ("--cgroupns=host", "--cgroupns=host"),
        ("--cap-add SYS_ADMIN", "--cap-add SYS_ADMIN"),
        ("--cap-add=ALL", "--cap-add=ALL"),
        ("--device /dev/sda", "--device /dev/sda"),
        ("--device=/dev/fuse", "--device=/dev/fuse"),
        ("--device-cgroup-rule='c 1:3 mr'", "--device-cgroup-rule=c 1:3 mr"),
        ("--security-opt seccomp=unconfined", "--security-opt seccomp=unconfined"),
        ("--security-opt=apparmor=unconfined", "--security-opt=apparmor=unconfined"),
        ("--volumes-from x", "--volumes-from x"),
        ("--volumes-from=x", "--volumes-from=x"),
        ("--use-api-socket", "--use-api-socket"),
        ("--cgroup-parent /", "--cgroup-parent /"),
        ("-p 8080:80", "-p 8080:80"),
        ("--publish=8080:80", "--publish=8080:80"),
        ("-P", "-P"),
        ("--env-file /etc/shadow", "--env-file /etc/shadow"),
        ("--label-file=/etc/shadow", "--label-file=/etc/shadow"),
        ("--cidfile /tmp/cid", "--cidfile /tmp/cid"),
        # lifecycle: the server names, follows and removes its containers itself
        ("--name x", "--name x"),
        ("--name=x", "--name=x"),
        ("-d", "-d"),
        ("--detach", "--detach"),
        ("-id", "-d"),  # combined short switches: each letter is checked
        ("--rm=false", "--rm=false"),
        ("--init=false", "--init=false"),
        ("--restart always", "--restart always"),
        ("--log-driver json-file", "--log-driver json-file"),
        ("--log-opt=max-size=1g", "--log-opt=max-size=1g"),
        ("--label io.dockyter.server=other:1", "--label io.dockyter.server=other:1"),
        ("-l io.dockyter.managed=0", "-l io.dockyter.managed=0"),
        ("--label=IO.DOCKYTER.owner", "--label=IO.DOCKYTER.owner"),
    ],
)
def test_dangerous_options_are_refused_in_every_spelling(policy, args, named):
    message = refused(policy, f"{args} {IMAGE}")
    assert message.startswith(f"{named} is not allowed"), message


@pytest.mark.parametrize(
    "args",
    [
        "-v /:/host",
        "-v=/:/host",
        "-v/:/host",
        "--volume /:/host",
        "--volume=/:/host:ro",
        "-iv /:/host",  # a value flag at the end of a group of switches
        "-v /var/run/docker.sock:/s",
        "-v /run/docker.sock:/s:ro",
        "-v //var/run/docker.sock:/s",
        "-v /var/./run/../run/docker.sock:/s",
        "-v /var/run:/r:ro",
        "-v /run:/r",
        "-v /var:/v:ro",
        "--mount type=bind,source=/,target=/h",
        "--mount type=bind,src=/var/run/docker.sock,dst=/s",
        "--mount=type=bind,source=/run,target=/r,readonly",
    ],
)
def test_the_host_root_and_the_engine_socket_are_never_mountable(policy, args):
    message = refused(policy, f"{args} {IMAGE}")
    assert "is not allowed" in message
    assert "socket" in message, message


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ("-v /etc:/e:ro", "not under an allowed host path"),
        ("--mount type=bind,source=/etc,target=/e,readonly", "not under an allowed host path"),
        ("-v {ro}:/x", "may only be mounted read-only"),
        ("-v {ro}:/x:rw", "may only be mounted read-only"),
        ("--mount type=bind,source={ro},target=/x", "may only be mounted read-only"),
        ("--mount type=bind,source={ro},target=/x,readonly=false", "may only be mounted read-only"),
        ("-v {ro}/../..:/x:ro", "not under an allowed host path"),
        ("-v {rw}:/x:Z", "mount mode 'Z'"),
        ("-v {rw}:/x:shared", "mount mode 'shared'"),
        ("-v myvolume:/data", "named volume 'myvolume'"),
        ("--mount source=myvolume,target=/data", "named volume 'myvolume'"),
        ("-v ./relative:/x", "neither an absolute host path nor a volume name"),
        ("-v ~/home:/x", "neither an absolute host path nor a volume name"),
        ("-v a:b:c:d", "expected SOURCE:TARGET"),
        ("--mount type=volume,target=/x,volume-driver=local", "--mount key 'volume-driver'"),
        ("--mount type=volume,target=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/", "'volume-opt'"),
        ("--mount type=bind,source={rw},target=/x,bind-propagation=rshared", "private bind propagation"),
        ("--mount type=bind,source={rw},src=/,target=/x", "given twice"),
        ("--mount 'type=bind,\"source=/\",target=/x'", "quotes"),
        ("--mount type=npipe,source=x,target=/x", "mount type 'npipe'"),
        ("--mount type=tmpfs,source=/,target=/x", "tmpfs mount takes no source"),
        ("--mount type=volume,source=/etc,target=/x", "volume name, not a path"),
        ("--network bridge", "allowed networks are lab, none"),
        ("--entrypoint /bin/sh", "by this server's policy"),
        ("-t", "by this server's policy"),
        ("-it", "by this server's policy"),
        ("--memory 100g", "by this server's policy"),
        ("--gpus all", "by this server's policy"),
        ("--sysctl net.ipv4.ip_forward=1", "by this server's policy"),
        ("--runtime=runc", "the server chooses the container's runtime"),
        ("--some-future-flag=1", "by this server's policy"),
    ],
)
def test_what_the_operator_did_not_allow_is_refused(policy, mounts, args, why):
    ro, rw = mounts
    message = refused(policy, f"{args.format(ro=ro, rw=rw)} {IMAGE}")
    assert why in message, message


def test_a_symbolic_link_cannot_lead_out_of_an_allowed_directory(policy, mounts):
    # A user who can write in an allowed directory could plant such a link in one run and use it in the next.
    _, rw = mounts
    os.symlink("/", rw / "escape")
    os.symlink("/etc", rw / "etc")
    assert "socket" in refused(policy, f"-v {rw}/escape:/x {IMAGE}")
    assert "symbolic link" in refused(policy, f"-v {rw}/etc:/x:ro {IMAGE}")
    assert "symbolic link" in refused(policy, f"--mount type=bind,source={rw}/etc/passwd,target=/x,readonly {IMAGE}")


@pytest.mark.parametrize(
    ("args", "image"),
    [("evil/image", "evil/image"), ("python:2.7", "python:2.7"), ("-e X=1 ubuntu:24.04", "ubuntu:24.04"), ("python", "python")],
)
def test_images_must_match_a_pattern(policy, args, image):
    assert refused(policy, args) == f"the image {image!r} is not allowed (allowed: dockyter-test/*, python:3.*, busybox)"


def test_shells_must_be_allowed(policy):
    with pytest.raises(PolicyError, match=r"the shell 'python3 -c' is not allowed \(allowed: bash -lc, bash -c, sh -lc, sh -c\)"):
        policy.check(IMAGE, ["python3", "-c"])


# -- parse errors are 400, not 403, and nothing ever reaches a host shell ---------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("img; touch /tmp/x", "'img;' is not a valid image reference"),
        ("$(touch /tmp/x)", "'$(touch' is not a valid image reference"),
        ("`touch /tmp/x`", "'`touch' is not a valid image reference"),
        (f"{IMAGE} $(touch /tmp/x)", "after the image"),
        (f"{IMAGE} && touch /tmp/x", "after the image"),
        (f"{IMAGE} | sh", "after the image"),
        (f"-e 'X=1 {IMAGE}", "no closing quotation"),
        ("", "no image given"),
        ("-e X=1", "no image given"),
        ("--env", "--env needs a value"),
        (f"--bogus {IMAGE}", "unknown docker run option '--bogus'"),
        (f"-Z {IMAGE}", "unknown docker run option '-Z'"),
    ],
)
def test_args_that_cannot_be_understood(policy, args, message):
    with pytest.raises(DockerArgsError) as error:
        policy.check(args)
    assert message in str(error.value)


# -- what is allowed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        IMAGE,
        f"-e X=1 --env=Y=2 -w /tmp -u nobody --hostname lab {IMAGE}",
        f"-e 'X=$(touch /tmp/x)' -e Y=`touch` {IMAGE}",  # a literal value for the container, not a command
        f"--rm --init --read-only -i {IMAGE}",
        f"--rm=true --init=1 {IMAGE}",
        f"-v /data {IMAGE}",  # an anonymous volume, removed with the container
        f"--tmpfs /run:size=10m {IMAGE}",
        f"--mount type=tmpfs,target=/t {IMAGE}",
        f"--mount target=/anonymous {IMAGE}",
        f"-v {{ro}}:/x:ro {IMAGE}",
        f"-v {{ro}}/:/x:ro,rprivate {IMAGE}",
        f"--mount type=bind,source={{ro}},target=/x,readonly {IMAGE}",
        f"--mount type=bind,source={{ro}},target=/x,ro=true {IMAGE}",
        f"-v {{rw}}:/x {IMAGE}",
        f"-v {{rw}}/sub:/x:rw {IMAGE}",
        f"-v {{rw}}/not-yet:/x {IMAGE}",
        f"-v cache-pip:/root/.cache {IMAGE}",
        f"--mount source=cache-npm,target=/c {IMAGE}",
        f"--network none {IMAGE}",
        f"--net=lab {IMAGE}",
        f"-l team=ml {IMAGE}",
        "python:3.12",
        "busybox",  # matches as busybox:latest too
        "busybox:latest",
        f"-- {IMAGE}",
    ],
)
def test_what_is_allowed(policy, mounts, args):
    ro, rw = mounts
    plan = policy.check(args.format(ro=ro, rw=rw))
    assert plan.shell == DEFAULT_SHELL


def test_a_request_choosing_its_network_gets_no_server_network(policy):
    assert policy.check(f"--net lab {IMAGE}").has_network
    assert not policy.check(IMAGE).has_network


def test_the_default_shell_is_bash_unless_the_operator_removed_it():
    settings = Settings(auth=False, allowed_shells=["sh -c"])
    assert Policy(settings).check(IMAGE).shell == ("sh", "-c")
    assert Policy(Settings(auth=False)).check(IMAGE, ["sh", "-lc"]).shell == ("sh", "-lc")


def test_an_operator_can_allow_more_flags_but_values_are_still_checked():
    policy = Policy(Settings(auth=False, allowed_flags=["--entrypoint", "pid", "-t", "--memory"]))
    assert policy.check(f"--entrypoint /bin/sh -t --memory 1g --pid=private {IMAGE}")
    assert refused(policy, f"--pid=host {IMAGE}").startswith("--pid=host is not allowed: it shares the process namespace")
    assert "by this server's policy" in refused(policy, f"-e X=1 {IMAGE}")  # not in this operator's list


# -- what an operator may write ------------------------------------------------------------------------


def test_flag_names_are_canonical_and_dangerous_ones_cannot_be_allowed():
    assert check_flag_names(["env", "-e", "--env", "--net", "-v"]) == ["--env", "--env", "--env", "--network", "--volume"]
    for name in ("--privileged", "cap-add", "--device", "--security-opt", "--volumes-from", "--name", "-d", "--use-api-socket"):
        with pytest.raises(ValueError, match="can never be allowed"):
            check_flag_names([name])
    with pytest.raises(ValueError, match="'--bogus' is not a docker run option"):
        check_flag_names(["--bogus"])
    with pytest.raises(SettingsError, match="--privileged can never be allowed"):
        Settings(auth=False, allowed_flags=["--privileged"])


def test_allowed_mounts_are_absolute_and_read_only_unless_said_otherwise():
    first, second, third = parse_allowed_mounts(["/data", "/scratch:rw", "/srv//x/:ro"])
    assert (first.path, first.writable) == ("/data", False)
    assert (second.path, second.writable) == ("/scratch", True)
    assert (third.path, third.writable) == ("/srv/x", False)
    with pytest.raises(SettingsError, match="must be an absolute path"):
        Settings(auth=False, allowed_mounts=["data:rw"])
