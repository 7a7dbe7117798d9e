"""The rules baseline as a scikit-learn classifier, so it competes with the models on equal terms.

:class:`PointsBaseline` does not learn points: the rules give them. ``fit`` learns only a monotone
map from points to the probability of converting (isotonic regression on the training snapshots),
so the baseline yields probabilities that the same metrics, lift charts and thresholds as the
models can use, and a lead with more points never gets a lower probability.

Its labels are read as every leadml classifier reads them (:func:`leadml.data.labels.binary_target`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from leadml.core.errors import LeadDataError
from leadml.data.labels import binary_target
from leadml.rules.ruleset import POINTS_COLUMN, RuleSet


class PointsBaseline(ClassifierMixin, BaseEstimator):
    """Scores leads with a points rule set; ``fit`` only maps points to a probability.

    Parameters:
        rules: a :class:`RuleSet`, a path to a rules file or a rules mapping; used when ``X`` is a
            flat table (scored with :meth:`RuleSet.score_flat`). May be None when ``X`` always
            carries the points in a ``rules__points`` column (the evaluation computes them per
            snapshot with :meth:`RuleSet.score_snapshots`).

    ``X`` is a DataFrame holding ``rules__points``, or the raw columns of a flat table. A 2-D array
    (or a frame without column names) holds points: one column of totals, or one column per rule
    whose sum is the lead's points (as the rules' breakdown adds up).

    Example:
        >>> import pandas as pd
        >>> X = pd.DataFrame({"rules__points": [0, 10, 20, 40, 60, 80]})
        >>> model = PointsBaseline().fit(X, [0, 0, 1, 0, 1, 1])
        >>> model.predict_proba(pd.DataFrame({"rules__points": [5, 70]}))[:, 1].round(2).tolist()
        [0.0, 1.0]
    """

    def __init__(self, rules: RuleSet | str | os.PathLike | Mapping | None = None):
        self.rules = rules

    def _points(self, X, ruleset: RuleSet | None, *, reset: bool) -> np.ndarray:
        """Points per row: a named frame's ``rules__points`` or rules score, else the row sums of an array."""
        if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
            if POINTS_COLUMN in X.columns:
                points = X[POINTS_COLUMN].to_numpy(dtype=float)
            elif ruleset is not None:
                points = ruleset.score_flat(X)["points"].to_numpy(dtype=float)
            else:
                raise LeadDataError(
                    f"PointsBaseline: X has no '{POINTS_COLUMN}' column and no rules were given to "
                    f"score its columns (columns present: {', '.join(map(str, list(X.columns)[:12]))})"
                )
            if reset:
                self.n_features_in_ = X.shape[1]
            return points
        values = validate_data(self, X, reset=reset, dtype=np.float64)
        return values.sum(axis=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        # the rules give the points and fit learns no weight per column, only a non-decreasing map:
        # where more points mean fewer conversions (scikit-learn's check blobs, whose second class
        # has the smaller column sums) the map stays flat, so the checks' accuracy bar does not apply
        tags.classifier_tags.poor_score = True
        return tags

    def fit(self, X, y, sample_weight=None) -> PointsBaseline:
        """Learn the non-decreasing map from points to P(converted) on labelled rows.

        ``sample_weight`` weighs the rows in the isotonic fit (a row of weight 2 counts as two rows).
        """
        self.rules_ = RuleSet.coerce(self.rules)
        points = self._points(X, self.rules_, reset=True)
        self.classes_, target = binary_target(y, len(points), "PointsBaseline")
        if np.isnan(points).any():
            raise LeadDataError(f"PointsBaseline: {int(np.isnan(points).sum())} rows have no points")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, points, ensure_non_negative=True)
        self.link_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
        self.link_.fit(points, target, sample_weight=sample_weight)
        return self

    def points(self, X) -> np.ndarray:
        """The rules' points of each row (a ranking score, e.g. for the ROC AUC of the raw rules)."""
        check_is_fitted(self)
        return self._points(X, self.rules_, reset=False)

    def predict_proba(self, X) -> np.ndarray:
        """``[P(not converted), P(converted)]`` per row, non-decreasing in the points."""
        check_is_fitted(self)
        p = np.clip(self.link_.predict(self._points(X, self.rules_, reset=False)), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """The more probable class of each row (the rules' own tiers are in :meth:`RuleSet.score`)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
