"""The server's policy, unit by unit: every refused spelling, what is allowed, and why.

No container runs here; tests/server/http/test_server_http.py checks that refusals reach clients as 403,
from a server on the engine and from one on the Swarm. These stay single: both executors use
this one Policy, and nothing of an executor is involved until it has passed.
"""

from __future__ import annotations

import os

import pytest

from dockyter.server.policy.allowlist import check_flag_names, parse_allowed_mounts
from dockyter.server.policy.requestpolicy import Policy
from dockyter.server.servererrors import ArgsUnreadable, PolicyError
from dockyter.server.settings.fields import Settings, SettingsError
from dockyter.server.settings.sources import load_settings
from dockyter.wire.contract import DEFAULT_SHELL
from dockyter.wire.dockerargs import BOOL_FLAGS, parse_run_args

IMAGE = "dockyter-test/bash:1"


@pytest.fixture
def mounts(tmp_path):
    """Two host directories an operator allows: one read-only, one writable."""
    ro = tmp_path / "shared"
    rw = tmp_path / "scratch"
    ro.mkdir()
    rw.mkdir()
    (rw / "sub").mkdir()
    (ro / "sub").mkdir()
    (ro / "sub" / "file").write_text("data")
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
        ("-v /usr/bin:/e:ro", "not under an allowed host path"),
        ("--mount type=bind,source=/usr/bin,target=/e,readonly", "not under an allowed host path"),
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


def test_a_symbolic_link_is_never_followed(policy, mounts):
    ro, rw = mounts
    os.symlink("/", ro / "escape")
    os.symlink("/etc", ro / "etc")
    os.symlink("sub", ro / "relative")
    assert f"{ro}/escape is a symbolic link" in refused(policy, f"-v {ro}/escape:/x:ro {IMAGE}")
    assert f"{ro}/etc is a symbolic link" in refused(
        policy, f"--mount type=bind,source={ro}/etc/passwd,target=/x,readonly {IMAGE}"
    )
    assert f"{ro}/relative is a symbolic link" in refused(policy, f"-v {ro}/relative:/x:ro {IMAGE}")
    # A link followed by "..": the kernel would land in /, the lexical reading in {ro}.
    assert f"{ro}/etc is a symbolic link" in refused(policy, f"-v {ro}/etc/..:/x:ro {IMAGE}")


def test_nothing_below_a_writable_root_is_mountable(policy, mounts):
    # A container can replace anything below it with a link between the check and the mount.
    _, rw = mounts
    os.symlink("/etc", rw / "etc")
    for source in (f"{rw}/sub", f"{rw}/etc", f"{rw}/not-yet", f"{rw}/sub/../sub"):
        message = refused(policy, f"-v {source}:/x:ro {IMAGE}")
        assert f"is inside the writable directory {rw}, which containers can change: mount {rw} itself" in message


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (
            "{ro}/made-by-a-request/a/b",
            "{ro}/made-by-a-request does not exist (the server never creates a mount source)",
        ),
        ("{ro}/sub/file/x", "{ro}/sub/file is not a directory"),
        ("{ro}/" + "n" * 300, "file name too long"),
        ("{ro}/" + "/".join(["d" * 200] * 25), "longer than the system's limit"),
    ],
)
def test_a_source_that_cannot_be_checked_is_refused_and_never_created(policy, mounts, source, why):
    ro, _ = mounts
    before = sorted(ro.rglob("*"))
    message = refused(policy, f"-v {source.format(ro=ro)}:/h:ro {IMAGE}")
    assert why.format(ro=ro) in message, message
    assert message.startswith(f"-v {source.format(ro=ro)}:/h:ro is not allowed: ")
    assert sorted(ro.rglob("*")) == before


def test_a_nul_byte_in_a_source_is_refused_before_any_option_is_read(policy, mounts):
    ro, _ = mounts
    with pytest.raises(ArgsUnreadable, match=r"contains U\+0000 \(NUL\) in the argument .*a\\x00b"):
        policy.check(f"--mount type=bind,source={ro}/a\x00b,target=/h,readonly {IMAGE}")


