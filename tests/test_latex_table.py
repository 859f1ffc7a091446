"""table.tex compiled by a real pdflatex inside a default `article`: no error and no
overfull or underfull box for 1, 3 and 4 variants, and the caption's scope and warnings
reach the PDF (not only `%` comments). Needs pdflatex with booktabs and siunitx (CI
installs them; see tests/external_tools.py for when this skips)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from external_tools import require
from report_sets import validation_above_training, without_pretrained_weights
from resultsets import write_result_set

from catsdogs.models import VARIANTS
from catsdogs.report.tables import render_table
from catsdogs.resultset.load import load_result_sets

DOCUMENT = r"""\documentclass{article}
\usepackage{booktabs}
\usepackage{siunitx}
\begin{document}
\input{table.tex}
\end{document}
"""


def compile_table(tex: str, folder: Path) -> tuple[str, str]:
    """pdflatex's log and the PDF's text, as pdftotext reads it back."""
    pdflatex = require("pdflatex")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "table.tex").write_text(tex)
    (folder / "doc.tex").write_text(DOCUMENT)
    for _ in range(2):  # the second pass has the label resolved: no "Rerun" warning left
        done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error",
                               "doc.tex"], cwd=folder, capture_output=True, text=True,
                              timeout=120)
        log = (folder / "doc.log").read_text(errors="replace")
        assert done.returncode == 0, log[-3000:]
    text = subprocess.run([require("pdftotext"), "-layout", str(folder / "doc.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    return log, text


def box_problems(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if re.match(r"(Overfull|Underfull) \\[hv]box|! |LaTeX (Font )?Warning", line)]


CASES = {
    "1 variant, smoke run": dict(variants=VARIANTS[:1], seeds=[0], epochs=2,
                                 dataset="synthetic"),
    "3 variants, one with validation above training": dict(variants=VARIANTS[:3]),
    "4 variants, model4 not pretrained": dict(variants=VARIANTS),
}


@pytest.mark.parametrize("case", list(CASES))
def test_table_tex_compiles_without_box_warnings(case, tmp_path):
    result_set = write_result_set(tmp_path / "results", **CASES[case])
    if "validation above" in case:
        validation_above_training(result_set, VARIANTS[1])
    if "not pretrained" in case:
        without_pretrained_weights(result_set)
    runs, _, environments = load_result_sets([result_set])
    tex = render_table(runs, environments, "latex")
    log, text = compile_table(tex, tmp_path / "tex")
    assert box_problems(log) == [], box_problems(log)
    assert "\\caption{" in tex and "\\label{tab:catsdogs-" in tex and "\\toprule" in tex
    flat = " ".join(text.split())
    assert "Table 1:" in flat and "95 % t-interval" in flat
    if "smoke" in case:
        assert "SMOKE RUN" in flat and "SYNTHETIC" in flat and "--limit" in flat
    if "validation above" in case:
        assert "−5.0" in flat  # a true minus sign (U+2212), not a hyphen
    if "not pretrained" in case:
        assert "model4 (not pretrained)" in flat
        assert "NOT pretrained: base trained from scratch" in flat


def test_columns_choose_what_the_latex_table_shows(tmp_path):
    result_set = write_result_set(tmp_path / "results", variants=VARIANTS[:2], seeds=[0, 1])
    runs, _, environments = load_result_sets([result_set])
    tex = render_table(runs, environments, "latex", columns=("model", "n", "test", "step"))
    header = next(line for line in tex.splitlines() if line.startswith("model &"))
    assert header == r"model & $n$ & \multicolumn{2}{c}{test acc.} & step (ms) \\"
    assert "training step over seeds, in ms" in tex
    log, _ = compile_table(tex, tmp_path / "tex")
    assert box_problems(log) == []
