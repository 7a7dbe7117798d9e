"""Evaluation: metrics against scikit-learn and by hand, weighted resamples, paired bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from leadml.core.config import MQLConfig
from leadml.core.errors import LeadDataError
from leadml.modeling.calibrate import expected_calibration_error
from leadml.modeling.evaluate import (
    Confusion,
    bootstrap_weights,
    confusion_at,
    confusion_of_threshold,
    evaluate_predictions,
    metric_names,
    mql_confusion,
    segment_metrics,
    weighted_metrics,
)
from leadml.modeling.policy import find_threshold


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
    assert m["f1"] == pytest.approx(0.75)  # 2 TP / (MQLs + conversions) = 6 / (5 + 3)
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


# -- at the MQL threshold ------------------------------------------------------------------------
P10 = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
Y10 = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])


def test_confusion_counts_and_f1_by_hand():
    # p >= 0.7: rows 0.9 (converted), 0.8 (converted), 0.8, 0.7 -> TP 2, FP 2; the 0.6 converted is missed
    # (FN 1); the other five are TN. Precision 2/4, recall 2/3, F1 = 2 TP / (MQLs + conversions) = 4 / 7
    matrix = confusion_at(Y10, P10, 0.7)
    assert matrix == Confusion(tp=2, fp=2, fn=1, tn=5)
    assert (matrix.rows, matrix.mqls, matrix.conversions) == (10, 4, 3)
    assert matrix.precision == pytest.approx(0.5) and matrix.recall == pytest.approx(2 / 3)
    assert matrix.f1 == pytest.approx(4 / 7) == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert np.isnan(confusion_at([0, 0], [0.1, 0.2], 0.5).f1)  # no MQL and no conversion: F1 undefined


def test_the_validation_confusion_comes_from_what_the_policy_measured():
    found = find_threshold(P10, MQLConfig(policy="probability", probability=0.7), y=Y10)
    assert confusion_of_threshold(found, rows=10, conversions=3) == Confusion(tp=2, fp=2, fn=1, tn=5)
    with pytest.raises(ValueError, match="cannot come from 3 snapshots with 1 conversions"):
        confusion_of_threshold(found, rows=3, conversions=1)
    predictions = pd.DataFrame({"converted": Y10[::-1], "m": P10[::-1], "lead_id": range(10)})
    counts = pd.DataFrame({"split": ["train", "validation"], "labelled": [50, 10], "positives": [9, 3]})
    frame = mql_confusion({"m": found}, predictions, counts)
    assert frame["split"].tolist() == ["validation", "test"]
    assert frame[["tp", "fp", "fn", "tn"]].to_numpy().tolist() == [[2, 2, 1, 5], [2, 2, 1, 5]]
    assert frame["f1"].tolist() == pytest.approx([4 / 7, 4 / 7]) and (frame["threshold"] == 0.7).all()


def test_f1_on_test_has_a_bootstrap_interval():
    y, truth, _ = sample(2000, seed=5)
    evaluation = evaluate_predictions(y, {"m": truth}, thresholds=0.2, baseline=None, n_boot=300, seed=1)
    row = evaluation.metrics.set_index("metric").loc["f1"]
    assert row["value"] == pytest.approx(confusion_at(y, truth, 0.2).f1)
    assert row["low"] < row["value"] < row["high"] and row["high"] - row["low"] < 0.15


# -- segments ------------------------------------------------------------------------------------
def segment_frame() -> pd.DataFrame:
    """Three sources, by hand: A and B have enough conversions to be judged, C has five (greyed)."""
    a = pd.DataFrame({"source": "A", "converted": [1] * 40 + [0] * 60, "p": [0.8] * 40 + [0.6] * 10 + [0.2] * 50})
    b = pd.DataFrame({"source": "B", "converted": [1] * 25 + [0] * 5 + [1] * 10 + [0] * 60,
                      "p": [0.7] * 30 + [0.3] * 10 + [0.1] * 60})  # fmt: skip
    c = pd.DataFrame({"source": "C", "converted": [1] * 5 + [0] * 15, "p": [0.4] * 5 + [0.1] * 15})
    frame = pd.concat([c, a, b], ignore_index=True)
    frame["lead_id"] = np.arange(len(frame))
    return frame


def test_segment_levels_intervals_greyed_level_and_disparate_impact_by_hand():
    frame = segment_frame()
    judged = segment_metrics(frame["converted"], frame["p"], frame["source"], threshold=0.5, min_conversions=30,
                             overall_auc=0.9, n_boot=400, seed=3, groups=frame["lead_id"])  # fmt: skip
    table = judged.table.set_index("level")
    assert table.index.tolist() == ["A", "B", "C"]  # most rows first
    assert table["rows"].tolist() == [100, 100, 20] and table["conversions"].tolist() == [40, 35, 5]
    # A: every conversion (0.8) above every non-conversion (0.6, 0.2); 50 of 100 at or above 0.5
    assert table.loc["A", "roc_auc"] == 1.0 and table.loc["A", "mql_rate"] == 0.5
    assert table.loc["A", "precision_at_mql"] == pytest.approx(0.8) and table.loc["A", "recall_at_mql"] == 1.0
    # B: 25 conversions at 0.7 above 60 and tied with 5; 10 at 0.3 above 60: (25 x 62.5 + 10 x 60) / (35 x 65)
    assert table.loc["B", "roc_auc"] == pytest.approx(2162.5 / 2275) and table.loc["B", "mql_rate"] == 0.3
    for level in ("A", "B"):
        low, high = table.loc[level, ["mql_rate_low", "mql_rate_high"]]
        assert low <= table.loc[level, "mql_rate"] <= high and high - low > 0.05
    assert table.loc["B", "roc_auc_low"] < table.loc["B", "roc_auc"] <= table.loc["B", "roc_auc_high"]
    assert table.loc["A", "verdict"] == "above the overall ROC-AUC"  # [1, 1] against 0.9
    assert table["judged"].tolist() == [True, True, False]
    assert table.loc["C", "note"] == "too few conversions to judge (fewer than 30)" and table.loc["C", "verdict"] == ""
    assert table.loc["C", "mql_rate"] == 0.0  # measured, shown greyed, but not in the ratio (else 0 / 0.5)
    # disparate impact: lowest judged MQL rate / highest = 0.3 / 0.5 = 0.6, under the four-fifths rule
    assert judged.impact_ratio == pytest.approx(0.6) and (judged.lowest, judged.highest) == ("B", "A")
    assert judged.flagged
    again = segment_metrics(frame["converted"], frame["p"], frame["source"], threshold=0.5, min_conversions=30,
                            overall_auc=0.9, n_boot=400, seed=3, groups=frame["lead_id"])  # fmt: skip
    pd.testing.assert_frame_equal(again.table, judged.table)  # seeded


def test_a_ratio_at_four_fifths_is_not_flagged_and_missing_levels_are_named():
    frame = segment_frame()
    frame.loc[frame["source"] == "B", "p"] = np.r_[np.full(40, 0.7), np.full(60, 0.1)]  # B: 40 % MQL
    frame.loc[frame.index[:3], "source"] = None
    judged = segment_metrics(frame["converted"], frame["p"], frame["source"], threshold=0.5, min_conversions=30,
                             n_boot=50)  # fmt: skip
    assert judged.impact_ratio == pytest.approx(0.8) and not judged.flagged  # 0.4 / 0.5: the rule's own bound
    assert "missing" in judged.table["level"].tolist()
    alone = segment_metrics(
        frame["converted"], frame["p"], frame["source"], threshold=0.5, min_conversions=39, n_boot=20
    )
    assert np.isnan(alone.impact_ratio) and alone.lowest is None and not alone.flagged  # only A is judged
