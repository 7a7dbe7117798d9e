"""The sales report: for sales managers, leads by score with tier, MQL flag, hand-off and reasons.

Searchable and sortable; a click on a lead opens its reasons and, for the top leads, its waterfall
chart (inline SVG, about 3 kB each, so the page stays small).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.explain.report.html import render_page
from leadml.modeling.contributions import Contributions

__all__ = ["REASON_COLUMNS", "write_sales_report"]

REASON_COLUMNS = ("reason_1", "reason_2", "reason_3", "counter_reason_1", "counter_reason_2")


def write_sales_report(
    scores: pd.DataFrame,
    path: str | os.PathLike,
    *,
    contributions: Contributions | None = None,
    waterfalls: int = 200,
    max_leads: int | None = None,
    title: str = "Leads to call",
    history: pd.DataFrame | None = None,
    history_settings=None,
) -> Path:
    """Write the sales report: every lead by score with tier, MQL flag and reasons (self-contained HTML).

    Parameters:
        scores: one row per lead with ``lead_id`` and ``probability`` (or ``score``), and when
            present ``score``, ``tier``, ``is_mql``, ``as_of``, ``reason_1..3``,
            ``counter_reason_1..2``, ``why`` and ``counterfactual``.
        contributions: contributions of the scored leads (all or some), indexed like ``scores``;
            the top ``waterfalls`` leads by score that have them get a waterfall chart (inline SVG).
        waterfalls: how many leads get a chart (the page grows by about 3 kB per chart).
        max_leads: list only the best ``max_leads`` leads (the page grows by about 0.85 kB per
            lead: 100,000 leads make an 85 MB page, too heavy for a browser); None lists all.
        history: the score history (:func:`leadml.jobs.history.load_history`): the page then lists the
            leads warming up and the stuck MQLs, and the top leads show their score over time.
        history_settings: a :class:`~leadml.core.config.HistoryConfig` (windows and list sizes).

    With ``next_action`` / ``due_at`` / ``fit_score`` / ``engagement_score`` / ``grid_tier`` in the
    scores, each lead shows its hand-off line ("Call within 24 h: ...") and its grid tier; a lead
    with ``out_of_range`` is marked as unlike the training leads (its score is an extrapolation).
    """
    from leadml.explain.report.plots import waterfall_svg
    from leadml.explain.report.sales_history import hand_off_line, history_context

    if "lead_id" not in scores.columns or not ({"probability", "score"} & set(scores.columns)):
        raise LeadDataError(
            "sales report: the scores need 'lead_id' and 'probability' (or 'score') columns "
            f"(columns present: {', '.join(map(str, list(scores.columns)[:12]))})"
        )
    explained = None
    if contributions is not None:  # by index label, so contributions of some leads only (the top) will do
        explained = pd.Index(contributions.index).get_indexer(scores.index)
        if not pd.Index(contributions.index).is_unique or (len(scores) and (explained < 0).all()):
            raise LeadDataError("sales report: the contributions must be indexed like the scores (unique labels)")
    key = scores["probability"] if "probability" in scores.columns else scores["score"]
    order = np.argsort(-key.to_numpy(dtype=float), kind="stable")
    n_scored = len(order)
    if max_leads is not None:
        order = order[:max_leads]
    ranked = scores.iloc[order].reset_index(drop=True)
    past = history_context(history, ranked["lead_id"].astype(str).tolist(), history_settings, charts=waterfalls)
    leads = []
    for rank, row in enumerate(ranked.to_dict("records")):
        probability = row.get("probability")
        score = row.get("score", None if probability is None else int(np.floor(probability * 100 + 0.5)))
        chart = None
        if contributions is not None and explained is not None and rank < waterfalls and explained[order[rank]] >= 0:
            i = int(explained[order[rank]])
            chart = waterfall_svg(contributions.values[i], contributions.features, contributions.base_value,
                                  float(contributions.margin[i]), float(contributions.probability[i]))  # fmt: skip
        leads.append({
            "rank": rank + 1, "lead_id": str(row["lead_id"]), "score": score, "probability": probability,
            "tier": "" if pd.isna(row.get("tier", "")) else str(row.get("tier", "")),
            "is_mql": bool(row.get("is_mql", False)) if not pd.isna(row.get("is_mql", False)) else False,
            "as_of": row.get("as_of"),
            "reasons": [row[c] for c in REASON_COLUMNS[:3] if isinstance(row.get(c), str) and row[c]],
            "counter": [row[c] for c in REASON_COLUMNS[3:] if isinstance(row.get(c), str) and row[c]],
            "why": row.get("why") if isinstance(row.get("why"), str) else "",
            "counterfactual": row.get("counterfactual") if isinstance(row.get("counterfactual"), str) else "",
            "chart": chart,
        })  # fmt: skip
        lead = leads[-1]
        lead["hand_off"] = hand_off_line(row, lead["reasons"])
        lead["grid"] = _text(row.get("grid_tier"))
        lead["fit"], lead["engagement"] = _text(row.get("fit_score")), _text(row.get("engagement_score"))
        lead["out_of_range"] = _text(row.get("out_of_range"))
        lead["past"] = past["per_lead"].get(lead["lead_id"], {"sparkline": None, "week_change": None, "runs": 0})
    n_mql = int(scores["is_mql"].fillna(False).astype(bool).sum()) if "is_mql" in scores.columns else 0
    return render_page("sales_report.html", path, title=title, leads=leads, n_leads=len(leads), n_mql=n_mql,
                       n_scored=n_scored,
                       waterfalls=min(waterfalls, len(leads)) if contributions is not None else 0,
                       has_tier="tier" in scores.columns, has_as_of="as_of" in scores.columns,
                       has_grid="grid_tier" in scores.columns and scores["grid_tier"].notna().any(),
                       has_action="next_action" in scores.columns and scores["next_action"].notna().any(),
                       n_out_of_range=sum(1 for lead in leads if lead["out_of_range"]), past=past)  # fmt: skip


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
