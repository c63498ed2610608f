"""Loading, reloading and unloading the extension, and the Dockyter configurable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from shells import run_cell

IPYTHON = str(Path(sys.executable).with_name("ipython"))


def dockyter_configurables(shell):
    return [c for c in shell.configurables if type(c).__name__ == "Dockyter"]


def configurables_but_lazy_ones(shell):
    # IPython creates ExtensionMagics on the first %load_ext: not ours to judge
    return [c for c in shell.configurables if type(c).__name__ != "ExtensionMagics"]


def test_load_registers_magics_and_one_configurable(ip):
    for kind, name in [
        ("cell", "docker"),
        ("line", "docker"),
        ("line", "docker_on"),
        ("line", "docker_off"),
        ("line", "docker_status"),
        ("line", "docker_backend"),
        ("line", "docker_cleanup"),
    ]:
        assert ip.find_magic(name, kind) is not None, name
    assert len(dockyter_configurables(ip)) == 1
    ip.run_line_magic("load_ext", "dockyter")  # loading twice changes nothing
    assert len(dockyter_configurables(ip)) == 1


def test_unload_leaves_the_shell_as_before(isolated_home):
    shell = InteractiveShell.instance()
    run_cell(shell, "%config")  # IPython creates some of its own configurables on first use
    line_magics = set(shell.magics_manager.magics["line"])
    cell_magics = set(shell.magics_manager.magics["cell"])
    configurables = configurables_but_lazy_ones(shell)
    shell_dict = set(shell.__dict__)
    shell.run_line_magic("load_ext", "dockyter")
    shell.run_line_magic("config", "Dockyter.default_args = 'img'")
    shell.run_line_magic("config", "Dockyter.redirect = True")
    shell.run_line_magic("unload_ext", "dockyter")
    assert set(shell.magics_manager.magics["line"]) == line_magics
    assert set(shell.magics_manager.magics["cell"]) == cell_magics
    assert "Dockyter" not in shell.magics_manager.registry
    assert configurables_but_lazy_ones(shell) == configurables
    assert not dockyter_configurables(shell)
    assert set(shell.__dict__) == shell_dict
    assert shell.find_cell_magic("docker") is None


def test_reload_gives_a_fresh_working_extension(ip):
    first = dockyter_configurables(ip)[0]
    ip.run_line_magic("config", "Dockyter.timeout = 5.0")  # %config values live in the shell's config
    run_cell(ip, "%docker -e A=1 img:1")
    ip.run_line_magic("reload_ext", "dockyter")
    [second] = dockyter_configurables(ip)
    assert second is not first
    assert second.timeout == 5.0
    assert second.redirect is False and "system" not in ip.__dict__
    assert ip.find_cell_magic("docker").__self__.core is second


def test_config_lists_every_trait_with_help(ip):
    listing = run_cell(ip, "%config Dockyter").stdout
    for trait in ["backend", "default_args", "docker_command", "shell", "raise_on_error", "timeout", "redirect"]:
        assert f"Dockyter.{trait}=" in listing
    assert "podman" in listing  # docker_command's help
    magics = dockyter_configurables(ip)[0]
    for name, trait in magics.traits(config=True).items():
        assert trait.help, f"Dockyter.{name} has no help text"


def test_config_sets_traits_at_run_time(ip):
    ip.run_line_magic("config", "Dockyter.docker_command = ['podman']")
    ip.run_line_magic("config", "Dockyter.shell = ['sh', '-c']")
    magics = dockyter_configurables(ip)[0]
    assert magics.docker_command == ["podman"]
    assert magics.shell == ["sh", "-c"]


def test_unknown_backend_is_refused_with_the_known_ones(ip):
    refused = run_cell(ip, "%config Dockyter.backend = 'kubernetes'")
    assert (
        "Dockyter: %config: Dockyter.backend = 'kubernetes' refused: unknown backend 'kubernetes'; known backends: api, docker (backend stays 'docker')"
        in refused.stderr
    )
    assert dockyter_configurables(ip)[0].backend == "docker"
    run = run_cell(ip, "%docker_backend kubernetes")
    assert "unknown backend 'kubernetes'; known backends: api, docker" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr


def test_backend_magic_is_the_same_as_config(ip):
    magics = dockyter_configurables(ip)[0]
    run = run_cell(ip, "%docker_backend docker")
    assert magics.backend == "docker"
    assert "Dockyter status" in run.shown  # and the status follows, as in the original
    run = run_cell(ip, "%docker_backend docker extra")
    assert "takes no further arguments" in run.stderr


def test_invalid_default_args_are_refused(ip):
    refused = run_cell(ip, "%config Dockyter.default_args = '-v'")
    assert "invalid default_args '-v': -v (--volume) needs a value" in refused.stderr
    assert dockyter_configurables(ip)[0].default_args == ""


def test_status_as_text_and_html(ip):
    magics = dockyter_configurables(ip)[0]
    ip.run_line_magic("config", "Dockyter.docker_command = ['no-such-runtime']")
    text = run_cell(ip, "%docker_status").shown
    assert "backend" in text and "docker" in text
    assert "available" in text and "no: 'no-such-runtime' was not found" in text
    assert "! redirection  off" in text
    ip.run_line_magic("config", "Dockyter.default_args = '-e A=1 img:1'")
    with capture_output() as captured:
        ip.run_line_magic("docker_status", "")
    [shown] = captured.outputs
    html = shown.data["text/html"]
    assert html.startswith("<table>") and "<code>img:1</code>" in html
    rows = dict(line.strip().split("  ", 1) for line in shown.data["text/plain"].splitlines()[1:])
    rows = {label.strip(): value.strip() for label, value in rows.items()}
    assert rows["image"] == "img:1"
    assert rows["a cell runs"].startswith("no-such-runtime run --rm --init --name dockyter-")
    assert rows["a cell runs"].endswith("-e A=1 img:1 bash -lc '<cell>'")
    assert magics.redirect is False


@pytest.mark.docker
def test_status_with_a_live_engine(engine_shell, engine_image):
    run_cell(engine_shell, f"%docker {engine_image}")
    text = run_cell(engine_shell, "%docker_status").shown
    assert "available        yes: engine" in text
    [version] = [line for line in text.splitlines() if "runtime version" in line]
    assert any(character.isdigit() for character in version)  # 28.2.2, 4.3.1
    assert "! redirection    on" in text


def test_unreachable_engine_is_explained(ip, cell):
    ip.run_line_magic("config", "Dockyter.docker_command = ['docker', '-H', 'unix:///nonexistent/docker.sock']")
    run = cell("%%docker busybox\necho hi")
    assert "no container engine answers" in str(run.error)
    assert "Traceback" not in run.stdout + run.stderr
    assert ip.user_ns["_exit_code"] != 0
    assert "no: 'docker -H unix:///nonexistent/docker.sock' cannot reach its engine" in cell("%docker_status").shown


def test_import_is_cheap():
    code = "import sys, dockyter; print(sorted(m for m in ('requests', 'fastapi', 'IPython', 'traitlets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _ipython(tmp_path, *args, config: str | None = None):
    ipython_dir = tmp_path / "ipython"
    profile = ipython_dir / "profile_default"
    profile.mkdir(parents=True)
    if config is not None:
        (profile / "ipython_config.py").write_text(config)
    env = {**os.environ, "IPYTHONDIR": str(ipython_dir), "HOME": str(tmp_path)}
    env.pop("DOCKYTER_CONFIG", None)
    return subprocess.run(
        [IPYTHON, "--no-banner", "--colors=nocolor", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


CHECK = (
    "m = get_ipython().find_cell_magic('docker'); "
    "d = [c for c in get_ipython().configurables if type(c).__name__ == 'Dockyter'][0]; "
    "print('LOADED', m is not None, d.default_args, d.shell)"
)


def test_ipython_ext_flag(tmp_path):
    done = _ipython(tmp_path, "--ext", "dockyter", "-c", CHECK)
    assert "LOADED True  ['bash', '-lc']" in done.stdout, done.stderr


def test_extensions_in_ipython_config(tmp_path):
    config = "c.InteractiveShellApp.extensions = ['dockyter']\nc.Dockyter.default_args = 'img:2'\nc.Dockyter.shell = ['sh', '-c']\n"
    done = _ipython(tmp_path, "-c", CHECK, config=config)
    assert "LOADED True img:2 ['sh', '-c']" in done.stdout, done.stderr


def test_redirect_from_ipython_config_is_installed(tmp_path):
    config = "c.InteractiveShellApp.extensions = ['dockyter']\nc.Dockyter.default_args = 'img:2'\nc.Dockyter.redirect = True\n"
    done = _ipython(tmp_path, "-c", "print('OVERRIDDEN', 'system' in get_ipython().__dict__)", config=config)
    assert "OVERRIDDEN True" in done.stdout, done.stderr