def test_bind_mounts_reach_the_engine_as_mount_of_the_checked_path(policy, mounts):
    ro, rw = mounts
    plan = policy.check(
        f"-e X=1 -v {ro}//sub/./../sub:/data:ro,rprivate -v {rw}/:/w --mount src={ro}/sub/file,dst=/f,type=bind,ro {IMAGE}"
    )
    assert plan.args.argv() == [
        "--env=X=1",
        f"--mount=type=bind,source={ro}/sub,target=/data,bind-propagation=rprivate,readonly=true",
        f"--mount=type=bind,source={rw},target=/w",
        f"--mount=type=bind,source={ro}/sub/file,target=/f,readonly=true",
        IMAGE,
    ]  # fmt: skip


def test_a_comma_in_a_path_is_quoted_for_the_engine(policy, mounts):
    ro, _ = mounts
    (ro / "a,b").mkdir()
    plan = policy.check(f"-v {ro}/a,b:/x,y:ro {IMAGE}")
    assert plan.args.argv()[0] == f'--mount=type=bind,"source={ro}/a,b","target=/x,y",readonly=true'


def test_an_allowed_root_that_is_a_link_is_mounted_where_it_pointed_at_start_up(tmp_path):
    real = tmp_path / "disk" / "data"
    (real / "set").mkdir(parents=True)
    os.symlink(real, tmp_path / "data")
    policy = Policy(Settings(auth=False, allowed_mounts=[str(tmp_path / "data")]))
    plan = policy.check(f"-v {tmp_path}/data/set:/d:ro {IMAGE}")
    assert plan.args.argv()[0] == f"--mount=type=bind,source={real}/set,target=/d,readonly=true"
    os.symlink("/etc", real / "link")
    assert "is a symbolic link" in refused(policy, f"-v {tmp_path}/data/link:/d:ro {IMAGE}")
    assert "not under an allowed host path" in refused(policy, f"-v {tmp_path}/data/..:/d:ro {IMAGE}")


def test_nested_roots_take_the_most_specific_rule(tmp_path):
    (tmp_path / "srv" / "scratch").mkdir(parents=True)
    (tmp_path / "srv" / "data").mkdir()
    policy = Policy(Settings(auth=False, allowed_mounts=[str(tmp_path / "srv"), f"{tmp_path}/srv/scratch:rw"]))
    assert policy.check(f"-v {tmp_path}/srv/scratch:/w {IMAGE}")  # writable, though inside a read-only root
    assert "may only be mounted read-only" in refused(policy, f"-v {tmp_path}/srv/data:/w {IMAGE}")
    assert policy.check(f"-v {tmp_path}/srv:/s:ro {IMAGE}")


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("/proc/1/root", "it is on the host's proc file system (/proc)"),
        ("/proc", "it is on the host's proc file system (/proc)"),
        ("/sys/kernel", "it is on the host's sysfs file system (/sys)"),
        ("/dev", "file system (/dev)"),
        ("/", "it would give the container the host socket"),
        ("/var/lib/docker/volumes", "the container engine's directory /var/lib/docker"),
        ("/var/lib", "it contains the container engine's directory /var/lib/"),
        ("/run/docker/containerd", "it would give the container the host socket /run/docker/containerd/containerd"),
        ("/var/run/docker/containerd", "the host socket /var/run/docker/containerd/containerd"),
    ],
)
def test_with_the_whole_host_allowed_the_host_is_still_protected(source, why):
    policy = Policy(Settings(auth=False, allowed_mounts=["/"]))
    message = refused(policy, f"-v {source}:/h:ro {IMAGE}")
    assert message.startswith(f"-v {source}:/h:ro is not allowed: "), message
    assert why in message, message


