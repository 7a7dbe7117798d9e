"""The rules baseline as a scikit-learn classifier, so it competes with the models on equal terms.

:class:`PointsBaseline` does not learn points: the rules give them. ``fit`` learns only a monotone
map from points to the probability of converting (isotonic regression on the training snapshots),
so the baseline yields probabilities that the same metrics, lift charts and thresholds as the
models can use, and a lead with more points never gets a lower probability.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted

from leadml.core.errors import LeadDataError
from leadml.rules.ruleset import POINTS_COLUMN, RuleSet


class PointsBaseline(ClassifierMixin, BaseEstimator):
    """Scores leads with a points rule set; ``fit`` only maps points to a probability.

    Parameters:
        rules: a :class:`RuleSet`, a path to a rules file or a rules mapping; used when ``X`` is a
            flat table (scored with :meth:`RuleSet.score_flat`). May be None when ``X`` always
            carries the points in a ``rules__points`` column (the evaluation computes them per
            snapshot with :meth:`RuleSet.score_snapshots`).

    ``X`` is a DataFrame holding ``rules__points``, or the raw columns of a flat table; a one-column
    array is taken as the points.

    Example:
        >>> import pandas as pd
        >>> X = pd.DataFrame({"rules__points": [0, 10, 20, 40, 60, 80]})
        >>> model = PointsBaseline().fit(X, [0, 0, 1, 0, 1, 1])
        >>> model.predict_proba(pd.DataFrame({"rules__points": [5, 70]}))[:, 1].round(2).tolist()
        [0.0, 1.0]
    """

    def __init__(self, rules: RuleSet | str | os.PathLike | Mapping | None = None):
        self.rules = rules

    def _points(self, X, ruleset: RuleSet | None) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            if POINTS_COLUMN in X.columns:
                return X[POINTS_COLUMN].to_numpy(dtype=float)
            if ruleset is None:
                raise LeadDataError(
                    f"PointsBaseline: X has no '{POINTS_COLUMN}' column and no rules were given to "
                    f"score its columns (columns present: {', '.join(map(str, list(X.columns)[:12]))})"
                )
            return ruleset.score_flat(X)["points"].to_numpy(dtype=float)
        values = np.asarray(X, dtype=float)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise LeadDataError(
                f"PointsBaseline: an array X must hold one column of points, got shape {values.shape}; "
                f"pass a DataFrame with '{POINTS_COLUMN}' or a flat table"
            )
        return values

    def fit(self, X, y) -> PointsBaseline:
        """Learn the non-decreasing map from points to P(converted) on labelled rows."""
        self.rules_ = RuleSet.coerce(self.rules)
        points = self._points(X, self.rules_)
        target = np.asarray(y, dtype=float).ravel()
        if len(target) != len(points):
            raise LeadDataError(f"PointsBaseline: X has {len(points)} rows but y has {len(target)}")
        if np.isnan(target).any() or not np.isin(target, (0.0, 1.0)).all():
            raise LeadDataError(
                "PointsBaseline: y must be 0/1 labels without missing values (drop censored snapshots first)"
            )
        if np.isnan(points).any():
            raise LeadDataError(f"PointsBaseline: {int(np.isnan(points).sum())} rows have no points")
        self.link_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
        self.link_.fit(points, target)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = 1
        return self

    def decision_function(self, X) -> np.ndarray:
        """The rules points themselves (a ranking score, e.g. for ROC AUC of the raw rules)."""
        check_is_fitted(self)
        return self._points(X, self.rules_)

    def predict_proba(self, X) -> np.ndarray:
        """``[P(not converted), P(converted)]`` per row, non-decreasing in the points."""
        check_is_fitted(self)
        p = np.clip(self.link_.predict(self._points(X, self.rules_)), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """1 where P(converted) >= 0.5 (the rules' own tiers are in :meth:`RuleSet.score`)."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
