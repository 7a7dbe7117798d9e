"""The funnel lead -> MQL -> SQL -> opportunity -> won, from the outcomes' stage timestamps.

Marketing counts MQLs, sales counts deals; this page puts both on one picture. A lead reached a
stage when the outcomes table has that stage's timestamp (``mql_at``, ``sql_at``,
``opportunity_at``) at or before ``as_of``, or when it reached a later stage (a won deal passed
every stage, even when the CRM skipped a timestamp), or when its highest ``stage`` says so and it
closed by ``as_of``. It is won when ``outcome`` is won (1 / "won") and ``closed_at <= as_of``.
Everything after ``as_of`` is treated as not yet known, so the funnel can be drawn for any past
day. A lead is **stuck as MQL** in the one sense of :func:`leadml.explain.trends.stuck_mqls` (an MQL
for more than ``stuck_days`` without sales acceptance and without new engagement) when the caller
passes that table from the score history; without a history the page falls back on the outcomes:
reached MQL more than ``stuck_days`` days before ``as_of``, reached no later stage, not closed.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

STAGES = ("lead", "mql", "sql", "opportunity", "won")
STAGE_TIMES = {"mql": "mql_at", "sql": "sql_at", "opportunity": "opportunity_at"}
LABELS = {"lead": "lead", "mql": "MQL", "sql": "SQL", "opportunity": "opportunity", "won": "won"}
WON_TEXT = frozenset({"won", "win", "yes", "true", "1", "1.0"})
DAY = pd.Timedelta(days=1)


def _utc(values: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601") \
        if not pd.api.types.is_datetime64_any_dtype(values) else values  # fmt: skip
    return stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")


def _won(outcome: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(outcome) or pd.api.types.is_bool_dtype(outcome):
        return (pd.to_numeric(outcome, errors="coerce") == 1).to_numpy()
    return outcome.astype(str).str.strip().str.lower().isin(WON_TEXT).to_numpy()


def funnel_stages(leads: pd.DataFrame, outcomes: pd.DataFrame | None, *, as_of=None) -> pd.DataFrame:
    """One row per lead created by ``as_of``: stage times (NaT when not reached by then), reached flags, won.

    ``as_of`` defaults to the latest timestamp in the two tables.
    """
    frame = pd.DataFrame({"lead_id": leads["lead_id"].astype(str).to_numpy(),
                          "created_at": _utc(leads["created_at"]).reset_index(drop=True)})  # fmt: skip
    if "source" in leads.columns:
        frame["source"] = (
            leads["source"].astype(object).where(leads["source"].notna(), "missing").astype(str).to_numpy()
        )
    outcomes = outcomes if outcomes is not None else pd.DataFrame({"lead_id": pd.Series([], dtype=str)})
    joined = outcomes.assign(lead_id=outcomes["lead_id"].astype(str)).drop_duplicates("lead_id")
    frame = frame.merge(joined, on="lead_id", how="left", suffixes=("", "_outcome"))
    times = [c for c in ("closed_at", *STAGE_TIMES.values()) if c in frame.columns]
    for column in times:
        frame[column] = _utc(frame[column])
    if as_of is None:
        stamps = [frame["created_at"].max()] + [frame[c].max() for c in times]
        as_of = max(s for s in stamps if pd.notna(s))
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    frame = frame.loc[(frame["created_at"] <= as_of).to_numpy()].reset_index(drop=True)
    for column in times:
        frame.loc[(frame[column] > as_of).to_numpy(), column] = pd.NaT
    closed = frame["closed_at"].notna().to_numpy() if "closed_at" in frame else np.zeros(len(frame), bool)
    won = closed & (_won(frame["outcome"]) if "outcome" in frame else False)
    rank = np.full(len(frame), -1)
    if "stage" in frame.columns:
        names = frame["stage"].astype(str).str.strip().str.lower()
        rank = names.map({s: i for i, s in enumerate(STAGES)}).fillna(-1).to_numpy(dtype=int)
    reached = {"won": won}
    for i, stage in reversed(list(enumerate(STAGES[1:-1], start=1))):
        column = STAGE_TIMES[stage]
        has_time = frame[column].notna().to_numpy() if column in frame else np.zeros(len(frame), bool)
        later = reached[STAGES[i + 1]]
        reached[stage] = has_time | later | (closed & (rank >= i))
    frame["closed"] = closed
    frame["won"] = won
    for stage in STAGES[1:]:
        frame[f"reached_{stage}"] = reached[stage]
    frame["month"] = frame["created_at"].dt.strftime("%Y-%m")
    frame.attrs["as_of"] = as_of
    return frame


def funnel_by(stages: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Counts per stage and the conversion rates between stages, per group of ``by`` (and overall)."""
    flags = [f"reached_{s}" for s in STAGES[1:]]
    counts = stages.assign(all="all")
    groups = ["all"] if by is None else [by]
    table = counts.groupby(groups, sort=True, observed=True)[flags].sum()
    table.insert(0, "lead", counts.groupby(groups, sort=True, observed=True).size())
    if by is not None:
        table.loc["all"] = table.sum(numeric_only=True)
    table.columns = [LABELS[s] for s in STAGES]
    table = table.astype(np.int64)
    for a, b in zip(STAGES[:-1], STAGES[1:]):
        table[f"{LABELS[a]} → {LABELS[b]}"] = table[LABELS[b]] / table[LABELS[a]].where(table[LABELS[a]] > 0)
    table["lead → won"] = table["won"] / table["lead"].where(table["lead"] > 0)
    table.index.name = by or ""
    return table.reset_index()


