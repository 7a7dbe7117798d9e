"""The hand-off to sales over nightly runs: MQL spells, a fixed deadline, overdue leads, SLA breaches.

Each ``leadml score`` run reads the score history before it scores, so a lead that stays an MQL
keeps one deadline: ``mql_since`` is the as_of of the first run of its current MQL spell (a spell
is a lead's consecutive MQL runs, :func:`~leadml.explain.trends.mql_spells`), ``due_at`` is
``mql_since`` + the ``within_hours`` of the tier it is in, and ``overdue`` says the deadline has
passed (``as_of > due_at``) while sales has not accepted the lead (no ``sql_at`` by as_of).

A *breach* is a spell whose deadline passed without acceptance, counted once: in the run where it
first became overdue. Sales *accepted* a spell when the lead reached ``sql_at`` while an MQL, and
*rejected* it when the deal closed lost without reaching SQL while an MQL; both are known only
where the outcomes carry them. :func:`run_counts` and :func:`sla_weeks` count all this per run
and per week (``leadml sla``). The functions take and return frames; :func:`previous_spells_in`,
:func:`load_acceptance` and :func:`sla_report` are the few that read files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.config import PipelineConfig
from leadml.explain.trends import mql_spells
from leadml.features.snapshots import to_utc

__all__ = [
    "HANDOFF_COLUMNS",
    "SlaReport",
    "acceptance",
    "current_handoff",
    "handoff_arrays",
    "handoff_state",
    "history_stuck",
    "load_acceptance",
    "planned_per_week",
    "previous_spells",
    "previous_spells_in",
    "run_counts",
    "sla_report",
    "sla_weeks",
    "spell_rows",
    "utc_array",
]

HANDOFF_COLUMNS = ("mql_since", "overdue")  # written beside due_at, which they fix
LOST_TEXT = frozenset({"lost", "closedlost", "closed lost", "closed_lost", "0", "0.0"})
HOUR = pd.Timedelta(hours=1)
NAT = pd.NaT
UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _stamps(values, n: int | None = None) -> pd.Series:
    """Timestamps as a UTC nanosecond Series (all NaT when ``values`` is None)."""
    if values is None:
        return pd.Series(pd.NaT, index=range(n or 0), dtype="datetime64[ns, UTC]")
    return pd.Series(pd.to_datetime(values, utc=True)).dt.as_unit("ns").reset_index(drop=True)


# -- one run ------------------------------------------------------------------------------------
def previous_spells(history: pd.DataFrame, as_of: object) -> pd.Series:
    """``lead_id -> mql_since`` of the leads whose last run before ``as_of``'s day was an MQL.

    These spells go on when the lead is an MQL again in the run at ``as_of``. A run of the same day
    is left out: re-scoring a day replaces it.
    """
    day = to_utc(as_of).floor("D")
    earlier = history[history["as_of"] < day]
    if earlier.empty:
        return pd.Series([], index=pd.Index([], dtype=object, name="lead_id"), dtype="datetime64[ns, UTC]")
    last = mql_spells(earlier).groupby("lead_id", sort=True).tail(1)
    last = last[last["spell"] > 0]
    return _stamps(last["mql_since"]).set_axis(pd.Index(last["lead_id"].astype(str), name="lead_id"))


def handoff_state(
    lead_ids: Sequence[str] | pd.Series,
    is_mql: Sequence[bool] | np.ndarray,
    due_at: pd.Series | Sequence,
    as_of: object,
    *,
    spells: pd.Series | None = None,
    accepted: pd.Series | None = None,
) -> pd.DataFrame:
    """``mql_since``, ``due_at`` and ``overdue`` of one run's leads (in their order).

    ``due_at`` is what the tiers give this run (as_of + ``within_hours``, NaT for a tier without
    one); an MQL's deadline is moved to ``mql_since`` + those hours, where ``mql_since`` comes from
    ``spells`` (:func:`previous_spells`) or is as_of for a new spell. ``accepted``: lead_id ->
    ``sql_at``. Leads that are not MQLs keep their ``due_at`` and are never overdue.

    Example:
        >>> day = pd.Timestamp("2026-06-03", tz="UTC")
        >>> spells = pd.Series(pd.to_datetime(["2026-06-01"], utc=True), index=["a"])
        >>> state = handoff_state(["a", "b"], [True, True], [day + 48 * HOUR] * 2, day, spells=spells)
        >>> state["due_at"].dt.day.tolist(), state["overdue"].tolist()
        ([3, 5], [False, False])
    """
    due = _stamps(due_at).to_numpy(dtype="datetime64[ns]")
    since, fixed, overdue = handoff_arrays(lead_ids, is_mql, due, as_of, spells=spells, accepted=accepted)
    return pd.DataFrame({"mql_since": utc_array(since), "due_at": utc_array(fixed), "overdue": overdue})


def handoff_arrays(
    lead_ids: Sequence[str] | pd.Series,
    is_mql: Sequence[bool] | np.ndarray,
    due_at: np.ndarray,
    as_of: object,
    *,
    spells: pd.Series | None = None,
    accepted: pd.Series | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`handoff_state` on numpy arrays: ``(mql_since, due_at, overdue)`` from ``due_at``, the
    times as UTC ``datetime64[ns]`` (NaT: none). The same nanoseconds as the frame's, with no pandas
    operation per column: the decision columns of a served lead call it on every request."""
    stamp = np.datetime64(to_utc(as_of).as_unit("ns").value, "ns")
    mql = np.asarray(is_mql, dtype=bool)
    due = np.asarray(due_at, dtype="datetime64[ns]")
    n, ids = len(mql), None
    if (spells is not None and len(spells)) or (accepted is not None and len(accepted)):
        ids = pd.Index(np.asarray(lead_ids, dtype=object).astype(str))
    if ids is None:  # no earlier spell, no acceptance (one served lead, a first run): every spell starts now
        since = np.where(mql, stamp, np.datetime64("NaT", "ns"))
        fixed = np.where(mql, since + (due - stamp), due)
        return since, fixed, mql & (fixed < stamp)  # NaT compares False: no deadline
    since = _stamps_of(spells, ids, n)
    since = np.where(mql, np.where(np.isnat(since), stamp, since), np.datetime64("NaT", "ns"))
    fixed = np.where(mql, since + (due - stamp), due)
    sql_at = _stamps_of(accepted, ids, n)
    overdue = mql & (fixed < stamp) & ~(sql_at <= stamp)  # NaT compares False: no deadline, no acceptance
    return since, fixed, overdue


