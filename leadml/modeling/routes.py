"""By which route a learned model's MQL qualified: behaviour, profile or scenario.

A rules file can say how a lead qualifies (:mod:`leadml.rules.routes`); a learned model has no
routes, so its MQLs get:

- the route of their highest **sub-score**: ``engagement_score`` names *behaviour*, ``fit_score``
  *profile*, and ``scenario_score`` (the effect of the path features of ``features.scenarios``
  alone, ranked like the others among the training snapshots) *scenario*. Each sub-score is a rank
  from 0 to 100 among the leads the model was trained on (:mod:`leadml.modeling.subscores`), so
  this is the side of the lead that stands out most against them: a lead whose profile is better
  than 95 % of them and whose activity better than 80 % qualified by its profile. Equal sub-scores
  go to behaviour, then profile, then scenario;
- and *scenario* besides, when the MQL went the whole of a configured path (every step, in order:
  ``scenario[name]__steps`` at its number of steps), which is what marketing calls an MQL by
  scenario whatever the weight the model gives the path (``behaviour+scenario``).

A model without path features (or packed before the scenario sub-score existed) ranks behaviour
and profile only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["ROUTE_OF_SUBSCORE", "completed_paths", "model_routes", "scenario_scores"]

ROUTE_OF_SUBSCORE = {"engagement_score": "behaviour", "fit_score": "profile", "scenario_score": "scenario"}


def scenario_scores(scoring, features: pd.DataFrame, matrix: np.ndarray | None = None) -> np.ndarray | None:
    """The ``scenario_score`` (0-100) of some leads, or None when the model has no path features or
    its sub-score scale predates them."""
    from leadml.modeling.subscores import group_effect_arrays

    scale = getattr(scoring, "subscores", None)
    if scale is None or scoring.builder is None or "scenario" not in getattr(scale, "quantiles_", {}):
        return None
    if matrix is None and hasattr(scoring, "booster_matrix"):
        matrix = scoring.booster_matrix(features)
    info = scoring.builder.feature_info_
    if matrix is not None:  # the path features' effect alone: fit and engagement are not needed here
        effects = group_effect_arrays(scoring.model, features, info, matrix=matrix, scenario=True, groups=())
    else:
        effects = group_effect_arrays(scoring.model, scoring.prepare(features), info, scenario=True, groups=())
    if "scenario" not in effects:
        return None
    return scale.score_arrays({"scenario": effects["scenario"]})["scenario_score"]


def model_routes(
    scoring,
    features: pd.DataFrame,
    subscores: pd.DataFrame | Mapping[str, np.ndarray],
    is_mql: np.ndarray,
    *,
    matrix: np.ndarray | None = None,
) -> np.ndarray:
    """``mql_route`` of some scored leads: the route of the highest sub-score for each MQL, None for
    the others.

    ``subscores`` holds the leads' ``fit_score`` and ``engagement_score`` (in the order of
    ``features``; a frame, or a dict of arrays as :func:`~leadml.modeling.subscores.subscore_arrays`
    gives); the scenario sub-score is computed for the MQLs only. ``features`` is read by position.

    Example:
        >>> sub = pd.DataFrame({"fit_score": [90, 40, 70], "engagement_score": [80, 95, 70]})
        >>> model_routes(None, pd.DataFrame(index=range(3)), sub, np.array([True, True, False])).tolist()
        ['profile', 'behaviour', None]
    """
    n = len(subscores) if isinstance(subscores, pd.DataFrame) else len(subscores["fit_score"])
    out = np.full(n, None, dtype=object)
    rows = np.flatnonzero(np.asarray(is_mql, dtype=bool))
    if not len(rows):
        return out
    columns = {name: _floats(subscores[name])[rows] for name in ("engagement_score", "fit_score")}
    every = len(rows) == n  # every lead an MQL (one served MQL): no copy of the rows (~50 us a frame)
    if scoring is not None:
        part = features if every else features.iloc[rows]
        scenario = scenario_scores(scoring, part, matrix if every or matrix is None else matrix[rows])
        if scenario is not None:
            columns["scenario_score"] = scenario.astype(float)
    ranks = _ranks(np.column_stack(list(columns.values())))
    names = np.asarray([ROUTE_OF_SUBSCORE[name] for name in columns], dtype=object)
    best = names[np.argmax(ranks, axis=1)]  # the first of equal sub-scores: behaviour, profile, scenario
    # row by row: the paths of every lead read off the whole frame, then the MQLs' taken
    whole = completed_paths(scoring, features)[rows] if scoring is not None else np.zeros(len(rows), bool)
    out[rows] = np.where(whole & (best != "scenario"), best + "+scenario", best)
    return out


def _ranks(scores: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(scores, nan=-1.0)`` of float sub-scores: a missing one ranks below any, an
    infinite one is the largest finite float. Three array operations for the whole matrix, where
    nan_to_num costs ~10 us a call in Python checks (a served MQL paid it per sub-score)."""
    largest = np.finfo(scores.dtype).max
    return np.clip(np.where(np.isnan(scores), -1.0, scores), -largest, largest)


def _floats(values) -> np.ndarray:
    """A sub-score column as floats, missing as NaN (a numpy array as it is, else a pandas column)."""
    if isinstance(values, np.ndarray):
        return values.astype(float)
    return values.to_numpy(dtype=float, na_value=np.nan)


def completed_paths(scoring, features: pd.DataFrame) -> np.ndarray:
    """True for the leads that went the whole of at least one configured path (every step, in order)."""
    settings = getattr(scoring.builder, "features", None) if scoring.builder is not None else None
    done = np.zeros(len(features), dtype=bool)
    for name, steps in (getattr(settings, "scenarios", None) or {}).items():
        column = f"scenario[{name}]__steps"
        if column in features.columns:
            done |= features[column].to_numpy(dtype=float, na_value=0.0) >= len(steps)
    return done
