"""Every code block in README.md and docs/*.md is checked against the code, so the docs cannot drift.

What a block gets depends on its language (the word after the opening fence) and on an
optional directive, an HTML comment on the line just before the fence (invisible on GitHub):

=====================================  =========================================================
block                                  check
=====================================  =========================================================
python, ipython                        DRY RUN. The blocks of a page are run in order in one
                                       IPython shell with Dockyter loaded, as a reader would
                                       type them, but every backend is replaced by one that
                                       records requests instead of starting containers, and
                                       host ``!`` commands are not run. So each magic line is
                                       parsed by the real code (``$var`` expansion, options,
                                       docker arguments, %config values), and the block must not
                                       raise or print a ``Dockyter:`` line. Each recorded
                                       ``%%docker`` body must pass ``bash -n`` (``sh -n``).
``<!-- snippet: run -->`` python       REAL RUN with the docker backend, the public images of
                                       IMAGES replaced by the local test images. Must not raise.
``<!-- snippet: run, raises -->``      the same, and must raise.
``<!-- snippet: output -->`` text      after a run block: every line of it must match a line
                                       that block printed or displayed (``...`` matches anything;
                                       ANSI colours removed; images replaced as in the block).
                                       A ``Dockyter:`` line the run printed must be shown here.
``<!-- snippet: completes -->`` text   TAB completion, in the page's shell as the blocks before
                                       it left it: each line is ``CODE<TAB>`` and the words
                                       IPython's completer offers there, in that order and
                                       nothing else (``(nothing)``: none; a last ``...``: these
                                       first, more after).
python starting ``c = get_config()``   an ipython_config.py: executed with a fresh traitlets
                                       Config; each ``c.Dockyter.<name>`` must be a trait, and
                                       Dockyter must accept the values.
toml                                   parses; a dockyter.toml (tables Dockyter, backend,
                                       docker, profiles) loads with no problem at all; a
                                       dockyter-server config (its setting names) is accepted by
                                       the server's settings.
sh, bash, shell                        ``bash -n``; and, per command: ``bash FILE`` and
                                       ``python FILE`` name files of this repository,
                                       ``python -m MODULE`` is importable, ``dockyter-server
                                       ARGS`` is accepted by the server's option parser,
                                       ``pytest -m EXPR`` uses registered markers. Nothing runs.
json                                   parses.
ini                                    parses (configparser; systemd units).
nginx, caddy                           braces balance (neither tool is installed here).
no language, text, http                not checked: diagrams, sample output, HTTP exchanges.
anything else                          fails: teach this file about it first.
=====================================  =========================================================

Also checked: relative links point to files that exist (and to headings that exist), and the
README's shell commands are exactly the two setup commands. The trait table of
docs/configuration.md and the settings table of docs/server.md have their own tests
(test_config_docs.py, test_server_settings.py).
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.utils.text import SList
from recording import RecordingBackend
from shells import run_cell
from traitlets.config import Config

from dockyter.backends import registry as backends

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Public images the docs use -> the fixture that gives the local image to run them with.
IMAGES = {"bash:5": "test_image", "alpine:3": "sh_image", "python:3.12": "python_image"}

PYTHON = {"python", "ipython"}
SHELL = {"sh", "bash", "shell"}
NOT_CHECKED = {"", "text", "http"}
LANGUAGES = PYTHON | SHELL | NOT_CHECKED | {"toml", "json", "ini", "nginx", "caddy"}
DIRECTIVES = {"run", "run, raises", "output", "completes"}

# =============================================================================================
# Reading the blocks
# =============================================================================================

FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<info>[^`]*?)\s*$")
DIRECTIVE = re.compile(r"^\s*<!--\s*snippet:\s*(?P<what>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    directive: str  # "" or one of DIRECTIVES

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def __str__(self) -> str:  # the test id
        return f"{self.where}:{self.language or 'plain'}"


def read_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with their language and directive."""
    blocks, lines = [], page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        language = (opening["info"].split() or [""])[0].lower()
        directive = DIRECTIVE.match(lines[index - 1]) if index else None
        body, end = [], index + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence) and not lines[end].strip().strip(fence[0])
        ):
            line = lines[end]
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())  # undo a list's indent
            end += 1
        blocks.append(Block(page, index + 1, language, "\n".join(body) + "\n", directive["what"] if directive else ""))
        index = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def test_reading_blocks_keeps_language_directive_and_indentation(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- snippet: run -->\n```python\nif x:\n    y()\n```\n"
        "1. a list item:\n\n   ```toml\n   [a]\n   b = 1\n   ```\n",
        encoding="utf-8",
    )
    python, toml = read_blocks(page)
    assert (python.line, python.language, python.directive, python.text) == (3, "python", "run", "if x:\n    y()\n")
    assert (toml.language, toml.directive, toml.text) == ("toml", "", "[a]\nb = 1\n")


