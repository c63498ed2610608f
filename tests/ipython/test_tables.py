"""The one table renderer of the magics: label and value rows, or rows under named columns."""

from dockyter.ipython.tables import Table


def test_label_and_value_rows():
    table = Table("Dockyter status", [("backend", "docker"), ("a cell runs", "docker run <x> & y")])
    assert str(table) == "Dockyter status\n  backend      docker\n  a cell runs  docker run <x> & y"
    html = table._repr_html_()
    assert html.startswith("<table><caption style='text-align:left'><b>Dockyter status</b></caption>")
    assert "<th style='text-align:left'>backend</th><td style='text-align:left'><code>docker</code></td>" in html
    assert "<code>docker run &lt;x&gt; &amp; y</code>" in html


def test_rows_under_named_columns():
    table = Table(
        "Dockyter sessions", [("s", "img:1", "running"), ("long-name", "i", "dead: <gone>")], ("name", "image", "state")
    )
    assert str(table).splitlines() == [
        "name       image  state",
        "s          img:1  running",
        "long-name  i      dead: <gone>",
    ]
    html = table._repr_html_()
    assert "<tr><th style='text-align:left'>name</th><th style='text-align:left'>image</th>" in html
    assert "<td style='text-align:left'>dead: &lt;gone&gt;</td>" in html and "<code>" not in html