@pytest.mark.parametrize(
    ("args", "image"),
    [
        ("evil/image", "evil/image"),
        ("python:2.7", "python:2.7"),
        ("-e X=1 ubuntu:24.04", "ubuntu:24.04"),
        ("python", "python"),
    ],
)
def test_images_must_match_a_pattern(policy, args, image):
    assert (
        refused(policy, args) == f"the image {image!r} is not allowed (allowed: dockyter-test/*, python:3.*, busybox)"
    )


def test_shells_must_be_allowed(policy):
    with pytest.raises(
        PolicyError, match=r"the shell 'python3 -c' is not allowed \(allowed: bash -lc, bash -c, sh -lc, sh -c\)"
    ):
        policy.check(IMAGE, ["python3", "-c"])


# -- what reaches the engine: the policy's own spelling -------------------------------------------


@pytest.mark.parametrize(
    "args",
    ["-e NAME", "--env NAME", "--env=NAME", "-eNAME", "-e=NAME", "-ie NAME", "-e ''", "--env=", "-e=", "-e =x"],
)
def test_a_value_less_env_is_refused_whatever_the_spelling(policy, args):
    message = refused(policy, f"{args} {IMAGE}")
    assert "copied from the server's environment" in message or "a variable needs a name" in message, message


@pytest.mark.parametrize(
    ("args", "spelled"),
    [
        ("-e A=1", ["--env=A=1"]),
        ("-eA=--rm", ["--env=A=--rm"]),
        ("-e=A=", ["--env=A="]),
        ("--env A==x -e B=", ["--env=A==x", "--env=B="]),
        ("-ie A=1", ["--interactive", "--env=A=1"]),
        ("--rm=True --init=1 --read-only=f", ["--rm", "--init", "--read-only=false"]),
        ("-w /tmp -u=0 -h box -l=a=b", ["--workdir=/tmp", "--user=0", "--hostname=box", "--label=a=b"]),
        ("--net lab", ["--network=lab"]),
        ("--tmpfs /t:size=1m", ["--tmpfs=/t:size=1m"]),
        ("--mount type=TMPFS,dst=/t", ["--mount=type=tmpfs,target=/t"]),
        ("--mount src=cache-a,dst=/c,ro", ["--mount=source=cache-a,target=/c,readonly"]),
        ("-v cache-a:/c:ro -v /anonymous", ["--volume=cache-a:/c:ro", "--volume=/anonymous"]),
    ],
)
def test_approved_options_reach_the_engine_as_one_token_the_policy_spelled(policy, args, spelled):
    plan = policy.check(f"{args} {IMAGE}")
    assert plan.args.argv() == [*spelled, IMAGE]
    # Read back as the docker CLI reads it, the plan means what the policy approved.
    again = parse_run_args(plan.args.argv())

    def meaning(options):
        return [(o.name, o.enabled if o.name in BOOL_FLAGS else o.value) for o in options]

    assert meaning(again.options) == meaning(plan.args.options)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ("-v {ro}:ro", "the container path 'ro' must be absolute"),
        ("-v {ro}:/h/../etc:ro", "must be written normalised, as /etc"),
        ("-v {ro}:/h/:ro", "must be written normalised, as /h"),
        ("-v //h", "must be written normalised, as /h"),
        ("-v h", "the container path 'h' must be absolute"),
        ("-v cache-a:/c/./d", "must be written normalised, as /c/d"),
        ("--mount type=bind,src={ro},dst=/h/.,ro", "must be written normalised, as /h"),
        ("--mount type=volume,source=cache-a,destination=c", "the container path 'c' must be absolute"),
        ("--mount type=tmpfs", "the container path '' must be absolute"),
        ("--tmpfs run", "the container path 'run' must be absolute"),
        ("--tmpfs /run/..:size=1m", "must be written normalised, as /"),
        ("-v '{ro}: /h:ro'", "the container path ' /h' must be absolute"),
        ("-v '{ro}:/h\u00a0:ro'", "surrounding spaces"),
    ],
)
def test_every_mount_target_is_absolute_and_normalised(policy, mounts, args, why):
    ro, _ = mounts
    assert why in refused(policy, f"{args.format(ro=ro)} {IMAGE}")