def test_output_lines_match_with_ellipses_and_local_images():
    printed = "Dockyter: `!` now runs in dockyter-test/bash:1 (docker backend)\n  timeout   600 s\n"
    expected = with_local_images(
        "Dockyter: `!` now runs in bash:5 (docker backend)\ntimeout ...600 s\n", {"bash:5": "dockyter-test/bash:1"}
    )
    assert unmatched(expected, printed) == []
    assert unmatched("timeout ...601 s", printed) == ["timeout ...601 s"]
    assert with_local_images("bash:5 mybash:5 bash:50 x/bash:5", {"bash:5": "L"}) == "L mybash:5 bash:50 x/bash:5"


def test_the_docs_have_blocks_of_known_kinds_only():
    unknown = [f"{b} (```{b.language})" for b in ALL_BLOCKS if b.language not in LANGUAGES]
    assert not unknown, f"blocks of a language this file cannot check (add a checker): {unknown}"
    bad = [f"{b}: {b.directive!r}" for b in ALL_BLOCKS if b.directive and b.directive not in DIRECTIVES]
    bad += [
        f"{b}: run on a non-Python block"
        for b in ALL_BLOCKS
        if b.directive.startswith("run") and b.language not in PYTHON
    ]
    bad += [
        f"{b}: {b.directive} on a block with a language"
        for b in ALL_BLOCKS
        if b.directive in ("output", "completes") and b.language not in NOT_CHECKED
    ]
    assert not bad, f"misplaced or unknown <!-- snippet: ... --> directives: {bad}"


# =============================================================================================
# Python and IPython blocks: one shell per page, in order
# =============================================================================================

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def is_ipython_config(block: Block) -> bool:
    return block.text.lstrip().startswith("c = get_config()")


def with_local_images(text: str, images: dict[str, str]) -> str:
    for public, local in images.items():
        text = re.sub(rf"(?<![\w./:-]){re.escape(public)}(?![\w.:/-])", local, text)
    return text


def patterns(expected: str) -> dict[str, re.Pattern[str]]:
    """A pattern for each non-blank line of an output block; ``...`` matches anything."""
    lines = filter(None, (line.strip() for line in expected.splitlines()))
    return {line: re.compile(".*".join(map(re.escape, line.split("...")))) for line in lines}


def unmatched(expected: str, actual: str) -> list[str]:
    """The lines of ``expected`` that match no line of ``actual``."""
    actual_lines = [line.strip() for line in actual.splitlines()]
    return [line for line, p in patterns(expected).items() if not any(p.fullmatch(a) for a in actual_lines)]


def shown(message: str, expected: str) -> bool:
    return any(p.fullmatch(message.strip()) for p in patterns(expected).values())


def python_pages() -> list:
    params = []
    for page in PAGES:
        blocks = [
            b
            for b in read_blocks(page)
            if (b.language in PYTHON and not is_ipython_config(b)) or b.directive == "completes"
        ]
        if blocks:
            runs = any(b.directive.startswith("run") for b in blocks)
            marks = [pytest.mark.docker] if runs else []
            params.append(pytest.param(page, marks=marks, id=str(page.relative_to(ROOT))))
    return params


