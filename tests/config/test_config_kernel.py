"""profile_default/ipython_config.py in a real Jupyter kernel: Dockyter loaded and configured, no notebook code."""

import json
import shutil
from pathlib import Path

import pytest
from kernels import start_kernel
from traitlets.config import Config

pytestmark = pytest.mark.kernel

EXAMPLE = Path(__file__).resolve().parents[2] / "profile_default" / "ipython_config.py"


def example_settings() -> Config:
    """What the example sets, by running it the way IPython does."""
    config = Config()
    exec(EXAMPLE.read_text(encoding="utf-8"), {"get_config": lambda: config})
    return config


@pytest.fixture
def kernel(tmp_path):
    """A kernel whose IPYTHONDIR holds a copy of the example; HOME, XDG and the cwd are temporary."""
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    shutil.copy(EXAMPLE, profile / "ipython_config.py")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "dockyter.toml").write_text("[Dockyter]\ntimeout = 42\n", encoding="utf-8")
    env = {"IPYTHONDIR": str(tmp_path / "ipython"), "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    started = start_kernel(work, env, drop=("DOCKYTER_", "IPYTHON", "JUPYTER_"))
    try:
        yield started.client
    finally:
        started.shutdown()


def execute(client, code: str) -> str:
    """Run ``code`` in the kernel; return everything it printed or displayed, as text."""
    texts = []

    def collect(message):
        content = message["content"]
        if message["msg_type"] == "stream":
            texts.append(content["text"])
        elif message["msg_type"] in ("display_data", "execute_result"):
            texts.append(content["data"].get("text/plain", "") + "\n")
        elif message["msg_type"] == "error":
            texts.append("\n".join(content["traceback"]))

    reply = client.execute_interactive(code, timeout=60, output_hook=collect)
    assert reply["content"]["status"] == "ok", "".join(texts)
    return "".join(texts)


def test_the_site_profile_loads_and_configures_dockyter_in_a_real_kernel(kernel):
    expected = example_settings()
    assert "dockyter" in expected.InteractiveShellApp.extensions.get_value([])
    report = json.loads(
        execute(
            kernel,
            """
import json
ip = get_ipython()
print(json.dumps({
    "loaded": "dockyter" in ip.extension_manager.loaded,
    "magics": [ip.find_cell_magic("docker") is not None] + [ip.find_line_magic(name) is not None
               for name in ("docker", "docker_status", "docker_profile", "docker_config")],
    "values": {name: ip.run_line_magic("config", f"Dockyter.{name}")
               for name in ("default_args", "docker_command", "timeout")},
}))
""",
        )
    )
    assert report["loaded"] is True
    assert all(report["magics"])
    assert report["values"] == {
        "default_args": expected.Dockyter.default_args,
        "docker_command": expected.Dockyter.docker_command,
        "timeout": 42.0,  # the user's dockyter.toml beats the site profile
    }


def test_the_kernel_says_where_each_value_came_from(kernel):
    text = execute(kernel, "%docker_config")
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert rows["default_args"].endswith("from ipython_config.py")
    assert rows["timeout"].endswith("dockyter.toml") and "42.0" in rows["timeout"]
    assert rows["stop_grace"].endswith("from default")
