"""From score to action: the sub-scores, grid tier, next action and deadline of each scored lead.

Beside its probability and tier, every scored lead gets ``fit_score`` and ``engagement_score``
(0-100, :mod:`leadml.modeling.subscores`), ``grid_tier`` (``A1`` .. ``C3``, bands from
``mql.grid``), ``next_action`` (the action of its tier) and ``due_at`` (as_of + the tier's
``within_hours``; for an MQL, the start of its MQL spell + those hours, with ``mql_since`` and
``overdue``: :mod:`leadml.jobs.handoff`). The action and deadline of a tier are read from the pipeline being scored, so a
change in the sales process needs no retraining; a tier the pipeline does not name keeps the
action stored with the model. ``out_of_range`` names the first feature of a lead (its age first)
whose value lies outside what the model saw in training, and is empty when there is none: such a
score is an extrapolation, to be read with care. ``mql_route`` says by which route each MQL
qualified: for a rules model the routes of its rules file (:mod:`leadml.rules.routes`; an MQL its
routes did not qualify, by points alone, gets the route that gave it the most points), for a
learned model the route of its highest sub-score (:mod:`leadml.modeling.routes`).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.arrays import IntegerArray

from leadml.core.config import PipelineConfig, TierConfig
from leadml.jobs.handoff import handoff_arrays, utc_array

__all__ = ["DECISION_COLUMNS", "decision_arrays", "decision_columns", "tier_actions"]

DECISION_COLUMNS = (
    "fit_score", "engagement_score", "grid_tier", "mql_route", "next_action", "due_at", "mql_since", "overdue",
    "out_of_range",
)  # fmt: skip
AGE_FEATURE = "lead__age_days"  # looked at first: a lead older than any training snapshot says the most


def tier_actions(
    tiers: Sequence[str] | np.ndarray,
    as_of: pd.Timestamp,
    pipeline_tiers: Sequence[TierConfig],
    model_tiers: Sequence[TierConfig] = (),
) -> pd.DataFrame:
    """``next_action`` and ``due_at`` of leads by their tier name (missing where the tier has none).

    Example:
        >>> t = [TierConfig(name="MQL", min="mql", action="Call", within_hours=24), TierConfig(name="rest")]
        >>> tier_actions(["MQL", "rest"], pd.Timestamp("2026-06-01", tz="UTC"), t).to_dict("list")
        {'next_action': ['Call', nan], 'due_at': [Timestamp('2026-06-02 00:00:00+0000', tz='UTC'), NaT]}
    """
    actions, due = _tier_arrays(tiers, as_of, pipeline_tiers, model_tiers)
    return pd.DataFrame({"next_action": actions.tolist(), "due_at": due})


def _tier_arrays(
    tiers: Sequence[str] | np.ndarray,
    as_of: pd.Timestamp,
    pipeline_tiers: Sequence[TierConfig],
    model_tiers: Sequence[TierConfig],
) -> tuple[np.ndarray, pd.api.extensions.ExtensionArray]:
    """:func:`tier_actions` as arrays: the actions (object) and the ``datetime64[ns]`` deadlines."""
    actions, due = _tier_values(tiers, as_of, pipeline_tiers, model_tiers)
    return actions, _as_column(due)


def _tier_values(
    tiers: Sequence[str] | np.ndarray,
    as_of: pd.Timestamp,
    pipeline_tiers: Sequence[TierConfig],
    model_tiers: Sequence[TierConfig],
) -> tuple[np.ndarray, np.ndarray | pd.api.extensions.ExtensionArray]:
    """The actions and deadlines of :func:`_tier_arrays`, the deadlines of a UTC as_of as UTC
    ``datetime64[ns]`` values (see :func:`_deadline_values`). Each distinct tier is converted once and
    its values taken for its leads (pandas converts element by element, so the values are those of
    the leads' own conversion)."""
    known = {tier.name: tier for tier in model_tiers}
    known.update({tier.name: tier for tier in pipeline_tiers})
    codes, names = _factorized(tiers)  # a few names, many leads
    found = [known.get(name) for name in names]
    actions = [None if tier is None or pd.isna(tier.action) else tier.action for tier in found]
    hours = np.array([np.nan if tier is None or tier.within_hours is None else tier.within_hours for tier in found],
                     dtype=float)  # fmt: skip
    due = _deadline_values(as_of, hours)
    return _as_read(actions)[codes], due[codes] if isinstance(due, np.ndarray) else due.take(codes)


SMALL_FACTORIZE = 256  # tiers up to which text is factorized on a dict (pd.factorize costs ~30 us a call)


def _factorized(tiers: Sequence[str] | np.ndarray) -> tuple[np.ndarray, list]:
    """``pd.factorize(tiers, use_na_sentinel=False)``: the codes and the distinct names in order of
    first appearance. A few text tiers (one served lead) are factorized on a dict, which sees equal
    text as pandas' hash table sees it; anything else goes to pandas (``tests/test_decisions_small.py``
    holds the two equal)."""
    values = np.asarray(tiers, dtype=object)
    if len(values) <= SMALL_FACTORIZE:
        listed = values.tolist()
        if all(type(value) is str for value in listed):
            first: dict[str, int] = {}
            codes = [first.setdefault(value, len(first)) for value in listed]
            return np.array(codes, dtype=np.intp), list(first)
    codes_, names = pd.factorize(values, use_na_sentinel=False)
    return codes_, list(names)


def _as_read(actions: list) -> np.ndarray:
    """The actions as a pandas column of them holds them: with text and None both present pandas makes
    it a string column, whose missing values read back as NaN; otherwise they are kept as they are."""
    if any(action is None for action in actions) and any(action is not None for action in actions):
        return pd.Series(actions, dtype=None).to_numpy(dtype=object)
    return np.array(actions, dtype=object)


def _as_column(due: np.ndarray | pd.api.extensions.ExtensionArray) -> pd.api.extensions.ExtensionArray:
    """Deadlines as a column's array: UTC ``datetime64[ns]`` values as a ``datetime64[ns, UTC]`` array."""
    return utc_array(due) if isinstance(due, np.ndarray) else due


_HOURS_NS: dict[float, int] = {}  # within_hours -> nanoseconds as pd.to_timedelta makes them, see _deadlines


def _deadlines(as_of: pd.Timestamp, hours: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``as_of + pd.to_timedelta(hours, unit="h")`` as a nanosecond array (NaT for NaN hours).

    For a UTC as_of the sums are made on integers: each distinct ``hours`` is converted by pandas once
    a process (element by element: an array's coarser unit holds the same instants) and added in
    nanoseconds, as pandas adds, an overflow raising; a served lead pays no pandas arithmetic. Any
    other as_of goes through pandas. ``tests/test_decisions_small.py`` checks both give the same."""
    return _as_column(_deadline_values(as_of, hours))


def _deadline_values(as_of: pd.Timestamp, hours: np.ndarray) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """:func:`_deadlines`, for a UTC as_of as UTC ``datetime64[ns]`` values (no pandas array made:
    the caller wraps them once it has moved the MQLs' deadlines)."""
    if not (isinstance(as_of, pd.Timestamp) and as_of.tz is datetime.UTC):
        return pd.DatetimeIndex(as_of + pd.to_timedelta(hours, unit="h")).as_unit("ns").array
    nat = np.iinfo(np.int64).min
    listed = hours.tolist()
    for value in listed:
        if value == value and value not in _HOURS_NS:
            if len(_HOURS_NS) >= 1024:  # a few distinct values per config; bounded all the same
                _HOURS_NS.clear()
            _HOURS_NS[value] = int(pd.to_timedelta(np.array([value]), unit="h").as_unit("ns").asi8[0])
    start = as_of.value  # nanoseconds whatever the Timestamp's unit, as pandas converts it to add
    ns = [start + _HOURS_NS[value] if value == value else nat for value in listed]
    return np.array(ns, dtype=np.int64).view("datetime64[ns]")


def decision_arrays(
    scoring,
    config: PipelineConfig,
    features: pd.DataFrame,
    tiers: Sequence[str] | np.ndarray,
    as_of: pd.Timestamp,
    *,
    subscores: bool = True,
    matrix: np.ndarray | None = None,
    rules: pd.DataFrame | None = None,
    lead_ids: Sequence[str] | None = None,
    is_mql: Sequence[bool] | np.ndarray | None = None,
    spells: pd.Series | None = None,
    accepted: pd.Series | None = None,
) -> dict[str, Any]:
    """The :data:`DECISION_COLUMNS` of some scored leads (``features`` and ``tiers`` in the same order;
    ``matrix``: the booster's input for ``features`` when the caller has built it already; ``rules``:
    a rules model's rules scores of the leads, whose tagged points give its sub-scores).

    With ``lead_ids`` and ``is_mql``, an MQL's deadline runs from the start of its MQL spell
    (``spells``: lead_id -> ``mql_since`` of the earlier runs; none: every spell starts now) and
    ``overdue`` counts sales' acceptance (``accepted``: lead_id -> ``sql_at``); without them
    ``mql_since`` and ``overdue`` are empty.

    The columns are arrays (a nullable Int16 array, object and datetime arrays), from which
    :func:`decision_columns` builds the frame once and the scores table its Arrow columns: one
    served lead pays for no pandas column operation."""
    from leadml.modeling.drift_reference import model_reference, out_of_range_names
    from leadml.modeling.subscores import subscore_arrays

    n = len(features)
    sub: dict | None = None
    if subscores and n:
        sub = _rules_subscores(rules, config) if rules is not None else subscore_arrays(
            scoring, features, config.mql.grid, matrix=matrix)  # fmt: skip
    actions, values = _tier_values(tiers, as_of, config.mql.tiers, getattr(scoring, "tiers", ()))
    if lead_ids is not None and is_mql is not None:
        naive = values if isinstance(values, np.ndarray) else values.to_numpy(dtype="datetime64[ns]")
        started, fixed, overdue = handoff_arrays(lead_ids, is_mql, naive, as_of, spells=spells, accepted=accepted)
        due, since = utc_array(fixed), utc_array(started)
    else:
        due, since = _as_column(values), utc_array(np.full(n, np.datetime64("NaT", "ns")))
        overdue = np.full(n, None, dtype=object)
    return {
        "fit_score": _int16(sub, "fit_score", n),
        "engagement_score": _int16(sub, "engagement_score", n),
        "grid_tier": _grid_tiers(sub, n),
        "mql_route": _routes(scoring, features, sub, rules, is_mql, matrix, n),
        "next_action": actions,
        "due_at": due,
        "mql_since": since,
        "overdue": overdue,
        "out_of_range": out_of_range_names(model_reference(scoring), features, first=(AGE_FEATURE,)),
    }  # fmt: skip


def decision_columns(scoring, config: PipelineConfig, features: pd.DataFrame, tiers: Sequence[str],
                     as_of: pd.Timestamp, **options: Any) -> pd.DataFrame:  # fmt: skip
    """:func:`decision_arrays` as a frame (the options are its own)."""
    arrays = decision_arrays(scoring, config, features, tiers, as_of, **options)
    # copy=False: the arrays are this call's own; no copy, as setting columns made none
    return pd.DataFrame(arrays, index=pd.RangeIndex(len(features)), copy=False)


def _int16(sub: dict | None, name: str, n: int) -> pd.api.extensions.ExtensionArray:
    """A sub-score as a nullable Int16 column (all missing without sub-scores)."""
    if sub is None:
        return pd.array([pd.NA] * n, dtype="Int16")
    values = sub[name]
    if isinstance(values, np.ndarray) and values.dtype == np.int16:  # a model's sub-scores: none missing
        return IntegerArray(values.copy(), np.zeros(len(values), dtype=bool))
    return pd.array(values, dtype="Int16")


def _grid_tiers(sub: dict | None, n: int) -> np.ndarray:
    """The grid tier column as pandas reads it back from a sub-scores frame (all None without sub-scores):
    a missing tier beside others comes back NaN (a string column); all-text tiers come back as they are."""
    if sub is None:
        return np.full(n, None, dtype=object)
    tiers = sub["grid_tier"]
    if pd.isna(tiers).any():
        return pd.Series(tiers, dtype=None).to_numpy(dtype=object)
    return tiers


def _routes(scoring, features, sub: dict | None, rules, is_mql, matrix, n: int) -> np.ndarray:
    """``mql_route`` of the leads (None but for MQLs; all None without the MQL flags or sub-scores)."""
    from leadml.modeling.routes import model_routes

    out = np.full(n, None, dtype=object)
    if is_mql is None or not n:
        return out
    mql = np.asarray(is_mql, dtype=bool)
    if rules is not None:
        if "mql_route" not in rules.columns:  # rules scores made before routes
            return out
        named = rules["mql_route"].to_numpy(dtype=object)
        if "top_route" in rules.columns:
            largest = rules["top_route"].to_numpy(dtype=object)
            named = np.where(pd.isna(named), largest, named)
        out[mql] = named[mql]
        return out
    if sub is None:
        return out
    return model_routes(scoring, features, sub, mql, matrix=matrix)  # reads features by position


def _rules_subscores(rules: pd.DataFrame, config: PipelineConfig) -> dict[str, np.ndarray]:
    """The sub-scores of rules scores (tagged points in percent of their most) and their grid tier."""
    from leadml.rules.grid import grid_tiers

    sub = pd.DataFrame({name: rules[name].to_numpy() for name in ("fit_score", "engagement_score")})
    fit, engagement = (sub[name].astype("Float64").to_numpy(dtype=float, na_value=np.nan) for name in sub.columns)
    return {"fit_score": sub["fit_score"].to_numpy(), "engagement_score": sub["engagement_score"].to_numpy(),
            "grid_tier": grid_tiers(fit, engagement, config.mql.grid)}  # fmt: skip
