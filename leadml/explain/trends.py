"""How leads' scores move in the score history (a frame from :func:`leadml.jobs.history.load_history`).

- :func:`lead_history`: one lead's scores over time, the change since the previous run and since a
  week before, and the events between runs that moved it;
- :func:`warming_up`: the leads whose score rose the most over the last ``days``;
- :func:`mql_spells`: each run's row with its MQL spell and ``mql_since`` (when the spell began);
- :func:`stuck_mqls`: the MQLs waiting more than ``days`` without sales acceptance and without new
  engagement (the one meaning of *stuck*, shared by ``leadml history``, the funnel and the sales report).

Pure functions of the history frame: no file is read here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.features.snapshots import to_utc

__all__ = ["lead_history", "mql_spells", "stuck_mqls", "warming_up"]

DAY = pd.Timedelta(days=1)


def _at(history: pd.DataFrame, when: pd.Timestamp) -> pd.DataFrame:
    """Each lead's last row at or before ``when`` (indexed by lead_id)."""
    rows = history[history["as_of"] <= when]
    return rows.groupby("lead_id", sort=True).tail(1).set_index("lead_id")


def _latest(history: pd.DataFrame, as_of: object | None) -> pd.Timestamp:
    if history.empty:
        raise LeadDataError("score history: no rows")
    return history["as_of"].max() if as_of is None else to_utc(as_of)


def warming_up(history: pd.DataFrame, as_of: object = None, *, days: int = 7, top: int = 20) -> pd.DataFrame:
    """The leads whose score rose the most over ``days`` up to ``as_of`` (default: the last run).

    Only leads scored in the last run at or before ``as_of`` and in a run at or before
    ``as_of - days`` count (a lead new this week has no change). Ties keep lead_id order.
    """
    now_at = _latest(history, as_of)
    last_run = history.loc[history["as_of"] <= now_at, "as_of"].max()
    now = _at(history, now_at)
    now = now[now["as_of"] == last_run]
    then = _at(history, now_at - pd.Timedelta(days=days))
    both = now.join(then[["score", "as_of"]].add_suffix("_before"), how="inner")
    both["change"] = both["score"].astype(int) - both["score_before"].astype(int)
    rising = both[both["change"] > 0].sort_values("change", ascending=False, kind="stable")
    columns = ["as_of", "score", "score_before", "as_of_before", "change", "tier", "is_mql"]
    return rising[[c for c in columns if c in rising.columns]].head(top).reset_index()


STUCK_COLUMNS = ["lead_id", "mql_since", "days_waiting", "score", "low", "high", "rise", "measure"]


def stuck_mqls(
    history: pd.DataFrame,
    as_of: object = None,
    *,
    days: float = 14,
    points: float = 2,
    accepted: pd.Series | None = None,
) -> pd.DataFrame:
    """The MQLs of the last run that are stuck: waiting for sales with nothing new happening.

    An MQL is stuck when its current spell (:func:`mql_spells`) began more than ``days`` before
    ``as_of`` (default: the last run), sales has not accepted it (``accepted``: lead_id -> ``sql_at``;
    a lead with ``sql_at <= as_of`` is not stuck) and it shows no new engagement: its
    ``engagement_score`` (else its ``score``) rose by at most ``points`` over those ``days``, measured
    from its last run at or before ``as_of - days`` to the highest value since. Longest-waiting first.

    Returns:
        ``lead_id``, ``mql_since``, ``days_waiting``, ``score`` (now), ``low`` / ``high`` (of the score
        over the days), ``rise`` and ``measure`` (the column it was measured on), and ``due_at`` /
        ``overdue`` when the history carries them.
    """
    now_at = _latest(history, as_of)
    rows = mql_spells(history[history["as_of"] <= now_at])
    start = now_at - pd.Timedelta(days=days)
    current = rows[(rows["as_of"] == rows["as_of"].max()) & (rows["spell"] > 0) & (rows["mql_since"] < start)]
    if accepted is not None and len(current):
        sql_at = pd.to_datetime(accepted, utc=True).reindex(current["lead_id"].to_numpy())
        current = current[~(sql_at <= now_at).to_numpy()]
    extra = [c for c in ("due_at", "overdue") if c in rows.columns]
    if current.empty:
        return pd.DataFrame(columns=STUCK_COLUMNS + extra)
    current = current.set_index("lead_id")
    lead_rows = rows[rows["lead_id"].isin(current.index)]
    base = lead_rows[lead_rows["as_of"] <= start].groupby("lead_id").tail(1).set_index("lead_id")
    since_base = lead_rows[lead_rows["as_of"] >= lead_rows["lead_id"].map(base["as_of"])]
    out = pd.DataFrame(index=current.index)
    rises = {}
    for column in ("engagement_score", "score"):
        if column in rows.columns:
            values = pd.to_numeric(since_base[column], errors="coerce").astype(float)
            top = values.groupby(since_base["lead_id"]).max()
            rises[column] = top.reindex(out.index) - pd.to_numeric(base[column], errors="coerce").astype(float)
    score = pd.to_numeric(since_base["score"], errors="coerce").astype(float).groupby(since_base["lead_id"])
    engaged = rises.get("engagement_score", pd.Series(np.nan, index=out.index)).notna()
    out["rise"] = rises.get("engagement_score", rises["score"]).where(engaged, rises["score"])
    out["measure"] = np.where(engaged, "engagement_score", "score")
    out["score"] = current["score"]
    out["low"], out["high"] = score.min().reindex(out.index), score.max().reindex(out.index)
    out["mql_since"] = current["mql_since"]
    out["days_waiting"] = ((now_at - out["mql_since"]) / DAY).round(1)
    for column in extra:
        out[column] = current[column]
    out = out[out["rise"] <= points].sort_values("mql_since", kind="stable").reset_index()
    return out[STUCK_COLUMNS + extra]


