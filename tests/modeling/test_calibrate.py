"""Calibration: isotonic / sigmoid / auto on validation, ECE and the reliability table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from leadml.modeling.calibrate import (
    EPS,
    CalibratedModel,
    bin_ids,
    calibration_errors,
    choose_method,
    cross_fitted,
    expected_calibration_error,
    fit_calibrator,
    log_loss,
    reliability_table,
    reliability_tables,
    wilson_interval,
)


class ScoreColumn(ClassifierMixin, BaseEstimator):
    """A 'model' whose probability is the ``score`` column of X: fitted by construction."""

    def fit(self, X, y=None):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = np.asarray(X["score"], dtype=float)
        return np.column_stack([1 - p, p])


def distorted(n: int, seed: int, distortion):
    """Rows whose true probability is p, scored by distortion(p): a miscalibrated model."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1.2, 8, n)
    y = (rng.random(n) < p).astype(int)
    return pd.DataFrame({"score": distortion(p)}), y


def overconfident(p):
    """Squashes the odds: logit doubled, a sigmoid-shaped miscalibration."""
    z = 2 * np.log(p / (1 - p)) + 1.0
    return 1 / (1 + np.exp(-z))


def stepped(p):
    """A non-smooth, monotone distortion a sigmoid cannot follow."""
    return np.where(p < 0.1, p * 0.2, np.where(p < 0.2, 0.5 + p, 0.8 + p * 0.1))


def test_ece_on_equal_mass_bins_by_hand():
    y = [0, 0, 1, 1]
    p = [0.1, 0.2, 0.3, 0.4]
    # bins {0.1, 0.2}: mean 0.15, observed 0 -> 0.15; {0.3, 0.4}: mean 0.35, observed 1 -> 0.65
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.5 * 0.15 + 0.5 * 0.65)
    table = reliability_table(y, p, n_bins=2)
    assert table["bin"].tolist() == [0, 1]
    assert table["count"].tolist() == [2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.15, 0.35])
    assert table["observed_rate"].tolist() == [0.0, 1.0]
    assert table["lower"].tolist() == [0.1, 0.3] and table["upper"].tolist() == [0.2, 0.4]


def test_ece_on_equal_width_bins_by_hand():
    y = [0, 1, 0, 0, 1]
    p = [0.05, 0.15, 0.55, 0.65, 0.95]
    # width 0.5: [0, .5) holds .05, .15 (mean .1, observed .5 -> .4); [.5, 1] holds .55 .65 .95
    # (mean .71667, observed 1/3 -> .38333); ECE = 2/5 * .4 + 3/5 * .38333
    expected = 0.4 * 0.4 + 0.6 * (0.55 + 0.65 + 0.95 - 1) / 3
    assert expected_calibration_error(y, p, n_bins=2, strategy="uniform") == pytest.approx(expected)
    assert bin_ids(np.array([0.0, 0.5, 1.0]), 2, "uniform").tolist() == [0, 1, 1]


def test_equal_width_bins_of_skewed_scores_reach_the_top_by_hand():
    # most scores low, two at the top: what equal-mass bins average away
    p = [0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.15, 0.18, 0.25, 0.31, 0.55, 0.97, 0.99]
    y = [0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0]
    table = reliability_table(y, p, n_bins=10, strategy="uniform")
    assert table["bin"].tolist() == list(range(10))  # every range listed, the empty ones too
    assert table["count"].tolist() == [5, 3, 1, 1, 0, 1, 0, 0, 0, 2]
    top = table.iloc[9]
    assert (top["lower"], top["upper"]) == (0.97, 0.99)
    assert top["mean_predicted"] == pytest.approx(0.98) and top["observed_rate"] == 0.5
    assert top["error"] == pytest.approx(0.48)
    empty = table.iloc[4]
    assert np.isnan(empty[["mean_predicted", "observed_rate", "observed_low", "observed_high", "error"]]
                    .to_numpy(dtype=float)).all()  # fmt: skip
    assert table.loc[0, "mean_predicted"] == pytest.approx(0.038)
    assert table.loc[1, "observed_rate"] == pytest.approx(1 / 3)
    # gaps x counts: 5 x .038 + 3 x |.15 - 1/3| + .25 + .69 + .45 + 2 x .48 = 3.09 over 13 rows
    errors = calibration_errors(table)
    assert errors["ece"] == pytest.approx(3.09 / 13)
    assert (errors["max_error"], errors["bin"], errors["count"]) == (pytest.approx(0.69), 3, 1)  # 0.31, converted
    assert expected_calibration_error(y, p, strategy="uniform") == pytest.approx(3.09 / 13)
    # equal-mass (4 bins of 13 ranks: 4, 3, 3, 3 rows): the top bin mixes 0.55 with 0.97 and 0.99
    mass = reliability_tables(y, p, n_bins=4)["equal-mass"]
    assert mass["count"].tolist() == [4, 3, 3, 3]
    assert mass["mean_predicted"].iloc[-1] == pytest.approx((0.55 + 0.97 + 0.99) / 3)


