"""Which runs may share a table row: comparability checks, row groups and row labels.

A mean over seeds means something only if the runs behind it differ in nothing but the
seed. This module refuses to combine runs that differ in dataset, fingerprint, --limit,
epochs or (for model4) how the MobileNetV2 base was set up, or, when asked to tabulate
them anyway, splits them into marked rows. Every renderer (tables, figures, HTML,
compare) groups runs through here, so they all show the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from catsdogs.errors import UsageError
from catsdogs.resultset.schema import is_missing

#: Columns added here; not part of the schema (SOURCE, the folder a row was read from, is
#: added by the loader in catsdogs.resultset.store).
GROUP = "group"    # the table row a run belongs to: its variant, plus any mixed keys
BASE = "base"      # derived, not stored: how model4's MobileNetV2 base was set up

#: What makes two runs comparable. (column, per_variant, label): per_variant keys only
#: have to agree within one variant (models 1-3 have no base, model4 has one).
COMPARABILITY_KEYS: tuple[tuple[str, bool, str], ...] = (
    ("dataset", False, "dataset"),
    ("dataset_fingerprint", False, "dataset fingerprint"),
    ("limit", False, "--limit"),
    ("epochs", False, "epochs"),
    (BASE, True, "model4 base"),
)
MIXED_MARK = "†"

#: A frozen MobileNetV2 (160x160, no top) keeps all 2,257,984 base parameters
#: non-trainable; a base trained from scratch keeps only BatchNorm's 34,112 moving
#: statistics so. Anything above this many non-trainable parameters is a frozen base.
FROZEN_BASE_MIN_NON_TRAINABLE = 1_000_000

#: How model4's base was set up: (long label for prose, short tag for narrow tables).
BASE_PRETRAINED = ("ImageNet-pretrained base", "pretrained")
BASE_FILE = ("base loaded from a weights file", "weights file")
BASE_SCRATCH = ("NOT pretrained: base trained from scratch", "not pretrained")
BASE_FROZEN_RANDOM = ("NOT pretrained: frozen random base, chance by construction",
                      "frozen random base")


def base_setup(row: Any) -> tuple[str, str] | None:
    """(long label, short tag) of model4's base for one run, None for models 1-3.

    Read from the run's own columns, so a row says what actually ran: `pretrained`, the
    `weights` given, and whether the base's parameters were trainable (runs recorded
    before `--weights none` meant training from scratch had a frozen random base, which
    passes almost no signal: its features are ~1e-11, so the head stays at chance)."""
    if not row.get("weights"):
        return None
    if row.get("pretrained") is True:
        return BASE_PRETRAINED if row.get("weights") == "imagenet" else BASE_FILE
    frozen = row.get("params_non_trainable")
    if not is_missing(frozen) and int(frozen) > FROZEN_BASE_MIN_NON_TRAINABLE:
        return BASE_FROZEN_RANDOM
    return BASE_SCRATCH


def _display(value: Any, column: str) -> str:
    """A key's value as people read it in a message or a row label."""
    if is_missing(value):
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
    if column == BASE:
        return runs.apply(lambda row: (base_setup(row) or ("none", ""))[0], axis=1)
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
    --limit, epochs or (within model4) the base's setup into one table or one
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
                           "model4 base setup (pass --allow-mixed to tabulate them, marked)")
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
            detail = ", ".join(f"{column}={_key_values(row.to_frame().T, column).iloc[0]}"
                               for column in keys)
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


def duplicate_seeds(runs: pd.DataFrame, by: str = "variant") -> dict[tuple[Any, int], int]:
    """(value of `by`, seed) -> count, for every seed recorded ok more than once under one
    value of `by` (a variant of one side or release, a table row), in the order they first
    appear. The one duplicate rule: a seed counted twice fakes agreement between seeds."""
    counts = ok_runs(runs).groupby([by, "seed"], sort=False).size()
    return {(key, int(seed)): int(n) for (key, seed), n in counts.items() if n > 1}


def unique(runs: pd.DataFrame, column: str, environments: Sequence[dict[str, Any]] = ()
           ) -> list[str]:
    """Distinct non-empty values of a run column, in first-seen order; the environments'
    value of the same key when no run has one."""
    values = [str(v) for v in runs[column].dropna().unique() if str(v) != ""] \
        if column in runs.columns else []
    if not values:
        values = [str(env[column]) for env in environments if env.get(column) not in (None, "")]
    return list(dict.fromkeys(values))
