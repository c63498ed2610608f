"""docs/configuration.md documents every trait as the code defines it."""

from pathlib import Path

from dockyter.config.doctable import BEGIN, END, table_in, trait_table, with_table
from dockyter.core import Dockyter

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_trait_table_in_the_docs_is_generated_from_the_code():
    assert table_in(PAGE.read_text(encoding="utf-8")) == trait_table(), (
        "docs/configuration.md is out of date: run `python -m dockyter.config.doctable docs/configuration.md`"
    )


def test_every_configurable_trait_has_help_and_a_row():
    table = trait_table()
    for name, trait in Dockyter.class_traits(config=True).items():
        assert trait.help.strip(), f"Dockyter.{name} has no help text"
        assert f"| `{name}` |" in table


def test_regenerating_replaces_only_the_table():
    page = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"
    assert with_table(page, "new table") == f"intro\n{BEGIN}\nnew table\n{END}\noutro\n"
