"""Every renderer escapes what a result set holds, for the format it writes (issue 24, class 3).

Hostile text goes into every text column of runs.csv and every field of environment.json
(and the result set's folder name) through the real writer, then through the real
commands: `report` (table.md, table.txt, table.tex, index.html, the README block, the
table on stdout), `compare` and `trend` in both table styles. Nothing in it may start
HTML, split a Markdown table or a line, leave a live line in LaTeX, or reach a terminal
as a control character; a real pdflatex compiles the table. The escapers themselves
(catsdogs.markup) are checked on the characters each format cares about, and
`results/render.sh` re-renders every committed output byte for byte (checked there).
"""

from __future__ import annotations

import html.parser
import re
import unicodedata
from pathlib import Path

import pytest
from test_bad_inputs import fake_epoch, fake_row

from catsdogs.cli import main
from catsdogs.markup import latex_comment, latex_text, markdown_text, plain_text
from catsdogs.report.build import README_END, README_START
from catsdogs.resultset.schema import COLUMNS, RUN_COLUMNS
from catsdogs.resultset.store import ResultSet

#: What a result set may hold: HTML, Markdown and LaTeX syntax, line ends, a terminal
#: escape, a right-to-left override, and a real Keras error's text.
HOSTILE = ("a|b <script>alert(1)</script> <img src=x onerror=alert(1)> `c` &amp; "
           "[l](javascript:x) $\\frac$ 50% #^~_{} \\input{/etc/passwd}\n"
           "\\input{/etc/hostname}\r\x1b[31m\u202e <Conv2D name=Conv1, built=True>")
#: Text columns whose values the renderers show; others (status, run_id) have rules.
_FIXED = {"schema_version", "run_id", "result_set", "status", "row_sha256", "seed",
          "started_utc", "finished_utc", "dataset", "dataset_fingerprint"}
HOSTILE_COLUMNS = [c for c in RUN_COLUMNS if COLUMNS[c].kind == "text" and c not in _FIXED]
ENVIRONMENT_FIELDS = ("host", "tf_version", "keras_version", "python_version", "device",
                      "gpu_name", "git_commit", "platform", "cpu", "data_dir", "note")


def hostile_set(results: Path, name: str, release: str) -> Path:
    """A result set whose every shown text is hostile, written by the real writer into a
    folder whose name is hostile too; `release` keeps two sets' TF versions apart."""
    environment = {key: f"{HOSTILE} {key}" for key in ENVIRONMENT_FIELDS}
    environment.update(tf_version=f"{release} {HOSTILE}", device_label="cpu",
                       dataset="real", dataset_fingerprint="f" * 64)
    created = ResultSet.create(results, environment)
    folder = created.path.parent / f"{name} | <b>`{name}` & %\n$ <img src=x onerror=alert(2)>"
    created.path.rename(folder)
    result_set = ResultSet.open(folder)
    texts = {column: f"{HOSTILE} {column}" for column in HOSTILE_COLUMNS}
    texts["tf_version"] = environment["tf_version"]
    for seed in (0, 1):
        result_set.append_run(fake_row(f"r{seed}", seed, **texts), [fake_epoch(f"r{seed}", seed)])
    result_set.append_run(fake_row("f9", 9, status="failed", **texts), [])
    return folder


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("hostile")
    return (hostile_set(root / "results", "base", "2.1"),
            hostile_set(root / "results", "cand", "2.2"), root)


