"""The grid tier: a fit band (A, B, C) and an engagement band (1, 2, 3) in one label.

Marketing teams read leads on two axes, who the lead is and what it does; "A1" reads "right person,
very active", "C3" "wrong person, quiet". The bands are lower bounds on the 0-100 sub-scores
(``mql.grid``), the same for the rules' tagged points and for a model's sub-scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from leadml.core.config import GridConfig

__all__ = ["grid_tiers"]


def _band(scores: np.ndarray, bounds: Sequence[float], labels: str) -> np.ndarray:
    """The label of the first bound each score reaches (bounds descending), the next label below all."""
    passed = np.sum(scores[:, None] < np.asarray(bounds, dtype=float)[None, :], axis=1)
    return np.asarray(list(labels[: len(bounds) + 1]), dtype=object)[passed]


def grid_tiers(fit_score: np.ndarray, engagement_score: np.ndarray, grid: GridConfig | None = None) -> np.ndarray:
    """The grid tier of each lead, e.g. ``A1``; None where a sub-score is missing.

    Example:
        >>> grid_tiers(np.array([90, 50, 10]), np.array([80, 20, 40])).tolist()
        ['A1', 'B3', 'C2']
    """
    grid = grid or GridConfig()
    fit = np.asarray(fit_score, dtype=float)
    engagement = np.asarray(engagement_score, dtype=float)
    letters = _band(np.nan_to_num(fit, nan=-1), grid.fit_bands, "ABCDEFGHI")
    digits = _band(np.nan_to_num(engagement, nan=-1), grid.engagement_bands, "123456789")
    tiers = letters + digits
    tiers[np.isnan(fit) | np.isnan(engagement)] = None
    return tiers
