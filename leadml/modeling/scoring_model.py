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
faster), a small one by ``Booster.predict``. :meth:`LeadScoringModel.score` (the pyfunc's road)
builds that matrix in memory its thread keeps from call to call: a fresh one of a large frame is
memory the kernel faults in page by page, which cost more than the trees at 60 trees.

A cold start or a win of the rules packs the rules baseline as a model too: its one input is the
rules points of each lead (column ``rules__points``), the calibrated baseline maps them to a
probability, and the model carries its rule set (``rules``, the rules file's content) so that
:meth:`LeadScoringModel.rules_scores` computes the points of new snapshots exactly as training did
(only events before each as_of count). :attr:`LeadScoringModel.needs_points` tells the two kinds apart.

Under ``mql.capacity_by`` or ``mql.policy: value`` the model also carries an
:class:`~leadml.modeling.group_policy.MQLRule` (:attr:`LeadScoringModel.mql_rule`): the threshold of
each group seen in training (:attr:`LeadScoringModel.thresholds_by_group`; a group training never saw
gets the global capacity threshold, a lead without a group the ``default`` group's), the touch cost
and the training median of the value. Every place that flags MQLs asks
:meth:`LeadScoringModel.mql_thresholds` for the thresholds of its leads; ``threshold`` stays the one
number a report shows (value policy: the threshold of a lead of median value).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadml.core.errors import ModelError
from leadml.modeling.frame_blocks import categorical_blocks, frame_positions, numeric_blocks
from leadml.modeling.lightgbm.compiled import booster_probability
from leadml.modeling.policy import apply_policy
from leadml.rules.ruleset import POINTS_COLUMN

if TYPE_CHECKING:
    from leadml.features.build import TrainSet
    from leadml.modeling.group_policy import MQLRule
    from leadml.rules.ruleset import RuleSet

MISSING, OTHER = "missing", "other"
SCRATCH_BYTES = 1 << 27  # the largest booster matrix a thread keeps for its next frame (128 MB: 200,000 rows)


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
    found = np.asarray(distinct, dtype=object)
    text = _text_codes(found, index)
    if text is not None:
        return rows, text
    return rows, _mapped_codes(pd.Series([*found, None], dtype=object), index)


def _text_codes(distinct: np.ndarray, index: pd.Index) -> np.ndarray | None:
    """:func:`_mapped_codes` of ``[*distinct, None]`` by a dict, when every distinct value is a ``str``.

    A ``str`` is its own text and never missing, so its code is its level's position (``other``'s
    when it is no level) and the trailing None's is ``missing``'s: what ``_mapped_codes`` gives,
    without a Series and an Index look-up per call (most of a small frame's categorical cost).
    None for other values or repeated levels: those go through ``_mapped_codes``.
    """
    levels = index.tolist()
    position = {level: j for j, level in enumerate(levels)}
    if len(position) != len(levels) or not all(type(value) is str for value in distinct):
        return None
    other = position.get(OTHER, -1)
    codes = [position.get(value, other) for value in distinct]
    codes.append(position.get(MISSING, other))
    return np.asarray(codes, dtype=np.intp)


def _mapped_codes(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Codes in ``index`` of object values, read as text with ``missing`` and ``other``."""
    text = values.where(values.notna(), MISSING).astype(str)
    codes = index.get_indexer(text)
    return np.where(codes < 0, index.get_indexer([OTHER])[0], codes)


def _booster_codes(values: pd.Series, name: str, levels: Sequence[str], translate: np.ndarray,
                   known: dict[str, tuple[pd.Index, np.ndarray]]) -> tuple[np.ndarray | None, np.ndarray]:  # fmt: skip
    """``(rows, codes)`` of one categorical column: ``codes[rows]`` are the booster's codes (NaN for none).

    The codes of a Categorical depend on its categories alone, so they are kept in ``known`` for
    the categories object they were made from (an Index cannot change): the next frame that shares
    that dtype, as a served lead's cached profile features do, maps no text.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = values.cat.categories
        found = known.get(name)
        if found is not None and found[0] is categories:
            return values.cat.codes.to_numpy(), found[1]
    rows, lookup = _level_lookup(values, pd.Index(list(levels), dtype=object))
    codes = translate[lookup]
    codes = np.where(codes < 0, np.nan, codes)
    if isinstance(values.dtype, pd.CategoricalDtype):
        known[name] = (values.cat.categories, codes)
    return rows, codes


class _PlanCache:
    """The booster plan of a model and the booster codes of the categories seen last, per column.

    It holds what the plan was made from (the model, its booster, the feature names and the
    categories as they were) and serves only while those are unchanged; it is never pickled.
    """

    def __init__(self, scoring: LeadScoringModel, booster, plan):
        self.model, self.booster, self.plan = scoring.model, booster, plan
        self.names = list(scoring.feature_names)
        self.categories = {name: list(levels) for name, levels in scoring.categories.items()}
        self.codes: dict[str, tuple[pd.Index, np.ndarray]] = {}
        self._positions: tuple[pd.Index, list[str], np.ndarray] | None = None
        self._scratch = threading.local()  # each thread's own matrix memory: never shared between calls at once

    def scratch(self, rows: int, columns: int) -> np.ndarray | None:
        """An uninitialised float64 ``(rows, columns)`` column-major matrix, the memory of this thread's last one.

        A fresh matrix of a large frame is new memory that the kernel faults in page by page (more
        system time than the trees take at 60 trees on a busy machine); reusing it costs nothing.
        The caller writes every entry and keeps no reference past its call. None above
        :data:`SCRATCH_BYTES`, which is not kept.
        """
        size = rows * columns
        if size * 8 > SCRATCH_BYTES:
            return None
        held = getattr(self._scratch, "memory", None)
        if held is None or len(held) < size:
            held = self._scratch.memory = np.empty(size, dtype=np.float64)
        return held[:size].reshape((rows, columns), order="F")

    def positions(self, frame_columns: pd.Index, columns: list[str]) -> np.ndarray:
        """:func:`frame_positions`, kept for the last frame layout (frames of equal columns, as every
        chunk and served request has, look them up once)."""
        last = self._positions
        if last is not None and last[1] is columns and (last[0] is frame_columns or last[0].equals(frame_columns)):
            return last[2]
        found = frame_positions(frame_columns, columns)
        self._positions = (frame_columns, columns, found)
        return found

    def holds(self, scoring: LeadScoringModel, booster) -> bool:
        """Whether the plan is still that of ``scoring`` (same objects, equal names and categories)."""
        return (scoring.model is self.model and booster is self.booster and scoring.feature_names == self.names
                and scoring.categories.keys() == self.categories.keys()
                and all(list(levels) == self.categories[name] for name, levels in scoring.categories.items()))  # fmt: skip


def _tier_text(tiers: pd.Series) -> pd.Series:
    """The tier Categorical as text: the categories' text taken by code (``astype(str)`` maps every row)."""
    codes = tiers.cat.codes.to_numpy()
    if (codes < 0).any():
        return tiers.astype(str)
    return pd.Series(tiers.cat.categories.astype(str).take(codes).array, index=tiers.index)


def mql_points(ruleset: RuleSet) -> float | None:
    """The points from which the rules call a lead an MQL: the ``min`` of the tier named MQL (any
    case), else of the best tier; None when that tier is the catch-all (every lead qualifies)."""
    tier = next((t for t in ruleset.tiers if t.name.lower() == "mql"), ruleset.tiers[0])
    return tier.min_points


def rules_threshold(model, ruleset: RuleSet) -> float:
    """The MQL threshold of a rules model without labelled validation snapshots to set it by policy:
    the probability its calibrated map gives the rules' own MQL points (:func:`mql_points`).

    The map is non-decreasing, so every lead the rules call an MQL reaches it; a lead a little
    below the MQL points reaches it too where the map is flat there. 0.0 when every lead qualifies.
    """
    points = mql_points(ruleset)
    if points is None:
        return 0.0
    return float(model.predict_proba(pd.DataFrame({POINTS_COLUMN: [float(points)]}))[0, 1])


class LeadScoringModel:
    """The pyfunc behind a registered leadml model: feature frame in, scores out.

    Holds the calibrated model, the feature set it was trained on (the fitted ``FeatureBuilder``,
    so the features of new snapshots can be built), the MQL threshold and the tiers. Categorical
    features may arrive as pandas ``Categorical`` or as strings; unknown levels become ``other``
    and missing values ``missing``, as at training.

    A rules model (``rules`` holds its rule set, :attr:`needs_points` is True) takes one column,
    ``rules__points``: the points of its rule set, from :meth:`rules_scores` or given to
    :meth:`probability` as ``points``. The builder still says which leads are open and builds
    the features the job counts for drift and data quality.
    """

    rules: dict | None = None  # models packed before rules models were served have no rule set
    mql_rule: MQLRule | None = None  # a threshold per lead (capacity_by, value policy); older models have none

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
        rules: Mapping | None = None,
        mql_rule: MQLRule | None = None,
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
        self.rules = dict(rules) if rules is not None else None  # RuleSet.to_dict() of a rules model
        self.mql_rule = mql_rule  # leadml.modeling.group_policy: thresholds by group / by value

    @property
    def thresholds_by_group(self) -> dict[str, float]:
        """The MQL threshold of each group seen in training (empty without ``mql.capacity_by``)."""
        return dict(self.mql_rule.thresholds_by_group) if self.mql_rule is not None else {}

    @property
    def mql_columns(self) -> tuple[str | None, str | None]:
        """The leads columns the MQL rule reads: (group column, value column); (None, None) for one threshold."""
        rule = self.mql_rule
        return (rule.group_column, rule.value_column) if rule is not None else (None, None)

    def mql_thresholds(
        self, p: np.ndarray, columns: pd.DataFrame | None = None
    ) -> tuple[float | np.ndarray, np.ndarray | None, int]:
        """Each lead's MQL threshold (:attr:`threshold` for all without an MQL rule), its expected value
        (value policy; else None) and the count of missing values filled with the training median.

        ``columns``: ``mql__group`` / ``mql__value`` of the leads, aligned with ``p``
        (:func:`leadml.data.mql_columns.lead_mql_columns`); None reads every lead as missing.
        """
        if self.mql_rule is None:
            return self.threshold, None, 0
        return self.mql_rule.thresholds(p, columns)

    def lead_thresholds(
        self, p: np.ndarray, leads: pd.DataFrame | None, lead_ids, source: str = "leads"
    ) -> tuple[float | np.ndarray, np.ndarray | None, int]:
        """:meth:`mql_thresholds` of some leads, their group / value read from their rows of ``leads``
        (``lead_ids`` aligned with ``p``)."""
        group, value = self.mql_columns
        if (group is None and value is None) or leads is None:
            return self.mql_thresholds(p, None)
        from leadml.data.mql_columns import mql_columns_of

        return self.mql_thresholds(p, mql_columns_of(leads, lead_ids, group, value, source))

    def frame_mql_columns(self, frame: pd.DataFrame) -> pd.DataFrame | None:
        """The MQL rule's columns of a frame given to the pyfunc: ``mql__group`` / ``mql__value`` when
        present, else the leads columns by their own names (a model feature of that name is encoded,
        so pass the raw values under the reserved names then). None without an MQL rule."""
        from leadml.data.mql_columns import GROUP_COLUMN, VALUE_COLUMN, deal_values, group_text

        group, value = self.mql_columns
        if group is None and value is None:
            return None
        out = pd.DataFrame(index=frame.index)
        for reserved, own in ((GROUP_COLUMN, group), (VALUE_COLUMN, value)):
            if own is None:
                continue
            name = reserved if reserved in frame.columns else own if own not in self.feature_names else None
            if name is None or name not in frame.columns:
                continue  # every lead missing: the default group, the median value
            raw = frame[name]
            out[reserved] = group_text(raw) if reserved == GROUP_COLUMN else deal_values(raw, name, "model input")
        return out

    @property
    def needs_points(self) -> bool:
        """True for a rules model: it scores the rules points of each lead, not the features."""
        return self.rules is not None

    def ruleset(self) -> RuleSet:
        """The rule set a rules model scores with (re-made from the rules file content it carries).

        Raises:
            ModelError: the model is not a rules model.
        """
        from leadml.rules.ruleset import RuleSet

        if self.rules is None:
            raise ModelError(f"model {self.name or 'leadml'} is not a rules model: it carries no rule set")
        return RuleSet.from_dict(self.rules, source=f"<rules of model {self.name or 'leadml'}>")

    def rules_scores(
        self, snapshots: pd.DataFrame | None, leads: pd.DataFrame | None, events: pd.DataFrame | None,
        *, flat: pd.DataFrame | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """The rule set's scores of some snapshots, in their order: ``points``, ``tier``, ``breakdown``
        (the rules that fired), ``fit_score``, ``engagement_score`` and ``grid_tier`` (by rule tag).

        ``snapshots`` (``lead_id``, ``as_of``) are scored on ``leads`` and ``events``, each seeing
        only the events before its as_of, as at training; with ``flat``, its rows are scored instead.
        """
        ruleset = self.ruleset()
        if flat is not None:
            return ruleset.score_flat(flat, subscores=True)
        assert snapshots is not None, "give the snapshots (lead_id, as_of) or a flat table"
        return ruleset.score_snapshots(snapshots[["lead_id", "as_of"]], leads, events, subscores=True)

    def with_points(self, features: pd.DataFrame, points) -> pd.DataFrame:
        """The input of a rules model: ``points`` as column ``rules__points``, indexed like ``features``."""
        return pd.DataFrame({POINTS_COLUMN: np.asarray(points, dtype=float)}, index=features.index)

    def __getstate__(self) -> dict:
        from leadml.core.pickling import stable_pickle

        stable_pickle(self.tiers)  # pydantic tiers: the same pickle bytes under any PYTHONHASHSEED
        state = dict(self.__dict__)
        state.pop("_plan_cache", None)  # made again on first use: a pickle holds the model only
        return state

    @classmethod
    def from_training(
        cls, result, trainset: TrainSet, tiers: Sequence, *, rules: RuleSet | None = None
    ) -> LeadScoringModel:
        """The chosen model of a training result, packed with its features, threshold, tiers, sub-score
        scale and drift reference (the training distribution each scoring batch is compared with).

        When the rules baseline was chosen (a cold start or a rules win), ``rules`` is the rule set
        that gave the training points; the model carries it and takes the points as its input. Its
        threshold is the chosen one, or without labelled validation snapshots :func:`rules_threshold`.

        Raises:
            ModelError: the rules baseline was chosen and ``rules`` is None.
        """
        from leadml.modeling.drift_reference import training_reference
        from leadml.modeling.subscores import training_subscore_scale
        from leadml.modeling.train import RULES

        if result.chosen == RULES:
            if rules is None:
                raise ModelError("the chosen model is the rules baseline: give the rule set that scored the "
                                 "training snapshots (rules=...) to pack it")  # fmt: skip
            threshold = result.threshold if result.threshold is not None else rules_threshold(result.model, rules)
            packed = dict(model=result.model, feature_names=[POINTS_COLUMN], categories={}, threshold=threshold,
                          tiers=tiers, builder=trainset.builder, name=RULES, rules=rules.to_dict(),
                          mql_rule=getattr(result, "mql_rule", None))  # fmt: skip
            return cls(**packed, drift_reference=training_reference(trainset, cls(**packed)))

        frame = trainset.frame
        categories = {
            name: list(frame[name].cat.categories.astype(str))
            for name in result.feature_names
            if isinstance(frame[name].dtype, pd.CategoricalDtype)
        }
        parts = dict(model=result.model, feature_names=result.feature_names, categories=categories,
                     threshold=result.threshold, tiers=tiers, builder=trainset.builder, name=result.chosen,
                     subscores=training_subscore_scale(result.model, trainset),
                     mql_rule=getattr(result, "mql_rule", None))  # fmt: skip
        reference = training_reference(trainset, cls(**parts))  # needs the model's probabilities
        return cls(**parts, drift_reference=reference)

    def _check_columns(self, features: pd.DataFrame) -> None:
        present = set(features.columns.tolist())  # a set: the Index's own look-up costs more, name by name
        missing = [c for c in self.feature_names if c not in present]
        if missing and self.needs_points:
            raise ModelError(
                f"model {self.name or 'leadml'} is the rules baseline: it scores the rules points of each lead "
                f"(column '{POINTS_COLUMN}'), which the frame lacks; compute them with "
                "LeadScoringModel.rules_scores, or score the leads with `leadml score`"
            )
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
        Made once per model and kept while the model, its booster, feature names and categories
        stay those it was made from (:class:`_PlanCache`), so a request of one lead does not pay it.
        """
        estimator = getattr(self.model, "estimator", None)
        booster = getattr(estimator, "booster_", None)
        cache = self.__dict__.get("_plan_cache")
        if cache is not None and cache.holds(self, booster):
            return cache.plan
        plan = self._make_booster_plan()
        self.__dict__["_plan_cache"] = _PlanCache(self, booster, plan)
        return plan

    def _make_booster_plan(self) -> tuple[list[str], dict[str, np.ndarray]] | None:
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

    _by_blocks = True  # numbers and categoricals read off the frame's blocks (False: by name, as tests compare)

    def matrix(self, features: pd.DataFrame, plan: tuple[list[str], dict[str, np.ndarray]]) -> np.ndarray:
        """The booster's input: numbers as float64, categoricals as its category codes (NaN for none)."""
        # column-major: each column is written in one contiguous run, and LightGBM reads this
        # layout as fast as a row-major one
        X = np.empty((len(features), len(plan[0])), dtype=np.float64, order="F")
        return self._write_matrix(features, plan, X)

    def _write_matrix(self, features: pd.DataFrame, plan: tuple[list[str], dict[str, np.ndarray]],
                      X: np.ndarray) -> np.ndarray:  # fmt: skip
        """Write :meth:`matrix` of ``features`` into ``X`` (every entry: its former content never shows)."""
        columns, translate = plan
        cache = self.__dict__.get("_plan_cache")
        booster = getattr(getattr(self.model, "estimator", None), "booster_", None)
        known = cache.codes if cache is not None and cache.plan is plan and cache.holds(self, booster) else {}
        positions = cache.positions(features.columns, columns) if cache is not None else None
        done = numeric_blocks(features, columns, translate, X, positions) if self._by_blocks else set()
        categoricals = categorical_blocks(features) if self._by_blocks and positions is not None else {}
        for j, name in enumerate(columns):
            if j in done:
                continue
            kept = known.get(name)
            held = categoricals.get(int(positions[j])) if kept is not None and positions is not None else None
            if held is not None and kept is not None and held.categories is kept[0]:  # the codes of these categories
                np.take(kept[1], held.codes, out=X[:, j], mode="wrap")
                continue
            values = features[name]
            if name in translate:
                rows, codes = _booster_codes(values, name, self.categories[name], translate[name], known)
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

    def probability(self, features: pd.DataFrame, matrix: np.ndarray | None = None, *, points=None) -> np.ndarray:
        """Calibrated probability of conversion per row (``matrix``: :meth:`booster_matrix` of ``features``).

        A rules model reads column ``rules__points`` of ``features``, or ``points`` (one per row) when given.
        """
        return self._probability(features, matrix, points=points)

    def _probability(self, features: pd.DataFrame, matrix: np.ndarray | None = None, *, points=None,
                     scratch: bool = False) -> np.ndarray:  # fmt: skip
        """:meth:`probability`; with ``scratch``, the booster matrix is built in this thread's kept memory
        (:meth:`_PlanCache.scratch`): for :meth:`score`, whose callers send frame after frame of a size."""
        if points is not None:
            if not self.needs_points:
                raise ModelError(f"model {self.name or 'leadml'} scores features, not rules points")
            features = self.with_points(features, points)
        self._check_columns(features)
        if not len(features):
            return np.zeros(0)
        plan = self._booster_plan()
        if plan is None:
            return self.model.predict_proba(self.prepare(features))[:, 1]
        estimator = self.model.estimator
        X = matrix
        if X is None:
            cache = self.__dict__.get("_plan_cache")
            kept = cache.scratch(len(features), len(plan[0])) if scratch and cache is not None else None
            X = self.matrix(features, plan) if kept is None else self._write_matrix(features, plan, kept)
        raw = booster_probability(estimator.booster_, X, num_iteration=estimator.n_trees_)
        return np.asarray(self.model.calibrator_.predict(raw), dtype=float)

    def score(self, features: pd.DataFrame) -> pd.DataFrame:
        """``probability``, ``score`` (0-100), ``tier`` (text) and ``is_mql`` per row; with an MQL rule
        each row's threshold comes from its group / value columns (:meth:`frame_mql_columns`), and
        the value policy adds ``expected_value``."""
        p = self._probability(features, scratch=True)
        columns = self.frame_mql_columns(features)
        if columns is not None:
            columns = columns.reset_index(drop=True)
        threshold, expected, _ = self.mql_thresholds(p, columns)
        scores = apply_policy(p, threshold, self.tiers)
        scores["tier"] = _tier_text(scores["tier"])
        if expected is not None:
            scores["expected_value"] = expected
        scores.index = features.index
        return scores

    def features_for(self, trainset: TrainSet, rows: np.ndarray) -> pd.DataFrame:
        """This model's features of some snapshots of a training set (rebuilt if the feature set differs);
        for a rules model, the snapshots with their points under its rule set (column ``rules__points``)."""
        frame = trainset.frame.loc[rows]
        if self.needs_points:
            data = trainset.data
            if data.flat is not None:
                flat = data.flat.set_index("lead_id").loc[frame["lead_id"]].reset_index()
                scores = self.rules_scores(None, None, None, flat=flat)
            else:
                scores = self.rules_scores(frame, data.leads, data.events)
            return frame.assign(**{POINTS_COLUMN: scores["points"].to_numpy(dtype=float)})
        if self.builder is None or self.spec_hash == trainset.builder.spec_hash():
            return frame
        flat = trainset.data.flat
        if flat is not None:  # trainset.data.is_flat
            return self.builder.transform_flat(flat.loc[frame.index])
        return self.builder.transform(frame[["lead_id", "as_of"]], trainset.data.leads, trainset.data.events)
