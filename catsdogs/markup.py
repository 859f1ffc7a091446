"""Every escaping rule, one function per output format, and the HTML table builder.

Text that comes from a result set (host, variant, result-set name, a failed run's error,
a TensorFlow version, anything in environment.json) is user text: a Keras error holds
`<Conv2D name=...>`, a renamed folder can hold `|` or a newline, an edited CSV anything.
Each renderer passes such text through the function for the format it writes, and only
such text: the renderers' own words and numbers go out as they are, so escaping never
changes an output that holds nothing unsafe.

- plain text (terminal, table.txt): control characters become visible escapes, so a
  newline cannot split a line and an escape sequence cannot drive the terminal;
- Markdown (table.md, the README block, `--format github` of compare and trend): the
  characters that would break a table cell, start HTML, a code span, a link or an
  entity are escaped, after the plain-text rule;
- LaTeX (table.tex): every special character of the body, and comments kept on their
  line (a newline in a `%` comment would start a live line);
- HTML (index.html): html.escape, in every cell by `html_table`;
- figures (matplotlib): `$` would start mathtext.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from html import escape as _html_escape
from urllib.parse import quote as _url_quote

#: Format characters that reorder what a reader sees (right-to-left overrides, isolates).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain_text(text: object) -> str:
    """Text for a terminal or a .txt file: control characters (newline, tab, escape
    sequences, NUL, DEL, C1) and bidirectional overrides as `\\xNN`/`\\uNNNN`, so
    whatever a result set holds prints on one line, as itself."""
    return "".join(_visible(char) if unicodedata.category(char) == "Cc" or char in _BIDI
                   else char for char in str(text))


#: Markdown: characters escaped everywhere (table cells, code spans, links, escapes).
_MARKDOWN_ALWAYS = {"\\": "\\\\", "|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]",
                    "$": "\\$"}
#: `<` that could open a tag, comment or autolink; `&` that could start an entity. (A `>`
#: closes nothing once no `<` opened it, and starts a quote only at a line's start, where
#: no escaped text ever stands.)
_MARKDOWN_OPENERS = re.compile(r"<(?=[A-Za-z/!?])|&(?=[A-Za-z#])")


def markdown_text(text: object) -> str:
    """Text for a Markdown table cell or list item (GitHub-flavoured): plain_text, then
    `\\ | ` [ ] $` backslash-escaped (`$` would start GitHub's math) and `<`, `&` as
    entities wherever they could start HTML or an entity, so `<script>` shows as text
    and `|` cannot split a cell. `<` and `&` before a space stay as they are: they start
    nothing ("p < 0.05")."""
    escaped = "".join(_MARKDOWN_ALWAYS.get(char, char) for char in plain_text(text))
    return _MARKDOWN_OPENERS.sub(lambda m: {"<": "&lt;", "&": "&amp;"}[m.group()], escaped)


def markdown_url(path: str) -> str:
    """A relative path as a Markdown link target: percent-encoded, so a name with spaces,
    brackets or parentheses cannot end the link or start another."""
    return _url_quote(path, safe="/._-+~")


#: LaTeX's special characters, and the non-ASCII characters our text uses.
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
          "^": r"\textasciicircum{}", "[": "{[}", "]": "{]}", "±": r"$\pm$", "–": "--",
          "−": "$-$", "†": r"\dag{}", "…": r"\dots{}", "≥": r"$\geq$", "×": r"$\times$"}


def latex_text(text: object) -> str:
    """Text as LaTeX source (one pass, so an escape is never escaped again): plain_text,
    then every special character, brackets braced (a row starting with `[` would be read
    as the `\\\\` before it taking an optional argument); '--' stays two hyphens
    (`--limit`), where LaTeX would set an en dash."""
    text = plain_text(text)
    return "".join("-{}" if char == "-" and text[i + 1:i + 2] == "-" else _LATEX.get(char, char)
                   for i, char in enumerate(text))


def latex_comment(text: object) -> str:
    """Text for the rest of a `%` comment line: TeX ignores everything up to the line's
    end, so only a line end can escape it; plain_text makes every one visible."""
    return plain_text(text)


def html_text(text: object) -> str:
    """Text for HTML, in an element or a quoted attribute."""
    return _html_escape(str(text))


def figure_text(text: object) -> str:
    """Text for a matplotlib title or label: plain_text, and `$` escaped, which would
    otherwise start mathtext (and an unbalanced one fail the whole figure)."""
    return plain_text(text).replace("$", r"\$")


#: The escaper of each table style the commands print.
ESCAPERS: dict[str, Callable[[object], str]] = {"github": markdown_text,
                                                 "plain": plain_text,
                                                 "latex": latex_text, "html": html_text}


def html_table(headers: Sequence[object], rows: Iterable[Sequence[object]],
               table_id: str | None = None) -> str:
    """`<table>` with one header row and one row per item; every header and cell is text,
    escaped (result-set names, hosts and errors are user text)."""
    head = "".join(f"<th>{html_text(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{html_text(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    opening = f'<table id="{html_text(table_id)}">' if table_id else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