def test_wilson_interval_by_hand():
    low, high = wilson_interval(2, 10)  # the textbook case: 2 of 10, 95 %
    assert (float(low), float(high)) == (pytest.approx(0.0567, abs=1e-4), pytest.approx(0.5098, abs=1e-4))
    low, high = wilson_interval(np.array([0, 5, 0]), np.array([5, 5, 0]))
    assert low[0] == 0.0 and high[0] == pytest.approx(0.4345, abs=1e-4)  # no conversion of 5: up to 43 %
    assert high[1] == 1.0 and low[1] == pytest.approx(0.5655, abs=1e-4)
    assert np.isnan(low[2]) and np.isnan(high[2])


def test_equal_mass_bins_split_ties_by_row_order():
    ids = bin_ids(np.array([0.2, 0.2, 0.2, 0.2, 0.1, 0.9]), n_bins=3)
    assert ids.tolist() == [0, 1, 1, 2, 0, 2]
    assert np.bincount(ids).tolist() == [2, 2, 2]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.booleans()), min_size=1, max_size=60), st.integers(1, 12))
def test_reliability_table_accounts_for_every_row(rows, n_bins):
    p = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows], dtype=float)
    table = reliability_table(y, p, n_bins=n_bins)
    assert table["count"].sum() == len(p)
    assert (table["observed_rate"] * table["count"]).sum() == pytest.approx(y.sum())
    inside = (table["observed_low"] <= table["observed_rate"]) & (table["observed_rate"] <= table["observed_high"])
    assert inside.all()  # the Wilson interval holds the observed rate
    width = reliability_table(y, p, n_bins=n_bins, strategy="uniform")
    assert len(width) == n_bins and width["count"].sum() == len(p)
    ece = expected_calibration_error(y, p, n_bins=n_bins)
    assert 0.0 <= ece <= 1.0
    if n_bins == 1:
        assert ece == pytest.approx(abs(p.mean() - y.mean()))


def test_calibration_repairs_an_overconfident_model():
    X_valid, y_valid = distorted(4000, seed=1, distortion=overconfident)
    X_test, y_test = distorted(20000, seed=2, distortion=overconfident)
    raw = ScoreColumn().fit(X_valid)
    before = expected_calibration_error(y_test, raw.predict_proba(X_test)[:, 1])
    model = CalibratedModel(raw, method="auto", seed=0).fit(X_valid, y_valid)
    after = expected_calibration_error(y_test, model.predict_proba(X_test)[:, 1])
    assert before > 0.03
    assert after < 0.01
    assert model.method_ == "sigmoid"  # the distortion is exactly a sigmoid of the logit
    assert set(model.losses_) == {"isotonic", "sigmoid"}
    assert model.losses_["sigmoid"] < model.losses_["isotonic"]


def test_auto_picks_isotonic_for_a_stepped_distortion():
    X_valid, y_valid = distorted(6000, seed=3, distortion=stepped)
    model = CalibratedModel(ScoreColumn().fit(X_valid), method="auto").fit(X_valid, y_valid)
    assert model.method_ == "isotonic"
    X_test, y_test = distorted(20000, seed=4, distortion=stepped)
    assert expected_calibration_error(y_test, model.predict_proba(X_test)[:, 1]) < 0.015


def test_the_choice_uses_cross_fitted_losses_not_in_sample_ones():
    X_valid, y_valid = distorted(600, seed=5, distortion=overconfident)
    raw = X_valid["score"].to_numpy()
    in_sample = log_loss(y_valid, fit_calibrator("isotonic", raw, y_valid).predict(raw))
    honest = log_loss(y_valid, cross_fitted("isotonic", raw, y_valid, folds=5, seed=0))
    assert in_sample < honest  # isotonic flatters itself on its own rows
    best, losses, oof = choose_method(raw, y_valid, seed=0)
    assert losses["isotonic"] == pytest.approx(honest)
    assert best == min(losses, key=losses.get)
    assert oof.shape == raw.shape


def test_calibrated_probabilities_are_bounded_monotone_and_seeded():
    X_valid, y_valid = distorted(3000, seed=6, distortion=overconfident)
    grid = pd.DataFrame({"score": np.linspace(0, 1, 501)})
    for method in ("isotonic", "sigmoid", "none"):
        model = CalibratedModel(ScoreColumn().fit(X_valid), method=method, seed=1).fit(X_valid, y_valid)
        p = model.predict_proba(grid)[:, 1]
        assert (p >= EPS).all() and (p <= 1 - EPS).all()
        assert (np.diff(p) >= 0).all()
        again = CalibratedModel(ScoreColumn().fit(X_valid), method=method, seed=1).fit(X_valid, y_valid)
        assert np.array_equal(again.predict_proba(grid), model.predict_proba(grid))
    assert CalibratedModel(ScoreColumn().fit(X_valid), method="none").fit(X_valid, y_valid).method_ == "none"


def test_the_wrapped_model_must_be_fitted_and_the_method_known():
    X_valid, y_valid = distorted(200, seed=7, distortion=overconfident)
    with pytest.raises(NotFittedError):
        CalibratedModel(ScoreColumn(), method="sigmoid").fit(X_valid, y_valid)
    with pytest.raises(ValueError, match="unknown calibration method 'platt'"):
        CalibratedModel(ScoreColumn().fit(X_valid), method="platt").fit(X_valid, y_valid)
    with pytest.raises(NotFittedError):
        CalibratedModel(ScoreColumn().fit(X_valid)).predict_proba(X_valid)
