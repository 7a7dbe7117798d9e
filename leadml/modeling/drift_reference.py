"""The drift reference a model carries: how its training snapshots were distributed.

Made once, at training time, from the training snapshots (:func:`training_reference`): for every
numeric feature the deciles of its values (bin edges) and the share in each bin (missing values are
a bin of their own); for every categorical feature the share of each level; and the same for the
model's probability. It is small (a few KB) and travels with the model
(``LeadScoringModel.drift_reference``, also logged as ``monitor/reference.json``). A scoring batch is
compared with it by :mod:`leadml.jobs.drift` through :func:`psi`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadml.core.memo import BoundedMemo

__all__ = [
    "FLOOR",
    "REFERENCE_VERSION",
    "SCORE",
    "column_reference",
    "make_reference",
    "model_reference",
    "out_of_range",
    "out_of_range_names",
    "psi",
    "training_reference",
]

FLOOR = 1e-4
SCORE = "probability"
REFERENCE_VERSION = 1


def _numeric_edges(values: np.ndarray, bins: int) -> np.ndarray:
    known = values[~np.isnan(values)]
    if not len(known):
        return np.zeros(0)
    return np.unique(np.quantile(known, np.arange(1, bins) / bins))


def _numeric_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows per bin: ``len(edges) + 1`` value bins (``x < edges[0]``, ...), then missing."""
    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    positions = np.searchsorted(edges, values[~missing], side="right")
    counts = np.bincount(positions, minlength=len(edges) + 1)
    return np.append(counts, missing.sum())


def _categorical_counts(values: pd.Series, levels: list[str]) -> np.ndarray:
    """Rows per level, then rows of any other value (or missing)."""
    if isinstance(values.dtype, pd.CategoricalDtype) and list(values.cat.categories.astype(str)) == levels:
        codes = values.cat.codes.to_numpy()  # the features' own categories: no text to compare
    else:
        text = values.astype(object).where(values.notna(), None)
        codes = pd.Categorical(text.astype(str).where(values.notna(), None), categories=levels).codes
    return np.bincount(np.where(codes < 0, len(levels), codes), minlength=len(levels) + 1)