def bash_syntax_problem(shell: str, script: str) -> str | None:
    """What ``bash -n`` (or ``sh -n``) says about ``script``; None when it parses."""
    checker = "sh" if shell == "sh" else "bash"
    answer = subprocess.run([checker, "-n", "-c", script], capture_output=True, text=True, check=False)
    return (answer.stderr.strip() or "a syntax error") if answer.returncode else None


@dataclass
class RealRun:
    """What a ``run`` block did, for the output block that may follow it."""

    block: Block
    printed: str  # stdout, stderr and displayed text, without ANSI colours
    messages: list[str]  # its "Dockyter:" lines on stderr
    images: dict[str, str]  # public name -> local image it ran with


@pytest.mark.parametrize("page", python_pages())
def test_python_blocks_of(page, ip, recording_backend, monkeypatch, request):  # noqa: F811 - fixture
    """Dry-run every Python block of ``page`` in order; really run the ones marked ``run``."""
    # Host `!` commands (redirection off) are never run. Set in the instance's __dict__, where
    # Dockyter's redirection saves what it replaces and puts it back.
    monkeypatch.setitem(ip.__dict__, "system", lambda cmd: None)
    monkeypatch.setitem(ip.__dict__, "getoutput", lambda cmd, split=True, depth=0: SList())
    real = dict(backends.REGISTRY)
    blocks = [b for b in read_blocks(page) if b.language in PYTHON or b.directive in ("output", "completes")]
    if any(b.directive.startswith("run") for b in blocks):
        request.getfixturevalue("no_leftover_containers")

    previous: RealRun | None = None
    for block in blocks:
        if block.directive == "output":
            check_output(block, previous)
            previous = None
            continue
        if block.directive == "completes":
            check_completions(ip, block)
            continue
        check_nothing_unshown(previous)
        if is_ipython_config(block):
            check_ipython_config(block)
        elif block.directive.startswith("run"):
            images = {public: request.getfixturevalue(IMAGES[public]) for public in IMAGES if public in block.text}
            previous = run_for_real(ip, block, images, real, monkeypatch)
        else:
            dry_run(ip, block, monkeypatch)
    check_nothing_unshown(previous)
    if "docker_off" in ip.magics_manager.magics["line"]:
        ip.run_line_magic("docker_off", "")  # before the fixtures put the shell back


