"""Tables and figures from result sets: the one renderer.

`catsdogs report SET [SET ...]` reads result sets (one session each, or shards of one
benchmark from several runners), refuses to average runs that are not comparable, and
writes `table.md`, `table.tex`, `table.txt`, `table.csv` and the figures (PNG and PDF).
Every table carries its provenance (TF/Keras, device, dataset fingerprint, seeds, epochs,
commits, result sets), so a pasted table can be traced to the runs behind it.

Runs from CSVs only: no TensorFlow import, except for the augmentation preview, which
needs Keras' random layers. Figures are drawn on Agg canvases (no display, no pyplot
global state), so reports work on headless CI runners.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from catsdogs.errors import DataError, UsageError
from catsdogs.record import KNOWN_SCHEMA_VERSIONS, SOURCE, load_result_sets  # noqa: F401

#: A coin flip on the balanced test split: the post's "50% baseline", in percent.
CHANCE_PCT = 50.0
CHANCE_LABEL = "50% baseline"

FORMATS: tuple[str, ...] = ("github", "latex", "plain", "csv")
_TABLEFMT = {"github": "github", "latex": "latex_booktabs", "plain": "plain"}
TABLE_FILES = {"github": "table.md", "latex": "table.tex", "plain": "table.txt", "csv": "table.csv"}

#: What makes two runs comparable. (column, per_variant, label): per_variant keys only
#: have to agree within one variant (models 1-3 are never pretrained, model4 may be).
COMPARABILITY_KEYS: tuple[tuple[str, bool, str], ...] = (
    ("dataset", False, "dataset"),
    ("dataset_fingerprint", False, "dataset fingerprint"),
    ("limit", False, "--limit"),
    ("epochs", False, "epochs"),
    ("pretrained", True, "pretrained"),
)
MIXED_MARK = "†"
SMOKE_NOTE = ("smoke run (synthetic data, --limit or < 5 epochs): accuracy tests the "
              "pipeline, not the models")

#: Column added by the report: not part of the schema.
GROUP = "group"    # the table row a run belongs to: its variant, plus any mixed keys


# ---------------------------------------------------------------- comparability


def _display(value: Any, column: str) -> str:
    """A key's value as people read it in a message or a row label."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "all" if column == "limit" else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if column == "dataset_fingerprint":
        return short_fingerprint(value)
    return str(value)


def short_fingerprint(value: Any) -> str:
    """The first 12 hex digits: enough to tell sets apart in a table."""
    return str(value)[:12] if value else "none"


def _key_values(runs: pd.DataFrame, column: str) -> pd.Series:
    """The key as display strings (NaN and None compare equal this way)."""
    return runs[column].map(lambda value: _display(value, column))


def _mixes(runs: pd.DataFrame) -> list[tuple[str, str | None, dict[str, list[str]]]]:
    """Every comparability key that takes more than one value: (column, variant or None
    for the whole table, {value: result sets that have it})."""
    found = []
    for column, per_variant, _label in COMPARABILITY_KEYS:
        groups = runs.groupby("variant", sort=False) if per_variant else [(None, runs)]
        for variant, group in groups:
            values = _key_values(group, column)
            if values.nunique() > 1:
                where = {value: sorted(group.loc[values == value, "result_set"].dropna().unique())
                         for value in values.unique()}
                found.append((column, variant, where))
    return found


def _describe_mix(column: str, variant: str | None, where: dict[str, list[str]]) -> str:
    label = {key: text for key, _, text in COMPARABILITY_KEYS}[column]
    scope = f" of {variant}" if variant else ""
    parts = []
    for value, sets in where.items():
        names = ", ".join(sets[:2]) + (f" +{len(sets) - 2} more" if len(sets) > 2 else "")
        parts.append(f"{value} ({names})" if names else value)
    return f"{label}{scope}: " + " vs ".join(parts)


