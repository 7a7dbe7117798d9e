"""Evaluation: metrics against scikit-learn and by hand, weighted resamples, paired bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from leadml.core.errors import LeadDataError
from leadml.modeling.calibrate import expected_calibration_error
from leadml.modeling.evaluate import bootstrap_weights, evaluate_predictions, metric_names, weighted_metrics


def plain(y, p, threshold=None):
    return {k: float(v[0]) for k, v in weighted_metrics(y, p, np.ones((1, len(y))), threshold=threshold).items()}


def sample(n: int, seed: int):
    rng = np.random.default_rng(seed)
    truth = rng.beta(1, 9, n)
    y = (rng.random(n) < truth).astype(float)
    noisy = 1 / (1 + np.exp(-(np.log(truth / (1 - truth)) + rng.normal(0, 1.5, n))))
    return y, truth, noisy


def test_lift_capture_and_threshold_metrics_by_hand():
    p = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0], dtype=float)
    m = plain(y, p, threshold=0.6)
    # top 10 % = 1 row (0.9, converted); base rate 0.3
    assert m["capture_top10"] == pytest.approx(1 / 3) and m["lift_top10"] == pytest.approx(1 / 0.3)
    # top 20 % = 2 rows: 0.9 and one of the tied 0.8 rows (one of the two converted): 1.5 expected
    assert m["capture_top20"] == pytest.approx(0.5) and m["lift_top20"] == pytest.approx(0.75 / 0.3)
    # top 5 % = half a row of the 0.9 group
    assert m["capture_top5"] == pytest.approx(1 / 6) and m["lift_top5"] == pytest.approx(1 / 0.3)
    # p >= 0.6: five rows, three conversions
    assert m["precision_at_mql"] == pytest.approx(0.6)
    assert m["recall_at_mql"] == pytest.approx(1.0)
    assert m["mql_share"] == pytest.approx(0.5)
    # AUC: of 3 x 7 pairs, the converted 0.8 ties one unconverted 0.8 and the 0.6 ranks below two
    assert m["roc_auc"] == pytest.approx((7 + 6.5 + 5) / 21)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.02, 0.1, 0.1, 0.3, 0.5, 0.77, 0.9]), st.booleans()), min_size=4, max_size=80)
)
def test_point_metrics_agree_with_scikit_learn_ties_included(rows):
    p = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows], dtype=float)
    if len(np.unique(y)) < 2:
        return
    m = plain(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["ece"] == pytest.approx(expected_calibration_error(y, p))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_weights_count_rows_as_if_repeated(seed):
    rng = np.random.default_rng(seed)
    n = 40
    p = np.round(rng.random(n), 1)  # ties
    y = (rng.random(n) < p).astype(float)
    w = rng.integers(0, 4, n)
    y[:2], w[:2] = (0.0, 1.0), (1, 1)
    weighted = {k: float(v[0]) for k, v in weighted_metrics(y, p, w[None, :], threshold=0.5).items()}
    repeated = plain(np.repeat(y, w), np.repeat(p, w), threshold=0.5)
    for metric, value in repeated.items():
        if metric != "ece":  # ECE bins stay those of the unweighted sample, by design
            assert weighted[metric] == pytest.approx(value), metric


def test_bootstrap_weights_are_seeded_and_resample_whole_groups():
    first = np.concatenate(list(bootstrap_weights(10, 450, seed=3)))
    again = np.concatenate(list(bootstrap_weights(10, 450, seed=3)))
    assert first.shape == (450, 10) and np.array_equal(first, again)
    assert np.array_equal(np.concatenate(list(bootstrap_weights(10, 450, seed=3, chunk=7))), first)
    assert (first.sum(axis=1) == 10).all()
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    W = np.concatenate(list(bootstrap_weights(6, 300, seed=0, groups=groups)))
    assert (W[:, 0] == W[:, 1]).all() and (W[:, 3] == W[:, 4]).all() and (W[:, 4] == W[:, 5]).all()
    assert ((W[:, [0, 2, 3]]).sum(axis=1) == 3).all()  # three groups drawn per resample


def test_evaluation_frames_intervals_and_paired_differences():
    y, truth, noisy = sample(3000, seed=1)
    evaluation = evaluate_predictions(
        y, {"rules": noisy, "model": truth}, thresholds={"rules": 0.2, "model": 0.2}, n_boot=400, seed=7
    )
    names = metric_names()
    assert evaluation.metrics.shape == (2 * len(names), 5)
    assert evaluation.metrics["metric"].tolist()[: len(names)] == names
    assert evaluation.differences["model"].unique().tolist() == ["model"]
    assert len(evaluation.differences) == len(names)
    rows = evaluation.metrics.set_index(["model", "metric"])
    for model in ("rules", "model"):
        for metric in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "capture_top10"):
            low, value, high = rows.loc[(model, metric), ["low", "value", "high"]]
            assert low <= value <= high, (model, metric, low, value, high)
    assert rows.loc[("model", "roc_auc"), "value"] == pytest.approx(roc_auc_score(y, truth))
    diff = evaluation.differences.set_index("metric")
    assert diff.loc["roc_auc", "low"] > 0 and diff.loc["roc_auc", "share_better"] > 0.99
    assert diff.loc["log_loss", "high"] < 0 and diff.loc["log_loss", "share_better"] > 0.99
    assert diff.loc["roc_auc", "difference"] == pytest.approx(roc_auc_score(y, truth) - roc_auc_score(y, noisy))
    # paired: narrower than the interval of a difference of two independent estimates
    widths = [rows.loc[(m, "roc_auc"), "high"] - rows.loc[(m, "roc_auc"), "low"] for m in ("rules", "model")]
    assert diff.loc["roc_auc", "high"] - diff.loc["roc_auc", "low"] < 0.85 * np.hypot(*widths)
    table = evaluation.table(["roc_auc", "pr_auc"])
    assert table.shape == (2, 2) and table.loc["model", "roc_auc"].count("[") == 1


def test_a_model_against_itself_differs_by_exactly_zero():
    y, truth, _ = sample(500, seed=2)
    evaluation = evaluate_predictions(y, {"rules": truth, "copy": truth.copy()}, n_boot=100)
    assert (evaluation.differences[["difference", "low", "high"]].to_numpy() == 0).all()


def test_same_seed_same_figures_other_seed_other_intervals():
    y, truth, noisy = sample(800, seed=3)
    runs = [evaluate_predictions(y, {"rules": noisy, "model": truth}, n_boot=200, seed=s) for s in (1, 1, 2)]
    pd.testing.assert_frame_equal(runs[0].metrics, runs[1].metrics)
    pd.testing.assert_frame_equal(runs[0].differences, runs[1].differences)
    assert not runs[0].metrics["low"].equals(runs[2].metrics["low"])
    assert runs[0].metrics["value"].equals(runs[2].metrics["value"])


def test_grouped_resampling_widens_intervals_of_duplicated_rows():
    y, truth, noisy = sample(400, seed=4)
    y4, p4 = np.tile(y, 4), np.tile(truth, 4)
    leads = np.tile(np.arange(400), 4)
    rows = evaluate_predictions(y4, {"m": p4}, baseline=None, n_boot=300, seed=0)
    grouped = evaluate_predictions(y4, {"m": p4}, baseline=None, n_boot=300, seed=0, groups=leads)
    width = {}
    for name, ev in (("rows", rows), ("grouped", grouped)):
        auc = ev.metrics.set_index("metric").loc["roc_auc"]
        width[name] = auc["high"] - auc["low"]
    assert width["grouped"] > 1.5 * width["rows"]
    assert grouped.differences.empty


def test_bad_labels_and_lengths_are_clear_errors():
    with pytest.raises(LeadDataError, match="both classes present"):
        evaluate_predictions(np.zeros(10), {"m": np.full(10, 0.1)})
    with pytest.raises(LeadDataError, match="0/1"):
        evaluate_predictions(np.array([0, 1, np.nan]), {"m": np.full(3, 0.1)})
    with pytest.raises(LeadDataError, match="model 'm' has 2 predictions for 3 rows"):
        evaluate_predictions(np.array([0, 1, 1]), {"m": np.array([0.1, 0.2])})
