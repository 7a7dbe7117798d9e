"""The sales report: for sales managers, leads by score with tier, MQL flag, hand-off and reasons.

Searchable and sortable; a click on a lead opens its reasons and, for the top leads, its waterfall
chart (inline SVG, about 3 kB each, so the page stays small).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.config import ReportConfig
from leadml.core.errors import LeadDataError
from leadml.explain.report.html import render_page
from leadml.explain.sentences import LOWERS, RAISES
from leadml.modeling.contributions import Contributions

__all__ = ["REASON_COLUMNS", "TIMESTAMP_COLUMNS", "scores_timestamps", "write_sales_report"]

REASON_COLUMNS = ("reason_1", "reason_2", "reason_3", "counter_reason_1", "counter_reason_2")
TIMESTAMP_COLUMNS = ("as_of", "due_at", "mql_since")
RAISES_COLOUR, LOWERS_COLOUR = "#1a7f37", "#8a94a6"  # green raises a lead, grey lowers it


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
    settings: ReportConfig | None = None,
    leads: pd.DataFrame | None = None,
    threshold: float | None = None,
    chart_note: str = "",
) -> Path:
    """Write the sales report: every lead by score with tier, MQL flag and reasons (self-contained HTML).

    Parameters:
        scores: one row per lead with ``lead_id`` and ``probability`` (or ``score``), and when
            present ``score``, ``tier``, ``is_mql``, ``as_of``, ``reason_1..3``,
            ``counter_reason_1..2``, ``reasons``, ``why`` and ``counterfactual``. Timestamps
            (``as_of``, ``due_at``, ``mql_since``) may be text, as a CSV scores file holds them.
        contributions: contributions of the scored leads (all or some), indexed like ``scores``;
            the top ``waterfalls`` leads by score that have them get a waterfall chart (inline SVG).
        waterfalls: how many leads get a chart (the page grows by about 3 kB per chart).
        max_leads: list only the best ``max_leads`` leads (the page grows by about 0.85 kB per
            lead: 100,000 leads make an 85 MB page, too heavy for a browser); None lists all.
        history: the score history (:func:`leadml.jobs.history.load_history`): the page then lists the
            leads warming up and the stuck MQLs, the top leads show their score over time, and every
            lead its 7-day trend.
        history_settings: a :class:`~leadml.core.config.HistoryConfig` (windows and list sizes).
        settings: a :class:`~leadml.core.config.ReportConfig`: the leads-table columns shown
            beside each lead, the CRM link, and the 0-100 display score (``points``: the MQL
            threshold at 50, :func:`~leadml.explain.report.display.points_0_100`; ``percentile``).
        leads: the leads table (``lead_id`` and the ``display_columns``), needed for those columns.
        threshold: the model's MQL threshold; used for the points when the scores' MQL flags agree
            with it (:func:`~leadml.explain.report.display.mql_threshold`).
        chart_note: why there are no waterfall charts (e.g. a rules model), shown on the page.

    With ``next_action`` / ``due_at`` / ``fit_score`` / ``engagement_score`` / ``grid_tier`` in the
    scores, each lead shows its hand-off line ("Call within 24 h: ...") and its grid tier; with
    ``mql_since`` / ``overdue``, since when it is an MQL and whether its deadline passed; a lead
    with ``out_of_range`` is marked as unlike the training leads (its score is an extrapolation);
    with ``mql_route``, each MQL says by which route it qualified ("MQL by behaviour").

    Raises:
        LeadDataError: no ``lead_id`` or score column, contributions not indexed like the scores,
            a display column not in ``leads``, or timestamps that cannot be read.
    """
    from leadml.explain.report.display import display_scores, lead_columns, mql_threshold, tier_colours
    from leadml.explain.report.sales_history import history_context, history_display, week_changes

    settings = settings or ReportConfig()
    if "lead_id" not in scores.columns or not ({"probability", "score"} & set(scores.columns)):
        raise LeadDataError(
            "sales report: the scores need 'lead_id' and 'probability' (or 'score') columns "
            f"(columns present: {', '.join(map(str, list(scores.columns)[:12]))})"
        )
    details = None
    if settings.display_columns:
        if leads is None:
            raise LeadDataError("sales report: report.display_columns needs the leads table (leads=...)")
        details = lead_columns(leads, settings.display_columns)
    scores = scores_timestamps(scores)
    explained = None
    if contributions is not None:  # by index label, so contributions of some leads only (the top) will do
        explained = pd.Index(contributions.index).get_indexer(scores.index)
        if not pd.Index(contributions.index).is_unique or (len(scores) and (explained < 0).all()):
            raise LeadDataError("sales report: the contributions must be indexed like the scores (unique labels)")
    has_p = "probability" in scores.columns
    key = scores["probability"] if has_p else scores["score"]
    flags = scores["is_mql"].map(_flag).to_numpy(dtype=bool) if "is_mql" in scores.columns else None
    mql_p, anchor = mql_threshold(key.to_numpy(dtype=float), flags, threshold) if has_p else (None, "")
    how = settings.display_score
    shown = display_scores(key.to_numpy(dtype=float), how, mql_p) if has_p else None
    order = np.argsort(-key.to_numpy(dtype=float), kind="stable")
    n_scored = len(order)
    if max_leads is not None:
        order = order[:max_leads]
    ranked = scores.iloc[order].reset_index(drop=True)
    as_of = ranked["as_of"].max() if "as_of" in ranked.columns and len(ranked) else None
    past_shown = before = None
    if history is not None and not history.empty and has_p and "probability" in history.columns:
        past_shown = history_display(history, how, mql_p)
        before = week_changes(history, past_shown, as_of)
    past = history_context(history, ranked["lead_id"].astype(str).tolist(), history_settings, charts=waterfalls,
                           shown=past_shown)  # fmt: skip
    colours = tier_colours(scores["tier"], key) if "tier" in scores.columns else {}
    leads_shown = [_lead(rank, row, shown[order[rank]] if shown is not None else None, settings, details, before,
                         colours) for rank, row in enumerate(ranked.to_dict("records"))]  # fmt: skip
    for rank, lead in enumerate(leads_shown):
        if contributions is not None and explained is not None and rank < waterfalls and explained[order[rank]] >= 0:
            lead["chart"] = _chart(contributions, int(explained[order[rank]]))
        lead["past"] = past["per_lead"].get(lead["lead_id"], {"sparkline": None, "week_change": None, "runs": 0})
    n_mql = int(flags.sum()) if flags is not None else 0
    return render_page("sales_report.html", path, title=title, leads=leads_shown, n_leads=len(leads_shown),
                       n_mql=n_mql, n_scored=n_scored,
                       waterfalls=min(waterfalls, len(leads_shown)) if contributions is not None else 0,
                       chart_note=chart_note, has_tier="tier" in scores.columns, has_as_of="as_of" in scores.columns,
                       has_grid="grid_tier" in scores.columns and scores["grid_tier"].notna().any(),
                       has_action="next_action" in scores.columns and scores["next_action"].notna().any(),
                       has_trend=before is not None, has_p=has_p, how=how, threshold=mql_p, anchor=anchor,
                       columns=list(dict.fromkeys(settings.display_columns)),
                       has_mql_since=_any("mql_since", scores), has_due=_any("due_at", scores),
                       has_overdue="overdue" in scores.columns, tier_colours=colours,
                       n_out_of_range=sum(1 for lead in leads_shown if lead["out_of_range"]), past=past)  # fmt: skip


def _lead(rank: int, row: dict, shown, settings: ReportConfig, details, before, colours: dict) -> dict:
    """What the page shows of one lead (its chart and history are added by the caller)."""
    from leadml.explain.report.display import crm_link, reason_effects
    from leadml.explain.report.sales_history import hand_off_line

    lead_id, probability = str(row["lead_id"]), row.get("probability")
    raw = [_reason(row.get(c)) for c in REASON_COLUMNS[:3]]
    counter = [_reason(row.get(c)) for c in REASON_COLUMNS[3:]]
    raises, lowers = reason_effects(row.get("reasons"), 3, 2)
    score = row.get("score", None if probability is None else int(np.floor(probability * 100 + 0.5)))
    change = None
    if before is not None and lead_id in before.index and shown is not None:
        change = int(shown) - int(before[lead_id])
    tier = _text(row.get("tier"))
    return {
        "rank": rank + 1, "lead_id": lead_id, "score": score, "probability": probability,
        "shown": int(shown) if shown is not None else score, "tier": tier,
        "tier_colour": colours.get(tier, ""), "is_mql": _flag(row.get("is_mql", False)), "as_of": row.get("as_of"),
        "reasons": [{"text": t, "effect": e} for t, e in zip(raw, raises) if t],
        "counter": [{"text": t, "effect": e} for t, e in zip(counter, lowers) if t],
        "why": _text(row.get("why")), "counterfactual": _text(row.get("counterfactual")), "chart": None,
        "hand_off": hand_off_line(row, [t for t in raw if t]),
        "grid": _text(row.get("grid_tier")), "fit": _text(row.get("fit_score")), "route": _text(row.get("mql_route")),
        "engagement": _text(row.get("engagement_score")), "out_of_range": _text(row.get("out_of_range")),
        "details": [_text(details[c].get(lead_id)) if details is not None else "" for c in settings.display_columns],
        "crm": crm_link(settings.crm_url, lead_id), "change": change,
        "trend": "" if change is None else ("\u25b2" if change > 0 else "\u25bc" if change < 0 else "\u2013"),
        "mql_since": _day(row.get("mql_since")), "due_at": _day(row.get("due_at"), "%Y-%m-%d %H:%M"),
        "overdue": _flag(row.get("overdue", False)),
    }  # fmt: skip


def _chart(contributions: Contributions, i: int) -> str:
    from leadml.explain.report.plots import waterfall_svg

    return waterfall_svg(contributions.values[i], contributions.features, contributions.base_value,
                         float(contributions.margin[i]), float(contributions.probability[i]),
                         colours=(RAISES_COLOUR, LOWERS_COLOUR, "green raises, grey lowers"))  # fmt: skip


def scores_timestamps(scores: pd.DataFrame, source: str = "scores") -> pd.DataFrame:
    """The scores with ``as_of``, ``due_at`` and ``mql_since`` as UTC timestamps (a CSV file holds text).

    Raises:
        LeadDataError: a value that is not a timestamp (naming the column and rows).
    """
    from leadml.data.timestamps import parse_timestamps

    parsed = {}
    for column in TIMESTAMP_COLUMNS:
        if column in scores.columns and not isinstance(scores[column].dtype, pd.DatetimeTZDtype):
            values = scores[column]
            given = (values.notna() & (values.astype(str).str.strip() != "")).to_numpy()
            parsed[column] = parse_timestamps(scores, column, source, rows=given)
    return scores.assign(**parsed) if parsed else scores


def _reason(value) -> str:
    """A reason sentence without its "(raises)" / "(lowers)" tail: its colour and effect say it."""
    return value.removesuffix(RAISES).removesuffix(LOWERS) if isinstance(value, str) else ""


def _flag(value) -> bool:
    """A flag as a CSV file or a frame holds it (True, "True", "true", 1; missing is False)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return False if value is None or pd.isna(value) else bool(value)


def _day(value, form: str = "%Y-%m-%d") -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime(form)


def _any(column: str, scores: pd.DataFrame) -> bool:
    return column in scores.columns and bool(scores[column].notna().any())


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
