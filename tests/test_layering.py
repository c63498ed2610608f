"""Which modules each part loads: the server never the kernel's side, the config readers never IPython.

Each check imports in a fresh interpreter, so what an earlier test imported cannot hide a leak.
"""

import subprocess
import sys

import pytest


def loaded_after(statement: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with one of ``prefixes`` that ``statement`` leaves in ``sys.modules``."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return answer.stdout.split()


def top(names: list[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_the_server_loads_nothing_of_the_kernel_side():
    loaded = loaded_after("import dockyter.server.http.app", ("IPython", "traitlets", "requests", "dockyter"))
    assert not top(loaded) & {"IPython", "traitlets", "requests"}, loaded
    client_side = [m for m in loaded if m.startswith("dockyter.") and not m.startswith("dockyter.server")]
    # from the client side, only the wire package: what both ends agree on
    assert all(m == "dockyter.wire" or m.startswith("dockyter.wire.") for m in client_side), client_side
    assert "dockyter.backends" not in loaded and "dockyter.output" not in loaded


@pytest.mark.parametrize(
    "module", ["dockyter.config.tomlfile", "dockyter.config.layers", "dockyter.config.profiles", "dockyter.core"]
)
def test_reading_configuration_loads_no_ipython(module):
    assert "IPython" not in top(loaded_after(f"import {module}", ("IPython",)))


def test_pulling_is_standard_library_only():
    loaded = loaded_after("import dockyter.wire.pull", ("IPython", "traitlets", "requests", "fastapi", "dockyter"))
    assert loaded == ["dockyter", "dockyter.wire", "dockyter.wire.images", "dockyter.wire.pull"]


def test_the_contract_is_standard_library_only():
    loaded = loaded_after("import dockyter.wire.contract", ("IPython", "traitlets", "requests", "fastapi", "dockyter"))
    assert loaded == ["dockyter", "dockyter.wire", "dockyter.wire.contract"]
    loaded = loaded_after(
        "import dockyter.wire.sessionprotocol", ("IPython", "traitlets", "requests", "fastapi", "dockyter")
    )
    assert loaded == ["dockyter", "dockyter.wire", "dockyter.wire.sessionprotocol"]


def test_the_settings_do_not_need_the_policy():
    # The policy reads the settings; what both need of the operator's allowlist is in allowlist.py.
    loaded = loaded_after("import dockyter.server.settings.sources", ("dockyter.server",))
    assert "dockyter.server.policy.allowlist" in loaded and "dockyter.server.policy.requestpolicy" not in loaded, loaded
