"""Drift: PSI by hand, references from training snapshots, the drift table beside the scores."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import pytest

from leadml.core.errors import ModelError
from leadml.jobs.drift import DriftCounter, drift_path, drift_table, monitor_scores
from leadml.jobs.score import score_batch
from leadml.modeling.drift_reference import SCORE, make_reference, psi, training_reference
from tests.test_batch import AS_OF, trained  # noqa: F401  (a module fixture)


def test_the_examples_in_the_docstrings_run():
    import doctest

    import leadml.jobs.drift

    assert doctest.testmod(leadml.jobs.drift).failed == 0


def test_psi_by_hand():
    assert psi([0.5, 0.5], [50, 50]) == 0.0
    expected = 0.4 * np.log(0.9 / 0.5) + (-0.4) * np.log(0.1 / 0.5)
    assert psi([0.5, 0.5], [90, 10]) == pytest.approx(expected)
    # an empty bin counts as 1e-4, not as infinity
    assert psi([1.0, 0.0], [50, 50]) == pytest.approx((0.5 - 1) * np.log(0.5) + (0.5 - 1e-4) * np.log(0.5 / 1e-4))


def test_a_reference_holds_deciles_levels_and_missing_shares():
    features = pd.DataFrame({
        "visits": np.r_[np.arange(90.0), [np.nan] * 10],
        "level": pd.Categorical(["vp"] * 30 + ["staff"] * 70, categories=["staff", "vp", "other"]),
    })  # fmt: skip
    reference = make_reference(features, np.linspace(0, 1, 100), rows="hand-made")
    visits = reference["columns"]["visits"]
    assert visits["kind"] == "numeric" and len(visits["edges"]) == 9 and visits["edges"][0] == pytest.approx(8.9)
    assert visits["shares"][-1] == pytest.approx(0.1) and sum(visits["shares"]) == pytest.approx(1)
    assert reference["columns"]["level"] == {
        "kind": "categorical",
        "levels": ["staff", "vp", "other"],
        "shares": [0.7, 0.3, 0.0, 0.0],
    }
    assert reference["rows"] == 100 and set(reference["columns"]) == {"visits", "level", SCORE}


def test_counting_in_chunks_equals_counting_at_once_and_shifts_show():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(size=5000), "kind": pd.Categorical(rng.choice(["a", "b"], 5000))})
    reference = make_reference(train, rng.uniform(size=5000))
    batch = pd.DataFrame({"x": rng.normal(1.0, size=3000), "kind": pd.Categorical(rng.choice(["a", "b"], 3000))})
    p = rng.uniform(size=3000)
    whole = drift_table(reference, batch, p)
    counter = DriftCounter(reference)
    for first in range(0, 3000, 700):
        counter.add(batch.iloc[first : first + 700], p[first : first + 700])
    pd.testing.assert_frame_equal(counter.table(), whole)
    by_column = whole.set_index("column")
    assert by_column.loc["x", "psi"] > 0.2 and by_column.loc["x", "status"] == "drift"
    assert by_column.loc["kind", "psi"] < 0.01 and by_column.loc["kind", "status"] == "stable"
    assert by_column.loc[SCORE, "psi"] < 0.02 and by_column.loc["x", "batch_rows"] == 3000
    assert whole["column"].iloc[0] == "x"  # largest PSI first
    same = drift_table(reference, train, np.zeros(0)).set_index("column")
    assert (same.drop(index=SCORE)["psi"] == 0).all()


def test_the_reference_snapshots_against_themselves_do_not_drift(trained):  # noqa: F811
    _, run, scoring = trained
    reference = training_reference(run.trainset, scoring)
    frame = run.trainset.frame
    rows = (frame["split"] == "test").to_numpy()  # the shares: the test snapshots, the nearest to scoring
    features = frame.loc[rows, scoring.feature_names]
    table = drift_table(reference, features, scoring.probability(features))
    assert len(table) == len(scoring.feature_names) + 1
    assert (table["psi"] == 0).all() and reference["snapshots"] == "test snapshots"
    # the ranges: the snapshots the model was fitted and calibrated on (train and validation)
    fitted = frame.loc[frame["split"].isin(["train", "validation"]).to_numpy()]
    for name in scoring.feature_names:
        spec = reference["columns"][name]
        if spec["kind"] == "numeric" and spec["range"] is not None:
            values = pd.to_numeric(fitted[name], errors="coerce")
            assert spec["range"] == [float(values.min()), float(values.max())], name


def test_the_job_writes_a_drift_table_and_warns_above_0_2(trained, tmp_path, caplog):  # noqa: F811
    config, run, shared = trained
    scoring = copy.copy(shared)
    # a reference of young snapshots only (what the 0.1 default, 14 days after creation, trained on):
    # the open leads of every age at a fixed date drift from it
    frame = run.trainset.frame
    young = frame.loc[(frame["lead__age_days"] <= 20).to_numpy(), scoring.feature_names]
    scoring.drift_reference = make_reference(young, scoring.probability(young), rows="young snapshots")
    out = tmp_path / "scores.parquet"
    with caplog.at_level(logging.WARNING, logger="leadml.jobs.drift"):
        summary = score_batch(config, AS_OF, out, model_uri=scoring, reasons=False, progress=False)
    assert summary.drift_path == drift_path(out) == tmp_path / "scores.drift.csv"
    table = pd.read_csv(summary.drift_path)
    assert set(table["column"]) == {*scoring.feature_names, SCORE}
    assert (table["batch_rows"] == summary.rows).all()
    by_column = table.set_index("column")
    assert by_column.loc["lead__age_days", "psi"] > 0.2
    warning = [r.getMessage() for r in caplog.records if r.name == "leadml.jobs.drift"]
    assert len(warning) == 1 and "lead__age_days" in warning[0] and "scores.drift.csv" in warning[0]

    again = monitor_scores(config, out, model_uri=scoring, out=tmp_path / "again.csv")
    np.testing.assert_allclose(
        again.set_index("column").loc[table["column"], "psi"].to_numpy(), table["psi"].to_numpy(), rtol=1e-12
    )


def test_without_a_reference_the_job_skips_drift_and_monitor_says_why(trained, tmp_path):  # noqa: F811
    config, _, shared = trained
    scoring = copy.copy(shared)
    scoring.drift_reference = None  # a model packed before leadml recorded one
    summary = score_batch(config, AS_OF, tmp_path / "s.csv", model_uri=scoring, reasons=False, progress=False)
    assert summary.drift is None and not (tmp_path / "s.drift.csv").exists()
    with pytest.raises(ModelError, match="carries no drift reference"):
        monitor_scores(config, tmp_path / "s.csv", model_uri=scoring)
