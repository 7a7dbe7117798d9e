"""How leads' scores move in the score history (a frame from :func:`leadml.jobs.history.load_history`).

- :func:`lead_history`: one lead's scores over time, the change since the previous run and since a
  week before, and the events between runs that moved it;
- :func:`warming_up`: the leads whose score rose the most over the last ``days``;
- :func:`stuck_mqls`: the MQLs whose score has not moved (by more than ``points``) for ``days``.

Pure functions of the history frame: no file is read here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.features.snapshots import to_utc

__all__ = ["lead_history", "stuck_mqls", "warming_up"]

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


def stuck_mqls(history: pd.DataFrame, as_of: object = None, *, days: int = 14, points: int = 2) -> pd.DataFrame:
    """MQLs in the last run whose score moved by at most ``points`` over the last ``days``.

    The lead must have been an MQL in every run of the window and in a run at or before its start
    (so it has been waiting at least ``days``). Longest-waiting first.
    """
    now_at = _latest(history, as_of)
    last_run = history.loc[history["as_of"] <= now_at, "as_of"].max()
    start = now_at - pd.Timedelta(days=days)
    window = history[(history["as_of"] > start) & (history["as_of"] <= now_at)]
    before = _at(history, start)
    current = window[window["as_of"] == last_run].set_index("lead_id")
    candidates = current.index[current["is_mql"].astype(bool)]
    candidates = candidates[candidates.isin(before.index[before["is_mql"].astype(bool)])]
    rows = pd.concat([window[window["lead_id"].isin(candidates)],
                      before.loc[candidates].reset_index()], ignore_index=True)  # fmt: skip
    if rows.empty:
        return pd.DataFrame(columns=["lead_id", "mql_since", "score", "low", "high", "days_waiting"])
    per_lead = rows.groupby("lead_id").agg(low=("score", "min"), high=("score", "max"),
                                            all_mql=("is_mql", "all"))  # fmt: skip
    first_mql = _mql_since(history[history["lead_id"].isin(candidates) & (history["as_of"] <= now_at)])
    out = per_lead[per_lead["all_mql"] & (per_lead["high"] - per_lead["low"] <= points)].copy()
    out["score"] = current.loc[out.index, "score"]
    out["mql_since"] = first_mql.reindex(out.index)
    out["days_waiting"] = ((now_at - out["mql_since"]) / DAY).round(1)
    out = out.sort_values(["mql_since"], kind="stable").reset_index()
    return out[["lead_id", "mql_since", "score", "low", "high", "days_waiting"]]


def _mql_since(history: pd.DataFrame) -> pd.Series:
    """Per lead, the as_of from which it has been an MQL in every run since (its current MQL spell)."""
    frame = history.sort_values(["lead_id", "as_of"], kind="stable")
    not_mql = ~frame["is_mql"].astype(bool)
    spell = not_mql.groupby(frame["lead_id"]).cumsum()
    last_spell = spell.groupby(frame["lead_id"]).transform("max")
    current = frame[(spell == last_spell) & frame["is_mql"].astype(bool)]
    return current.groupby("lead_id")["as_of"].min()


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
