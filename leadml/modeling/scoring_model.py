"""The model inside a registered leadml pyfunc: a feature frame in, probabilities and tiers out.

:class:`LeadScoringModel` holds the calibrated model, the fitted feature set, the MQL threshold and
the tiers. Its input may come from anywhere (the job's own frames, a CSV or Parquet file read by
``mlflow models predict``, a Spark batch), so categorical features may arrive as pandas
``Categorical`` or as text; unknown levels become ``other`` and missing values ``missing``, as at
training. The text is mapped once per distinct value, never per row.

For a calibrated LightGBM model, :meth:`LeadScoringModel.probability` builds the booster's float64
matrix (categoricals as the booster's own category codes) instead of a frame: the same numbers
LightGBM's pandas path would build, without its frame copies. A large batch is then scored by
:mod:`leadml.modeling.lightgbm.compiled` (the same bits as ``Booster.predict``, several times
faster), a small one by ``Booster.predict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadml.core.errors import ModelError
from leadml.modeling.lightgbm.compiled import booster_probability
from leadml.modeling.policy import apply_policy

if TYPE_CHECKING:
    from leadml.features.build import TrainSet

MISSING, OTHER = "missing", "other"


def level_codes(values: pd.Series, levels: Sequence[str]) -> np.ndarray:
    """Codes of ``values`` in ``levels`` (-1 when neither the text nor ``other`` is a level).

    A missing value reads as ``missing``, any value as its text (``str``), and a text that is
    not a level as ``other``.
    """
    rows, lookup = _level_lookup(values, pd.Index(list(levels), dtype=object))
    return lookup if rows is None else lookup[rows]


def _level_lookup(values: pd.Series, index: pd.Index) -> tuple[np.ndarray | None, np.ndarray]:
    """``(rows, lookup)``: ``lookup[rows]`` are the codes of ``values`` in ``index``.

    The text is mapped once per distinct value: a Categorical brings its categories, text is
    factorised. ``rows`` is -1 for a missing value, which picks the last entry of ``lookup``
    (the code of ``missing``). Other kinds (numbers in a categorical column, whose text depends
    on their width) are mapped row by row and ``rows`` is None.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        rows, distinct = values.cat.codes.to_numpy(), values.cat.categories
    elif values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        rows, distinct = pd.factorize(values, use_na_sentinel=True)
    else:
        return None, _mapped_codes(values.astype(object), index)
    return rows, _mapped_codes(pd.Series([*np.asarray(distinct, dtype=object), None], dtype=object), index)


