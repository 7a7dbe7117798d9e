"""Snapshots and labels: when a lead is scored for training, and what happened after.

A training row is a (lead, as_of) snapshot. Features may use only what happened strictly before
as_of; the label is "reached the stage (won, by default) within ``horizon_days`` after as_of". Leads
already closed before as_of are not snapshotted, and a snapshot whose horizon ends after the data's
end has no label (censored): an open lead never becomes a negative by accident.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.data.contract import LABEL_COLUMN
from leadml.data.timestamps import day_month_readings

DAY = pd.Timedelta(days=1)
SPLITS = ("train", "validation", "test", "gap", "censored")


def to_utc(value: str | pd.Timestamp | np.datetime64 | object) -> pd.Timestamp:
    """A date or timestamp as a UTC ``Timestamp``; a bare date means 00:00 UTC of that day.

    Day/month spellings (``07/01/2025``: 7 January or July 1?) are refused rather than read in US
    order, with the ISO spellings to use instead.
    """
    readings = day_month_readings(value) if isinstance(value, str) else None
    if readings is not None:
        iso = " or ".join(readings) or "2026-03-01"
        raise LeadDataError(
            f"as_of {value!r} does not say whether the day or the month comes first; use ISO 8601: {iso}"
        )
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise LeadDataError(
            f"as_of {value!r} is not a date; use ISO 8601, e.g. 2026-03-01 or 2026-03-01T12:00:00Z"
        ) from exc
    if stamp is pd.NaT:
        raise LeadDataError(f"as_of {value!r} is not a date; use ISO 8601, e.g. 2026-03-01")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def data_end_of(
    leads: pd.DataFrame, events: pd.DataFrame | None = None, outcomes: pd.DataFrame | None = None
) -> pd.Timestamp:
    """The last instant seen in the data (latest creation, event or close)."""
    candidates = [leads["created_at"].max()]
    if events is not None and len(events):
        candidates.append(events["timestamp"].max())
    if outcomes is not None and len(outcomes):
        candidates.append(outcomes["closed_at"].max())
    return max(candidates)


def as_of_days_after_creation(leads: pd.DataFrame, days: int) -> pd.DataFrame:
    """One candidate snapshot per lead, ``days`` days after it was created."""
    return pd.DataFrame({"lead_id": leads["lead_id"].to_numpy(), "as_of": leads["created_at"] + days * DAY})


def as_of_every_days(leads: pd.DataFrame, every: int, until: pd.Timestamp) -> pd.DataFrame:
    """Candidate snapshots every ``every`` days after creation, up to ``until`` (closing is applied later)."""
    created = leads["created_at"].reset_index(drop=True)
    span_days = ((until - leads["created_at"]) / DAY).to_numpy()
    n_per_lead = np.maximum(np.floor(span_days / every).astype(np.int64), 0)
    lead_pos = np.repeat(np.arange(len(leads)), n_per_lead)
    starts = np.cumsum(n_per_lead) - n_per_lead
    step = np.arange(len(lead_pos)) - np.repeat(starts, n_per_lead) + 1
    as_of = created.iloc[lead_pos].reset_index(drop=True) + pd.to_timedelta(step * every, unit="D")
    return pd.DataFrame({"lead_id": leads["lead_id"].to_numpy()[lead_pos], "as_of": as_of.dt.as_unit("ns")})


def as_of_fixed(leads: pd.DataFrame, as_of: object) -> pd.DataFrame:
    """One candidate snapshot per lead created at or before a fixed ``as_of``."""
    stamp = to_utc(as_of)
    known = leads.loc[leads["created_at"] <= stamp, "lead_id"].to_numpy()
    as_of = pd.DatetimeIndex([stamp]).as_unit("ns").repeat(len(known))
    return pd.DataFrame({"lead_id": known, "as_of": pd.Series(as_of, dtype="datetime64[ns, UTC]")})


def stage_times(outcomes: pd.DataFrame, stage: str = "won") -> pd.Series:
    """When each closed lead reached ``stage`` (NaT when never), indexed by lead_id."""
    if stage == "won":
        won_at = outcomes["closed_at"].where(outcomes["outcome"] == 1)
        # .array keeps the UTC dtype even when every value is NaT (no deal won yet)
        return pd.Series(won_at.array, index=outcomes["lead_id"].to_numpy())
    column = f"{stage}_at"
    if column not in outcomes.columns:
        raise LeadDataError(
            f"outcomes: label stage '{stage}' needs a column '{column}' (when the lead reached it); "
            f"columns present: {', '.join(outcomes.columns)}"
        )
    times = pd.to_datetime(outcomes[column], utc=True).dt.as_unit("ns")
    return pd.Series(times.to_numpy(), index=outcomes["lead_id"].to_numpy())


def label_snapshots(
    candidates: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    *,
    horizon_days: int,
    data_end: pd.Timestamp,
    stage: str = "won",
) -> pd.DataFrame:
    """Drop leads closed before as_of and attach the label (NaN when censored).

    The label is 1 when the lead reached ``stage`` in ``[as_of, as_of + horizon)``, 0 otherwise, and
    NaN when ``as_of + horizon`` lies after ``data_end`` (the horizon is not over yet).
    """
    snapshots = candidates.reset_index(drop=True)
    horizon = horizon_days * DAY
    if outcomes is not None and len(outcomes):
        closed_at = snapshots["lead_id"].map(pd.Series(outcomes["closed_at"].to_numpy(), index=outcomes["lead_id"]))
        still_open = ~(closed_at < snapshots["as_of"]).to_numpy()
        snapshots = snapshots.loc[still_open].reset_index(drop=True)
        reached = snapshots["lead_id"].map(stage_times(outcomes, stage))
    else:
        reached = pd.Series(pd.NaT, index=snapshots.index, dtype="datetime64[ns, UTC]")
    hit = ((reached >= snapshots["as_of"]) & (reached < snapshots["as_of"] + horizon)).to_numpy()
    label = hit.astype(float)
    label[(snapshots["as_of"] + horizon > data_end).to_numpy()] = np.nan
    snapshots[LABEL_COLUMN] = label
    return snapshots


def build_snapshots(
    leads: pd.DataFrame,
    outcomes: pd.DataFrame | None = None,
    *,
    policy: str = "days_after_creation",
    days_after_creation: int = 14,
    every_days: int = 7,
    as_of: object | None = None,
    horizon_days: int = 120,
    data_end: pd.Timestamp | None = None,
    stage: str = "won",
) -> pd.DataFrame:
    """Snapshots of the leads under a policy, with labels; sorted by as_of, then lead_id.

    Parameters:
        policy: ``days_after_creation`` (each lead N days after it appeared), ``every_days`` (every N
            days while the lead is open) or ``fixed`` (one ``as_of`` for every lead created by then).
        data_end: the last instant of the data; snapshots after it are not taken (but for ``fixed``)
            and labels whose horizon ends after it are censored. Default: the latest instant in the
            leads and outcomes.

    Returns:
        A frame with ``lead_id``, ``as_of`` (UTC) and ``converted`` (1.0, 0.0 or NaN = censored).

    Example:
        >>> import pandas as pd
        >>> leads = pd.DataFrame({"lead_id": ["a", "b"],
        ...     "created_at": pd.to_datetime(["2026-01-01", "2026-03-01"], utc=True)})
        >>> outcomes = pd.DataFrame({"lead_id": ["a"], "outcome": [1],
        ...     "closed_at": pd.to_datetime(["2026-02-01"], utc=True)})
        >>> build_snapshots(leads, outcomes, days_after_creation=7, horizon_days=60,
        ...                 data_end=pd.Timestamp("2026-06-01", tz="UTC"))["converted"].tolist()
        [1.0, 0.0]
    """
    end = data_end if data_end is not None else data_end_of(leads, None, outcomes)
    if policy == "days_after_creation":
        candidates = as_of_days_after_creation(leads, days_after_creation)
    elif policy == "every_days":
        candidates = as_of_every_days(leads, every_days, end)
    elif policy == "fixed":
        if as_of is None:
            raise LeadDataError("snapshot policy 'fixed' needs an as_of date")
        candidates = as_of_fixed(leads, as_of)
    else:
        raise LeadDataError(f"unknown snapshot policy {policy!r}; use days_after_creation, every_days or fixed")
    if policy != "fixed":
        candidates = candidates.loc[(candidates["as_of"] <= end).to_numpy()]
    snapshots = label_snapshots(candidates, outcomes, horizon_days=horizon_days, data_end=end, stage=stage)
    return snapshots.sort_values(["as_of", "lead_id"], kind="stable").reset_index(drop=True)


def time_split(
    snapshots: pd.DataFrame,
    *,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    gap_days: float = 120,
) -> pd.Series:
    """Assign each snapshot to train / validation / test by time, with a gap before the test part.

    The labelled snapshots are ordered by as_of; the latest ``test_fraction`` form the test part.
    Training and validation snapshots must lie at least ``gap_days`` (the label horizon) before the
    first test snapshot, so that no test label is visible while training; those in the gap get
    ``gap``. Validation is the latest ``validation_fraction`` of what remains (used for early stopping,
    calibration and model choice). Censored snapshots get ``censored``.
    """
    split = pd.Series("censored", index=snapshots.index, dtype=object)
    labelled = snapshots[LABEL_COLUMN].notna().to_numpy()
    as_of = snapshots["as_of"]
    if not labelled.any():
        return split
    test_start = _quantile_instant(as_of[labelled], 1 - test_fraction)
    is_test = labelled & (as_of >= test_start).to_numpy()
    before = labelled & (as_of < test_start - gap_days * DAY).to_numpy()
    split[labelled] = "gap"
    split[is_test] = "test"
    if before.any():
        val_start = _quantile_instant(as_of[before], 1 - validation_fraction)
        split[before & (as_of >= val_start).to_numpy()] = "validation"
        split[before & (as_of < val_start).to_numpy()] = "train"
    return split


def _quantile_instant(instants: pd.Series, share: float) -> pd.Timestamp:
    """The instant below which ``share`` of the given instants lie (a value from the data)."""
    ordered = instants.sort_values(kind="stable")
    return ordered.iloc[min(int(np.floor(len(ordered) * share)), len(ordered) - 1)]


def stratified_split(
    labels: Sequence[float] | pd.Series,
    *,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> pd.Series:
    """A seeded stratified train / validation / test split, for flat tables that have no time."""
    from sklearn.model_selection import train_test_split

    labels = pd.Series(np.asarray(labels, dtype=float))
    positions = np.arange(len(labels))
    rest, test = train_test_split(positions, test_size=test_fraction, stratify=labels, random_state=seed)
    train, valid = train_test_split(rest, test_size=validation_fraction, stratify=labels.iloc[rest], random_state=seed)
    split = np.empty(len(labels), dtype=object)
    split[train], split[valid], split[test] = "train", "validation", "test"
    return pd.Series(split, index=labels.index)
