"""Markup shared by every renderer that writes HTML: one table builder, every cell escaped.

Why here: the report's summary table and compare's verdict table were built by two copies
of the same loop; both now call `html_table`, so an escaping fix lands in both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape


def html_table(headers: Sequence[object], rows: Iterable[Sequence[object]],
               table_id: str | None = None) -> str:
    """`<table>` with one header row and one row per item; every header and cell is text,
    escaped (result-set names, hosts and errors are user text)."""
    head = "".join(f"<th>{escape(str(header))}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>"
                   for row in rows)
    opening = f'<table id="{escape(table_id)}">' if table_id else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
