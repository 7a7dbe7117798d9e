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

from collections.abc import Sequence

import numpy as np
import pandas as pd

from leadml.core.config import PipelineConfig, TierConfig
from leadml.jobs.handoff import handoff_state

__all__ = ["DECISION_COLUMNS", "decision_columns", "tier_actions"]

DECISION_COLUMNS = (
    "fit_score", "engagement_score", "grid_tier", "mql_route", "next_action", "due_at", "mql_since", "overdue",
    "out_of_range",
)  # fmt: skip
AGE_FEATURE = "lead__age_days"  # looked at first: a lead older than any training snapshot says the most


def tier_actions(
    tiers: Sequence[str],
    as_of: pd.Timestamp,
    pipeline_tiers: Sequence[TierConfig],
    model_tiers: Sequence[TierConfig] = (),
) -> pd.DataFrame:
    """``next_action`` and ``due_at`` of leads by their tier name (missing where the tier has none).

    Example:
        >>> t = [TierConfig(name="MQL", min="mql", action="Call", within_hours=24), TierConfig(name="rest")]
        >>> tier_actions(["MQL", "rest"], pd.Timestamp("2026-06-01", tz="UTC"), t).to_dict("list")
        {'next_action': ['Call', None], 'due_at': [Timestamp('2026-06-02 00:00:00+0000', tz='UTC'), NaT]}
    """
    known = {tier.name: tier for tier in model_tiers}
    known.update({tier.name: tier for tier in pipeline_tiers})
    codes, names = pd.factorize(np.asarray(tiers, dtype=object), use_na_sentinel=False)  # a few names, many leads
    found = [known.get(name) for name in names]
    actions = np.array([None if tier is None or pd.isna(tier.action) else tier.action for tier in found], dtype=object)
    hours = np.array([np.nan if tier is None or tier.within_hours is None else tier.within_hours for tier in found],
                     dtype=float)  # fmt: skip
    due = as_of + pd.to_timedelta(hours[codes], unit="h")
    return pd.DataFrame({
        "next_action": actions[codes].tolist(),
        "due_at": pd.DatetimeIndex(due).as_unit("ns"),
    })  # fmt: skip


def decision_columns(
    scoring,
    config: PipelineConfig,
    features: pd.DataFrame,
    tiers: Sequence[str],
    as_of: pd.Timestamp,
    *,
    subscores: bool = True,
    matrix: np.ndarray | None = None,
    rules: pd.DataFrame | None = None,
    lead_ids: Sequence[str] | None = None,
    is_mql: Sequence[bool] | np.ndarray | None = None,
    spells: pd.Series | None = None,
    accepted: pd.Series | None = None,
) -> pd.DataFrame:
    """The :data:`DECISION_COLUMNS` of some scored leads (``features`` and ``tiers`` in the same order;
    ``matrix``: the booster's input for ``features`` when the caller has built it already; ``rules``:
    a rules model's rules scores of the leads, whose tagged points give its sub-scores).

    With ``lead_ids`` and ``is_mql``, an MQL's deadline runs from the start of its MQL spell
    (``spells``: lead_id -> ``mql_since`` of the earlier runs; none: every spell starts now) and
    ``overdue`` counts sales' acceptance (``accepted``: lead_id -> ``sql_at``); without them
    ``mql_since`` and ``overdue`` are empty."""
    from leadml.modeling.drift_reference import model_reference, out_of_range
    from leadml.modeling.subscores import subscores as model_subscores

    n = len(features)
    out = pd.DataFrame(index=pd.RangeIndex(n))
    if rules is not None:
        sub = _rules_subscores(rules, config) if subscores and n else None
    else:
        sub = model_subscores(scoring, features, config.mql.grid, matrix=matrix) if subscores and n else None
    for name in ("fit_score", "engagement_score"):
        out[name] = (
            pd.array(sub[name].to_numpy(), dtype="Int16") if sub is not None else pd.array([pd.NA] * n, dtype="Int16")
        )
    out["grid_tier"] = sub["grid_tier"].to_numpy(dtype=object) if sub is not None else np.full(n, None, dtype=object)
    out["mql_route"] = _routes(scoring, features, sub, rules, is_mql, matrix, n)
    actions = tier_actions(tiers, as_of, config.mql.tiers, getattr(scoring, "tiers", ()))
    out["next_action"] = actions["next_action"].to_numpy(dtype=object)
    out["due_at"] = actions["due_at"].array  # a DatetimeArray: to_numpy() would make 1 Timestamp object a row
    out["mql_since"], out["overdue"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]"), None
    if lead_ids is not None and is_mql is not None:
        state = handoff_state(lead_ids, is_mql, out["due_at"], as_of, spells=spells, accepted=accepted)
        out["due_at"], out["mql_since"], out["overdue"] = state["due_at"], state["mql_since"], state["overdue"]
    flagged = out_of_range(model_reference(scoring), features.reset_index(drop=True), first=(AGE_FEATURE,))
    out["out_of_range"] = flagged.where(flagged != "", None).to_numpy(dtype=object)
    return out


def _routes(scoring, features, sub, rules, is_mql, matrix, n: int) -> np.ndarray:
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
    return model_routes(scoring, features.reset_index(drop=True), sub.reset_index(drop=True), mql, matrix=matrix)


def _rules_subscores(rules: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """The sub-scores of rules scores (tagged points in percent of their most) and their grid tier."""
    from leadml.rules.grid import grid_tiers

    sub = pd.DataFrame({name: rules[name].to_numpy() for name in ("fit_score", "engagement_score")})
    fit, engagement = (sub[name].astype("Float64").to_numpy(dtype=float, na_value=np.nan) for name in sub.columns)
    sub["grid_tier"] = grid_tiers(fit, engagement, config.mql.grid)
    return sub
