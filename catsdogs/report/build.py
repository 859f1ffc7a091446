"""Reports from result sets: load them, and write tables, figures and index.html into a folder.

`catsdogs report SET [SET ...]` reads result sets (one session each, or shards of one
benchmark from several runners), refuses to average runs that are not comparable
(catsdogs.resultset.comparable), and writes `table.md`, `table.tex`, `table.txt`, `table.csv`
(catsdogs.report.tables), the figures in PNG and PDF (catsdogs.report.figures,
catsdogs.report.samples) and
`index.html` (catsdogs.report.html) into a report folder: by default `report/<set name>/`
beside the `runs/` folder, never into a result set, which stays exactly as written.

Reads CSVs only: no TensorFlow import, except for the augmentation preview, which needs
Keras' random layers (catsdogs.report.samples, drawn only when a dataset folder is at hand).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from catsdogs.errors import UsageError, os_reason, quoted
from catsdogs.fsutil import check_path_length, remove_abandoned, staging_folder
from catsdogs.markup import markdown_text, markdown_url, plain_text
from catsdogs.report import figures as figs
from catsdogs.report.html import render_html
from catsdogs.report.summary import left_out, summary_table
from catsdogs.report.tables import (
    DEFAULT_COLUMNS,
    FORMATS,
    TABLE_FILES,
    display_table,
    render_table,
)
from catsdogs.resultset.comparable import check_comparable
from catsdogs.resultset.describe import provenance_items, scope_line, warnings
from catsdogs.resultset.load import load_result_sets
from catsdogs.resultset.outputs import check_output_path

# ---------------------------------------------------------------- where reports go

README_START, README_END = "<!-- REPORT:START -->", "<!-- REPORT:END -->"
#: The hidden folder a report is rendered in before its files move into place.
STAGING_PREFIX = ".report-"


def default_out(result_sets: Sequence[Path]) -> Path:
    """`<results dir>/report/<set name>/`: beside `runs/`, never inside a result set (a
    set folder is append-only). Several sets: the first one's name + how many more."""
    first = Path(result_sets[0]).resolve()
    results_dir = first.parent.parent if first.parent.name == "runs" else first.parent
    name = first.name + (f"+{len(result_sets) - 1}-more" if len(result_sets) > 1 else "")
    return results_dir / "report" / name


def trend_dir(out: Path | None, result_sets: Sequence[Path]) -> Path:
    """Where `trend` writes: `out`, else `report/trend_<sets>/` beside `runs/`."""
    default = default_out(result_sets)
    return Path(out) if out is not None else default.parent / f"trend_{default.name}"


def report_dir(out: Path | None, result_sets: Sequence[Path]) -> Path:
    """The report folder: `out`, else `default_out`."""
    return Path(out) if out is not None else default_out(result_sets)


#: How a refusal names the folder when --out was not given.
DEFAULT_OUT = "report folder (the default; pass --out DIR for another)"


def check_out(folder: Path, given: bool) -> Path:
    """Before anything is computed: a folder outside every result set and outside
    `runs/`, that can be created and written (check_output_path); a refusal names
    --out, or says the folder is the default one."""
    return check_output_path("--out" if given else DEFAULT_OUT, folder, folder=True)


def made_dir(folder: Path, given: bool = True) -> Path:
    """`folder`, created (after `check_out` and every other check passed)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{'--out' if given else DEFAULT_OUT}: cannot create "
                         f"{quoted(folder)} ({os_reason(exc)}); expected a writable "
                         "folder") from None
    return folder


def check_report_outputs(out: Path | None, result_sets: Sequence[Path],
                         readme: Path | None = None) -> Path:
    """Every output of `report` checked before anything is read or computed: the report
    folder, and the README whose block is replaced. Returns the report folder."""
    for path in result_sets:  # a set path too long is named as itself, not as the folder
        check_path_length("result set", path)
    folder = check_out(report_dir(out, result_sets), out is not None)
    if readme is not None:
        check_output_path("--readme", readme)
    return folder


def _readme_block(readme: Path) -> str:
    """The README's text, checked to have one REPORT:START/END pair (before any write)."""
    try:
        text = Path(readme).read_text()
    except OSError as exc:
        raise UsageError(f"--readme: cannot read {quoted(readme)} ({os_reason(exc)}); expected "
                         "a README with a REPORT block") from None
    if text.count(README_START) != 1 or text.count(README_END) != 1 \
            or text.index(README_START) > text.index(README_END):
        raise UsageError(f"--readme {quoted(readme)}: expected one {README_START} line "
                         f"followed by one {README_END} line to replace between")
    return text


def _readme_text(text: str, table: str, folder: Path, readme: Path,
                 figures: Sequence[tuple[str, str]]) -> str:
    """The README with the block between the markers replaced by the Markdown table and
    a link to every figure, relative to the README."""
    relative = Path(os.path.relpath(folder.resolve(), Path(readme).resolve().parent)).as_posix()
    where, shown = markdown_url(relative), markdown_text(relative)  # folder names are user text
    block = [README_START, "", table.rstrip("\n"), "",
             f"Report folder: [{shown}/]({where}/) ([index.html]({where}/index.html), "
             f"[table.tex]({where}/table.tex), [table.csv]({where}/table.csv)).", ""]
    for stem, what in figures:
        block += [f"![{what}]({where}/{stem}.png)", "",
                  f"[{stem}.png]({where}/{stem}.png) · [{stem}.pdf]({where}/{stem}.pdf)", ""]
    block.append(README_END)
    head, rest = text.split(README_START, 1)
    return head + "\n".join(block) + rest.split(README_END, 1)[1]