def _stamps_of(times: pd.Series | None, ids: pd.Index | None, n: int) -> np.ndarray:
    """``lead_id -> time`` read for ``ids`` as UTC ``datetime64[ns]`` (all NaT without times or ids)."""
    if times is None or not len(times) or ids is None:
        return np.full(n, np.datetime64("NaT", "ns"))
    return _stamps(times.reindex(ids)).to_numpy(dtype="datetime64[ns]")


def utc_array(values: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """UTC ``datetime64[ns]`` values as a pandas ``datetime64[ns, UTC]`` array (a frame's column).

    ``pd.array(values, dtype=UTC_NS)`` reads naive values as UTC and keeps a copy of them; it checks
    and converts its input as for any sequence (~30 us, several times a served lead). The array is
    made here on a copy of the values directly, where pandas offers ``_simple_new`` (the constructor
    its own conversion ends in); ``tests/test_handoff.py`` checks both give the same array."""
    own = np.array(values, dtype="datetime64[ns]")  # a copy, as pd.array keeps one
    make = getattr(pd.arrays.DatetimeArray, "_simple_new", None)
    if make is None or own.ndim != 1:
        return pd.array(own, dtype=UTC_NS)  # naive values read as UTC
    return make(own, dtype=UTC_NS)


def previous_spells_in(store: str | os.PathLike, as_of: object) -> pd.Series | None:
    """:func:`previous_spells` of the history in ``store`` (None when there is no history yet)."""
    from leadml.core.errors import LeadDataError
    from leadml.jobs.history import load_history

    if not Path(store).is_dir():
        return None
    try:
        history = load_history(store, until=to_utc(as_of).floor("D") - pd.Timedelta(1),
                               columns=["lead_id", "as_of", "is_mql", "mql_since"])  # fmt: skip
    except LeadDataError:  # no day stored yet: a first run
        return None
    return previous_spells(history, as_of)


# -- what the outcomes say ----------------------------------------------------------------------
def acceptance(outcomes: pd.DataFrame | None, as_of: object = None) -> pd.DataFrame | None:
    """Per lead (index ``lead_id``): ``sql_at`` (sales accepted it) and ``rejected_at`` (it closed lost
    without reaching SQL), each only when known by ``as_of`` (at or before it). None when the
    outcomes carry neither stage times nor lost deals."""
    if outcomes is None or "lead_id" not in outcomes.columns or not len(outcomes):
        return None
    rows = outcomes.drop_duplicates("lead_id", keep="last")
    n = len(rows)
    sql_at = _stamps(rows["sql_at"]) if "sql_at" in rows.columns else _stamps(None, n)
    closed = _stamps(rows["closed_at"]) if "closed_at" in rows.columns else _stamps(None, n)
    lost = np.zeros(n, dtype=bool)
    if "outcome" in rows.columns:
        outcome = rows["outcome"]
        if pd.api.types.is_numeric_dtype(outcome) or pd.api.types.is_bool_dtype(outcome):
            lost = (pd.to_numeric(outcome, errors="coerce") == 0).to_numpy()
        else:
            lost = outcome.astype(str).str.strip().str.lower().isin(LOST_TEXT).to_numpy()
    rejected = closed.where(lost & ~(sql_at <= closed).to_numpy())
    if "sql_at" not in rows.columns and not lost.any():
        return None
    if as_of is not None:
        stamp = to_utc(as_of)
        sql_at, rejected = sql_at.where(sql_at <= stamp), rejected.where(rejected <= stamp)
    index = pd.Index(rows["lead_id"].astype(str).to_numpy(), name="lead_id")
    return pd.DataFrame({"sql_at": sql_at.to_numpy(), "rejected_at": rejected.to_numpy()}, index=index)


def load_acceptance(config: PipelineConfig, as_of: object = None) -> pd.DataFrame | None:
    """:func:`acceptance` of the pipeline's outcomes (None for a flat table or no outcomes)."""
    if config.is_flat:
        return None
    from leadml.data.sources import load_pipeline_data

    return acceptance(load_pipeline_data(config.data).outcomes, as_of)


# -- the history --------------------------------------------------------------------------------
def spell_rows(history: pd.DataFrame, accepted: pd.DataFrame | pd.Series | None = None) -> pd.DataFrame:
    """Every history row with ``spell``, ``mql_since``, the fixed ``due_at``, ``overdue`` and ``breach``.

    A row written by this leadml carries its fixed ``due_at``; an older row's deadline (as_of +
    hours) is moved to its spell's ``mql_since``. ``accepted``: lead_id -> ``sql_at`` (or the frame of
    :func:`acceptance`); without it the row's stored ``overdue`` is used where it has one.
    ``breach`` marks the first overdue row of each spell.
    """
    frame = history.sort_values(["lead_id", "as_of"], kind="stable").reset_index(drop=True)
    recorded = frame["mql_since"].notna().to_numpy() if "mql_since" in frame.columns else np.zeros(len(frame), bool)
    stored_overdue = frame["overdue"] if "overdue" in frame.columns and accepted is None else None
    rows = mql_spells(frame)
    mql = (rows["spell"] > 0).to_numpy()
    as_of = _stamps(rows["as_of"])
    due = _stamps(rows["due_at"]) if "due_at" in rows.columns else _stamps(None, len(rows))
    since = _stamps(rows["mql_since"])
    rows["due_at"] = due.where(recorded | ~mql, since + (due - as_of))
    sql_at = _sql_times(accepted)
    known = _stamps(rows["lead_id"].map(sql_at) if sql_at is not None else None, len(rows))
    overdue = mql & (rows["due_at"] < rows["as_of"]).to_numpy() & ~(known <= as_of).to_numpy()
    if stored_overdue is not None:
        stored = stored_overdue.astype("boolean").to_numpy(dtype=object, na_value=None)
        overdue = np.where(pd.isna(stored), overdue, stored).astype(bool) & mql
    rows["overdue"] = overdue
    keys = [rows["lead_id"], rows["spell"]]
    rows["breach"] = overdue & (pd.Series(overdue.astype(int)).groupby(keys).cumsum() == 1).to_numpy()
    return rows


def _sql_times(accepted: pd.DataFrame | pd.Series | None) -> pd.Series | None:
    if accepted is None:
        return None
    return accepted["sql_at"] if isinstance(accepted, pd.DataFrame) else accepted


def _spell_events(rows: pd.DataFrame, times: pd.Series, runs: pd.DatetimeIndex) -> pd.DataFrame:
    """The stage times (``lead_id -> at``) that fall in an MQL spell, with its ``mql_since`` and the
    first ``run`` at or after them (NaT when no run has come since)."""
    events = pd.DataFrame({"lead_id": times.index.astype(str), "at": _stamps(times).to_numpy()}).dropna()
    events = events[events["lead_id"].isin(rows["lead_id"])].sort_values("at", kind="stable")
    right = rows[["lead_id", "as_of", "spell", "mql_since"]].assign(lead_id=rows["lead_id"].astype(str),
                                                                    as_of=_stamps(rows["as_of"]))  # fmt: skip
    joined = pd.merge_asof(events, right.sort_values("as_of", kind="stable"), left_on="at", right_on="as_of",
                           by="lead_id", direction="backward")  # fmt: skip
    joined = joined[joined["spell"].fillna(0) > 0].reset_index(drop=True)
    at = pd.DatetimeIndex(joined["at"]).as_unit("ns").asi8
    where = np.searchsorted(runs.asi8, at, side="left")
    inside = where < len(runs)
    run = np.full(len(joined), np.datetime64("NaT"), dtype="datetime64[ns]")
    run[inside] = runs.asi8[where[inside]].astype("datetime64[ns]")
    joined["run"] = pd.to_datetime(run, utc=True)
    joined["hours"] = (joined["at"] - _stamps(joined["mql_since"])) / HOUR
    return joined


def run_counts(history: pd.DataFrame, accepted: pd.DataFrame | pd.Series | None = None) -> pd.DataFrame:
    """Per run (``as_of``): ``new`` MQL spells, ``open`` MQLs, ``overdue`` MQLs, ``breaches`` (spells
    first overdue in this run) and, with ``accepted`` (:func:`acceptance`), the spells ``accepted``
    and ``rejected`` since the run before and the ``median_hours`` from MQL to acceptance."""
    return _counts(history, accepted)[0]


def _counts(history: pd.DataFrame, accepted) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """:func:`run_counts` and the acceptances behind it (``lead_id``, ``at``, ``run``, ``hours``)."""
    rows = spell_rows(history, accepted)
    taken = None
    mql = rows["spell"] > 0
    per_run = pd.DataFrame({
        "as_of": rows["as_of"], "new": mql & (rows["mql_since"] == rows["as_of"]), "open": mql,
        "overdue": rows["overdue"], "breaches": rows["breach"],
    }).groupby("as_of", sort=True).sum().astype(np.int64)  # fmt: skip
    for column in ("accepted", "rejected", "median_hours"):
        per_run[column] = pd.NA
    if accepted is not None:
        runs = pd.DatetimeIndex(per_run.index).as_unit("ns")
        frame = accepted if isinstance(accepted, pd.DataFrame) else accepted.rename("sql_at").to_frame()
        taken = _spell_events(rows, frame["sql_at"], runs)
        per_run["accepted"] = taken.groupby("run").size().reindex(runs, fill_value=0).to_numpy()
        per_run["median_hours"] = taken.groupby("run")["hours"].median().reindex(runs).to_numpy()
        if "rejected_at" in frame.columns:
            lost = _spell_events(rows, frame["rejected_at"], runs)
            per_run["rejected"] = lost.groupby("run").size().reindex(runs, fill_value=0).to_numpy()
    return per_run.reset_index(), taken


def sla_weeks(history: pd.DataFrame, accepted: pd.DataFrame | pd.Series | None = None,
              as_of: object = None) -> pd.DataFrame:  # fmt: skip
    """The breach table per week (Monday) of the runs up to ``as_of``: ``new`` MQLs, ``accepted``,
    ``rejected``, ``overdue`` (at the week's last run), ``breaches`` and ``median_hours`` to
    acceptance (accepted, rejected and hours only with ``accepted``)."""
    if as_of is not None:
        history = history[history["as_of"] <= to_utc(as_of)]
    runs, taken = _counts(history, accepted)
    runs["week"] = _monday(runs["as_of"])
    weeks = runs.groupby("week", sort=True).agg(
        runs=("as_of", "size"), new=("new", "sum"), accepted=("accepted", "sum"), rejected=("rejected", "sum"),
        overdue=("overdue", "last"), breaches=("breaches", "sum"))  # fmt: skip
    weeks["median_hours"] = np.nan
    if taken is not None and len(taken):
        weeks["median_hours"] = taken.groupby(_monday(taken["run"]))["hours"].median().reindex(weeks.index)
    if accepted is None:
        weeks[["accepted", "rejected"]] = pd.NA
    elif "rejected_at" not in (accepted.columns if isinstance(accepted, pd.DataFrame) else ()):
        weeks["rejected"] = pd.NA
    return weeks.reset_index()


def _monday(stamps: pd.Series) -> pd.Series:
    days = _stamps(stamps).dt.floor("D")
    return days - pd.to_timedelta(days.dt.day_of_week, unit="D")


def current_handoff(history: pd.DataFrame, as_of: object = None,
                    accepted: pd.DataFrame | pd.Series | None = None) -> pd.DataFrame:  # fmt: skip
    """The MQLs of the last run at or before ``as_of``: ``lead_id``, ``score``, ``tier``, ``mql_since``,
    ``due_at``, ``overdue``; overdue first, then the oldest deadline."""
    if as_of is not None:
        history = history[history["as_of"] <= to_utc(as_of)]
    rows = spell_rows(history, accepted)
    last = rows[(rows["as_of"] == rows["as_of"].max()) & (rows["spell"] > 0)]
    columns = [
        c for c in ("lead_id", "score", "tier", "mql_route", "mql_since", "due_at", "overdue") if c in last.columns
    ]
    ordered = last.sort_values(["overdue", "due_at", "lead_id"], ascending=[False, True, True], kind="stable")
    return ordered[columns].reset_index(drop=True)


# -- leadml sla ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlaReport:
    """What ``leadml sla`` prints: the ``weeks`` table, the per-run counts and the current MQLs."""

    store: Path
    weeks: pd.DataFrame
    runs: pd.DataFrame
    current: pd.DataFrame
    outcomes_known: bool


def sla_report(config: PipelineConfig, store: str | os.PathLike | None = None, as_of: object = None) -> SlaReport:
    """The hand-off over the score history: weekly breaches, per-run counts, the MQLs waiting now.

    Raises:
        LeadDataError: no score history in ``store`` (default: the pipeline's), or none by ``as_of``.
    """
    from leadml.core.errors import LeadDataError
    from leadml.jobs.history import history_path, load_history

    folder = Path(store) if store is not None else history_path(config, Path("scores.parquet"))
    history = load_history(folder, until=as_of)
    if history.empty:
        raise LeadDataError(f"{folder}: no scoring run at or before {to_utc(as_of):%Y-%m-%d %H:%M} UTC")
    accepted = load_acceptance(config, as_of if as_of is not None else history["as_of"].max())
    weeks = sla_weeks(history, accepted)
    if config.mql.capped:
        # the plan beside what happened: the capacity is in new MQLs a week (the first run's MQLs all count as new)
        weeks.insert(int(weeks.columns.get_loc("new")) + 1, "planned", planned_per_week(config))
    return SlaReport(folder, weeks, run_counts(history, accepted),
                     current_handoff(history, accepted=accepted), accepted is not None)  # fmt: skip


def planned_per_week(config: PipelineConfig) -> int:
    """The new MQLs a week the capacity plans: ``capacity_per_week``, or under ``capacity_by`` the sum
    over the groups of the leads table (:func:`~leadml.modeling.group_policy.group_capacities`; a
    mapping without ``default`` needs no data)."""
    mql = config.mql
    capacity = mql.capacity_per_week
    assert capacity is not None  # mql.capped
    if mql.capacity_by is None or (isinstance(capacity, dict) and "default" not in capacity):
        return int(mql.weekly_capacity or 0)
    from leadml.data.mql_columns import DEFAULT_GROUP, lead_mql_columns
    from leadml.data.sources import load_pipeline_data
    from leadml.modeling.group_policy import group_capacities

    data = load_pipeline_data(config.data, need_outcomes=False)
    leads = data.flat if data.flat is not None else data.leads
    assert leads is not None
    groups = lead_mql_columns(leads, mql.capacity_by, None)["mql__group"]
    found = set(groups.dropna()) | ({DEFAULT_GROUP} if groups.isna().any() else set())
    return int(sum(group_capacities(mql, sorted(found)).values()))


def history_stuck(
    config: PipelineConfig,
    as_of: object,
    outcomes: pd.DataFrame | None = None,
    *,
    store: str | os.PathLike | None = None,
    days: float | None = None,
) -> pd.DataFrame | None:
    """The stuck MQLs (:func:`~leadml.explain.trends.stuck_mqls`) of the pipeline's score history at
    ``as_of``, sales' acceptance read from ``outcomes``; None when there is no history by then.
    ``days``: default ``history.stuck_days``."""
    from leadml.core.errors import LeadDataError
    from leadml.explain.trends import stuck_mqls
    from leadml.jobs.history import history_path, load_history

    folder = Path(store) if store is not None else history_path(config, Path("scores.parquet"))
    if not folder.is_dir():
        return None
    try:
        history = load_history(folder, until=as_of)
    except LeadDataError:
        return None
    if history.empty:
        return None
    known = acceptance(outcomes, as_of)
    settings = config.history
    return stuck_mqls(history, as_of, days=settings.stuck_days if days is None else days,
                      points=settings.stuck_points, accepted=None if known is None else known["sql_at"])  # fmt: skip
