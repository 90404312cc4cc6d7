"""One self-contained HTML page per run or sweep: summary, figures, tables, config.

The page inlines every image as a base64 data URI, so it can be mailed or archived
as one file; the PNGs are also written beside it for reuse in papers and slides.
Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state), so
many reports can render in one process.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure

DPI = 110
MAX_TABLE_ROWS = 50

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: .9em; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f0f0f0; text-align: left; }
td { text-align: right; font-variant-numeric: tabular-nums; }
td.key { text-align: left; font-family: monospace; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-family: monospace; color: #555; }
.note { color: #666; font-style: italic; font-size: .9em; }
.scroll { overflow-x: auto; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: .85em; }
nav a { margin-right: 1em; }
"""


@contextlib.contextmanager
def plain_text() -> Iterator[None]:
    """Figures made inside show their text as typed: a ``$`` in a user's name is not math,
    and tick labels are the values themselves (no ``1e-7+1.98e-2`` offset to add in one's head)."""
    with mpl.rc_context({"text.parse_math": False, "axes.formatter.useoffset": False}):
        yield


def mark_no_data(ax, note: str) -> None:
    """Write ``note`` in the middle of a plot that has nothing to show."""
    ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", color="0.4")


def format_value(value: object) -> str:
    """A short, readable rendering of one metric: ``—`` for None or NaN."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


def render_report(
    out_dir: Path,
    *,
    title: str,
    summary: dict[str, float],
    config_yaml: str,
    figures: dict[str, Figure],
    tables: dict[str, pd.DataFrame] | None = None,
    links: dict[str, str] | None = None,
) -> Path:
    """Write ``out_dir/<name>.png`` per figure and ``out_dir/report.html``; return the page.

    Tables longer than :data:`MAX_TABLE_ROWS` show their first rows and say so. Each
    figure is cleared once saved, to free its memory.
    """
    for name in figures:
        if not name or name != Path(name).name or name.startswith("."):
            raise ValueError(f"figure name {name!r} is not a plain file name")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    images: dict[str, str] = {}
    for name, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        fig.clear()
        png = buf.getvalue()
        (out_dir / f"{name}.png").write_bytes(png)
        images[name] = base64.b64encode(png).decode("ascii")

    esc = html.escape
    sections = [("summary", "Summary", _summary_html(summary))]
    if images:
        body = "\n".join(
            f'<figure id="fig-{esc(name)}"><img alt="{esc(name)}" '
            f'src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(name)}</figcaption></figure>"
            for name, data in images.items()
        )
        sections.append(("figures", "Figures", body))
    if tables:
        sections.append(("tables", "Tables", "\n".join(_table_html(n, df) for n, df in tables.items())))
    if links:
        items = "\n".join(f'<li><a href="{esc(href)}">{esc(label)}</a></li>' for label, href in links.items())
        sections.append(("links", "Links", f"<ul>{items}</ul>"))
    sections.append(
        (
            "config",
            "Configuration",
            f"<details><summary>Resolved config</summary><pre>{esc(config_yaml)}</pre></details>",
        )
    )

    nav = " ".join(f'<a href="#{sid}">{heading}</a>' for sid, heading, _ in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1><nav>{nav}</nav>",
    ]
    parts += [f'<h2 id="{sid}">{heading}</h2>\n{body}' for sid, heading, body in sections]
    parts.append("</body></html>\n")
    page = out_dir / "report.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page


def _summary_html(summary: Mapping[str, object]) -> str:
    if not summary:
        return '<p class="note">no summary metrics</p>'
    esc = html.escape
    rows = "\n".join(
        f'<tr><td class="key">{esc(str(k))}</td><td>{esc(format_value(v))}</td></tr>'
        for k, v in summary.items()
    )
    return f"<table><tr><th>metric</th><th>value</th></tr>\n{rows}</table>"


def _table_html(name: str, df: pd.DataFrame) -> str:
    shown = df.head(MAX_TABLE_ROWS)
    if df.empty:
        note = '<p class="note">empty table</p>'
    elif len(df) > len(shown):
        note = f'<p class="note">first {len(shown)} of {len(df):,} rows</p>'
    else:
        note = ""
    # escape=True keeps cell text such as "<model>" from being read as markup
    body = shown.to_html(
        index=False,
        escape=True,
        na_rep="—",
        float_format=format_value,
        border=0,
    )
    return f'<h3>{html.escape(name)}</h3>{note}<div class="scroll">{body}</div>'
