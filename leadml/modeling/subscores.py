"""Fit and engagement sub-scores: who the lead is and what the lead does, each 0-100, and the grid tier.

A model's **fit effect** of a lead is what the model's margin (log-odds) says from the lead's profile
features alone, measured from the model's expected margin; the **engagement effect** the same from
its behaviour features (``FeatureInfo.group``). For logistic regression this is exactly the sum of
the lead's SHAP contributions of the group's features (against the training mean). For LightGBM it
is the tree path-dependent expectation given the group's values (:mod:`leadml.modeling.lightgbm.effects`):
the sum of the group's SHAP contributions without the share of their interactions with the other
group, which would otherwise let a new e-mail click move the fit score. Without interactions across
the groups the two are equal.

:class:`SubscoreScale` maps each effect to 0-100 on the training snapshots: the score is the
percentage of training snapshots whose effect is lower (ties count half), from a 1,001-point
quantile grid kept with the model. A fit score of 80 means the lead's profile raises its odds more
than it does for 80 % of the leads the model was trained on.

:func:`~leadml.rules.grid.grid_tiers` combines them into the grid tier ("A1": right person, very active).
"""

from __future__ import annotations

import bisect
import math
import weakref
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from leadml.core.config import GridConfig
from leadml.core.memo import BoundedMemo
from leadml.features.metadata import FeatureInfo
from leadml.rules.grid import grid_tiers

__all__ = [
    "SUBSCORE_GROUPS",
    "SubscoreScale",
    "fit_subscore_scale",
    "group_effect_arrays",
    "group_effects",
    "subscore_arrays",
    "subscores",
]

SUBSCORE_GROUPS = {"fit": "profile", "engagement": "behaviour"}  # sub-score -> FeatureInfo.group
SCENARIO_PREFIX = "scenario["  # the path features (``features.scenarios``): the scenario sub-score's group


_GROUPS: BoundedMemo[tuple] = BoundedMemo(64)  # (id(feature_info), names) -> (feature_info, columns)


def _groups(names: Sequence[str], feature_info: Sequence[FeatureInfo]) -> dict[str, list[int]]:
    """The columns of each sub-score's group among ``names`` (a model's), kept per feature info and
    names: a served lead asks for the same at every request. The feature info is kept with them, so
    that its ``id`` names no other object meanwhile; a fitted builder's feature info is read only."""
    key = (id(feature_info), tuple(names))
    kept, found = _GROUPS.get(key, lambda: (feature_info, _group_columns(names, feature_info)))
    if kept is not feature_info:
        found = _group_columns(names, feature_info)
    return {score: list(columns) for score, columns in found.items()}  # the caller's own lists


def _group_columns(names: Sequence[str], feature_info: Sequence[FeatureInfo]) -> dict[str, list[int]]:
    group_of = {info.name: info.group for info in feature_info}
    return {score: [j for j, name in enumerate(names) if group_of.get(name) == group]
            for score, group in SUBSCORE_GROUPS.items()}  # fmt: skip


_TREES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(estimator):
    """The estimator's trees, compiled once per fitted estimator (kept beside it, never pickled)."""
    return _trees(estimator)[1]


def _trees(estimator) -> tuple:
    """``(booster, compiled trees, expected margin)`` of the estimator, made once per fitted booster:
    the expected margin sums every tree's expectation, the same sum at each call."""
    from leadml.modeling.lightgbm.effects import compile_booster

    cached = _TREES.get(estimator)
    booster = estimator.booster_
    if cached is None or cached[0] is not booster:
        compiled = compile_booster(booster, getattr(estimator, "n_trees_", None))
        cached = (booster, compiled, compiled.expected_margin())
        _TREES[estimator] = cached
    return cached


_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # estimator -> (compiled, {group: tables})