def check_comparable(runs: pd.DataFrame, allow_mixed: bool = False) -> list[str]:
    """Refuse (UsageError) to put runs that differ in dataset, dataset fingerprint,
    --limit, epochs or (within a variant) pretrained weights into one table or one
    comparison: their mean would describe no experiment. TF/Keras versions, devices and
    commits may differ; they are what gets compared, and the footer names them.

    With allow_mixed=True, returns one marker line per mixed key instead (empty when
    nothing is mixed); tables then split rows by the mixed keys and mark them."""
    mixes = _mixes(runs)
    if not mixes:
        return []
    described = [_describe_mix(*mix) for mix in mixes]
    if not allow_mixed:
        raise UsageError("refusing to combine runs that are not comparable: "
                         + "; ".join(described)
                         + "; expected one dataset, fingerprint, limit, epochs and "
                           "pretrained setting (pass --allow-mixed to tabulate them, marked)")
    return [f"{MIXED_MARK} MIXED, not comparable: {text}; rows are split by it and marked "
            f"{MIXED_MARK}" for text in described]


def variant_order(names: Iterable[str]) -> list[str]:
    """Registry order (model1..model4), then any unknown names alphabetically, so tables
    and plots always list variants the way the post does."""
    from catsdogs.models import VARIANTS  # the registry imports no TensorFlow

    names = list(dict.fromkeys(names))
    known = [name for name in VARIANTS if name in names]
    return known + sorted(name for name in names if name not in VARIANTS)


