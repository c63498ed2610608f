"""What each part of the package may import, read from the source: no module is imported to find out.

Every import statement counts, wherever it is (a function, an ``if TYPE_CHECKING:`` block): a
lazy import is still a dependency. ``from package import name`` counts as an import of the
module ``package.name`` when there is one, else of ``package``. test_layering.py checks what an
import really loads at run time; this checks what the source says.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dockyter"

MOST_MODULES = 15  # in one folder: beyond that, its parts want folders of their own


@dataclass(frozen=True)
class Import:
    importer: str  # the module whose source has the statement
    imported: str  # the module it imports (absolute)
    names: tuple[str, ...]  # for `from M import a, b`: the names taken from M (empty for `import M`)
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package, by name."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@cache
def imports_of(name: str) -> tuple[Import, ...]:
    """Every import statement of module ``name``, resolved to absolute module names."""
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
    here = name if is_package(name) else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names = tuple(alias.name for alias in node.names)
            submodules = [f"{source}.{n}" for n in names if f"{source}.{n}" in modules()]
            found += [Import(name, module, (), node.lineno) for module in submodules]
            rest = tuple(n for n in names if f"{source}.{n}" not in modules())
            if rest or not submodules:
                found.append(Import(name, source, rest, node.lineno))
    return tuple(found)


def all_imports() -> Iterator[Import]:
    for name in modules():
        yield from imports_of(name)


def import_graph() -> dict[str, set[str]]:
    """Each module of the package, and the modules of the package it imports."""
    return {name: {i.imported for i in imports_of(name) if i.imported in modules()} for name in modules()}


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of an import graph (Tarjan), self-imports included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(frozenset(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    found = [sorted(circle) for circle in circles(import_graph())]
    assert not found, f"modules that import each other (a child should take a Protocol, not its parent): {found}"


def test_the_circle_finder_finds_circles():
    # the check above can fail: a child importing its parent back, directly or through a sibling
    graph = import_graph()
    graph["dockyter.server.engine.execution"].add("dockyter.server.engine.engineexecutor")
    graph["dockyter.wire.contract"].add("dockyter.wire.contract")
    graph["dockyter.server.swarm.swarmcheck"].add("dockyter.server.swarm.swarmexecution")
    assert sorted(map(sorted, circles(graph))) == [
        [  # the executor's prestarted executions import execution too: they join the circle
            "dockyter.server.engine.engineexecutor",
            "dockyter.server.engine.execution",
            "dockyter.server.engine.prestarted",
            "dockyter.server.engine.prestartedrun",
            "dockyter.server.engine.prestartpool",
        ],
        ["dockyter.server.swarm.swarmcheck", "dockyter.server.swarm.swarmexecution"],
        ["dockyter.wire.contract"],
    ]


def test_the_wire_imports_only_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    wrong = [
        str(i)
        for i in all_imports()
        if within(i.importer, "dockyter.wire")
        and not within(i.imported, "dockyter.wire")
        and i.imported.split(".")[0] not in allowed
    ]
    assert not wrong, wrong


def test_only_the_ipython_package_imports_ipython():
    wrong = [
        str(i)
        for i in all_imports()
        if i.imported.split(".")[0] in ("IPython", "ipykernel") and not within(i.importer, "dockyter.ipython")
    ]
    assert not wrong, wrong
    assert any(within(i.importer, "dockyter.ipython") and within(i.imported, "IPython") for i in all_imports())


def test_only_the_servers_http_package_imports_the_web_framework():
    framework = ("fastapi", "starlette", "pydantic", "pydantic_core", "uvicorn", "h11")
    wrong = [
        str(i)
        for i in all_imports()
        if i.imported.split(".")[0] in framework and not within(i.importer, "dockyter.server.http")
    ]
    assert not wrong, wrong
    assert any(within(i.importer, "dockyter.server.http") and within(i.imported, "fastapi") for i in all_imports())


def test_the_server_imports_nothing_of_the_client_but_the_wire():
    wrong = [
        str(i)
        for i in all_imports()
        if within(i.importer, "dockyter.server")
        and within(i.imported, "dockyter")
        and not within(i.imported, "dockyter.server")
        and not within(i.imported, "dockyter.wire")
        and not (i.imported == "dockyter" and set(i.names) <= {"__version__"})
    ]
    assert not wrong, wrong


@cache
def defined_in(name: str) -> set[str]:
    """The names module ``name`` defines itself (not those it imports), at its top level."""
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for target in node.targets for t in ast.walk(target) if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_every_name_is_imported_from_the_module_that_defines_it():
    # No re-export hubs: a module imports a name from where it is defined, never through another
    # module that imported it.
    wrong = [
        f"{i}: {name} is not defined there"
        for i in all_imports()
        if i.imported in modules()
        for name in i.names
        if name not in defined_in(i.imported) and name != "*"
    ]
    assert not wrong, wrong


def packages() -> list[str]:
    return [name for name in modules() if is_package(name)]


def test_no_package_reexports_what_its_modules_define():
    # A package's __init__ says what lives there; it hands out nothing (the package itself aside).
    wrong = [str(i) for name in packages() if name != "dockyter" for i in imports_of(name) if i.names]
    assert not wrong, wrong


@pytest.mark.parametrize("package", sorted(set(packages()) - {"dockyter"}))
def test_each_package_says_what_lives_there(package):
    init = modules()[package]
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    members = {name.rpartition(".")[2] for name in modules() if name.rpartition(".")[0] == package}
    missing = [member for member in members if f"``{member}``" not in doc and f"``{member}/``" not in doc]
    assert not missing, f"{package}'s docstring does not name {missing}"
    assert "May import" in doc


def test_no_two_modules_or_classes_share_a_name():
    # One home per name: `control.py` on both sides, or two classes called Execution, make every
    # import and every search ask "which one?".
    modules_by_name: dict[str, list[str]] = {}
    classes_by_name: dict[str, list[str]] = {}
    for name, path in modules().items():
        if path.name not in ("__init__.py", "__main__.py"):
            modules_by_name.setdefault(path.name, []).append(name)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                classes_by_name.setdefault(node.name, []).append(name)
    assert not {file: names for file, names in modules_by_name.items() if len(names) > 1}
    assert not {cls: names for cls, names in classes_by_name.items() if len(names) > 1}


def test_no_folder_holds_more_than_about_15_modules():
    crowded = {}
    for package in packages():
        members = [name for name in modules() if name.rpartition(".")[0] == package and not is_package(name)]
        members = [name for name in members if not name.endswith(".__main__")]
        if len(members) > MOST_MODULES:
            crowded[package] = len(members)
    assert not crowded, crowded
