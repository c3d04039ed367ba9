"""A self-contained HTML page: inline CSS, images as base64 PNG data URIs, every string from files escaped.

The page references nothing outside itself (no URL, no font, no script source). A tiny inline script sets
``data-images-rendered`` on <body> to the number of images the browser decoded, for headless checks; the
numbers the page shows are also embedded as JSON (<script type="application/json" id="edgec-data">).
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
from collections.abc import Iterable, Iterator, Sequence
from string import Template
from typing import Any

from edgec.report.plots import Plot

__all__ = ["Page", "esc"]

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1000px; padding: 1em 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .hash { font-family: ui-monospace, monospace; font-size: 0.85em; word-break: break-all; }
img { display: block; max-width: 100%; height: auto; margin: 0.6em 0; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #cf222e; font-weight: 600; } .note { color: #555; }
nav a { margin-right: 1em; }
.row { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
</style>
</head>
<body>
<h1>$title</h1>
<p class="note">$subtitle</p>
<nav>$nav</nav>
$body
<script type="application/json" id="edgec-data">$data</script>
<script>
window.addEventListener("load", function () {
  var ok = 0;
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    if (im.complete && im.naturalWidth === Number(im.getAttribute("width"))) { ok++; }
  }
  document.body.setAttribute("data-images-rendered", String(ok));
});
</script>
</body>
</html>
""")


def esc(value: Any) -> str:
    """``value`` as text safe in HTML content and attributes."""
    return html.escape(str(value), quote=True)


def _json_in_script(data: Any) -> str:
    """JSON that cannot end its <script> element early (every '<', '>' and '&' escaped)."""
    text = json.dumps(data, sort_keys=True, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


class Page:
    """Sections of headings, paragraphs, tables and plots, rendered to one HTML string."""

    def __init__(self, title: str, subtitle: str) -> None:
        self.title, self.subtitle = title, subtitle
        self.parts: list[str] = []
        self.sections: list[tuple[str, str]] = []
        self.plots: list[Plot] = []

    def section(self, title: str, anchor: str) -> None:
        self.sections.append((anchor, title))
        self.parts.append(f'<h2 id="{esc(anchor)}">{esc(title)}</h2>')

    @contextlib.contextmanager
    def block(self, css_class: str = "") -> Iterator[None]:
        """What is added inside the block goes into one <div> (class "row": its blocks side by side)."""
        self.parts.append(f'<div class="{esc(css_class)}">' if css_class else "<div>")
        yield
        self.parts.append("</div>")

    def heading(self, title: str) -> None:
        self.parts.append(f"<h3>{esc(title)}</h3>")

    def para(self, text: str, note: bool = False) -> None:
        self.parts.append(f'<p class="note">{esc(text)}</p>' if note else f"<p>{esc(text)}</p>")

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]], status: int | None = None) -> None:
        """A table; numbers are right-aligned. ``status``: the column holding a pass (True) / fail (False) flag."""
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        lines = []
        for row in rows:
            cells = []
            for i, cell in enumerate(row):
                if i == status:
                    cells.append(f'<td class="{"ok" if cell else "bad"}">{"pass" if cell else "FAIL"}</td>')
                elif isinstance(cell, int | float) and not isinstance(cell, bool):
                    cells.append(f'<td class="num">{esc(_number(cell))}</td>')
                else:
                    cells.append(f"<td>{esc(cell)}</td>")
            lines.append("<tr>" + "".join(cells) + "</tr>")
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>")

    def plot(self, plot: Plot, alt: str) -> None:
        uri = "data:image/png;base64," + base64.b64encode(plot.png).decode("ascii")
        self.plots.append(plot)
        self.parts.append(f'<img src="{uri}" width="{plot.width}" height="{plot.height}" '
                          f'data-plot="{esc(plot.name)}" alt="{esc(alt)}">')

    def render(self, data: Any) -> str:
        nav = "".join(f'<a href="#{esc(anchor)}">{esc(title)}</a>' for anchor, title in self.sections)
        return _PAGE.substitute(title=esc(self.title), subtitle=esc(self.subtitle), nav=nav,
                                body="\n".join(self.parts), data=_json_in_script(data))


def _number(value: float) -> str:
    """A number as the tables show it: integers with thousands separators, else 4 significant decimals."""
    if isinstance(value, int):
        return f"{value:,}"
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return f"{value:,.4f}" if abs(value) < 1e3 else f"{value:,.0f}"