def use_backends(ip, registry: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve backend names with ``registry`` from the next command on."""
    monkeypatch.setattr(backends, "REGISTRY", registry)
    magics = getattr(ip, "_dockyter", None)
    if magics is not None and magics._backend is not None:  # built again, from `registry`, when next used
        magics._backend.close()
        magics._backend = None


def run_block(ip, block: Block, source: str) -> tuple[str, list[str]]:
    """Run ``source`` as ``block``; what it printed, and its Dockyter: lines. Fails on a traceback."""
    outcome = run_cell(ip, source)
    printed = ANSI.sub("", outcome.stdout + outcome.stderr + outcome.shown)
    if block.directive == "run, raises":
        assert outcome.error is not None, f"{block.where} should raise, and did not:\n{printed}"
    else:
        assert outcome.error is None, f"{block.where} raised {outcome.error!r}:\n{printed}"
    assert "Traceback" not in printed, f"{block.where} printed a traceback:\n{printed}"
    return printed, [line for line in ANSI.sub("", outcome.stderr).splitlines() if line.startswith("Dockyter:")]


def dry_run(ip, block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    use_backends(ip, dict.fromkeys(backends.known_backends(), "recording:RecordingBackend"), monkeypatch)
    RecordingBackend.requests.clear()
    _, messages = run_block(ip, block, block.text)
    assert not messages, f"{block.where} printed {messages}"
    for recorded, _ in RecordingBackend.requests:
        problem = bash_syntax_problem(recorded.shell[0], recorded.command)
        assert problem is None, f"{block.where}: the cell is not valid {recorded.shell[0]}: {problem}"


def run_for_real(
    ip, block: Block, images: dict[str, str], real: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> RealRun:
    use_backends(ip, real, monkeypatch)
    printed, messages = run_block(ip, block, with_local_images(block.text, images))
    return RealRun(block, printed, messages, images)


def check_output(block: Block, previous: RealRun | None) -> None:
    """``block`` shows what ``previous`` printed: each line matches, and no Dockyter: line is left out."""
    assert previous is not None, f"{block.where}: an output block must follow a run block"
    expected = with_local_images(block.text, previous.images)
    missing = unmatched(expected, previous.printed)
    assert not missing, (
        f"{block.where}: {previous.block.where} did not print {missing}; it printed:\n{previous.printed}"
    )
    unshown = [message for message in previous.messages if not shown(message, expected)]
    assert not unshown, f"{previous.block.where} printed {unshown}, which {block.where} does not show"


def offered(ip, code: str) -> list[str]:
    """The whole words IPython's completer offers at the end of ``code``, in its order."""
    word_start = len(code) - len(code.split()[-1]) if code[-1:].strip() else len(code)
    with provisionalcompleter():
        completions = list(ip.Completer.completions(code, len(code)))
    return [code[word_start : c.start] + c.text for c in completions if c.start >= word_start]


def check_completions(ip, block: Block) -> None:
    """Each ``CODE<TAB>  WORDS...`` line: what TAB offers there, in order, and nothing else."""
    for line in filter(str.strip, block.text.splitlines()):
        code, tab, said = line.partition("<TAB>")
        assert tab, f"{block.where}: {line!r} has no <TAB>"
        words = said.split()
        more = words[-1:] == ["..."]
        expected = [] if words == ["(nothing)"] else words[:-1] if more else words
        got = offered(ip, code)
        assert (got[: len(expected)] if more else got) == expected, f"{block.where}: {code}<TAB> offers {got}"


def check_nothing_unshown(previous: RealRun | None) -> None:
    """A run block without an output block must not have printed a Dockyter: line."""
    if previous is not None:
        assert not previous.messages, (
            f"{previous.block.where} printed {previous.messages}: show them in an output block"
        )


def check_ipython_config(block: Block) -> None:
    from dockyter.core import Dockyter

    config = Config()
    exec(compile(block.text, block.where, "exec"), {"get_config": lambda: config})  # noqa: S102 - as IPython runs the file
    traits = Dockyter.class_traits(config=True)
    unknown = sorted(set(config.get("Dockyter", {})) - set(traits))
    assert not unknown, f"{block.where}: Dockyter has no trait {unknown}"
    Dockyter(config=config)  # a value the trait refuses raises TraitError


# =============================================================================================
# Every other block, one test each
# =============================================================================================

OTHER_BLOCKS = [b for b in ALL_BLOCKS if b.language not in PYTHON and b.language not in NOT_CHECKED]
SERVER_TOKENS = {
    "DOCKYTER_SERVER_TOKENS": "docs:" + "x" * 32,
    # What JupyterHub gives its managed service, whose TOML (docs/jupyterhub.md) leaves the hub's API to it.
    "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
    "JUPYTERHUB_SERVICE_NAME": "dockyter",
}


@pytest.mark.parametrize("block", OTHER_BLOCKS, ids=str)
def test_block(block: Block, tmp_path, monkeypatch):
    check = {"toml": check_toml, "json": check_json, "ini": check_ini, "nginx": check_braces, "caddy": check_braces}
    check.update(dict.fromkeys(SHELL, check_shell))
    check[block.language](block, tmp_path, monkeypatch)


def check_json(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    json.loads(block.text)


def check_ini(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configparser.ConfigParser(strict=False, interpolation=None).read_string(block.text)


def check_braces(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    depth = 0
    for line in block.text.splitlines():
        for character in line.split("#", 1)[0]:
            depth += {"{": 1, "}": -1}.get(character, 0)
            assert depth >= 0, f"{block.where}: '}}' without '{{'"
    assert depth == 0, f"{block.where}: {depth} unclosed '{{'"


def check_toml(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    document = tomllib.loads(block.text)
    path = tmp_path / "snippet.toml"
    path.write_text(block.text, encoding="utf-8")
    from dockyter.core import Dockyter
    from dockyter.server.settings.fields import definitions
    from dockyter.server.settings.sources import load_settings

    if document and set(document) <= {"Dockyter", "backend", "docker", "profiles"}:
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.setenv("DOCKYTER_CONFIG", str(path))
        problems = Dockyter().layers.load_file()
        assert not problems, f"{block.where}: Dockyter reads this dockyter.toml with problems: {problems}"
    elif document and set(document) <= {d.name for d in definitions()}:
        load_settings(["--config", str(path)], environ=SERVER_TOKENS)


def logical_lines(script: str) -> list[str]:
    """Lines with backslash continuations joined."""
    return script.replace("\\\n", " ").splitlines()


def check_shell(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problem = bash_syntax_problem("bash", block.text)
    assert problem is None, f"{block.where}: not valid bash: {problem}"
    for line in logical_lines(block.text):
        argv = shlex.split(line, comments=True)
        while argv and (re.match(r"^\w+=", argv[0]) or argv[0] in ("sudo", "exec", "env")):
            argv = argv[1:]  # X=1 cmd, sudo cmd
        if argv:
            check_command(block, argv)


def check_command(block: Block, argv: list[str]) -> None:
    program, args = Path(argv[0]).name, argv[1:]
    if program in ("bash", "sh") and args and not args[0].startswith("-"):
        assert (ROOT / args[0]).is_file(), f"{block.where}: no file {args[0]}"
        if args[0] == ".ci/test":
            check_pytest_args(block, args[1:])
    elif re.fullmatch(r"python3?(\.\d+)?", program):
        if args[:1] == ["-m"] and len(args) > 1:
            if args[1] == "pytest":
                check_pytest_args(block, args[2:])
            else:
                assert find_spec(args[1]) is not None, f"{block.where}: no module {args[1]}"
        elif args and args[0].endswith(".py"):
            assert (ROOT / args[0]).is_file(), f"{block.where}: no file {args[0]}"
    elif program == "pytest":
        check_pytest_args(block, args)
    elif program == "dockyter-server":
        from dockyter.server.settings.sources import load_settings

        try:
            load_settings(args, environ=SERVER_TOKENS)
        except SystemExit as exit:  # argparse: an unknown option, or --help
            assert exit.code == 0, f"{block.where}: dockyter-server does not accept {shlex.join(args)}"


def check_pytest_args(block: Block, args: list[str]) -> None:
    markers = {
        line.split(":")[0]
        for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    }
    for position, arg in enumerate(args):
        if arg == "-m" and position + 1 < len(args):
            used = set(re.findall(r"[A-Za-z_]\w*", args[position + 1])) - {"and", "or", "not"}
            assert used <= markers, f"{block.where}: unknown pytest markers {used - markers}"
        elif arg.startswith("tests/"):
            assert (ROOT / arg.split("::")[0]).exists(), f"{block.where}: no {arg}"


# =============================================================================================
# Links, and the README's promise of two commands
# =============================================================================================

LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of ``page``."""
    found: set[str] = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            anchor, number = slug, 0
            while anchor in found:
                number += 1
                anchor = f"{slug}-{number}"
            found.add(anchor)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(page):
    broken = []
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    for match in LINK.finditer(text):
        target = match["target"]
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists() or (anchor and destination.suffix == ".md" and anchor not in anchors(destination)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links to nothing: {broken}"


def test_the_readme_gives_exactly_the_two_setup_commands():
    commands = [b.text.strip() for b in read_blocks(ROOT / "README.md") if b.language in SHELL]
    assert commands == ["bash .ci/demo", "bash .ci/test"]


def test_the_readme_links_every_page_of_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {(ROOT / match["target"].partition("#")[0]).resolve() for match in LINK.finditer(readme)}
    missing = [str(page.relative_to(ROOT)) for page in PAGES[1:] if page.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


if __name__ == "__main__":  # list the blocks and what each gets: python tests/test_docs_snippets.py
    for block in ALL_BLOCKS:
        print(f"{block!s:45} {block.directive or ('ipython_config' if is_ipython_config(block) else '')}")
    sys.exit(0)
