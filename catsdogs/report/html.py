"""The report as one self-contained web page, index.html, beside the files it shows.

It holds the warnings, the summary table, the figures (relative links to the PNGs in the
same folder, so the folder can be published as a CI artifact as is), links to every
table format and PDF, the full provenance of every result set (its environment.json),
and a section that `compare`'s verdicts fill when a baseline is given. No scripts, no
fonts or styles from the network.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from catsdogs.markup import html_table, html_text

VERDICTS_ID = "verdicts"
NO_VERDICTS = ("No baseline was given, so nothing is compared here. A comparison against "
               "a baseline result set (compare's verdicts) goes in this section.")

_STYLE = """
body { font-family: sans-serif; max-width: 70rem; margin: 1rem auto; padding: 0 1rem;
       color: #111; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #bbb; padding: 0.25rem 0.6rem; }
td:not(:first-child), th:not(:first-child) { text-align: right;
       font-variant-numeric: tabular-nums; }
td:not(:first-child) { white-space: nowrap; }
.scroll { overflow-x: auto; }
.warning { border-left: 0.4rem solid #D55E00; background: #fff3e8; padding: 0.4rem 0.8rem;
           margin: 0.3rem 0; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f5f5f5; padding: 0.5rem; overflow-x: auto; font-size: 0.8rem; }
dt { font-weight: bold; } dd { margin: 0 0 0.3rem 1.2rem; }
"""


def _table(display: pd.DataFrame) -> str:
    """The display table as HTML, every cell escaped, scrolling sideways when wide."""
    table = html_table(display.columns, display.itertuples(index=False), table_id="summary")
    return f'<div class="scroll">{table}</div>'


def _figure(stem: str, what: str) -> str:
    return (f'<figure><img src="{html_text(stem)}.png" alt="{html_text(what)}">'
            f'<figcaption>{html_text(what)} (<a href="{html_text(stem)}.pdf">PDF</a>)</figcaption>'
            "</figure>")


def _environment(environment: dict[str, Any]) -> str:
    name = environment.get("result_set", "result set")
    text = json.dumps(environment, indent=2, sort_keys=True, default=str)
    return (f"<details open><summary>{html_text(str(name))}: environment.json</summary>"
            f"<pre>{html_text(text)}</pre></details>")


def render_html(*, title: str, scope: str, warnings: Sequence[str], display: pd.DataFrame,
                figures: Sequence[tuple[str, str]], table_files: Sequence[str],
                provenance: Sequence[tuple[str, str]], environments: Sequence[dict[str, Any]],
                skipped: str = "", verdicts_html: str | None = None) -> str:
    """index.html as text. `figures`: (file stem, what it shows) of PNG/PDF pairs that
    exist in the same folder. `verdicts_html` (trusted HTML from compare's renderer)
    fills the verdicts section; None leaves it saying that no baseline was given."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html_text(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html_text(title)}</h1>", f"<p>{html_text(scope)}</p>",
        *[f'<p class="warning">{html_text(text)}</p>' for text in warnings],
        "<h2>Summary</h2>", _table(display),
        "<p>Tables: " + ", ".join(f'<a href="{html_text(name)}">{html_text(name)}</a>'
                                  for name in table_files) + "</p>",
        f'<section id="{VERDICTS_ID}"><h2>Comparison with a baseline</h2>',
        verdicts_html if verdicts_html is not None else f"<p>{html_text(NO_VERDICTS)}</p>",
        "</section>",
        "<h2>Figures</h2>", *[_figure(stem, what) for stem, what in figures],
    ]
    if skipped:
        parts.append(f"<p>{html_text(skipped)}</p>")
    parts += ["<h2>Provenance</h2>", "<dl>"]
    parts += [f"<dt>{html_text(label)}</dt><dd>{html_text(text)}</dd>"
              for label, text in provenance]
    parts += ["</dl>", *[_environment(env) for env in environments], "</body></html>"]
    return "\n".join(parts) + "\n"