def mql_spells(history: pd.DataFrame) -> pd.DataFrame:
    """The history's rows (by lead_id, as_of) with ``spell`` and ``mql_since`` of each MQL row.

    A spell is a run of a lead's consecutive MQL rows: ``spell`` counts them per lead (1, 2, ...;
    0 on rows that are not MQL) and ``mql_since`` is when the spell began: the ``mql_since`` its
    first row recorded when the history carries one (a spell older than the stored runs), else
    that row's as_of. Rows that are not MQL get NaT.

    Example:
        >>> runs = pd.DataFrame({"lead_id": ["a"] * 4, "is_mql": [True, True, False, True],
        ...                      "as_of": pd.date_range("2026-06-01", periods=4, tz="UTC")})
        >>> spells = mql_spells(runs)
        >>> spells["spell"].tolist(), spells["mql_since"].dt.day.fillna(0).astype(int).tolist()
        ([1, 1, 0, 2], [1, 1, 0, 4])
    """
    frame = history.sort_values(["lead_id", "as_of"], kind="stable").reset_index(drop=True)
    lead = frame["lead_id"]
    mql = frame["is_mql"].fillna(False).astype(bool)
    starts = mql & ~(mql.shift(1, fill_value=False).astype(bool) & lead.eq(lead.shift(1)))
    spell = starts.astype(int).groupby(lead).cumsum()
    began = frame["as_of"].where(starts)
    if "mql_since" in frame.columns:
        began = pd.to_datetime(frame["mql_since"], utc=True).where(starts).fillna(began)
    frame["spell"] = spell.where(mql, 0)
    frame["mql_since"] = began.groupby([lead, spell]).transform("first").where(mql)
    return frame


def lead_history(history: pd.DataFrame, lead_id: str, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """One lead's runs, oldest first, with ``change`` (since the previous run), ``week_change``
    (since the last run at least 7 days before) and ``events``: what the lead did between the
    previous run and this one ("2 page_view, 1 email_click"), when the events table is given."""
    rows = history[history["lead_id"] == str(lead_id)].sort_values("as_of", kind="stable").reset_index(drop=True)
    if rows.empty:
        known = history["lead_id"].drop_duplicates().head(5).tolist()
        raise LeadDataError(f"score history: no scores of lead {lead_id!r} (known leads include {known})")
    score = rows["score"].astype(int)
    rows["change"] = score.diff()
    stamps = pd.DatetimeIndex(rows["as_of"]).as_unit("ns").asi8
    week_before = np.searchsorted(stamps, stamps - pd.Timedelta(days=7).value, side="right") - 1
    rows["week_change"] = [score[i] - score[j] if j >= 0 else np.nan for i, j in enumerate(week_before)]
    if events is not None:
        rows["events"] = _events_between(rows["as_of"], events[events["lead_id"].astype(str) == str(lead_id)])
    return rows


def _events_between(as_of: pd.Series, events: pd.DataFrame) -> list[str]:
    """For each run, the lead's events since the previous run (before the first run: none listed)."""
    out = []
    stamps = pd.to_datetime(events["timestamp"], utc=True) if len(events) else pd.Series(dtype="datetime64[ns, UTC]")
    previous = None
    for when in as_of:
        if previous is None:
            out.append("")
        else:
            chosen = events[(stamps >= previous) & (stamps < when)]
            counts = chosen["event_type"].astype(str).value_counts(sort=False).sort_index()
            out.append(", ".join(f"{n} {kind}" for kind, n in counts.items()))
        previous = when
    return out