@pytest.mark.parametrize("char", ["\n", "\r", "\x1b", "\x85", "\u2028"])
def test_a_control_character_in_any_argument_is_refused_before_any_option_is_read(policy, char):
    for args in (f"-v '/a:/h{char}x:ro' {IMAGE}", f"'--privileged{char}' {IMAGE}", f"'{IMAGE}{char}'"):
        with pytest.raises(ArgsUnreadable, match=rf"contains U\+{ord(char):04X} "):
            policy.check(args)


def test_the_config_file_the_server_was_read_from_is_never_mounted(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text(f'allowed_mounts = ["{tmp_path}"]\nauth = false\n')
    policy = Policy(load_settings(["--config", str(config)], environ={}))
    assert f"it is the server's configuration file {config}" in refused(policy, f"-v {config}:/c:ro {IMAGE}")
    assert f"it contains the server's configuration file {config}" in refused(policy, f"-v {tmp_path}:/c:ro {IMAGE}")


def test_a_token_file_named_relatively_is_protected_where_the_server_read_it(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "tokens").write_text("alice:secret-token-of-alice-0123456789\n")
    monkeypatch.chdir(tmp_path / "conf")
    policy = Policy(Settings(token_file="tokens", allowed_mounts=[str(tmp_path)]))
    message = refused(policy, f"-v {tmp_path}/conf:/c:ro {IMAGE}")
    assert f"it contains the server's token file {tmp_path}/conf/tokens" in message


def test_secret_paths_must_be_absolute():
    with pytest.raises(SettingsError, match="secret_paths: 'etc/dockyter' must be an absolute path"):
        Settings(auth=False, secret_paths=["etc/dockyter"])


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
    with pytest.raises(ArgsUnreadable) as error:
        policy.check(args)
    assert str(error.value).startswith("args: ") and message in str(error.value)
    assert error.value.status == 400


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
        f"-v {{rw}}:/x:rw {IMAGE}",
        f"--mount type=bind,src={{rw}}/,dst=/x,bind-propagation=rprivate {IMAGE}",
        f"-v {{ro}}/sub/../sub/./file:/x:ro {IMAGE}",
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
    assert refused(policy, f"--pid=host {IMAGE}").startswith(
        "--pid=host is not allowed: it shares the process namespace"
    )
    assert "by this server's policy" in refused(policy, f"-e X=1 {IMAGE}")  # not in this operator's list


# -- what an operator may write ------------------------------------------------------------------------


def test_flag_names_are_canonical_and_dangerous_ones_cannot_be_allowed():
    assert check_flag_names(["env", "-e", "--env", "--net", "-v"]) == [
        "--env",
        "--env",
        "--env",
        "--network",
        "--volume",
    ]
    for name in (
        "--privileged",
        "cap-add",
        "--device",
        "--security-opt",
        "--volumes-from",
        "--name",
        "-d",
        "--use-api-socket",
    ):
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
    settings = Settings(auth=False, allowed_mounts=["/data", "/scratch:rw"])
    assert settings.allowed_mounts == ["/data", "/scratch:rw"]  # as the operator wrote them
    assert [(m.path, m.writable) for m in settings.mount_rules()] == [("/data", False), ("/scratch", True)]


def test_a_host_the_server_cannot_read_refuses_bind_mounts(policy, mounts, monkeypatch):
    # An injected fault: reading this host does not fail, but a bug there must fail closed, not 500.
    ro, _ = mounts

    def broken(*args, **kwargs):
        raise RuntimeError("unreadable")

    monkeypatch.setattr("dockyter.server.policy.hostview.read_host", broken)
    policy.survey.cache_seconds = 0.0
    assert "cannot tell which host paths are safe to mount" in refused(policy, f"-v {ro}:/x:ro {IMAGE}")