def _html(runs: pd.DataFrame, environments: list[dict[str, Any]], figures, skipped: str,
          columns, verdicts_html: str | None) -> str:
    """index.html for these runs; `verdicts_html` fills its comparison section."""
    markers = check_comparable(runs, allow_mixed=True)
    sets = [str(env.get("result_set", "")) for env in environments]
    return render_html(
        title="catsdogs-bench report: " + ", ".join(sets), scope=scope_line(runs),
        warnings=warnings(runs, markers),
        display=display_table(summary_table(runs), columns or DEFAULT_COLUMNS),
        figures=figures, table_files=list(TABLE_FILES.values()),
        provenance=provenance_items(runs, environments, markers, left_out(runs)),
        environments=environments, skipped=skipped, verdicts_html=verdicts_html)


def _write_all(folder: Path, runs, epochs, environments, allow_mixed, data_dir, columns,
               skip_samples: str = "", verdicts_html: str | None = None
               ) -> tuple[dict[str, str], list[str], str]:
    """Render every file into `folder`; returns the tables, the figures drawn (stem,
    what it shows) and what was skipped."""
    tables = {name: render_table(runs, environments, name, allow_mixed=allow_mixed,
                                 columns=columns)
              for name in FORMATS}
    for name, text in tables.items():
        (folder / TABLE_FILES[name]).write_text(text)
    drawn = list(figs.FIGURES)
    figs.save_all(runs, epochs, folder)
    skipped = ""
    if data_dir is not None:
        from catsdogs.report import samples
        samples.sample_grid(data_dir, folder)
        samples.augmentation_preview(data_dir, folder)
        drawn += list(samples.SAMPLES)
    else:
        skipped = ("sample_grid and augmentation_preview skipped: "
                   + (skip_samples or "no dataset folder (pass --data-dir DIR)"))
    (folder / "index.html").write_text(_html(runs, environments, drawn, skipped, columns,
                                             verdicts_html))
    return tables, drawn, skipped


def _data_dir(data_dir: Path | None, environments: list[dict[str, Any]]) -> Path | None:
    """The dataset for the sample pictures: the one given (it must exist), else the
    first recorded data_dir that is still there, else None (pictures skipped)."""
    from catsdogs.errors import DataError

    if data_dir is not None:
        check_path_length("--data-dir", data_dir)
        if not (Path(data_dir) / "train").is_dir():
            raise DataError(f"--data-dir {quoted(data_dir)}: no train/ folder; expected the "
                            "cats_and_dogs_filtered layout")
        return Path(data_dir)
    for environment in environments:
        recorded = environment.get("data_dir")
        if recorded and (Path(recorded) / "train").is_dir():
            return Path(recorded)
    return None


def render_report(result_sets: list[Path], fmt: str = "github", out: Path | None = None,
                  allow_mixed: bool = False, data_dir: Path | None = None,
                  columns: Sequence[str] | None = None, readme: Path | None = None,
                  samples: bool = True, verdicts_html: str | None = None) -> str:
    """Tables in every format, the figures and index.html into the report folder (and,
    with `readme`, its table and figure links into that README's REPORT block); returns
    the table in `fmt` and a line saying what was written where. The dataset pictures
    are drawn when a dataset folder is at hand, unless `samples` is False.
    `verdicts_html` is the hook for `--baseline SET`: compare's verdicts, rendered as
    HTML, go into index.html's comparison section (None: the section says no baseline).

    Everything is checked, then rendered into a hidden staging folder, then moved into
    place: an error (bad input, read-only or full disk) leaves nothing half-written."""
    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    folder = check_report_outputs(out, result_sets, readme)
    runs, epochs, environments = load_result_sets(result_sets)
    check_comparable(runs, allow_mixed)  # refuse before writing anything
    pictures = _data_dir(data_dir, environments) if samples else None
    readme_text = _readme_block(readme) if readme is not None else None
    made_dir(folder, out is not None)
    try:
        with staging_folder(folder, STAGING_PREFIX) as staging:
            tables, drawn, skipped = _write_all(staging, runs, epochs, environments,
                                                allow_mixed, pictures, columns,
                                                "" if samples else "--no-samples",
                                                verdicts_html)
            names = sorted(path.name for path in staging.iterdir())
            for name in names:
                os.replace(staging / name, folder / name)
    except OSError as exc:
        raise UsageError(f"--out: cannot write the report into {quoted(folder)} "
                         f"({os_reason(exc)}); the previous report there is unchanged")\
            from None
    remove_abandoned(folder, STAGING_PREFIX)  # left by a report killed mid-way
    if readme_text is not None:
        try:
            Path(readme).write_text(_readme_text(readme_text, tables["github"], folder,
                                                 Path(readme), drawn))
        except OSError as exc:
            raise UsageError(f"--readme: cannot write {quoted(readme)} "
                             f"({os_reason(exc)}); expected a writable file") from None
    lines = [tables[fmt].rstrip("\n"), "", f"wrote into {plain_text(folder)}: "
             + ", ".join(map(plain_text, names))]
    if readme_text is not None:
        lines.append(f"updated the report block of {plain_text(readme)}")
    if skipped:
        lines.append(skipped)
    return "\n".join(lines)
