"""What the sales report shows from the score history, and the hand-off line of each lead.

- :func:`hand_off_line`: "Call within 24 h: Viewed the pricing page 4 times in the last 7 days, Job
  level: director": the tier's action, its deadline and the top reasons, in one line a rep reads.
- :func:`history_context`: the leads warming up, the stuck MQLs, and per lead its score over time
  as a small inline SVG line with the week-over-week change.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from leadml.core.config import HistoryConfig

__all__ = ["hand_off_line", "history_context", "history_display", "sparkline_svg", "week_changes"]


def _deadline(as_of, due_at) -> str:
    if due_at is None or pd.isna(due_at) or as_of is None or pd.isna(as_of):
        return ""
    hours = (pd.Timestamp(due_at) - pd.Timestamp(as_of)) / pd.Timedelta(hours=1)
    if hours < 0:  # a fixed deadline (the MQL spell's) that has passed
        late = f"{-hours:g} h" if -hours <= 72 else f"{-hours / 24:g} days"
        return f" now (overdue by {late})"
    if hours <= 72:
        return f" within {hours:g} h"
    return f" within {hours / 24:g} days"


def hand_off_line(row: dict, reasons: Sequence[str] = ()) -> str:
    """The lead's next action with its deadline and its top two reasons ("" without an action).

    Example:
        >>> hand_off_line({"next_action": "Call", "as_of": pd.Timestamp("2026-06-01", tz="UTC"),
        ...                "due_at": pd.Timestamp("2026-06-02", tz="UTC")}, ["Viewed pricing 4 times", "VP"])
        'Call within 24 h: Viewed pricing 4 times, VP'
    """
    action = row.get("next_action")
    if not isinstance(action, str) or not action:
        return ""
    line = action + _deadline(row.get("as_of"), row.get("due_at"))
    shown = [r for r in reasons if r][:2]
    return f"{line}: {', '.join(shown)}" if shown else line


def sparkline_svg(as_of: Sequence, scores: Sequence[float], *, width: int = 220, height: int = 48) -> str:
    """A lead's score (0-100) over its runs as a small inline SVG line, last point marked."""
    x_values = pd.DatetimeIndex(pd.to_datetime(list(as_of), utc=True)).as_unit("ns").asi8.astype(float)
    y_values = np.asarray(scores, dtype=float)
    span = x_values.max() - x_values.min() if len(x_values) > 1 else 1.0
    xs = 4 + (x_values - x_values.min()) / (span or 1.0) * (width - 8)
    ys = height - 4 - y_values / 100.0 * (height - 8)
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    first, last = pd.Timestamp(int(x_values.min()), tz="UTC"), pd.Timestamp(int(x_values.max()), tz="UTC")
    label = html.escape(f"score from {y_values[0]:g} on {first:%Y-%m-%d} to {y_values[-1]:g} on {last:%Y-%m-%d}")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="{label}"><rect width="{width}" height="{height}" fill="#fbfcfe" stroke="#dde2ea"/>'
            f'<polyline points="{points}" fill="none" stroke="#2f6db5" stroke-width="1.8"/>'
            f'<circle cx="{xs[-1]:.1f}" cy="{ys[-1]:.1f}" r="3" fill="#2f6db5"/></svg>')  # fmt: skip


def history_display(history: pd.DataFrame, how: str, threshold: float | None) -> pd.Series:
    """The display score (:func:`~leadml.explain.report.display.display_scores`) of every history row,
    on today's scale (the same ``threshold``); a percentile ranks the leads of the row's own run."""
    from leadml.explain.report.display import display_scores

    shown = pd.Series(0, index=history.index, dtype=int)
    for _, run in history.groupby("as_of", sort=False):
        shown[run.index] = display_scores(run["probability"].to_numpy(dtype=float), how, threshold)
    return shown


def week_changes(history: pd.DataFrame, shown: pd.Series, as_of: object, *, days: int = 7) -> pd.Series:
    """Each lead's display score ``shown`` at its latest run at least ``days`` before ``as_of``, by
    ``lead_id``: the report subtracts it from today's for the trend column."""
    if as_of is None or pd.isna(as_of):
        return pd.Series(dtype=int)
    stamps = pd.to_datetime(history["as_of"], utc=True)
    earlier = (stamps <= pd.Timestamp(as_of) - pd.Timedelta(days=days)).to_numpy()
    if not earlier.any():
        return pd.Series(dtype=int)
    last = history[earlier].assign(shown=shown[earlier]).sort_values("as_of", kind="stable").groupby("lead_id").tail(1)
    return pd.Series(last["shown"].to_numpy(), index=last["lead_id"].astype(str).to_numpy())


def history_context(
    history: pd.DataFrame | None,
    lead_ids: Sequence[str],
    settings: HistoryConfig | None = None,
    as_of: object = None,
    charts: int = 200,
    shown: pd.Series | None = None,
) -> dict:
    """The report's history parts: ``warming`` and ``stuck`` rows, and per lead (the first
    ``charts`` of ``lead_ids``) a ``sparkline`` and its ``week_change``; ``shown``: the rows' display
    scores (:func:`history_display`) to draw instead of their ``score``."""
    from leadml.explain.trends import stuck_mqls, warming_up

    settings = settings or HistoryConfig()
    if history is None or history.empty:
        return {"warming": [], "stuck": [], "per_lead": {}, "history_days": 0}
    rising = warming_up(history, as_of, days=settings.warming_days, top=settings.top)
    stuck = stuck_mqls(history, as_of, days=settings.stuck_days, points=settings.stuck_points).head(settings.top)
    wanted = set(map(str, list(lead_ids)[:charts]))
    per_lead = {}
    week = pd.Timedelta(days=7)
    drawn = history if shown is None else history.assign(score=shown)
    for lead_id, rows in drawn[drawn["lead_id"].isin(wanted)].groupby("lead_id", sort=False):
        stamps = rows["as_of"]
        before = rows[stamps <= stamps.iloc[-1] - week]
        change = int(rows["score"].iloc[-1]) - int(before["score"].iloc[-1]) if len(before) else None
        per_lead[str(lead_id)] = {
            "sparkline": sparkline_svg(stamps, rows["score"]) if len(rows) > 1 else None,
            "week_change": change, "runs": len(rows),
        }  # fmt: skip
    return {
        "warming": rising.to_dict("records"), "stuck": stuck.to_dict("records"), "per_lead": per_lead,
        "history_days": int((history["as_of"].max() - history["as_of"].min()) / pd.Timedelta(days=1)) + 1,
        "warming_days": settings.warming_days, "stuck_days": settings.stuck_days,
        "stuck_points": settings.stuck_points,
    }  # fmt: skip