def column_reference(values: pd.Series | np.ndarray, bins: int = 10) -> dict:
    """The bins and reference shares of one column (categorical when it is a pandas Categorical)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        levels = [str(c) for c in values.cat.categories]
        counts = _categorical_counts(values, levels)
        return {"kind": "categorical", "levels": levels, "shares": (counts / max(counts.sum(), 1)).tolist()}
    numbers = np.asarray(values, dtype=float)
    edges = _numeric_edges(numbers, bins)
    counts = _numeric_counts(numbers, edges)
    known = numbers[~np.isnan(numbers)]
    span = [float(known.min()), float(known.max())] if len(known) else None
    return {"kind": "numeric", "edges": edges.tolist(), "shares": (counts / max(counts.sum(), 1)).tolist(),
            "range": span}  # fmt: skip


def make_reference(features: pd.DataFrame, probability: np.ndarray, *, bins: int = 10, rows: str = "") -> dict:
    """The drift reference of some snapshots: every feature column and the probability.

    Example:
        >>> features = pd.DataFrame({"visits": np.arange(100.0), "level": pd.Categorical(["a", "b"] * 50)})
        >>> reference = make_reference(features, np.linspace(0, 1, 100))
        >>> reference["columns"]["level"]["shares"]
        [0.5, 0.5, 0.0]
    """
    columns = {name: column_reference(features[name], bins) for name in features.columns}
    columns[SCORE] = column_reference(np.asarray(probability, dtype=float), bins)
    return {"version": REFERENCE_VERSION, "rows": int(len(features)), "snapshots": rows, "columns": columns}


def training_reference(trainset, scoring, *, split: str = "test", max_rows: int = 200_000, seed: int = 0) -> dict:
    """The reference of a training run: the shares of its ``test`` snapshots, the ranges of its fitted ones.

    The shares come from the test snapshots: the latest labelled ones, the population the reported
    metrics hold for, and the nearest in time to the first scoring run (the train snapshots are
    older, and a young CRM's leads were all young then). The ranges (what ``out_of_range`` checks)
    come from the snapshots the model was fitted and calibrated on (``train`` and ``validation``).
    A run without test snapshots takes the train ones. A flat table's run has no time; the same applies.

    :meth:`~leadml.modeling.scoring_model.LeadScoringModel.from_training` makes it when the model is
    packed and keeps it with the model (``scoring.drift_reference``); the registry logs it as
    ``monitor/reference.json``.
    """
    frame = trainset.frame
    split_of = frame["split"].to_numpy()
    if not (split_of == split).any():
        split = "train"
    reference = make_reference(
        *_rows_of(trainset, scoring, split_of == split, max_rows, seed), rows=f"{split} snapshots"
    )
    fitted = np.isin(split_of, ["train", "validation"])
    if fitted.any():
        features, _ = _rows_of(trainset, scoring, fitted, max_rows, seed, probability=False)
        for name, spec in reference["columns"].items():
            if spec.get("kind") == "numeric" and name in features.columns:
                values = pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float)
                known = values[~np.isnan(values)]
                spec["range"] = [float(known.min()), float(known.max())] if len(known) else None
    return reference


def _rows_of(trainset, scoring, mask: np.ndarray, max_rows: int, seed: int, *, probability: bool = True):
    """The features (and, if asked, probabilities) of some rows of a training set, sampled down to ``max_rows``."""
    rows = np.flatnonzero(mask) if mask.any() else np.arange(len(trainset.frame))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    chosen = np.zeros(len(trainset.frame), dtype=bool)
    chosen[rows] = True
    features = scoring.features_for(trainset, chosen)[scoring.feature_names]
    return features, scoring.probability(features) if probability else None


def out_of_range(reference: dict | None, features: pd.DataFrame, first: Sequence[str] = ()) -> pd.Series:
    """For each row, the first numeric feature whose value lies outside what training saw ("" when none).

    The training range is the smallest and largest value of each numeric feature on the reference's
    snapshots (``column_reference``'s ``range``); missing values are never out of range. Columns in
    ``first`` are looked at first (a lead's age, say, says more than a page-view count). A model whose
    reference has no ranges (trained before leadml kept them) flags nothing.

    Example:
        >>> reference = make_reference(pd.DataFrame({"age": [1.0, 30.0], "visits": [0.0, 4.0]}), np.zeros(2))
        >>> out_of_range(reference, pd.DataFrame({"age": [40.0, 3.0, 3.0], "visits": [9.0, 9.0, np.nan]})).tolist()
        ['age', 'visits', '']
    """
    return pd.Series(_first_outside(reference, features, first), index=features.index, dtype=object)


def out_of_range_names(reference: dict | None, features: pd.DataFrame, first: Sequence[str] = ()) -> np.ndarray:
    """:func:`out_of_range` as an object array with None for the rows inside every range (the scores
    file's ``out_of_range``), without a Series a call."""
    names = _first_outside(reference, features, first)
    names[names == ""] = None
    return names


@dataclass(frozen=True, eq=False)
class _RangePlan:
    """What :func:`_first_outside` checks for a reference and a frame's columns, made once a pair.

    ``reference`` is kept so that its ``id`` (the memo's key) names no other dict while the plan
    lives; a model's reference is made at training and read only after."""

    reference: dict
    unique: bool  # the frame's column names are unique (its Index's is_unique: ~50 us on a new Index)
    names: list[str]  # the distinct names checked, one matrix column each
    positions: np.ndarray  # each name's position in the frame's columns
    repeats: np.ndarray | None  # matrix column of each check when a name is checked twice, else None
    low: np.ndarray
    high: np.ndarray
    labels: np.ndarray  # the name of each check, an object array


_PLANS: BoundedMemo[_RangePlan] = BoundedMemo(64)  # (id(reference), columns, first) -> plan


def _plan(reference: dict, columns: tuple, first: Sequence[str]) -> _RangePlan:
    """The plan of a reference for some columns (``first`` first), kept: a served lead's frame has the
    same columns at every request, and making it reads every range of the reference (~0.1 ms)."""
    key = (id(reference), columns, tuple(first))
    plan = _PLANS.get(key, lambda: _make_plan(reference, columns, first))
    return plan if plan.reference is reference else _make_plan(reference, columns, first)


def _make_plan(reference: dict, columns: tuple, first: Sequence[str]) -> _RangePlan:
    checked, names = _checked(reference, columns, first)
    position = {name: j for j, name in enumerate(columns)}  # a repeated name: its last, as a dict keeps it
    repeats = None
    if len(names) < len(checked):  # a name checked twice (a repeated column): one column per check
        repeats = np.array([names.index(name) for name, _ in checked], dtype=np.intp)
    return _RangePlan(
        reference=reference,
        unique=pd.Index(columns, dtype=object).is_unique,
        names=names,
        positions=np.array([position[name] for name in names], dtype=np.intp),
        repeats=repeats,
        low=np.array([span[0] for _, span in checked], dtype=float),
        high=np.array([span[1] for _, span in checked], dtype=float),
        labels=np.array([name for name, _ in checked], dtype=object),
    )


def _checked(reference: dict, columns: Sequence, first: Sequence[str]) -> tuple[list, list[str]]:
    """The ``(name, range)`` pairs to check, in order (``first`` first), and their distinct names."""
    ranges = reference.get("columns", {})
    order = [c for c in first if c in columns] + [c for c in columns if c not in first]
    checked = [(name, span) for name in order if (span := ranges.get(name, {}).get("range")) and name != SCORE]
    return checked, list(dict.fromkeys(name for name, _ in checked))


def _first_outside(reference: dict | None, features: pd.DataFrame, first: Sequence[str]) -> np.ndarray:
    """The first feature outside its training range per row ("" for none), as an object array."""
    flagged = np.full(len(features), "", dtype=object)
    if reference is None:
        return flagged
    plan = _plan(reference, tuple(features.columns.tolist()), first)  # names, not an Index: cheaper look-ups
    if not len(plan.labels) or not len(features):
        return flagged
    values = _numbers(features, plan.names, plan.positions, plan.unique)
    if plan.repeats is not None:
        values = values[:, plan.repeats]
    with np.errstate(invalid="ignore"):
        outside = (values < plan.low) | (values > plan.high)  # NaN compares False: missing is never outside
    rows = np.flatnonzero(outside.any(axis=1))
    if len(rows):
        flagged[rows] = plan.labels[outside[rows].argmax(axis=1)]  # the first column in order that is outside
    return flagged


def _numbers(features: pd.DataFrame, names: list[str], positions: np.ndarray, unique: bool) -> np.ndarray:
    """The named columns as ``pd.to_numeric(column, errors="coerce")`` floats, one matrix column each;
    the plain numeric columns (float, int, bool) off the frame's blocks, since to_numeric leaves them
    as they are. ``positions``: each name's position in the features' columns (the blocks' own), and
    ``unique``: whether those names are unique (else each column is read by name)."""
    out = np.empty((len(features), len(names)), dtype=float)
    if not unique:
        for j, name in enumerate(names):
            out[:, j] = pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float)
        return out
    from leadml.modeling.frame_blocks import numeric_blocks

    done = numeric_blocks(features, names, {}, out, positions)
    for j in range(len(names)):
        if j not in done:
            out[:, j] = pd.to_numeric(features[names[j]], errors="coerce").to_numpy(dtype=float)
    return out


def model_reference(scoring) -> dict | None:
    """The drift reference a model carries (None for models trained before leadml recorded one)."""
    reference = getattr(scoring, "drift_reference", None)
    return reference if isinstance(reference, dict) and reference.get("version") == REFERENCE_VERSION else None


def psi(reference_shares, batch_counts) -> float:
    """Population stability index of batch counts against reference shares (both floored at 1e-4).

    Example:
        >>> round(psi([0.5, 0.5], [50, 50]), 6), round(psi([0.5, 0.5], [90, 10]), 3)
        (0.0, 0.879)
    """
    expected = np.maximum(np.asarray(reference_shares, dtype=float), FLOOR)
    counts = np.asarray(batch_counts, dtype=float)
    actual = np.maximum(counts / max(counts.sum(), 1.0), FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