def _mapped_codes(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Codes in ``index`` of object values, read as text with ``missing`` and ``other``."""
    text = values.where(values.notna(), MISSING).astype(str)
    codes = index.get_indexer(text)
    return np.where(codes < 0, index.get_indexer([OTHER])[0], codes)


def _tier_text(tiers: pd.Series) -> pd.Series:
    """The tier Categorical as text: the categories' text taken by code (``astype(str)`` maps every row)."""
    codes = tiers.cat.codes.to_numpy()
    if (codes < 0).any():
        return tiers.astype(str)
    return pd.Series(tiers.cat.categories.astype(str).take(codes).array, index=tiers.index)


class LeadScoringModel:
    """The pyfunc behind a registered leadml model: feature frame in, scores out.

    Holds the calibrated model, the feature set it was trained on (the fitted ``FeatureBuilder``,
    so the features of new snapshots can be built), the MQL threshold and the tiers. Categorical
    features may arrive as pandas ``Categorical`` or as strings; unknown levels become ``other``
    and missing values ``missing``, as at training.
    """

    def __init__(
        self,
        model,
        feature_names: Sequence[str],
        categories: Mapping[str, Sequence[str]],
        threshold: float,
        tiers: Sequence,
        builder=None,
        name: str = "",
        *,
        subscores=None,
        drift_reference: dict | None = None,
    ):
        self.model = model
        self.feature_names = list(feature_names)
        self.categories = dict(categories)
        self.threshold = float(threshold)
        self.tiers = list(tiers)
        self.builder = builder
        self.name = name
        self.spec_hash = builder.spec_hash() if builder is not None else None
        self.subscores = subscores  # a SubscoreScale (leadml.modeling.subscores): fit/engagement 0-100
        self.drift_reference = drift_reference  # the training distribution (leadml.modeling.drift_reference)

    def __getstate__(self) -> dict:
        from leadml.core.pickling import stable_pickle

        stable_pickle(self.tiers)  # pydantic tiers: the same pickle bytes under any PYTHONHASHSEED
        return dict(self.__dict__)

    @classmethod
    def from_training(cls, result, trainset: TrainSet, tiers: Sequence) -> LeadScoringModel:
        """The chosen model of a training result, packed with its features, threshold, tiers, sub-score
        scale and drift reference (the training distribution each scoring batch is compared with)."""
        from leadml.modeling.drift_reference import training_reference
        from leadml.modeling.subscores import training_subscore_scale

        frame = trainset.frame
        categories = {
            name: list(frame[name].cat.categories.astype(str))
            for name in result.feature_names
            if isinstance(frame[name].dtype, pd.CategoricalDtype)
        }
        parts = dict(model=result.model, feature_names=result.feature_names, categories=categories,
                     threshold=result.threshold, tiers=tiers, builder=trainset.builder, name=result.chosen,
                     subscores=training_subscore_scale(result.model, trainset))  # fmt: skip
        reference = training_reference(trainset, cls(**parts))  # needs the model's probabilities
        return cls(**parts, drift_reference=reference)

    def _check_columns(self, features: pd.DataFrame) -> None:
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise ModelError(f"feature frame lacks {len(missing)} columns the model needs (first: {missing[:5]})")

    def prepare(self, features: pd.DataFrame) -> pd.DataFrame:
        """The feature columns in training order, categoricals with the training categories."""
        self._check_columns(features)
        out = {}
        for name in self.feature_names:
            values = features[name]
            if name in self.categories:
                levels = list(self.categories[name])
                out[name] = pd.Categorical.from_codes(level_codes(values, levels), categories=levels)
            else:
                out[name] = pd.to_numeric(values, errors="coerce").astype("float64")
        return pd.DataFrame(out, index=features.index)

    def _booster_plan(self) -> tuple[list[str], dict[str, np.ndarray]] | None:
        """The booster's columns and, per categorical, training code -> booster code; None if not LightGBM.

        The booster's categories are those of the training frame; LightGBM maps a frame's
        categories onto them by value, so a training code whose level the booster lacks is -1.
        """
        estimator = getattr(self.model, "estimator", None)
        needs = ((self.model, "calibrator_"), (estimator, "booster_"), (estimator, "n_trees_"),
                 (estimator, "feature_names_in_"))  # fmt: skip
        if estimator is None or not all(hasattr(owner, name) for owner, name in needs):
            return None
        columns = [str(c) for c in estimator.feature_names_in_]
        categorical = [c for c in columns if c in self.categories]
        booster_levels = estimator.booster_.pandas_categorical or []
        if len(booster_levels) != len(categorical) or set(columns) != set(self.feature_names):
            return None
        translate = {}
        for name, levels in zip(categorical, booster_levels):
            known = pd.Index(list(levels), dtype=object).get_indexer(pd.Index(self.categories[name], dtype=object))
            translate[name] = np.append(known, -1)  # position -1: a row without a level stays without
        return columns, translate

    def matrix(self, features: pd.DataFrame, plan: tuple[list[str], dict[str, np.ndarray]]) -> np.ndarray:
        """The booster's input: numbers as float64, categoricals as its category codes (NaN for none)."""
        columns, translate = plan
        # column-major: each column is written in one contiguous run, and LightGBM reads this
        # layout as fast as a row-major one
        X = np.empty((len(features), len(columns)), dtype=np.float64, order="F")
        for j, name in enumerate(columns):
            values = features[name]
            if name in translate:
                rows, lookup = _level_lookup(values, pd.Index(self.categories[name], dtype=object))
                codes = translate[name][lookup]
                codes = np.where(codes < 0, np.nan, codes)
                if rows is None:
                    X[:, j] = codes
                else:  # row code -1 (missing) wraps to the last entry, the code of "missing"
                    np.take(codes, rows, out=X[:, j], mode="wrap")
            elif isinstance(values.dtype, np.dtype) and values.dtype.kind in "fiub":
                X[:, j] = values.to_numpy()  # float32 -> float64 is exact, as astype("float64") is
            else:
                X[:, j] = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
        return X

    def booster_matrix(self, features: pd.DataFrame) -> np.ndarray | None:
        """The booster's input for ``features`` (None when the model is not a calibrated LightGBM),
        to be shared by :meth:`probability` and the sub-scores instead of being built twice."""
        plan = self._booster_plan()
        return None if plan is None or not len(features) else self.matrix(features, plan)

    def probability(self, features: pd.DataFrame, matrix: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probability of conversion per row (``matrix``: :meth:`booster_matrix` of ``features``)."""
        self._check_columns(features)
        if not len(features):
            return np.zeros(0)
        plan = self._booster_plan()
        if plan is None:
            return self.model.predict_proba(self.prepare(features))[:, 1]
        estimator = self.model.estimator
        X = matrix if matrix is not None else self.matrix(features, plan)
        raw = booster_probability(estimator.booster_, X, num_iteration=estimator.n_trees_)
        return np.asarray(self.model.calibrator_.predict(raw), dtype=float)

    def score(self, features: pd.DataFrame) -> pd.DataFrame:
        """``probability``, ``score`` (0-100), ``tier`` (text) and ``is_mql`` per row."""
        scores = apply_policy(self.probability(features), self.threshold, self.tiers)
        scores["tier"] = _tier_text(scores["tier"])
        scores.index = features.index
        return scores

    def features_for(self, trainset: TrainSet, rows: np.ndarray) -> pd.DataFrame:
        """This model's features of some snapshots of a training set (rebuilt if the feature set differs)."""
        frame = trainset.frame.loc[rows]
        if self.builder is None or self.spec_hash == trainset.builder.spec_hash():
            return frame
        flat = trainset.data.flat
        if flat is not None:  # trainset.data.is_flat
            return self.builder.transform_flat(flat.loc[frame.index])
        return self.builder.transform(frame[["lead_id", "as_of"]], trainset.data.leads, trainset.data.events)