def with_groups(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` plus a `group` column: the table row of each run. Normally the variant; when
    a comparability key is mixed (only possible with allow_mixed), the variant plus the
    mixed keys' values and a mark, so no row ever averages incomparable runs."""
    runs = runs.copy()
    mixes = _mixes(runs)
    global_keys = [column for column, variant, _ in mixes if variant is None]
    labels = []
    for _, row in runs.iterrows():
        keys = global_keys + [column for column, variant, _ in mixes
                              if variant == row["variant"] and column not in global_keys]
        if keys:
            detail = ", ".join(f"{column}={_display(row[column], column)}" for column in keys)
            labels.append(f"{row['variant']} {MIXED_MARK} [{detail}]")
        else:
            labels.append(row["variant"])
    runs[GROUP] = labels
    return runs


def ordered_groups(runs: pd.DataFrame) -> list[str]:
    """Group labels in variant registry order, then label order within a variant."""
    order = variant_order(runs["variant"])
    pairs = runs[["variant", GROUP]].drop_duplicates()
    return [group for variant in order
            for group in sorted(pairs.loc[pairs["variant"] == variant, GROUP])]


def ok_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that finished: only these enter means, tests and plots."""
    return runs[runs["status"] == "ok"]


# ---------------------------------------------------------------- the summary table


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant (registry order; split by mixed keys if any) plus the 50%
    baseline row. Accuracies are in percent (the schema's fractions x 100); means and
    sample standard deviations are over seeds; step time and images/s are medians over
    seeds. Only status == ok runs enter the numbers; failed runs are counted in `failed`.
    """
    runs = with_groups(runs)
    rows = []
    for group in ordered_groups(runs):
        members = runs[runs[GROUP] == group]
        ok = ok_runs(members)
        rows.append(_summary_row(group, members, ok))
    rows.append({"variant": CHANCE_LABEL, "alias": "", "n_ok": pd.NA, "n_failed": pd.NA,
                 "test_accuracy_pct_mean": CHANCE_PCT, "points_above_chance": 0.0})
    columns = ["variant", "alias", "n_ok", "n_failed", "seeds_ok", "test_accuracy_pct_mean",
               "test_accuracy_pct_std", "val_accuracy_pct_mean", "train_accuracy_pct_mean",
               "overfit_gap_pts", "points_above_chance", "step_time_ms_median",
               "images_per_sec_median", "params_total", "params_trainable"]
    summary = pd.DataFrame(rows, columns=columns)
    for column in ("n_ok", "n_failed", "params_total", "params_trainable"):
        summary[column] = summary[column].astype("Float64").round().astype("Int64")
    return summary


def _summary_row(group: str, members: pd.DataFrame, ok: pd.DataFrame) -> dict[str, Any]:
    test = ok["test_accuracy"].astype(float) * 100
    train = ok["train_accuracy"].astype(float) * 100
    val = ok["val_accuracy"].astype(float) * 100
    return {
        "variant": group,
        "alias": ", ".join(sorted(members["alias"].dropna().unique())),
        "n_ok": len(ok), "n_failed": int((members["status"] != "ok").sum()),
        "seeds_ok": " ".join(str(seed) for seed in sorted(ok["seed"].dropna().unique())),
        "test_accuracy_pct_mean": _mean(test),
        "test_accuracy_pct_std": test.std(ddof=1) if test.count() > 1 else np.nan,
        "val_accuracy_pct_mean": _mean(val),
        "train_accuracy_pct_mean": _mean(train),
        "overfit_gap_pts": _mean(train - val),
        "points_above_chance": _mean(test) - CHANCE_PCT,
        "step_time_ms_median": _median(ok["step_time_ms"]),
        "images_per_sec_median": _median(ok["images_per_sec"]),
        "params_total": _median(ok["params_total"]),
        "params_trainable": _median(ok["params_trainable"]),
    }


def _mean(values: pd.Series) -> float:
    values = values.dropna().astype(float)
    return float(values.mean()) if len(values) else np.nan


def _median(values: pd.Series) -> float:
    values = values.dropna().astype(float)
    return float(values.median()) if len(values) else np.nan


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _num(value: Any, digits: int = 1, sign: bool = False) -> str:
    if _missing(value):
        return ""
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _count(value: Any) -> str:
    return "" if _missing(value) else f"{int(value):,}"


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as people read it: mean ± std (n), rounded, units in the headers."""
    rows = []
    for row in summary.to_dict("records"):
        chance = row["variant"] == CHANCE_LABEL
        test = _num(row["test_accuracy_pct_mean"])
        if not chance and test:
            std = row["test_accuracy_pct_std"]
            test += (f" ± {std:.1f}" if not _missing(std) else "") + f" (n={row['n_ok']})"
        elif not chance:
            test = f"– (n={row['n_ok']})"
        params = ""
        if not _missing(row["params_total"]):
            params = f"{_count(row['params_total'])} / {_count(row['params_trainable'])}"
        rows.append({
            "variant": row["variant"], "alias": row["alias"],
            "test acc % (mean ± std)": test,
            "val acc %": _num(row["val_accuracy_pct_mean"]),
            "train acc %": _num(row["train_accuracy_pct_mean"]),
            "gap train-val (pts)": _num(row["overfit_gap_pts"], sign=True),
            "pts above 50%": _num(row["points_above_chance"], sign=not chance),
            "step ms (median)": _num(row["step_time_ms_median"]),
            "images/s": _num(row["images_per_sec_median"], 0),
            "params total / trainable": params,
            "failed runs": "" if chance else str(row["n_failed"]),
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- provenance


def _unique(runs: pd.DataFrame, column: str, environments: Sequence[dict[str, Any]] = ()
            ) -> list[str]:
    """Distinct non-empty values of a run column, in first-seen order; the environments'
    value of the same key when no run has one."""
    values = [str(v) for v in runs[column].dropna().unique() if str(v) != ""] \
        if column in runs.columns else []
    if not values:
        values = [str(env[column]) for env in environments if env.get(column) not in (None, "")]
    return list(dict.fromkeys(values))


def _seed_list(runs: pd.DataFrame) -> str:
    return ", ".join(str(seed) for seed in sorted(runs["seed"].dropna().unique()))


def _devices(runs: pd.DataFrame) -> list[str]:
    """'cpu', or 'gpu (NVIDIA H100 80GB HBM3, CUDA 12.5, cuDNN 9)' per distinct device."""
    out = []
    for _, row in runs.drop_duplicates(["device", "gpu_name", "cuda_version"]).iterrows():
        device = row["device"] or "unknown"
        extra = [row["gpu_name"]] if row["gpu_name"] else []
        if device == "gpu":
            extra += [f"CUDA {row['cuda_version']}" if row["cuda_version"] else "",
                      f"cuDNN {row['cudnn_version']}" if row["cudnn_version"] else ""]
        extra = [text for text in extra if text]
        out.append(device + (f" ({', '.join(extra)})" if extra else ""))
    return list(dict.fromkeys(out))


def _datasets(runs: pd.DataFrame) -> list[str]:
    """'real, sha256 7ecc68776f75… (official)' per distinct dataset, plus any --limit."""
    out = []
    for _, row in runs.drop_duplicates(["dataset", "dataset_fingerprint", "limit"]).iterrows():
        known = row["dataset_fingerprint_known"]
        official = {True: "official", False: "not the official set"}.get(known, "unchecked")
        text = (f"{row['dataset'] or 'unknown'}, fingerprint "
                f"{short_fingerprint(row['dataset_fingerprint'])} ({official})")
        if not _missing(row["limit"]):
            text += f", --limit {int(row['limit'])} images per class per split"
        out.append(text)
    return list(dict.fromkeys(out))


def _is_smoke(runs: pd.DataFrame) -> bool:
    """Synthetic data, --limit or < 5 epochs: numbers that test the pipeline, not models."""
    return bool((runs["dataset"] == "synthetic").any() or runs["limit"].notna().any()
                or (runs["epochs"].dropna() < 5).any())


def _failures(runs: pd.DataFrame, limit: int = 3) -> list[str]:
    failed = runs[runs["status"] != "ok"]
    lines = [f"{row['variant']} seed {row['seed']}: {row['error'] or 'no error recorded'}"
             for _, row in failed.head(limit).iterrows()]
    if len(failed) > limit:
        lines.append(f"... and {len(failed) - limit} more (see runs.csv)")
    return lines


def _duplicates(runs: pd.DataFrame) -> list[str]:
    """Seeds recorded ok more than once in one table row, e.g. the same shard run twice."""
    counts = ok_runs(with_groups(runs)).groupby([GROUP, "seed"]).size()
    return [f"{group} seed {seed} x{n}" for (group, seed), n in counts.items() if n > 1]


def provenance(runs: pd.DataFrame, environments: Sequence[dict[str, Any]],
               markers: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(label, text) pairs: where the numbers came from, and what to be careful with."""
    commits = [commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")
               for commit in _unique(runs, "git_commit", environments)]
    flags = [flag for flag in ("deterministic", "mixed_precision", "xla")
             if runs[flag].map(lambda value: value is True).any()]
    items = [
        ("TensorFlow", ", ".join(_unique(runs, "tf_version", environments)) or "unknown"),
        ("Keras", ", ".join(_unique(runs, "keras_version", environments)) or "unknown"),
        ("Python", ", ".join(_unique(runs, "python_version", environments)) or "unknown"),
        ("device", "; ".join(_devices(runs)) or "unknown"),
        ("dataset", "; ".join(_datasets(runs))),
        ("seeds", _seed_list(runs)),
        ("epochs", ", ".join(str(e) for e in sorted(runs["epochs"].dropna().unique()))),
        ("batch size", ", ".join(str(b) for b in sorted(runs["batch_size"].dropna().unique()))),
        ("options on", ", ".join(flags) or "none (float32, no XLA, non-deterministic ops)"),
        ("git commit", ", ".join(commits) or "unknown"),
        ("hosts", ", ".join(_unique(runs, "host", environments)) or "unknown"),
        ("result sets", ", ".join(_unique(runs, "result_set")
                                  or [env.get("result_set", "") for env in environments])),
    ]
    if _is_smoke(runs):
        items.append(("note", SMOKE_NOTE))
    for marker in markers:
        items.append(("mixed", marker))
    failures = _failures(runs)
    if failures:
        items.append(("failed runs (not in the numbers)", "; ".join(failures)))
    duplicates = _duplicates(runs)
    if duplicates:
        items.append(("recorded more than once (each counted)", ", ".join(duplicates)))
    return items


def _footer(items: list[tuple[str, str]], fmt: str) -> str:
    if fmt == "github":
        return "\n".join(["", "Provenance:", ""] + [f"- **{label}**: {text}"
                                                     for label, text in items])
    if fmt == "latex":
        return "\n".join(f"% {label}: {text}" for label, text in items)
    return "\n".join(["", "Provenance:"] + [f"  {label}: {text}" for label, text in items])


#: Characters pdflatex's default utf8 input may not know, in LaTeX's own spelling.
_LATEX_SYMBOLS = {"±": r"$\pm$", "–": "--", MIXED_MARK: r"\dag{}"}


def render_table(runs: pd.DataFrame, environments: Sequence[dict[str, Any]], fmt: str,
                 *, allow_mixed: bool = False) -> str:
    """The summary table with its provenance footer, in one of FORMATS.

    github/plain: tabulate + footer lines; latex: booktabs tabular + `%` comment lines;
    csv: the numeric summary with the provenance as extra columns."""
    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    markers = check_comparable(runs, allow_mixed)
    summary = summary_table(runs)
    items = provenance(runs, environments, markers)
    if fmt == "csv":
        for label, text in items:
            summary[re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")] = text
        return summary.to_csv(index=False, lineterminator="\n")
    table = tabulate(display_table(summary), headers="keys", tablefmt=_TABLEFMT[fmt],
                     showindex=False, disable_numparse=True)
    if fmt == "latex":
        for symbol, latex in _LATEX_SYMBOLS.items():
            table = table.replace(symbol, latex)
    return table + "\n" + _footer(items, fmt) + "\n"


# ---------------------------------------------------------------- figures


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
    """`stem.png` (for READMEs) and `stem.pdf` (for papers) in `out`."""
    paths = [Path(out) / f"{stem}.png", Path(out) / f"{stem}.pdf"]
    for path in paths:
        figure.savefig(path, dpi=150)
    return paths


def _title(runs: pd.DataFrame) -> str:
    """A figure's provenance in one line: versions, device, dataset, seeds."""
    tf = ", ".join(_unique(runs, "tf_version")) or "?"
    keras = ", ".join(_unique(runs, "keras_version")) or "?"
    device = ", ".join(_unique(runs, "device")) or "?"
    dataset = ", ".join(_unique(runs, "dataset")) or "?"
    return f"TF {tf}, Keras {keras}, {device}, {dataset} data, seeds {_seed_list(runs)}"


def _chance_line(axis: Any) -> None:
    axis.axhline(CHANCE_PCT, linestyle="--", color="grey", linewidth=1, label=CHANCE_LABEL)


def accuracy_curves(runs: pd.DataFrame, epochs: pd.DataFrame, out: Path) -> list[Path]:
    """Training and validation accuracy per epoch per variant: the mean over seeds as a
    line, the min-max over seeds as a band, and the 50% baseline dashed."""
    from matplotlib.ticker import MaxNLocator

    runs = with_groups(runs)
    ok = ok_runs(runs)[[SOURCE, "run_id", GROUP]]
    merged = epochs.merge(ok, on=[SOURCE, "run_id"], how="inner")
    figure, axes = new_figure(11, 4.2, ncols=2, sharey=True)
    for axis, column, title in ((axes[0], "accuracy", "training"),
                                (axes[1], "val_accuracy", "validation")):
        for group in ordered_groups(runs):
            data = merged[merged[GROUP] == group]
            if data.empty:
                continue
            stats = (data.groupby("epoch")[column].agg(["mean", "min", "max"]).astype(float)
                     * 100).sort_index()
            x = stats.index.astype(int)
            (line,) = axis.plot(x, stats["mean"], marker="o" if len(x) <= 20 else None,
                                markersize=3, label=group)
            axis.fill_between(x, stats["min"], stats["max"], color=line.get_color(), alpha=0.2)
        _chance_line(axis)
        axis.set(title=f"{title} accuracy (mean, min-max over seeds)", xlabel="epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    if merged.empty:
        axes[0].text(0.5, 0.5, "no epochs recorded", ha="center", transform=axes[0].transAxes)
    axes[1].legend(fontsize=8, loc="lower right")
    figure.suptitle(_title(runs), fontsize=9)
    return save_figure(figure, out, "accuracy_curves")


def test_accuracy_bars(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Test accuracy per variant: the mean over seeds as a bar with a ±1 std error bar,
    each seed as a point, and the 50% baseline."""
    summary = summary_table(runs)
    summary = summary[summary["variant"] != CHANCE_LABEL].reset_index(drop=True)
    grouped = with_groups(ok_runs(runs))
    figure, axis = new_figure(max(5.0, 1.6 * len(summary) + 2), 4.2)
    x = np.arange(len(summary))
    axis.bar(x, summary["test_accuracy_pct_mean"].astype(float).fillna(0),
             yerr=summary["test_accuracy_pct_std"].astype(float).fillna(0), capsize=4,
             color="tab:blue", alpha=0.7, label="mean ± std over seeds")
    for i, group in enumerate(summary["variant"]):
        seeds = grouped.loc[grouped[GROUP] == group, "test_accuracy"].astype(float) * 100
        axis.scatter(np.full(len(seeds), i), seeds, color="black", s=10, zorder=3,
                     label="one seed" if i == 0 else None)
        axis.annotate(f"n={len(seeds)}", (i, 1), ha="center", fontsize=8)
    _chance_line(axis)
    axis.set_xticks(x, summary["variant"], rotation=15, ha="right", fontsize=8)
    axis.set(ylabel="test accuracy (%)", ylim=(0, 100), title=_title(runs))
    axis.title.set_fontsize(9)
    axis.legend(fontsize=8, loc="upper left")
    return save_figure(figure, out, "test_accuracy_bars")


def step_times(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Median training-step time per variant (bar: median over seeds) with each seed's
    own median as a point, so run-to-run spread is visible."""
    grouped = with_groups(ok_runs(runs))
    groups = ordered_groups(grouped) if len(grouped) else []
    figure, axis = new_figure(max(5.0, 1.6 * len(groups) + 2), 4.2)
    for i, group in enumerate(groups):
        values = grouped.loc[grouped[GROUP] == group, "step_time_ms"].dropna().astype(float)
        if values.empty:
            continue
        axis.bar(i, values.median(), color="tab:orange", alpha=0.7,
                 label="median over seeds" if i == 0 else None)
        jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
        axis.scatter(i + np.asarray(jitter), values, color="black", s=10, zorder=3,
                     label="one seed" if i == 0 else None)
    axis.set_xticks(range(len(groups)), groups, rotation=15, ha="right", fontsize=8)
    axis.set(ylabel="median training step (ms)", title=_title(runs))
    axis.title.set_fontsize(9)
    if groups:
        axis.legend(fontsize=8)
    return save_figure(figure, out, "step_times")


def _natural_key(path: Path) -> list[Any]:
    """dog.2.jpg before dog.10.jpg."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _first_images(folder: Path, count: int) -> list[Path]:
    from catsdogs.fetch import IMAGE_EXTENSIONS

    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; expected the cats_and_dogs_filtered "
                        "layout (train/cats, train/dogs)")
    images = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS),
                    key=_natural_key)
    if len(images) < count:
        raise DataError(f"{folder}: {len(images)} image(s); expected at least {count}")
    return images[:count]


def _load_rgb(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size:
                image = image.resize((size[1], size[0]))
            return np.asarray(image)
    except OSError as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None


def _dataset_note(data_dir: Path) -> str:
    from catsdogs.synthetic import is_synthetic

    return " (SYNTHETIC images, not photographs)" if is_synthetic(data_dir) else ""


def sample_grid(data_dir: Path, out: Path) -> list[Path]:
    """The post's first figure: three dogs on the top row, three cats below, from the
    training split (the first three files of each class in natural name order)."""
    data_dir = Path(data_dir)
    rows = [("dog", _first_images(data_dir / "train" / "dogs", 3)),
            ("cat", _first_images(data_dir / "train" / "cats", 3))]
    figure, axes = new_figure(7.5, 5.2, nrows=2, ncols=3)
    for r, (label, paths) in enumerate(rows):
        for c, path in enumerate(paths):
            axes[r][c].imshow(_load_rgb(path))
            axes[r][c].set_title(f"{label}: {path.name}", fontsize=8)
            axes[r][c].axis("off")
    figure.suptitle("training images" + _dataset_note(data_dir), fontsize=9)
    return save_figure(figure, out, "sample_grid")


def augmentation_preview(data_dir: Path, out: Path, seed: int = 0) -> list[Path]:
    """One training image and eight flipped and rotated versions of it, made by the very
    augmentation layers model2-model4 train with (RandomFlip('horizontal_and_vertical')
    and RandomRotation(0.2), seeded). Imports TensorFlow."""
    from catsdogs.models import IMAGE_SHAPE, data_augmentation

    data_dir = Path(data_dir)
    path = _first_images(data_dir / "train" / "dogs", 1)[0]
    image = _load_rgb(path, IMAGE_SHAPE[:2]).astype("float32")
    augment = data_augmentation(seed)
    figure, axes = new_figure(6.5, 7.0, nrows=3, ncols=3)
    for i, axis in enumerate(np.ravel(axes)):
        if i == 0:
            shown, title = image, "original"
        else:  # each call draws a new flip and angle from the layers' seeded generators
            shown = np.asarray(augment(image[None], training=True))[0]
            title = f"augmented #{i}"
        axis.imshow(np.clip(shown, 0, 255).astype("uint8"))
        axis.set_title(title, fontsize=8)
        axis.axis("off")
    figure.suptitle(f"{path.name}: RandomFlip + RandomRotation(0.2), seed {seed}"
                    + _dataset_note(data_dir), fontsize=9)
    return save_figure(figure, out, "augmentation_preview")


def _data_dir_for_figures(data_dir: Path | None, environments: Sequence[dict[str, Any]]
                          ) -> tuple[Path | None, str]:
    """The dataset for the sample figures: the one given (it must exist), else the first
    result set's recorded data_dir if it is still there; else None and why."""
    if data_dir is not None:
        if not (Path(data_dir) / "train").is_dir():
            raise DataError(f"--data-dir {str(data_dir)!r}: no train/ folder; expected the "
                            "cats_and_dogs_filtered layout")
        return Path(data_dir), ""
    for environment in environments:
        recorded = environment.get("data_dir")
        if recorded and (Path(recorded) / "train").is_dir():
            return Path(recorded), ""
    return None, ("sample_grid and augmentation_preview skipped: no dataset folder "
                  "(pass --data-dir DIR)")


# ---------------------------------------------------------------- the report


def output_dir(out: Path | None, result_sets: Sequence[Path]) -> Path:
    """Where report files go: `out`, else the first result set's folder (reports may live
    beside the CSVs; the CSVs and environment.json are never written)."""
    folder = Path(out) if out is not None else Path(result_sets[0])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create {str(folder)!r} ({exc.strerror or exc}); "
                         "expected a writable folder") from None
    return folder


def render_report(result_sets: list[Path], fmt: str = "github", out: Path | None = None,
                  allow_mixed: bool = False, data_dir: Path | None = None) -> str:
    """Tables in every format and all figures into `out`; returns the table in `fmt`
    followed by a line saying what was written where (and what was skipped)."""
    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    runs, epochs, environments = load_result_sets(result_sets)
    check_comparable(runs, allow_mixed)  # refuse before writing anything
    figures_data, skipped = _data_dir_for_figures(data_dir, environments)
    folder = output_dir(out, result_sets)
    tables = {name: render_table(runs, environments, name, allow_mixed=allow_mixed)
              for name in FORMATS}
    written = []
    for name, text in tables.items():
        path = folder / TABLE_FILES[name]
        path.write_text(text)
        written.append(path)
    written += accuracy_curves(runs, epochs, folder)
    written += test_accuracy_bars(runs, folder)
    written += step_times(runs, folder)
    if figures_data is not None:
        written += sample_grid(figures_data, folder)
        written += augmentation_preview(figures_data, folder)
    lines = [tables[fmt].rstrip("\n"), "",
             f"wrote into {folder}: " + ", ".join(path.name for path in written)]
    if skipped:
        lines.append(skipped)
    return "\n".join(lines)
