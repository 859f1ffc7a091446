"""Where every figure is drawn and saved: a headless matplotlib canvas, PNG and PDF files.

The report's figures, the dataset samples and the trend all start and end here, so every
figure is made the same way (no pyplot state, byte-stable PDFs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def new_figure(width: float = 7.0, height: float = 4.0, nrows: int = 1, ncols: int = 1,
               **subplot_kw: Any):
    """A figure on an Agg canvas and its axes (as `Figure.subplots` returns them): no GUI
    backend and no pyplot state, so it works headless and never leaks figures."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, **subplot_kw)
    return figure, axes


def save_figure(figure: Any, out: Path, stem: str) -> list[Path]:
    """`stem.png` (for READMEs and the HTML report) and `stem.pdf` (for papers) in `out`."""
    paths = [Path(out) / f"{stem}.png", Path(out) / f"{stem}.pdf"]
    figure.savefig(paths[0], dpi=150)
    # No creation date: the same runs give the same bytes, so a re-render shows no diff.
    figure.savefig(paths[1], dpi=150, metadata={"CreationDate": None})
    return paths
