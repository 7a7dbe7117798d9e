"""The labels of a binary classifier, read the same way by every leadml model and the rules baseline.

Missing labels are censored snapshots (the lead's horizon had not closed): they must be dropped
before fitting, never read as 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

from leadml.core.errors import LeadDataError

__all__ = ["binary_target"]


def binary_target(y, n_rows: int, owner: str, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The classes and the 0/1 target (1: the second class) of a binary classifier's labels.

    Labels that are all 0 or 1 (``converted``) keep the classes ``[0, 1]``, also when one of them
    is absent (a cold start before the first conversion); any other two labels are the classes in
    sorted order, as in scikit-learn. Given ``classes`` (a fitted model's), the labels are encoded
    by them (validation labels).

    Raises:
        LeadDataError: ``y`` has another length than ``X``, or missing labels (censored snapshots).
        ValueError: ``y`` is None, continuous, holds more than two classes, or a label not in ``classes``.
    """
    if y is None:
        raise ValueError(f"{owner} requires y to be passed, but the target y is None")
    labels = column_or_1d(y, warn=True)
    if len(labels) != n_rows:
        raise LeadDataError(f"labels: {len(labels)} labels for {n_rows} rows")
    missing = pd.isna(labels)
    if missing.any():
        raise LeadDataError(
            f"labels: {int(missing.sum())} values are missing, not 0/1 (first rows: "
            f"{np.flatnonzero(missing)[:3].tolist()}); drop censored snapshots (NaN labels) before fitting"
        )
    if classes is not None:
        unknown = ~np.isin(labels, classes)
        if unknown.any():
            raise ValueError(f"{owner}: labels {np.unique(labels[unknown])[:3].tolist()} are not among the classes "
                             f"{classes.tolist()} seen in fit")  # fmt: skip
        return classes, (labels == classes[-1]).astype(float)
    check_classification_targets(labels)
    kind = type_of_target(labels, input_name="y")
    if kind != "binary":
        raise ValueError(
            f"Only binary classification is supported. The type of the target is {kind} "
            f"({owner} tells converted leads from the others)."
        )
    classes = np.unique(labels)
    if labels.dtype.kind in "biuf" and np.isin(classes, (0, 1)).all():
        classes = np.array([0, 1])
    return classes, (labels == classes[-1]).astype(float)
