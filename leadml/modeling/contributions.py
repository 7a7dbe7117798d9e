"""Why a lead got its score: SHAP values of the model's margin, grouped back to leadml's features.

:func:`explain_margin` splits each lead's log-odds into a base value plus one contribution per
feature, exactly (base + sum of contributions = the model's margin, to float rounding):

- LightGBM: path-dependent TreeSHAP (the cover of the training data), as LightGBM computes it
  (``Booster.predict(..., pred_contrib=True)``, which ``shap.TreeExplainer`` calls too) or, for
  large batches, from per-leaf tables (:mod:`leadml.modeling.lightgbm.treeshap`): the same values.
- Logistic regression (:class:`~leadml.modeling.estimators.LogisticModel`, or a bare
  ``Pipeline`` ending in ``LogisticRegression`` as models of 0.2 were pickled): the exact linear
  SHAP values on the design matrix, ``coef * (z - mean of the training design matrix)``; the base
  value is ``intercept + coef . mean``.

Model columns that come from one feature are summed into it: the one-hot levels and the missing
indicators of the logistic design matrix, and the ``<feature>__missing`` flag that the profile
encoder adds beside a numeric profile field (``budget`` and ``budget__missing`` become one reason,
"Budget not given").

A contribution's effect in **probability points** is the calibrated probability with all
contributions minus the calibrated probability without that one (the margin less the
contribution), in percentage points: a reason's points say how far it moved this lead's
probability, read through the model's own calibration map.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadml.core.errors import ModelError
from leadml.features.metadata import FeatureInfo

MISSING_SUFFIX = "__missing"
_NONE = object()  # an attribute's absence, where None could be its value


@dataclass(frozen=True, eq=False)
class Contributions:
    """Per-lead SHAP contributions of a model's margin (log-odds), grouped to features.

    Attributes:
        values: ``(n_leads, n_features)`` log-odds contributions, one column per feature.
        features: the feature names of the columns of ``values`` (feature-frame column names).
        base_value: the model's expected margin (the same for every lead).
        margin: the model's margin (log-odds before calibration) of each lead.
        probability: the model's (calibrated) probability of each lead.
        index: the index of the explained feature frame.
        kind: ``lightgbm`` or ``logistic``.
        columns: the model's own columns (LightGBM features or design-matrix columns).
        column_values: ``(n_leads, n_columns)`` contributions before grouping.
        column_group: for each model column, the position of its feature in ``features``.
        background: what the base value is measured against (training data, or the explained rows).
    """

    values: np.ndarray
    features: list[str]
    base_value: float
    margin: np.ndarray
    probability: np.ndarray
    index: pd.Index
    kind: str
    columns: list[str]
    column_values: np.ndarray
    column_group: np.ndarray
    background: str = "training data"
    to_probability: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.values)

    def frame(self) -> pd.DataFrame:
        """The grouped contributions as a frame (index of the explained rows, one column per feature)."""
        return pd.DataFrame(self.values, index=self.index, columns=self.features)

    def points(self, rows: np.ndarray | None = None, columns: np.ndarray | None = None) -> np.ndarray:
        """Effect in percentage points of feature ``columns[i]`` on lead ``rows[i]`` (all pairs when None).

        ``100 * (p(margin) - p(margin - contribution))`` with ``p`` the model's calibrated map.
        """
        if rows is None and columns is None:
            contribution = self.values
            margin = self.margin[:, None]
            p = self.probability[:, None]
        else:
            rows = np.asarray(rows, dtype=np.int64)
            contribution = self.values[rows, np.asarray(columns, dtype=np.int64)]
            margin, p = self.margin[rows], self.probability[rows]
        if self.to_probability is None:
            raise ModelError("these contributions carry no probability map: points cannot be computed")
        return 100.0 * (p - self.to_probability(margin - contribution))

    def importance(self) -> pd.Series:
        """Global importance: mean |contribution| per feature (log-odds), largest first."""
        mean_abs = np.abs(self.values).mean(axis=0) if len(self.values) else np.zeros(len(self.features))
        return pd.Series(mean_abs, index=self.features).sort_values(ascending=False, kind="stable")

    def take(self, positions: Sequence[int] | np.ndarray) -> Contributions:
        """The contributions of some leads (by position), e.g. the top 200 for a report."""
        rows = np.asarray(positions, dtype=np.int64)
        return Contributions(
            values=self.values[rows], features=self.features, base_value=self.base_value,
            margin=self.margin[rows], probability=self.probability[rows], index=self.index[rows],
            kind=self.kind, columns=self.columns, column_values=self.column_values[rows],
            column_group=self.column_group, background=self.background, to_probability=self.to_probability,
        )  # fmt: skip


# -- the model behind a wrapper --------------------------------------------------------------
def unwrap(model) -> tuple[object, object | None]:
    """The fitted estimator and its calibration map (``calibrator_``, or None) of a model."""
    estimator, calibrator = model, None
    if hasattr(model, "calibrator_") and hasattr(model, "estimator"):
        estimator, calibrator = model.estimator, model.calibrator_
    from leadml.rules.baseline import PointsBaseline

    if isinstance(estimator, PointsBaseline):
        raise ModelError(
            "the rules baseline is explained by the exact breakdown of its rules, not by SHAP; "
            "use leadml.explain.sentences.rules_reason_table(scores)"
        )
    return estimator, calibrator


def probability_map(calibrator) -> Callable[[np.ndarray], np.ndarray]:
    """Margin (log-odds) -> the model's probability: the sigmoid, then the calibration map if any."""

    def to_probability(margin: np.ndarray) -> np.ndarray:
        margin = np.asarray(margin, dtype=float)
        raw = 1.0 / (1.0 + np.exp(-np.clip(margin, -700, 700)))
        if calibrator is None:
            return raw
        return np.asarray(calibrator.predict(raw.ravel()), dtype=float).reshape(raw.shape)

    return to_probability