def _run(capsys, *argv: str) -> str:
    """stdout of an in-process `catsdogs` that must succeed with nothing on stderr but
    at most the figure library's layout notes (the hostile labels are long)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code in (0, 1), err[-3000:]
    assert "Traceback" not in err and "catsdogs: error" not in err, err[-3000:]
    return out


def _no_raw_control(text: str) -> None:
    """Only line ends as control characters; no bidirectional override."""
    bad = [hex(ord(c)) for c in text if (unicodedata.category(c) == "Cc" and c != "\n")
           or c == "\u202e"]
    assert not bad, bad


def _markdown_safe(text: str) -> None:
    """No HTML can start, every table row has its header's cell count, no control char."""
    _no_raw_control(text)
    assert not re.search(r"<(script|img|b|/|Conv2D)", text, re.I), text
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = {len(re.findall(r"(?<!\\)\|", line)) for line in rows}
    assert len(cells) <= 1, (cells, rows[:3])
    assert not re.search(r"(?<!\\)\$\\frac", text) and "javascript" not in text.replace(
        "\\[l\\](javascript:x)", "")


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def test_report_escapes_every_text_in_every_format(hostile, capsys):
    base, _, root = hostile
    readme = root / "README.md"
    readme.write_text(f"# Results\n\n{README_START}\n{README_END}\n")
    out = root / "report" / "out | [x](y) (z)"  # a link to it must stay one link
    printed = _run(capsys, "report", str(base), "--out", str(out), "--no-samples",
                   "--readme", str(readme))
    _markdown_safe(printed.split("\nwrote into")[0])
    for name in ("table.md", "table.txt", "table.tex", "index.html"):  # it got there
        assert "Conv2D name=Conv1, built=True" in (out / name).read_text(), name
    _markdown_safe((out / "table.md").read_text())
    _no_raw_control((out / "table.txt").read_text())
    block = readme.read_text().split(README_START)[1].split(README_END)[0]
    _markdown_safe(block)
    assert re.search(r"\]\(report/[^()\s]+/index\.html\)", block), block  # links intact
    tags = _Tags()
    tags.feed((out / "index.html").read_text())
    assert {tag for tag, _ in tags.tags} <= {"html", "meta", "title", "style", "body", "h1",
                                             "h2", "p", "div", "table", "thead", "tbody",
                                             "tr", "th", "td", "a", "section", "figure",
                                             "img", "figcaption", "dl", "dt", "dd",
                                             "details", "summary", "pre", "head"}
    assert all(name in ("src", "alt", "href", "id", "class", "lang", "charset", "open")
               for _, attrs in tags.tags for name, _ in attrs)


def test_latex_comments_stay_comments_and_the_table_compiles(hostile, capsys, tmp_path):
    """A newline in a `%` comment used to leave a live `\\input{...}` line."""
    from test_latex_table import compile_table

    base, _, _ = hostile
    tex = _run(capsys, "report", str(base), "--format", "latex", "--out",
               str(tmp_path / "r"), "--no-samples").split("\nwrote into")[0] + "\n"
    _no_raw_control(tex)
    after = tex.split("\\end{table}\n", 1)[1]
    lines = after.rstrip("\n").splitlines()
    assert lines and all(line.startswith("% ") for line in lines), after
    live = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    assert not re.search(r"(?<!textbackslash\{\})\\input", live)  # every one escaped
    _, pdf_text = compile_table(tex, tmp_path / "tex")
    assert "root:" not in pdf_text and "input{/etc/passwd}" in pdf_text.replace("\n", "")


@pytest.mark.parametrize("style", ["github", "plain"])
def test_compare_and_trend_escape_names_versions_and_errors(hostile, capsys, style):
    base, candidate, root = hostile
    compared = _run(capsys, "compare", str(base), str(candidate), "--format", style)
    trended = _run(capsys, "trend", str(base), str(candidate), "--format", style, "--out",
                   str(root / f"trend-{style}"))
    for text in (compared, trended):
        if style == "github":
            _markdown_safe(text)
        else:
            _no_raw_control(text)
        assert "HOSTILE" not in text and "a|b" in text.replace("\\|", "|")


# ---------------------------------------------------------------- the escapers, one per format


def test_plain_text_makes_every_control_character_visible():
    assert plain_text("a\nb\r\tc\x1b[0m\x00\x7f\u202e") == \
        "a\\x0ab\\x0d\\x09c\\x1b[0m\\x00\\x7f\\u202e"
    assert plain_text("± – − † … ≥ × é") == "± – − † … ≥ × é"  # text stays text


def test_markdown_text_escapes_what_starts_html_splits_cells_or_links():
    assert markdown_text("a|b") == "a\\|b"
    assert markdown_text("<script>") == "&lt;script>"
    assert markdown_text("</b> <!-- x") == "&lt;/b> &lt;!-- x"
    assert markdown_text("&amp; & x") == "&amp;amp; & x"
    assert markdown_text("`code` [l](u) $x$ \\") == "\\`code\\` \\[l\\](u) \\$x\\$ \\\\"
    assert markdown_text("line\nbreak") == "line\\\\x0abreak"
    # What the committed outputs hold stays as it is: nothing there starts anything.
    for text in ("p < 0.05", "0.71 -> 0.72", "baseline_cnn (model1)", "±1.2", "--limit 100"):
        assert markdown_text(text) == text


def test_latex_text_and_comments():
    assert latex_text("50% $x$ #1 a_b {c} ~ ^ \\ [o]") == (
        "50\\% \\$x\\$ \\#1 a\\_b \\{c\\} \\textasciitilde{} \\textasciicircum{} "
        "\\textbackslash{} {[}o{]}")
    assert "\n" not in latex_text("a\nb") and "\n" not in latex_comment("a\n\\input{x}")
    assert latex_text("--limit") == "-{}-limit"
