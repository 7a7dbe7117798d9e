"""Drift between the snapshots a model was trained on and the leads it scores now.

The population stability index (PSI) of one column compares the share of rows in each bin::

    PSI = sum over bins of (batch share - reference share) * ln(batch share / reference share)

with shares floored at 1e-4 so that an empty bin counts as rare, not infinite. Read it as: below
0.1 the population is stable, 0.1-0.2 it moved, above 0.2 it drifted (a warning is logged).

The reference is made at training time and travels with the model
(:mod:`leadml.modeling.drift_reference`). A batch is binned with the reference's edges chunk by chunk (:class:`DriftCounter`), so drift
costs one pass and no memory beyond the counts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.errors import ModelError
from leadml.modeling.drift_reference import (
    FLOOR,
    SCORE,
    _categorical_counts,
    _numeric_counts,
    model_reference,
    psi,
)

log = logging.getLogger("leadml.jobs.drift")

ALERT, WATCH = 0.2, 0.1


# -- the batch ---------------------------------------------------------------------------------
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
        from leadml.core.errors import LeadDataError

        raise LeadDataError(f"{path}: file not found")
    if table_format(path) == "csv":
        return list(pd.read_csv(path, nrows=0).columns)
    import pyarrow.dataset as ds

    return list(ds.dataset(path, format="parquet").schema.names)


def monitor_scores(
    config,
    scores: str | os.PathLike,
    *,
    model_uri: str | None = None,
    chunk_leads: int = 100_000,
    out: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Drift of a scores file's batch against its model's training reference (``leadml monitor``).

    The model is the one that wrote the scores (``models:/<model_name>/<model_version>``) unless
    ``model_uri`` is given; the features of the open leads at the file's ``as_of`` are rebuilt
    with the model's feature set; the probabilities are the file's. The table goes to ``out``
    (default: beside the scores, ``<stem>.drift.csv``) and is returned.

    Raises:
        ModelError: the model has no drift reference, or cannot be loaded.
        LeadDataError: the scores file lacks ``lead_id``, ``as_of`` or ``probability``.
    """
    from leadml.core.errors import LeadDataError
    from leadml.data.io import read_output
    from leadml.jobs.feature_source import feature_source
    from leadml.modeling.loading import check_builder, load_model

    scores = Path(scores)
    present = _columns_of(scores)
    missing = [c for c in ("lead_id", "as_of", "probability") if c not in present]
    if missing:
        raise LeadDataError(f"{scores}: missing column(s) {missing} of a scores file "
                            f"(columns present: {present[:12]})")  # fmt: skip
    wanted = [c for c in ("as_of", "probability", "model_name", "model_version") if c in present]
    frame = read_output(scores, columns=wanted)  # not the reason texts
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
    rules = loaded.scoring.ruleset() if getattr(loaded.scoring, "needs_points", False) else None  # a rules model
    source = feature_source(config, loaded.scoring.builder, pd.Timestamp(stamps[0]), chunk_leads=chunk_leads,
                            rules=rules)  # fmt: skip
    for chunk in source.chunks:
        counter.add(chunk.features)
    counter.add(probability=frame["probability"].to_numpy(dtype=float))
    table = counter.table()
    report_drift(table, out if out is not None else drift_path(scores))
    return table