def _margin(estimator, compiled, X: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """``tree_group_margin`` of a group: by its tables (:mod:`leadml.modeling.subscore_tables`, the same
    bits) for a large batch, else by the walk. The tables are made once per estimator and group."""
    from leadml.modeling.lightgbm.effects import tree_group_margin
    from leadml.modeling.subscore_tables import MIN_ROWS, GroupTables, group_margin, group_tables

    if len(X) >= MIN_ROWS:
        cached = _TABLES.get(estimator)
        if cached is None or cached[0] is not compiled:  # an estimator compiled again: new tables
            cached = _TABLES[estimator] = (compiled, {})
        made: dict[tuple[int, ...], GroupTables | None] = cached[1]
        key = tuple(int(j) for j in columns)
        if key not in made:
            made[key] = group_tables(compiled, columns)
        margin = group_margin(made[key], X)
        if margin is not None:
            return margin
    return tree_group_margin(compiled, X, columns)


def _scenario_columns(names: Sequence[str]) -> list[int]:
    return [j for j, name in enumerate(names) if name.startswith(SCENARIO_PREFIX)]


def group_effects(
    model,
    features: pd.DataFrame,
    feature_info: Sequence[FeatureInfo],
    *,
    matrix: np.ndarray | None = None,
    scenario: bool = False,
) -> pd.DataFrame:
    """Per lead, ``fit`` and ``engagement``: each group's effect on the margin (log-odds), see the module.

    ``model`` is a fitted LightGBM or logistic model, bare or calibrated. A group with no feature
    has effect 0. For LightGBM, ``matrix`` may give the booster's own input for ``features``
    (``LeadScoringModel.matrix``), saving its conversion. With ``scenario`` and path features in the
    model, adds ``scenario``: the effect of the path features alone (part of ``engagement`` too),
    which names the scenario route of an MQL (:mod:`leadml.modeling.routes`).
    """
    return pd.DataFrame(group_effect_arrays(model, features, feature_info, matrix=matrix, scenario=scenario),
                        index=features.index)  # fmt: skip


def group_effect_arrays(
    model,
    features: pd.DataFrame,
    feature_info: Sequence[FeatureInfo],
    *,
    matrix: np.ndarray | None = None,
    scenario: bool = False,
    groups: Sequence[str] = tuple(SUBSCORE_GROUPS),
) -> dict[str, np.ndarray]:
    """:func:`group_effects` as a dict of arrays (in the order of ``features``): no frame for the
    caller that reads the arrays back at once, such as the sub-scores of one served lead. ``groups``:
    the sub-scores to compute (each group's effect is computed on its own: leaving one out changes
    no other)."""
    from leadml.modeling.contributions import explain_margin, unwrap
    from leadml.modeling.lightgbm.effects import lightgbm_matrix

    estimator, _ = unwrap(model)
    if hasattr(estimator, "booster_") and hasattr(estimator, "lightgbm_frame"):
        assert hasattr(estimator, "feature_names_in_")  # a fitted LightGBMModel names its columns
        names = list(estimator.feature_names_in_)
        _, compiled, expected = _trees(estimator)
        X = matrix if matrix is not None else lightgbm_matrix(compiled, estimator.lightgbm_frame(features))
        effects = {score: _margin(estimator, compiled, X, columns) - expected if columns else np.zeros(len(X))
                   for score, columns in _groups(names, feature_info).items() if score in groups}  # fmt: skip
        path = _scenario_columns(names) if scenario else []
        if path:
            effects["scenario"] = _margin(estimator, compiled, X, path) - expected
    else:
        contributions = explain_margin(model, features, feature_info)
        effects = {score: contributions.values[:, columns].sum(axis=1) if columns else np.zeros(len(features))
                   for score, columns in _groups(contributions.features, feature_info).items()
                   if score in groups}  # fmt: skip
        path = _scenario_columns(contributions.features) if scenario else []
        if path:
            effects["scenario"] = contributions.values[:, path].sum(axis=1)
    return effects


class SubscoreScale(BaseEstimator):
    """Maps fit and engagement effects to 0-100 by their rank among the training snapshots'.

    Parameters:
        n_quantiles: points of the stored quantile grid per sub-score (the resolution of the rank).
    """

    def __init__(self, n_quantiles: int = 1001):
        self.n_quantiles = n_quantiles

    def fit(self, effects: pd.DataFrame, y=None) -> SubscoreScale:
        """Keep the quantiles of each column of ``effects`` (``fit``, ``engagement``, and ``scenario``
        when the model has path features)."""
        levels = np.linspace(0.0, 1.0, self.n_quantiles)
        self.quantiles_ = {
            name: np.quantile(effects[name].to_numpy(dtype=float), levels, method="inverted_cdf")
            for name in (*SUBSCORE_GROUPS, "scenario")
            if name in effects
        }
        return self

    def transform(self, effects: pd.DataFrame) -> pd.DataFrame:
        """``fit_score`` and ``engagement_score`` (int16, 0-100; ``scenario_score`` when both the scale
        and ``effects`` have it), indexed like ``effects``."""
        check_is_fitted(self, "quantiles_")
        columns = {name: effects[name].to_numpy(dtype=float) for name in self.quantiles_ if name in effects}
        return pd.DataFrame(self.score_arrays(columns), index=effects.index)

    def score_arrays(self, effects: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`transform` of effects given as arrays, as a dict of arrays (no frame either way)."""
        out = {}
        for name, grid in self.quantiles_.items():
            if name not in effects:
                continue
            x = np.asarray(effects[name], dtype=float)
            small = _few_scores(_grid_floats(self, name, grid), x) if x.ndim == 1 and len(x) <= SMALL_SCORES else None
            out[f"{name}_score"] = small if small is not None else _scores(grid, x)
        return out


SMALL_SCORES = 16  # effects up to which each is ranked on Python floats (numpy's calls cost more for a few)
_FLOATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # scale -> {name: (its grid, floats)}


def _scores(grid: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The 0-100 scores of effects ``x``: the share of ``grid`` below each, ties counting half."""
    rank = (np.searchsorted(grid, x, side="left") + np.searchsorted(grid, x, side="right")) / 2
    return np.clip(np.floor(100.0 * rank / len(grid) + 0.5), 0, 100).astype(np.int16)


def _grid_floats(scale: SubscoreScale, name: str, grid: np.ndarray) -> list[float] | None:
    """A quantile grid of a fitted scale as Python floats, made once per grid (a served lead ranks
    on the same grids at every request): None for a grid bisect would not read as searchsorted does."""
    kept = _FLOATS.setdefault(scale, {})
    found = kept.get(name)
    if found is None or found[0] is not grid:
        found = kept[name] = (grid, grid.tolist() if _ascending(grid) else None)
    return found[1]


def _ascending(grid: np.ndarray) -> bool:
    """A non-empty float64 grid without NaN, in ascending order."""
    grid = np.asarray(grid)
    if grid.dtype != np.float64 or grid.ndim != 1 or not len(grid) or np.isnan(grid).any():
        return False
    return bool(np.all(grid[1:] >= grid[:-1]))


def _few_scores(grid: list[float] | None, x: np.ndarray) -> np.ndarray | None:
    """:func:`_scores` of a few effects by bisection: the same positions as searchsorted's on an
    ascending grid without NaN, the same float arithmetic in Python (IEEE doubles either way). None
    for a NaN effect or grid, which numpy places by its own order."""
    values = x.tolist()
    if grid is None or not all(value == value for value in values):
        return None
    size = len(grid)
    scores = [(bisect.bisect_left(grid, value) + bisect.bisect_right(grid, value)) / 2 for value in values]
    return np.array([min(max(math.floor(100.0 * rank / size + 0.5), 0), 100) for rank in scores], dtype=np.int16)


def fit_subscore_scale(model, features: pd.DataFrame, feature_info: Sequence[FeatureInfo]) -> SubscoreScale:
    """The scale of a model's sub-scores, fitted on its training snapshots' effects."""
    return SubscoreScale().fit(group_effects(model, features, feature_info, scenario=True))


def subscores(
    scoring, features: pd.DataFrame, grid: GridConfig | None = None, *, matrix: np.ndarray | None = None
) -> pd.DataFrame | None:
    """``fit_score``, ``engagement_score`` and ``grid_tier`` of a scoring model's leads (None when the
    model carries no sub-score scale, e.g. a model trained before sub-scores existed)."""
    scores = subscore_arrays(scoring, features, grid, matrix=matrix)
    return None if scores is None else pd.DataFrame(scores, index=features.index)


def subscore_arrays(
    scoring, features: pd.DataFrame, grid: GridConfig | None = None, *, matrix: np.ndarray | None = None
) -> dict[str, np.ndarray] | None:
    """:func:`subscores` as a dict of arrays (``grid_tier`` an object array), for a caller that builds
    its own frame: the decision columns, where a frame a call costs more than one lead's walk."""
    scale = getattr(scoring, "subscores", None)
    if scale is None or scoring.builder is None:
        return None
    if matrix is None and hasattr(scoring, "booster_matrix"):
        matrix = scoring.booster_matrix(features)
    if matrix is not None:  # a calibrated LightGBM: the booster's own matrix, as scoring builds it
        effects = group_effect_arrays(scoring.model, features, scoring.builder.feature_info_, matrix=matrix)
    else:
        effects = group_effect_arrays(scoring.model, scoring.prepare(features), scoring.builder.feature_info_)
    if not hasattr(scale, "quantiles_"):  # check_is_fitted's own test, whose call costs more than the scores
        check_is_fitted(scale, "quantiles_")
    scores = scale.score_arrays(effects)
    scores["grid_tier"] = grid_tiers(scores["fit_score"], scores["engagement_score"], grid)
    return scores


def training_subscore_scale(model, trainset) -> SubscoreScale | None:
    """The sub-score scale of a chosen model, fitted on the training part of its training set.

    None for a model the sub-scores do not apply to (the rules baseline carries its own, by tag).
    """
    from leadml.core.errors import ModelError

    if model is None:
        return None
    frame = trainset.frame
    rows = frame[frame["split"] == "train"] if "split" in frame.columns else frame
    try:
        return fit_subscore_scale(model, rows[list(trainset.feature_names)], trainset.feature_info)
    except ModelError:
        return None