def stage_counts(stages: pd.DataFrame) -> pd.DataFrame:
    """``stage``, ``leads`` (that reached it), ``rate`` from the previous stage and from lead."""
    leads = [len(stages)] + [int(stages[f"reached_{s}"].sum()) for s in STAGES[1:]]
    previous = np.r_[np.nan, leads[:-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({
            "stage": [LABELS[s] for s in STAGES],
            "leads": leads,
            "from_previous": np.where(previous > 0, np.asarray(leads) / np.where(previous > 0, previous, 1), np.nan),
            "from_lead": np.asarray(leads) / max(len(stages), 1),
        })  # fmt: skip


def time_in_stage(stages: pd.DataFrame) -> pd.DataFrame:
    """Median (and quartiles) of the days between stages, over leads with both timestamps."""
    steps = [("lead → MQL", "created_at", "mql_at", None), ("MQL → SQL", "mql_at", "sql_at", None),
             ("SQL → opportunity", "sql_at", "opportunity_at", None),
             ("opportunity → won", "opportunity_at", "closed_at", "won"), ("MQL → closed", "mql_at", "closed_at", None)]  # fmt: skip
    rows = []
    for label, start, end, only in steps:
        if start not in stages or end not in stages:
            continue
        days = (stages[end] - stages[start]) / DAY
        if only is not None:
            days = days.where(stages[only])
        days = days.dropna()
        q = days.quantile([0.25, 0.5, 0.75]) if len(days) else pd.Series([np.nan] * 3, index=[0.25, 0.5, 0.75])
        rows.append(
            {"step": label, "leads": len(days), "median_days": q[0.5], "p25_days": q[0.25], "p75_days": q[0.75]}
        )
    return pd.DataFrame(rows, columns=["step", "leads", "median_days", "p25_days", "p75_days"])


def stuck_mqls(stages: pd.DataFrame, *, stuck_days: float = 30, as_of=None) -> pd.DataFrame:
    """Leads that became MQL more than ``stuck_days`` before ``as_of`` and went no further, still open."""
    as_of = stages.attrs.get("as_of") if as_of is None else pd.Timestamp(as_of)
    if "mql_at" not in stages or as_of is None:
        return pd.DataFrame(columns=["lead_id", "mql_at", "days_as_mql"])
    days = (as_of - stages["mql_at"]) / DAY
    stuck = (stages["mql_at"].notna() & ~stages["reached_sql"] & ~stages["closed"] & (days > stuck_days)).to_numpy()
    columns = ["lead_id"] + [c for c in ("source", "created_at") if c in stages] + ["mql_at"]
    out = stages.loc[stuck, columns].assign(days_as_mql=days[stuck].round(1))
    return out.sort_values(["days_as_mql", "lead_id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def write_funnel_report(
    leads: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    path: str | os.PathLike,
    *,
    stuck_days: float = 30,
    as_of=None,
    title: str = "Lead funnel",
    stuck: pd.DataFrame | None = None,
    paths: dict[str, pd.DataFrame] | None = None,
) -> dict:
    """Write the funnel report (self-contained HTML): stages, by source, by month, time in stage, stuck MQLs.

    ``paths``: per scenario rule, where leads drop off its steps (:func:`leadml.rules.paths.path_report`).

    ``stuck``: the stuck MQLs of the score history (:func:`leadml.explain.trends.stuck_mqls`);
    without it they are read from the outcomes alone. Returns the tables shown, by name
    (``stages``, ``by_source``, ``by_month``, ``time_in_stage``, ``stuck``), so a caller can print
    or test them.
    """
    from leadml.explain.report.html import html_table, render_page
    from leadml.explain.report.plots import funnel_chart

    stages = funnel_stages(leads, outcomes, as_of=as_of)
    tables = {
        "stages": stage_counts(stages),
        "by_source": funnel_by(stages, "source") if "source" in stages else None,
        "by_month": funnel_by(stages, "month"),
        "time_in_stage": time_in_stage(stages),
        "stuck": stuck_mqls(stages, stuck_days=stuck_days) if stuck is None else stuck,
    }
    has_stages = any(c in stages for c in STAGE_TIMES.values()) or "stage" in stages
    render_page(
        "funnel_report.html", path, title=title, as_of=stages.attrs["as_of"], stuck_days=stuck_days,
        has_stages=has_stages, chart=funnel_chart(tables["stages"]) if len(stages) else None,
        tables={name: html_table(table, percent=True, digits=1) if table is not None else None
                for name, table in tables.items()},
        n_leads=len(stages), n_stuck=len(tables["stuck"]), stuck_from_history=stuck is not None,
        paths={name: html_table(table, percent=True, digits=1) for name, table in (paths or {}).items()},
    )  # fmt: skip
    tables["paths"] = paths or {}
    return tables
