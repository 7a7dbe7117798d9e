"""Drift between the snapshots a model was trained on and the leads it scores now.

The population stability index (PSI) of one column compares the share of rows in each bin::

    PSI = sum over bins of (batch share - reference share) * ln(batch share / reference share)

with shares floored at 1e-4 so that an empty bin counts as rare, not infinite. Read it as: below
0.1 the population is stable, 0.1-0.2 it moved, above 0.2 it drifted (a warning is logged).

The reference is made once, at training time, from the training snapshots
(:func:`training_reference`): for every numeric feature the deciles of its values (bin edges) and
the share in each bin (missing values are a bin of their own); for every categorical feature the
share of each level; and the same for the model's probability. It is small (a few KB) and travels
with the model (``LeadScoringModel.drift_reference``, also logged as ``monitor/reference.json``).
A batch is binned with the reference's edges chunk by chunk (:class:`DriftCounter`), so drift
costs one pass and no memory beyond the counts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.errors import ModelError

log = logging.getLogger("leadml.monitor")

ALERT, WATCH = 0.2, 0.1
FLOOR = 1e-4
SCORE = "probability"
REFERENCE_VERSION = 1


# -- the reference (training time) -------------------------------------------------------------
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
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        levels = [str(c) for c in values.cat.categories]
        counts = _categorical_counts(values, levels)
        return {"kind": "categorical", "levels": levels, "shares": (counts / max(counts.sum(), 1)).tolist()}
    numbers = np.asarray(values, dtype=float)
    edges = _numeric_edges(numbers, bins)
    counts = _numeric_counts(numbers, edges)
    return {"kind": "numeric", "edges": edges.tolist(), "shares": (counts / max(counts.sum(), 1)).tolist()}


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


def training_reference(trainset, scoring, *, split: str = "train", max_rows: int = 200_000, seed: int = 0) -> dict:
    """The reference of a training run: the features and probabilities of its ``train`` snapshots.

    Call it where the model is packed (``leadml.modeling.registry.log_training``, right after
    ``scoring_model(...)``) and keep it with the model::

        scoring.drift_reference = training_reference(trainset, scoring)
        mlflow.log_dict(scoring.drift_reference, "monitor/reference.json")
    """
    frame = trainset.frame
    rows = np.flatnonzero((frame["split"] == split).to_numpy())
    if not len(rows):
        rows = np.arange(len(frame))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    mask = np.zeros(len(frame), dtype=bool)
    mask[rows] = True
    features = scoring.features_for(trainset, mask)[scoring.feature_names]
    return make_reference(features, scoring.probability(features), rows=f"{split} snapshots")


def model_reference(scoring) -> dict | None:
    """The drift reference a model carries (None for models trained before leadml recorded one)."""
    reference = getattr(scoring, "drift_reference", None)
    return reference if isinstance(reference, dict) and reference.get("version") == REFERENCE_VERSION else None


# -- the batch ---------------------------------------------------------------------------------
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


def _bin_names(spec: dict) -> list[str]:
    if spec["kind"] == "categorical":
        return [*spec["levels"], "(other)"]
    edges = [f"{e:g}" for e in spec["edges"]]
    if not edges:
        return ["(any value)", "(missing)"]
    inner = [f"[{a}, {b})" for a, b in zip(edges[:-1], edges[1:])]
    return [f"< {edges[0]}", *inner, f">= {edges[-1]}", "(missing)"]


class DriftCounter:
    """Counts a batch, chunk by chunk, in the bins of a reference; :meth:`table` gives the PSI."""

    def __init__(self, reference: dict):
        self.reference = reference
        columns = reference["columns"]
        self.counts = {name: np.zeros(len(spec["shares"]), dtype=np.int64) for name, spec in columns.items()}

    def add(self, features: pd.DataFrame | None = None, probability: np.ndarray | None = None) -> None:
        """Count a chunk: its feature columns and/or its probabilities (either may be left out)."""
        for name, spec in self.reference["columns"].items():
            if name == SCORE:
                values = probability
            else:
                values = features[name] if features is not None and name in features.columns else None
            if values is None:
                continue
            if spec["kind"] == "categorical":
                self.counts[name] += _categorical_counts(pd.Series(values), spec["levels"])
            else:
                self.counts[name] += _numeric_counts(np.asarray(values, dtype=float), np.asarray(spec["edges"]))

    def table(self) -> pd.DataFrame:
        """One row per column: ``column``, ``kind``, ``psi``, ``status``, the bin that moved most, rows."""
        records = []
        for name, spec in self.reference["columns"].items():
            counts = self.counts[name]
            value = psi(spec["shares"], counts) if counts.sum() else float("nan")
            expected = np.maximum(np.asarray(spec["shares"]), FLOOR)
            actual = np.maximum(counts / max(counts.sum(), 1), FLOOR)
            moved = int(np.argmax((actual - expected) * np.log(actual / expected)))
            records.append({
                "column": name, "kind": "score" if name == SCORE else spec["kind"], "psi": value,
                "status": status(value), "moved_bin": _bin_names(spec)[moved],
                "reference_share": float(spec["shares"][moved]),
                "batch_share": float(counts[moved] / max(counts.sum(), 1)),
                "reference_rows": self.reference["rows"], "batch_rows": int(counts.sum()),
            })  # fmt: skip
        table = pd.DataFrame.from_records(records)
        order = np.lexsort((table["column"].to_numpy(), -table["psi"].fillna(-1).to_numpy()))
        return table.iloc[order].reset_index(drop=True)


def status(value: float) -> str:
    if not np.isfinite(value):
        return "no data"
    return "drift" if value > ALERT else "moved" if value > WATCH else "stable"


def drift_table(reference: dict, features: pd.DataFrame, probability: np.ndarray) -> pd.DataFrame:
    """The PSI of every column of one batch in memory (see :class:`DriftCounter`)."""
    counter = DriftCounter(reference)
    counter.add(features, probability)
    return counter.table()


def drift_path(scores: str | os.PathLike) -> Path:
    """Where the drift table of a scores file goes: ``scores.parquet`` -> ``scores.drift.csv``."""
    path = Path(scores)
    return path.with_name(f"{path.stem}.drift.csv")


def report_drift(table: pd.DataFrame, path: str | os.PathLike | None = None) -> list[str]:
    """Write the table (atomically) and log one warning naming the columns above 0.2; return them."""
    from leadml.data.io import write_table

    if path is not None:
        write_table(table, path)
    alerts = table.loc[table["psi"] > ALERT]
    if len(alerts):
        shown = ", ".join(f"{row.column} {row.psi:.2f}" for row in alerts.head(8).itertuples())
        more = f" and {len(alerts) - 8} more" if len(alerts) > 8 else ""
        log.warning("drift: PSI above %.1f in %d of %d columns: %s%s (table: %s)",
                    ALERT, len(alerts), len(table), shown, more, path or "not written")  # fmt: skip
    return list(alerts["column"])


# -- `leadml monitor` --------------------------------------------------------------------------
def _columns_of(path: Path) -> list[str]:
    """The column names of a scores table (a CSV header, a Parquet file's or folder's schema)."""
    from leadml.data.io import table_format

    if not path.exists():
        from leadml.errors import LeadDataError

        raise LeadDataError(f"{path}: file not found")
    if table_format(path) == "csv":
        return list(pd.read_csv(path, nrows=0).columns)
    import pyarrow.dataset as ds

    return list(ds.dataset(path, format="parquet").schema.names)


def monitor_scores(config, scores: str | os.PathLike, *, model_uri: str | None = None,
                   chunk_leads: int = 100_000, out: str | os.PathLike | None = None) -> pd.DataFrame:
    """Drift of a scores file's batch against its model's training reference (``leadml monitor``).

    The model is the one that wrote the scores (``models:/<model_name>/<model_version>``) unless
    ``model_uri`` is given; the features of the open leads at the file's ``as_of`` are rebuilt
    with the model's feature set; the probabilities are the file's. The table goes to ``out``
    (default: beside the scores, ``<stem>.drift.csv``) and is returned.

    Raises:
        ModelError: the model has no drift reference, or cannot be loaded.
        LeadDataError: the scores file lacks ``lead_id``, ``as_of`` or ``probability``.
    """
    from leadml.batch import check_builder, feature_source, load_model
    from leadml.data.io import read_table
    from leadml.errors import LeadDataError

    scores = Path(scores)
    present = _columns_of(scores)
    missing = [c for c in ("lead_id", "as_of", "probability") if c not in present]
    if missing:
        raise LeadDataError(f"{scores}: missing column(s) {missing} of a scores file "
                            f"(columns present: {present[:12]})")  # fmt: skip
    wanted = [c for c in ("as_of", "probability", "model_name", "model_version") if c in present]
    frame = read_table(scores, columns=wanted)  # not the reason texts
    stamps = pd.to_datetime(frame["as_of"], utc=True).dropna().unique()
    if len(stamps) != 1:
        raise LeadDataError(f"{scores}: column 'as_of' holds {len(stamps)} instants; a scores file has one")
    if model_uri is None and {"model_name", "model_version"} <= set(frame.columns) and len(frame):
        name, version = str(frame["model_name"].iloc[0]), str(frame["model_version"].iloc[0])
        model_uri = f"models:/{name}/{version}" if version.isdigit() else None
    loaded = load_model(config, model_uri)
    reference = model_reference(loaded.scoring)
    if reference is None:
        raise ModelError(f"{loaded.uri} carries no drift reference (trained before leadml recorded one); retrain it")
    check_builder(loaded.scoring)
    counter = DriftCounter(reference)
    source = feature_source(config, loaded.scoring.builder, pd.Timestamp(stamps[0]), chunk_leads=chunk_leads)
    for chunk in source.chunks:
        counter.add(chunk.features)
    counter.add(probability=frame["probability"].to_numpy(dtype=float))
    table = counter.table()
    report_drift(table, out if out is not None else drift_path(scores))
    return table