# -- grouping model columns into features ------------------------------------------------------
def feature_groups(columns: Sequence[str], feature_info: Sequence[FeatureInfo]) -> tuple[list[str], np.ndarray]:
    """The features (in column order) and, per column, the position of the feature it belongs to.

    A ``<name>__missing`` column joins ``<name>`` when that column is present too; every other
    column is its own feature.
    """
    names, position = _groups(tuple(columns), _sources(feature_info))
    return list(names), position.copy()


def _sources(feature_info: Sequence[FeatureInfo]) -> tuple[tuple[str, str], ...]:
    """Each feature's (name, source): all that grouping reads of the infos (the last info of a name wins)."""
    return tuple({info.name: info.source for info in feature_info}.items())


@functools.lru_cache(maxsize=64)
def _groups(columns: tuple[str, ...], sources: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """:func:`feature_groups` of a model's columns, computed once per model: a served lead explained
    alone would otherwise redo it on every request. Keyed on the names and sources themselves, so a
    changed feature set is a new entry; the cached array is read-only (callers get copies)."""
    present = set(columns)
    source_of = dict(sources)
    owner = []
    for column in columns:
        base = column.removesuffix(MISSING_SUFFIX)
        source = source_of.get(column, base)
        if column.endswith(MISSING_SUFFIX) and base in present and source == base:
            owner.append(base)
        else:
            owner.append(column)
    features = tuple(dict.fromkeys(owner))
    position = {name: i for i, name in enumerate(features)}
    group = np.array([position[name] for name in owner], dtype=np.int64)
    group.flags.writeable = False
    return features, group


@functools.lru_cache(maxsize=64)
def _input_groups(
    columns: tuple[str, ...], sources: tuple[tuple[str, str], ...], inputs: tuple[str, ...]
) -> tuple[tuple[str, ...], np.ndarray]:
    """The features of a model's ``columns`` and, per model input (a column, or a design-matrix
    column of one), the position of its feature: once per model, like :func:`_groups`."""
    names, group = _groups(columns, sources)
    position = {name: k for k, name in enumerate(columns)}  # get_indexer's positions, without an Index
    input_group = group[np.array([position.get(name, -1) for name in inputs], dtype=np.intp)]
    input_group.flags.writeable = False
    return names, input_group


def group_columns(column_values: np.ndarray, column_group: np.ndarray, n_features: int) -> np.ndarray:
    """Sum the columns of each group: ``(n, m)`` -> ``(n, n_features)``.

    One gather of each group's first column, then one vectorised add per further column (the
    one-hot levels and missing flags): a pass over columns, never over leads.
    """
    column_group = np.asarray(column_group, dtype=np.int64)
    first = np.full(n_features, -1, dtype=np.int64)
    order = np.arange(len(column_group))[::-1]
    first[column_group[order]] = order  # the lowest column of each group wins (written last)
    if (first >= 0).all():
        out = np.array(column_values[:, first], dtype=float)
    else:  # a feature without a column contributes nothing
        out = np.zeros((column_values.shape[0], n_features))
        out[:, first >= 0] = column_values[:, first[first >= 0]]
    further = np.ones(len(column_group), dtype=bool)  # the columns after the first of their group, in order
    further[first[first >= 0]] = False
    for column in np.flatnonzero(further).tolist():
        out[:, column_group[column]] += column_values[:, column]
    return out


def _feature_columns(features: pd.DataFrame, estimator, feature_info: Sequence[FeatureInfo]) -> list[str]:
    names = getattr(estimator, "feature_names_in_", None)
    columns = [str(c) for c in names] if names is not None else [info.name for info in feature_info]
    present = set(features.columns.tolist())  # one set, not an Index lookup per column
    missing = [c for c in columns if c not in present]
    if missing:
        raise ModelError(
            f"feature frame: {len(missing)} columns the model was trained on are missing "
            f"(first: {missing[:5]}); build the features with the model's feature set"
        )
    return columns


# -- LightGBM ---------------------------------------------------------------------------------
def _same_base(column: np.ndarray, base_value: float) -> bool:
    """``np.allclose(column, base_value, rtol=0, atol=1e-12)`` (equal infinities pass, NaN fails),
    without its fixed cost of ~20 µs: a served lead pays it on every request."""
    with np.errstate(invalid="ignore"):  # inf - inf, as allclose
        return bool(np.all((column == base_value) | (np.abs(column - base_value) <= 1e-12)))


def _lightgbm(estimator, features: pd.DataFrame, treeshap: str, matrix: np.ndarray | None = None,
              booster=None) -> tuple[np.ndarray, np.ndarray, list[str]]:  # fmt: skip
    """(column contributions incl. the base column, margin, columns) from TreeSHAP.

    ``matrix``: the booster's own input for ``features``, which LightGBM's ``pred_contrib`` reads
    instead of converting the frame (the same numbers; its fixed cost is most of a small batch's).
    ``booster``: the estimator's ``booster_``, when the caller has read it already.
    """
    from leadml.modeling.lightgbm.compiled import thread_options
    from leadml.modeling.lightgbm.treeshap import MAX_PATH_FEATURES, MIN_ROWS, lightgbm_contributions

    if treeshap not in ("auto", "lightgbm", "tables"):
        raise ValueError(f"treeshap must be 'auto', 'lightgbm' or 'tables' (got {treeshap!r})")
    if matrix is not None and matrix.shape != (len(features), len(estimator.feature_names_in_)):
        raise ValueError(f"matrix of shape {matrix.shape} for {len(features)} rows and "
                         f"{len(estimator.feature_names_in_)} model columns")  # fmt: skip
    booster = estimator.booster_ if booster is None else booster
    n_trees = getattr(estimator, "n_trees_", None)
    contrib = None
    if treeshap == "tables" or (treeshap == "auto" and len(features) >= MIN_ROWS):
        contrib = lightgbm_contributions(booster, estimator.lightgbm_frame(features), n_trees)
        if contrib is None and treeshap == "tables":
            raise ModelError(
                f"treeshap='tables' needs numba's kernel (see the log), a single-output booster "
                f"and at most {MAX_PATH_FEATURES} features on a path"
            )
    if contrib is None:
        data = matrix if matrix is not None else estimator.lightgbm_frame(features)
        options = thread_options(len(features))
        contrib = np.asarray(booster.predict(data, pred_contrib=True, num_iteration=n_trees, **options), dtype=float)
    # the contributions add up to the raw score (tested against a raw-score prediction)
    return contrib, contrib.sum(axis=1), [str(c) for c in estimator.feature_names_in_]


# -- logistic regression ----------------------------------------------------------------------
def _split_pipeline(estimator):
    """(preprocessing or None, the linear classifier) of a LogisticModel, a Pipeline or a bare linear model."""
    estimator = getattr(estimator, "pipeline_", estimator)  # a LogisticModel keeps its fitted Pipeline
    steps = getattr(estimator, "steps", None)
    if steps is None:
        preprocess, linear = None, estimator
    else:
        preprocess = estimator[:-1] if len(steps) > 1 else None
        linear = steps[-1][1]
    coef = getattr(linear, "coef_", None)
    if coef is None or np.asarray(coef).shape[0] != 1:
        raise ModelError(
            f"cannot explain a {type(linear).__name__}: leadml explains LightGBMModel and binary "
            "logistic regression (LogisticModel, or a Pipeline ending in LogisticRegression)"
        )
    return preprocess, linear


def _design(preprocess, X: pd.DataFrame) -> np.ndarray:
    if preprocess is None:
        return X.to_numpy(dtype=float)
    Z = preprocess.transform(X)
    return np.asarray(Z.toarray() if hasattr(Z, "toarray") else Z, dtype=float)


def design_mean(model, training_features: pd.DataFrame) -> np.ndarray:
    """Mean of a logistic model's design matrix over training rows: the reference of its SHAP values.

    A :class:`~leadml.modeling.estimators.LogisticModel` keeps it as ``design_mean_`` when it is
    fitted; store it with a bare ``Pipeline`` (``pipeline.design_mean_ = ...``) so that one lead
    explained alone gets the same reasons as in a batch.
    """
    estimator, _ = unwrap(model)
    preprocess, _ = _split_pipeline(estimator)
    X = training_features[_feature_columns(training_features, estimator, [])]
    return _design(preprocess, X).mean(axis=0)


def _encoder_inputs(encoder, columns: list[str]) -> list[str]:
    """Input column of each output of a OneHotEncoder (levels; infrequent levels pooled in one)."""
    out: list[str] = []
    infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * len(columns)
    drop = getattr(encoder, "drop_idx_", None)
    for i, column in enumerate(columns):
        n_out = len(encoder.categories_[i])
        if infrequent[i] is not None and len(infrequent[i]):
            n_out = n_out - len(infrequent[i]) + 1
        if drop is not None and drop[i] is not None:
            n_out -= 1
        out += [column] * n_out
    return out


def _block_inputs(transformer, columns: list[str]) -> list[str]:
    """Input column of each output column of one ColumnTransformer block."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if isinstance(transformer, str):  # "passthrough"
        return list(columns)
    if isinstance(transformer, Pipeline):
        mapped = list(columns)
        for _, step in transformer.steps:
            mapped = _block_inputs(step, mapped)
        return mapped
    if isinstance(transformer, OneHotEncoder):
        return _encoder_inputs(transformer, list(columns))
    if isinstance(transformer, SimpleImputer):
        kept = list(columns)
        if not transformer.keep_empty_features:
            kept = [c for c, s in zip(columns, transformer.statistics_) if not pd.isna(s)]
        indicator = getattr(transformer, "indicator_", None)
        extra = [columns[i] for i in indicator.features_] if indicator is not None else []
        return kept + extra
    return list(columns)  # one-to-one steps (log, scaling)


def _design_inputs(preprocess, columns: list[str], width: int) -> list[str]:
    """For each design-matrix column, the feature column it comes from."""
    from sklearn.compose import ColumnTransformer

    if preprocess is None:
        inputs = list(columns)
    else:
        last = preprocess.steps[-1][1] if hasattr(preprocess, "steps") else preprocess
        if not isinstance(last, ColumnTransformer):
            inputs = _block_inputs(preprocess, list(columns))
        else:
            inputs = [""] * width
            for name, transformer, block_columns in last.transformers_:
                block = last.output_indices_.get(name, slice(0, 0))
                if transformer == "drop" or block.stop <= block.start:
                    continue
                mapped = _block_inputs(transformer, [str(c) for c in block_columns])
                if len(mapped) != block.stop - block.start:
                    raise ModelError(f"cannot map the {name!r} block of the design matrix back to its features")
                inputs[block] = mapped
    if len(inputs) != width or "" in inputs:
        raise ModelError("cannot map the design matrix of the logistic model back to its features")
    return inputs


def _logistic(estimator, features: pd.DataFrame, background) -> tuple[np.ndarray, float, np.ndarray, list[str], str]:
    preprocess, linear = _split_pipeline(estimator)
    Z = _design(preprocess, features)
    coef = np.asarray(linear.coef_, dtype=float)[0]
    intercept = float(np.ravel(linear.intercept_)[0]) if getattr(linear, "fit_intercept", True) else 0.0
    stored = getattr(estimator, "design_mean_", None)
    if isinstance(background, pd.DataFrame):
        mean, source = _design(preprocess, background[features.columns]).mean(axis=0), "training data"
    elif background is not None:
        mean, source = np.asarray(background, dtype=float), "training data"
    elif stored is not None:
        mean, source = np.asarray(stored, dtype=float), "training data"
    elif len(Z) >= 2:
        mean, source = Z.mean(axis=0), "explained rows"
    else:
        raise ModelError(
            "explaining a logistic model needs the mean of its training design matrix: pass "
            "background=<training features> (or design_mean(...)) to explain a single lead"
        )
    if mean.shape != coef.shape:
        raise ModelError(f"background has {mean.shape[0]} design columns, the model {coef.shape[0]}")
    contrib = coef * (Z - mean)
    margin = Z @ coef + intercept
    inputs = _design_inputs(preprocess, list(features.columns), Z.shape[1])
    return contrib, intercept + float(coef @ mean), margin, inputs, source


def _design_names(estimator, inputs: list[str]) -> list[str]:
    preprocess, _ = _split_pipeline(estimator)
    try:
        names = [str(n) for n in preprocess.get_feature_names_out()] if preprocess is not None else inputs
    except (AttributeError, ValueError, TypeError):
        names = inputs
    return names if len(names) == len(inputs) else inputs


def explain_margin(
    model,
    features: pd.DataFrame,
    feature_info: Sequence[FeatureInfo],
    *,
    background: pd.DataFrame | np.ndarray | None = None,
    treeshap: str = "auto",
    matrix: np.ndarray | None = None,
) -> Contributions:
    """SHAP contributions of each lead's margin (log-odds), grouped to leadml's features.

    Parameters:
        model: a fitted ``LightGBMModel`` or ``LogisticModel`` (or a logistic ``Pipeline``), or
            either inside a ``CalibratedModel`` (whose map turns margins into probabilities).
        features: the feature frame (extra columns such as ``lead_id`` are ignored).
        feature_info: the features' metadata (``TrainSet.feature_info``): which columns join.
        background: logistic only: training features (or :func:`design_mean`) that the base
            value refers to. Without it a stored ``design_mean_`` is used, else the mean of the
            explained rows (fine for a batch, not for one lead).
        treeshap: LightGBM only: ``lightgbm`` (its ``pred_contrib``), ``tables`` (leadml's
            tabulated TreeSHAP, :mod:`leadml.modeling.lightgbm.treeshap`, the same values about 4x faster)
            or ``auto`` (tables from 20,000 rows on, when they apply).
        matrix: LightGBM only: the booster's own input for ``features``
            (``LeadScoringModel.booster_matrix``), read by ``pred_contrib`` instead of the frame:
            the same contributions, without converting the frame again.

    Returns:
        :class:`Contributions`: ``base_value + values.sum(axis=1) == margin`` for every lead.

    Raises:
        ModelError: the model is the rules baseline (explained by its breakdown) or of an
            unknown kind, or the frame lacks the model's columns.

    Example:
        >>> from leadml.modeling.estimators import make_logistic
        >>> X = pd.DataFrame({"visits": [0.0, 1.0, 5.0, 9.0] * 10,
        ...                   "level": pd.Categorical(["vp", "staff", "vp", "staff"] * 10)})
        >>> info = [FeatureInfo("visits", "behaviour", "page_view"), FeatureInfo("level", "profile", "level")]
        >>> c = explain_margin(make_logistic().fit(X, [0, 0, 1, 1] * 10), X, info, background=X)
        >>> c.features, bool(np.allclose(c.base_value + c.values.sum(axis=1), c.margin))
        (['visits', 'level'], True)
    """
    estimator, calibrator = unwrap(model)
    columns = _feature_columns(features, estimator, feature_info)
    source = "training data"
    booster = getattr(estimator, "booster_", _NONE)  # read once: the property checks the fit each time
    if booster is not _NONE and hasattr(estimator, "lightgbm_frame"):
        contrib, margin, inputs = _lightgbm(estimator, features, treeshap, matrix, booster)  # the model's columns
        base_value, column_values, kind = float(contrib[0, -1]) if len(contrib) else 0.0, contrib[:, :-1], "lightgbm"
        if not _same_base(contrib[:, -1], base_value):
            raise ModelError("LightGBM returned a base value that differs between leads")
    else:
        column_values, base_value, margin, inputs, source = _logistic(estimator, features[columns], background)
        kind = "logistic"
    grouped, input_group = _input_groups(tuple(columns), _sources(feature_info), tuple(inputs))
    names, column_group = list(grouped), input_group.copy()
    values = group_columns(column_values, column_group, len(names))
    to_probability = probability_map(calibrator)
    columns = list(inputs) if kind == "lightgbm" else _design_names(estimator, inputs)
    return Contributions(
        values=values, features=names, base_value=base_value, margin=margin,
        probability=to_probability(margin), index=features.index, kind=kind, columns=columns,
        column_values=column_values, column_group=column_group, background=source,
        to_probability=to_probability,
    )  # fmt: skip
