"""The contract both ends share: one `docker run` argv skeleton, used by the client and the server alike."""

from dockyter.backends.base import RunRequest
from dockyter.backends.docker.dockerbackend import DockerBackend
from dockyter.backends.settings import StaticSettings
from dockyter.wire.contract import INIT_ENV, MANAGED_LABEL, OWNER_LABEL, identity_args, limit_args, run_argv
from dockyter.wire.dockerargs import parse_run_args


def test_the_argv_skeleton():
    argv = run_argv(
        ["docker"], "dockyter-x", image="img:1", shell=("bash", "-lc"), command="echo hi",
        options=["-e", "A=1"], before=["--log-driver", "none"], after=["--network", "none"],
    )  # fmt: skip
    assert argv == [
        "docker", "run", "--rm", "--init", "--name", "dockyter-x",
        "--log-driver", "none", "-e", "A=1", "--network", "none",
        "img:1", "bash", "-lc", "echo hi",
    ]  # fmt: skip


def test_merging_stderr_happens_inside_the_container():
    argv = run_argv(["podman"], "n", image="i", shell=("sh", "-c"), command="ls", merge_stderr=True)
    assert argv[-3:] == ["sh", "-c", "exec 2>&1; ls"]


def test_identity_labels_then_the_init_environment():
    assert identity_args({MANAGED_LABEL: "1"}) == ["--label", f"{MANAGED_LABEL}=1", "--env", INIT_ENV]


def test_the_server_limits_in_order_and_only_those_set():
    from dockyter.server.settings.fields import Settings

    settings = Settings(auth=False, pull="missing", runtime="runsc")
    assert limit_args(settings, has_network=False) == [
        "--network", "none", "--memory", "512m", "--cpus", "1", "--pids-limit", "256", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--pull", "missing", "--runtime", "runsc",
    ]  # fmt: skip
    # A network the policy let the request choose is not overridden; empty settings add nothing.
    bare = Settings(
        auth=False, network="", memory="", cpus="", pids_limit=0, drop_capabilities=False, forbid_new_privileges=False,
        pull="",
    )  # fmt: skip
    assert limit_args(settings, has_network=True)[:2] == ["--memory", "512m"]
    assert limit_args(bare, has_network=False) == []


def test_the_docker_backend_puts_its_labels_and_defaults_before_the_users_options():
    settings = StaticSettings(docker_command=["sudo", "docker"])
    request = RunRequest(parse_run_args("--log-driver json-file -v /d:/d img:2"), "true")
    argv = DockerBackend(settings).command_line(request, "dockyter-n")
    assert argv[:7] == ["sudo", "docker", "run", "--rm", "--init", "--name", "dockyter-n"]
    assert argv[7:9] == ["--label", f"{MANAGED_LABEL}=1"] and argv[9] == "--label" and argv[10].startswith(OWNER_LABEL)
    # the user's --log-driver comes after the default one, so docker uses the user's
    assert argv[11:] == ["--env", INIT_ENV, "--log-driver", "none", "--log-driver", "json-file", "-v", "/d:/d",
                         "img:2", "bash", "-lc", "true"]  # fmt: skip


def test_static_settings_have_the_trait_defaults():
    from dataclasses import fields

    from dockyter.core import Dockyter

    defaults = StaticSettings()
    traits = Dockyter.class_traits()
    for field in fields(StaticSettings):
        if field.name == "api_token":  # the trait's default comes from $DOCKYTER_API_TOKEN
            continue
        if field.name == "site_api_url":  # no trait: the api_url the site's ipython_config.py sets
            assert field.name not in traits and defaults.site_api_url == ""
            continue
        assert getattr(defaults, field.name) == traits[field.name].default(), field.name
