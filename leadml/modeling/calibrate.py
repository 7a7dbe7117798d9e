"""Calibration: a probability of 0.3 should mean that three leads in ten convert.

A fitted model's probabilities are mapped by isotonic regression or by a sigmoid (Platt scaling on
the logit of the probability), fitted on the validation part: snapshots later than the training
ones and never used to fit the model's weights. ``auto`` picks the method with the lower log loss
of *cross-fitted* predictions inside the validation part (each fold is predicted by a map fitted
on the other folds), so the choice is not flattered by the isotonic map memorising its own rows;
the chosen method is then refitted on the whole validation part.

The map is fitted without weights, also when the models were fitted with them (each lead's
snapshots sharing one unit): a probability must be calibrated to the snapshots as scoring meets
them, one row each.

Calibration quality is reported as the expected calibration error over **equal-mass bins** (each
bin holds the same number of snapshots, after sorting by probability; ties are split by row order)
and as a reliability table. Equal-mass bins follow the data, so on skewed scores the top bin may
start at 0.4 while served probabilities reach 0.99: the high range, the one sales acts on, is
averaged away. **Equal-width bins** (``strategy="uniform"``, ten bins of 0.1 over [0, 1]) check every
range, the empty ones included; :func:`reliability_tables` gives both. Each bin carries a 95 %
Wilson interval of its observed rate (a bin of five snapshots proves little), and
:func:`calibration_errors` the ECE and the largest gap of any bin.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

METHODS = ("isotonic", "sigmoid")
EPS = 1e-4  # calibrated probabilities stay in [EPS, 1 - EPS]: no lead is ever "certain"


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def fit_calibrator(method: str, p: np.ndarray, y: np.ndarray):
    """A one-dimensional map from raw probability to calibrated probability (``.predict(p)``)."""
    if method == "isotonic":
        return IsotonicRegression(y_min=EPS, y_max=1 - EPS, out_of_bounds="clip").fit(p, y)
    if method == "sigmoid":
        return _Sigmoid().fit(p, y)
    if method == "none":
        return _Identity()
    raise ValueError(f"unknown calibration method {method!r}; use auto, isotonic, sigmoid or none")


class _Sigmoid:
    """Platt scaling on the logit of the raw probability (a near-unregularised 1-d logistic fit)."""

    def fit(self, p: np.ndarray, y: np.ndarray) -> _Sigmoid:
        model = LogisticRegression(C=1e4, max_iter=1000).fit(_logit(p).reshape(-1, 1), y)
        self.slope_, self.intercept_ = float(model.coef_[0, 0]), float(model.intercept_[0])
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        z = self.slope_ * _logit(p) + self.intercept_
        return np.clip(1 / (1 + np.exp(-z)), EPS, 1 - EPS)


class _Identity:
    def predict(self, p: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood of binary labels under probabilities ``p``."""
    p = np.clip(np.asarray(p, dtype=float), 1e-15, 1 - 1e-15)
    y = np.asarray(y, dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def cross_fitted(method: str, p: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold calibrated probabilities: each fold is mapped by a calibrator fitted on the others."""
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=int)
    n_splits = int(min(folds, np.bincount(y, minlength=2).min()))
    if n_splits < 2:
        return fit_calibrator(method, p, y).predict(p)
    out = np.empty(len(p))
    for fit_rows, held_rows in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(p, y):
        out[held_rows] = fit_calibrator(method, p[fit_rows], y[fit_rows]).predict(p[held_rows])
    return out


def choose_method(
    p: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0
) -> tuple[str, dict[str, float], np.ndarray]:
    """The method with the lower cross-fitted log loss, every method's loss, and the winner's out-of-fold p."""
    oof = {method: cross_fitted(method, p, y, folds=folds, seed=seed) for method in METHODS}
    losses = {method: log_loss(y, oof[method]) for method in METHODS}
    best = min(METHODS, key=lambda m: (losses[m], METHODS.index(m)))
    return best, losses, oof[best]


class CalibratedModel(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose probabilities are mapped to calibrated ones.

    ``fit(X_valid, y_valid)`` fits only the map: the wrapped ``estimator`` must be fitted already
    (on the training part). After fit: ``method_`` (the method used), ``losses_`` (cross-fitted log
    loss of each method, for ``auto``), ``oof_`` (out-of-fold calibrated probabilities of the
    validation rows: an honest basis for choosing between models).

    Parameters:
        estimator: a fitted classifier with ``predict_proba``.
        method: ``auto``, ``isotonic``, ``sigmoid`` or ``none``.
        folds: folds of the cross-fitting inside the validation part.
        seed: the seed of the fold assignment.
    """

    def __init__(self, estimator=None, method: str = "auto", folds: int = 5, seed: int = 0):
        self.estimator = estimator
        self.method = method
        self.folds = folds
        self.seed = seed

    def fit(self, X, y) -> CalibratedModel:
        if self.method not in ("auto", "none", *METHODS):
            raise ValueError(f"unknown calibration method {self.method!r}; use auto, isotonic, sigmoid or none")
        check_is_fitted(self.estimator)
        y = np.asarray(y, dtype=int)
        raw = self.raw_proba(X) if len(y) else np.empty(0)
        self.classes_ = np.array([0, 1])
        if self.method == "auto":
            self.method_, self.losses_, self.oof_ = choose_method(raw, y, folds=self.folds, seed=self.seed)
        else:
            self.method_ = self.method
            self.oof_ = cross_fitted(self.method, raw, y, folds=self.folds, seed=self.seed)
            self.losses_ = {self.method: log_loss(y, self.oof_)} if len(y) else {}
        self.calibrator_ = fit_calibrator(self.method_, raw, y)
        return self

    def raw_proba(self, X) -> np.ndarray:
        """The wrapped model's probability of conversion, before calibration."""
        return np.asarray(self.estimator.predict_proba(X)[:, 1], dtype=float)

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "calibrator_")
        p = self.calibrator_.predict(self.raw_proba(X))
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def bin_ids(p: np.ndarray, n_bins: int = 10, strategy: str = "quantile") -> np.ndarray:
    """Bin of each probability: equal-mass (``quantile``, by rank) or equal-width (``uniform``) on [0, 1]."""
    p = np.asarray(p, dtype=float)
    if strategy == "quantile":
        rank = np.empty(len(p), dtype=np.int64)
        rank[np.argsort(p, kind="stable")] = np.arange(len(p))
        return (rank * n_bins) // max(len(p), 1)
    if strategy == "uniform":
        return np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    raise ValueError(f"unknown binning strategy {strategy!r}; use quantile or uniform")


BINNINGS = {"equal-mass": "quantile", "equal-width": "uniform"}  # the card's names of the two strategies


def wilson_interval(successes, trials, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a rate (``successes / trials``); NaN where ``trials`` is 0.

    Unlike the normal approximation it stays inside [0, 1] and is honest for small bins and rates
    near 0 or 1, both common in the top range of lead scores.

    Example:
        >>> [round(float(v), 3) for v in np.ravel(wilson_interval(2, 10))]
        [0.057, 0.51]
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = k / n
        centre = (rate + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def reliability_table(y, p, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Per bin: probability range, mean predicted probability, observed conversion rate and count,
    the 95 % Wilson interval of the observed rate (``observed_low``, ``observed_high``) and the gap
    ``error = |mean predicted - observed rate|``.

    Equal-mass bins (``quantile``) are listed when they hold rows; equal-width bins (``uniform``) are
    all listed, an empty one with count 0 and NaN rates: a range no test snapshot reached is itself
    a finding. ``lower`` / ``upper`` are the lowest and highest probability seen in the bin.

    Example:
        >>> reliability_table([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], n_bins=2)["observed_rate"].tolist()
        [0.0, 1.0]
    """
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    ids = bin_ids(p, n_bins, strategy)
    table = (
        pd.DataFrame({"bin": ids, "p": p, "y": y})
        .groupby("bin", sort=True)
        .agg(
            lower=("p", "min"),
            upper=("p", "max"),
            mean_predicted=("p", "mean"),
            observed_rate=("y", "mean"),
            count=("y", "size"),
            conversions=("y", "sum"),
        )
    )
    if strategy == "uniform":
        table = table.reindex(pd.RangeIndex(n_bins, name="bin"))
    table["count"] = table["count"].fillna(0).astype(np.int64)
    table["observed_low"], table["observed_high"] = wilson_interval(table.pop("conversions").fillna(0), table["count"])
    table["error"] = (table["mean_predicted"] - table["observed_rate"]).abs()
    return table.reset_index()


def reliability_tables(y, p, n_bins: int = 10) -> dict[str, pd.DataFrame]:
    """The reliability tables of both binnings, by name: ``equal-mass`` and ``equal-width``."""
    return {name: reliability_table(y, p, n_bins, strategy) for name, strategy in BINNINGS.items()}


def calibration_errors(table: pd.DataFrame) -> dict[str, float]:
    """The ECE of a reliability table (count-weighted mean gap), its largest bin gap (``max_error``),
    and that bin's ``bin`` and ``count``: a large gap in a bin of three rows is noise, not a verdict."""
    filled = table[table["count"] > 0]
    if filled.empty:
        return {"ece": float("nan"), "max_error": float("nan"), "bin": float("nan"), "count": 0.0}
    worst = filled.loc[filled["error"].idxmax()]
    return {
        "ece": float((filled["error"] * filled["count"]).sum() / filled["count"].sum()),
        "max_error": float(worst["error"]),
        "bin": float(worst["bin"]),
        "count": float(worst["count"]),
    }


def expected_calibration_error(y, p, n_bins: int = 10, strategy: str = "quantile") -> float:
    """ECE: the count-weighted mean of |mean predicted - observed rate| over the bins (equal-mass by default).

    Example:
        >>> round(expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], n_bins=1), 3)
        0.0
    """
    return calibration_errors(reliability_table(y, p, n_bins, strategy))["ece"]
