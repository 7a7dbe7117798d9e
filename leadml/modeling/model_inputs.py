"""What every leadml model does with its input: a frame read by column name, or an array checked as sklearn does.

Shared by :class:`~leadml.modeling.logistic.LogisticModel` and
:class:`~leadml.modeling.lightgbm.model.LightGBMModel`, so both read a feature frame (extra
columns ignored, a missing one an error) and a numeric array (columns ``x0``, ``x1``, ...) the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import validate_data

from leadml.core.errors import LeadDataError

__all__ = ["binary_tags", "column_names", "column_skewness", "feature_frame", "signed_log1p"]


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``: tames count features (0, 1, 2, ... 300 page views) for a linear model."""
    return np.sign(values) * np.log1p(np.abs(values))


def column_skewness(values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The skewness of each column of a 2-D float array over its non-missing values, rows weighted by ``weights``.

    A column without spread (constant, or all missing) has skewness 0. Weights count as repeated
    rows: a row of weight 2 weighs as two rows, so rows twice at half weight give the same figure.

    Example:
        >>> values = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [10.0, np.nan]])
        >>> np.round(column_skewness(values), 2).tolist()
        [1.02, 0.0]
    """
    values = np.asarray(values, dtype=float)
    row_weights = np.ones(values.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    present = ~np.isnan(values)
    w = np.where(present, row_weights[:, None], 0.0)
    total = w.sum(axis=0)
    safe_total = np.where(total > 0, total, 1.0)
    mean = np.where(present, values, 0.0).T @ row_weights / safe_total
    deviation = np.where(present, values - mean, 0.0)
    variance = (w * deviation**2).sum(axis=0) / safe_total
    third = (w * deviation**3).sum(axis=0) / safe_total
    low = np.where(present, values, np.inf).min(axis=0, initial=np.inf)
    high = np.where(present, values, -np.inf).max(axis=0, initial=-np.inf)
    spread = (total > 0) & (high > low) & (variance > 0)
    return np.where(spread, third / np.where(spread, variance, 1.0) ** 1.5, 0.0)


def column_names(estimator) -> list[str]:
    """The fitted columns: the frame's names, or ``x0``, ``x1``, ... for an array or unnamed columns."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(c) for c in names]
    return [f"x{i}" for i in range(estimator.n_features_in_)]


def feature_frame(estimator, X, *, reset: bool) -> pd.DataFrame:
    """``X`` as a frame of the estimator's columns, in order; ``reset=True`` (in fit) records them.

    A frame with named columns is read by name: extra columns (``lead_id``, ...) are ignored and a
    missing one is an error. An array is checked as scikit-learn checks one (2-D, numeric, NaN
    allowed, as many columns as in fit) and its columns get the fitted names.
    """
    owner = type(estimator).__name__
    if isinstance(X, pd.DataFrame):
        if reset:
            validate_data(estimator, X, reset=True, skip_check_array=True)
            if X.shape[0] < 1 or X.shape[1] < 1:
                raise ValueError(f"{owner}: the feature frame has shape {X.shape}; at least 1 row and 1 column "
                                 "are required")  # fmt: skip
        names = getattr(estimator, "feature_names_in_", None)
        if names is None:  # columns without names: by position
            if not reset:
                validate_data(estimator, X, reset=False, skip_check_array=True)
            return X.set_axis(column_names(estimator), axis=1)
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise LeadDataError(
                f"feature frame: {len(missing)} columns the model was trained on are missing "
                f"(first: {missing[:5]}); build the features with the model's feature set"
            )
        return X[list(names)]
    values = validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan")
    return pd.DataFrame(values, columns=column_names(estimator))


def binary_tags(tags):
    """Tags of a leadml model: a binary classifier over features that may be missing (NaN)."""
    tags.input_tags.allow_nan = True
    tags.classifier_tags.multi_class = False
    return tags
