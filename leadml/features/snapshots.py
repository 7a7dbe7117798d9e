"""Snapshots and labels: when a lead is scored for training, and what happened after.

A training row is a (lead, as_of) snapshot. Features may use only what happened strictly before
as_of; the label is "reached the target stage (won, by default) within ``horizon_days`` after as_of".
A lead is a prospect from its creation until it closes or reaches the target stage or a later one
(its *open life*); a snapshot outside that life is not taken (``closed`` / ``past_target``), and
a snapshot whose horizon ends after the data's end has no label (censored): an open lead never
becomes a negative by accident.

The default policy snapshots each lead every ``every_days`` days of its open life, so the training
rows hold leads of every age a scoring run meets (a 14-days-after-creation snapshot alone trains on
young leads only, and then scores leads a year old). :func:`lead_weights` gives each lead's
snapshots one unit of weight in all.

The time split purges (:func:`time_split`): a snapshot before the test part is dropped only when
its label window reaches into the test period *and* its lead has a test snapshot, i.e. when the very
conversion it is labelled with is also a test label. Leads are otherwise independent of each other,
so a whole horizon of other leads' snapshots need not be thrown away (on sparse data that can be
most of the positives).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.data.contract import LABEL_COLUMN
from leadml.data.timestamps import day_month_readings

DAY = pd.Timedelta(days=1)
SPLITS = ("train", "validation", "test", "purged", "gap", "censored")
# the funnel, earliest first; mql and pql are side by side (either can come first)
STAGE_ORDER = {"mql": 0, "pql": 0, "sql": 1, "opportunity": 2, "won": 3}
LEFT_OUT = "left_out"  # the frame attribute holding how many candidates were not taken, and why
_simple_new = getattr(pd.arrays.DatetimeArray, "_simple_new", None)  # pandas' own constructors, where it has them
_from_arrays = getattr(pd.DataFrame, "_from_arrays", None)


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


def snapshot_phase(lead_ids: pd.Series | np.ndarray, every: int) -> np.ndarray:
    """Each lead's first snapshot age in hours, from 1 to ``24 * every``: a stable hash of its id.

    Leads snapshotted at 14, 28, 42 days only would leave a model blind to a lead a few hours or days
    old (the newest leads, the ones sales wants first); with the first snapshot at a phase of its
    own, the training ages cover every hour from the first on, the same for the same ids on every run
    (``pandas.util.hash_pandas_object`` has a fixed key).
    """
    hashed = pd.util.hash_pandas_object(pd.Series(np.asarray(lead_ids, dtype=object)).astype(str), index=False)
    return 1 + (hashed.to_numpy() % np.uint64(24 * every)).astype(np.int64)


def as_of_every_days(
    leads: pd.DataFrame, every: int, until: pd.Timestamp | pd.Series, max_per_lead: int | None = None
) -> pd.DataFrame:
    """Candidate snapshots every ``every`` days of each lead's life, up to ``until`` (one instant, or one per lead).

    The first snapshot of a lead comes :func:`snapshot_phase` hours (1 to ``24 * every``) after
    its creation, the next ones every ``every`` days. A lead whose life holds more than
    ``max_per_lead`` steps gets ``max_per_lead`` of them, evenly spread from its first step to its
    last (so its oldest ages stay covered); which steps is a pure function of the step count, so the
    same data gives the same snapshots.
    """
    created = leads["created_at"].reset_index(drop=True)
    ends = until.reset_index(drop=True) if isinstance(until, pd.Series) else until
    span_days = ((ends - created) / DAY).to_numpy(dtype=float)
    span_days = np.where(np.isnan(span_days), -1.0, span_days)
    phase = snapshot_phase(leads["lead_id"], every) / 24.0  # in days
    n_steps = np.where(span_days >= phase, np.floor((span_days - phase) / every).astype(np.int64) + 1, 0)
    n_taken = n_steps if max_per_lead is None else np.minimum(n_steps, max_per_lead)
    lead_pos = np.repeat(np.arange(len(leads)), n_taken)
    starts = np.cumsum(n_taken) - n_taken
    rank = np.arange(len(lead_pos)) - np.repeat(starts, n_taken)  # 0 .. n_taken - 1 within each lead
    steps_of_lead, taken_of_lead = np.repeat(n_steps, n_taken), np.repeat(n_taken, n_taken)
    spread = taken_of_lead < steps_of_lead
    # evenly spread: first step 0, last step n_steps - 1; exact integers (no float rounding)
    span = np.where(taken_of_lead > 1, taken_of_lead - 1, 1)
    even = (rank * (steps_of_lead - 1) + (span // 2)) // span
    step = np.where(spread, even, rank)
    hours = np.repeat(snapshot_phase(leads["lead_id"], every), n_taken) + step * every * 24
    as_of = created.iloc[lead_pos].reset_index(drop=True) + pd.to_timedelta(hours, unit="h")
    return pd.DataFrame({"lead_id": leads["lead_id"].to_numpy()[lead_pos], "as_of": as_of.dt.as_unit("ns")})


def as_of_fixed(leads: pd.DataFrame, as_of: object) -> pd.DataFrame:
    """One candidate snapshot per lead created at or before a fixed ``as_of``."""
    stamp = to_utc(as_of)
    known = leads.loc[leads["created_at"] <= stamp, "lead_id"].to_numpy()
    as_of = pd.DatetimeIndex([stamp]).as_unit("ns").repeat(len(known))
    return pd.DataFrame({"lead_id": known, "as_of": pd.Series(as_of, dtype="datetime64[ns, UTC]")})


def pql_times(events: pd.DataFrame | None, event_types: Sequence[str], min_events: int = 1) -> pd.Series:
    """When each lead became product-qualified: the time of its ``min_events``-th product event.

    Product events are those of ``event_types`` (a trial sign-up, a product login, ...); a lead with
    fewer never became a PQL and is left out. Indexed by lead_id.

    Example:
        >>> events = pd.DataFrame({"lead_id": ["a", "a", "b"], "event_type": ["trial", "login", "page_view"],
        ...     "timestamp": pd.to_datetime(["2026-01-02", "2026-01-05", "2026-01-03"], utc=True)})
        >>> pql_times(events, ["trial", "login"], min_events=2).dt.strftime("%m-%d").to_dict()
        {'a': '01-05'}
    """
    if not event_types:
        raise LeadDataError(
            "target 'pql' needs the product events that make a lead product-qualified: "
            "stages.pql.event_types (e.g. [trial_signup, product_login])"
        )
    empty = pd.Series([], dtype="datetime64[ns, UTC]", index=pd.Index([], dtype=object))
    if events is None or not len(events):
        return empty
    product = events.loc[events["event_type"].astype(str).isin(list(event_types)), ["lead_id", "timestamp"]]
    product = product.sort_values(["lead_id", "timestamp"], kind="stable")
    nth = product.groupby("lead_id", sort=True, observed=True)["timestamp"].nth(min_events - 1)
    if not len(nth):
        return empty
    lead_ids = product.loc[nth.index, "lead_id"].astype(str).to_numpy()
    return pd.Series(pd.to_datetime(nth.to_numpy(), utc=True).as_unit("ns"), index=lead_ids)


def stage_times(
    outcomes: pd.DataFrame | None,
    stage: str = "won",
    *,
    pql: pd.Series | None = None,
    required: bool = True,
) -> pd.Series:
    """When each lead reached ``stage`` (NaT when never), indexed by lead_id.

    ``won`` is read from the outcomes (``closed_at`` of the won deals); ``pql`` is given (see
    :func:`pql_times`); any other stage from a column ``<stage>_at`` of the outcomes, which must be
    there unless ``required`` is False (then a missing column means "never").
    """
    if stage == "pql":
        return pql if pql is not None else pd.Series([], dtype="datetime64[ns, UTC]")
    if outcomes is None or not len(outcomes):
        return pd.Series([], dtype="datetime64[ns, UTC]")
    if stage == "won":
        won_at = outcomes["closed_at"].where(outcomes["outcome"] == 1)
        # .array keeps the UTC dtype even when every value is NaT (no deal won yet)
        return pd.Series(won_at.array, index=outcomes["lead_id"].to_numpy())
    column = f"{stage}_at"
    if column not in outcomes.columns:
        if not required:
            return pd.Series([], dtype="datetime64[ns, UTC]")
        raise LeadDataError(
            f"outcomes: label stage '{stage}' needs a column '{column}' (when the lead reached it); "
            f"columns present: {', '.join(outcomes.columns)}"
        )
    times = pd.to_datetime(outcomes[column], utc=True).dt.as_unit("ns")
    return pd.Series(times.to_numpy(), index=outcomes["lead_id"].to_numpy())


def past_target_times(outcomes: pd.DataFrame | None, target: str = "won", *, pql: pd.Series | None = None) -> pd.Series:
    """When each lead stopped being a prospect for ``target``: it reached the target or a later stage.

    Closing (won or lost) is read separately (``closed_at``); this is the earliest of the target's
    own time and the times of the stages after it (``sql_at``, ``opportunity_at``, won), by lead_id.
    """
    rank = STAGE_ORDER[target]
    stages = [s for s, r in STAGE_ORDER.items() if r > rank or s == target]
    parts = [stage_times(outcomes, s, pql=pql, required=(s == target)) for s in stages]
    parts = [p.dropna() for p in parts if len(p)]
    if not parts:
        return pd.Series([], dtype="datetime64[ns, UTC]")
    every = pd.concat(parts)
    return every.groupby(level=0, sort=True).min()


def _nanoseconds(instants: pd.Series) -> np.ndarray:
    """UTC instants as int64 nanoseconds, whatever unit the column holds (NaT: int64 min).

    A column already in UTC nanoseconds is read as it is: the conversions would change no value.
    """
    if is_utc_ns(instants.dtype):
        return instants.array.asi8
    return pd.to_datetime(instants, utc=True).dt.as_unit("ns").array.asi8


def is_utc_ns(dtype: object) -> bool:
    """Whether ``dtype`` is ``datetime64[ns, UTC]``, the one :func:`pd.to_datetime` with ``utc=True`` keeps."""
    return isinstance(dtype, pd.DatetimeTZDtype) and dtype.unit == "ns" and str(dtype.tz) == "UTC"


def utc_array(value: int, n: int) -> pd.api.extensions.ExtensionArray:
    """``n`` copies of the instant ``value`` (int64 ns) as a ``datetime64[ns, UTC]`` array of its own.

    ``pd.array(...).tz_localize("UTC")`` checks and converts its input (~0.1 ms on one value);
    where pandas offers ``_simple_new`` (the constructor its own conversion ends in) the array is
    made on the values directly, in the very dtype ``tz_localize`` gives.
    """
    values = np.full(n, value, dtype=np.int64).view("datetime64[ns]")
    if _simple_new is None:
        return pd.array(values).tz_localize("UTC")
    return _simple_new(values, dtype=_utc_ns_dtype())


@functools.cache
def _utc_ns_dtype() -> pd.DatetimeTZDtype:
    """The dtype of ``pd.array(naive ns values).tz_localize("UTC")`` (its own UTC object, made once)."""
    return pd.array(np.zeros(0, dtype="datetime64[ns]")).tz_localize("UTC").dtype


def arrays_frame(columns: dict[str, Any], index: pd.Index) -> pd.DataFrame:
    """``pd.DataFrame(columns, index=index, copy=False)`` for pandas arrays (or 1-D numpy arrays) of the
    index's length, each the frame's own: the same frame without the constructor's checks per column
    (~0.15 ms for two columns), by pandas' own ``_from_arrays`` where it has one."""
    if _from_arrays is None:
        return pd.DataFrame(columns, index=index, copy=False)
    return _from_arrays(list(columns.values()), columns=_labels(tuple(columns)).copy(), index=index,
                       verify_integrity=False)  # fmt: skip


@functools.lru_cache(maxsize=64)
def _labels(names: tuple[str, ...]) -> pd.Index:
    """Column labels made once per set of names (a frame gets a shallow copy: its own Index object)."""
    return pd.Index(list(names))


def _per_lead(lead_ids: pd.Series | pd.api.extensions.ExtensionArray, times: pd.Series) -> np.ndarray:
    """``times`` (indexed by lead_id) looked up for each of ``lead_ids``, as int64 nanoseconds (NaT: max)."""
    never = np.iinfo(np.int64).max
    if not len(times):
        return np.full(len(lead_ids), never, dtype=np.int64)
    values = _nanoseconds(times)
    values = np.where(pd.isna(times).to_numpy(), never, values)
    positions = pd.Index(times.index.astype(str)).get_indexer(lead_ids.astype(str))
    return np.where(positions >= 0, values[np.maximum(positions, 0)], never)


def left_out_masks(
    lead_ids: pd.Series | pd.api.extensions.ExtensionArray,
    as_of: np.ndarray | int,
    outcomes: pd.DataFrame | None,
    stage: str,
    pql: pd.Series | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per snapshot (``lead_ids``, ``as_of`` in int64 ns), whether its lead is no prospect then and why.

    ``closed``: the lead closed before as_of; ``past``: not closed, but it had reached ``stage`` or a
    later one before as_of (:func:`past_target_times`). :func:`label_snapshots` drops both. Without
    outcomes or PQL times no lead is either, and no time is looked up.
    """
    closed = np.zeros(len(lead_ids), dtype=bool)
    known = outcomes is not None and len(outcomes) > 0
    if outcomes is not None and known:
        closings = pd.Series(outcomes["closed_at"].array, index=outcomes["lead_id"].to_numpy())
        closed = _per_lead(lead_ids, closings.dropna()) < as_of
    if stage not in STAGE_ORDER:  # the error past_target_times gives
        raise KeyError(stage)
    if not known and (stage != "pql" or pql is None or not len(pql)):
        return closed, np.zeros(len(lead_ids), dtype=bool)
    past = ~closed & (_per_lead(lead_ids, past_target_times(outcomes, stage, pql=pql)) < as_of)
    return closed, past


def label_snapshots(
    candidates: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    *,
    horizon_days: int,
    data_end: pd.Timestamp,
    stage: str = "won",
    pql: pd.Series | None = None,
) -> pd.DataFrame:
    """Drop snapshots outside each lead's open life and attach the label (NaN when censored).

    A snapshot is not taken when its lead closed before as_of (``closed``) or had already reached
    ``stage`` or a later stage (``past_target``); their counts are in ``frame.attrs["left_out"]``.
    The label is 1 when the lead reached ``stage`` in ``[as_of, as_of + horizon)``, 0 otherwise, and
    NaN when ``as_of + horizon`` lies after ``data_end`` (the horizon is not over yet).
    """
    snapshots = candidates.reset_index(drop=True)
    closed, past = left_out_masks(snapshots["lead_id"], _nanoseconds(snapshots["as_of"]), outcomes, stage, pql)
    snapshots = snapshots.loc[~(closed | past)].reset_index(drop=True)
    reached = _per_lead(snapshots["lead_id"], stage_times(outcomes, stage, pql=pql).dropna())
    start = _nanoseconds(snapshots["as_of"])
    horizon = (horizon_days * DAY).value
    hit = (reached >= start) & (reached < start + horizon)
    label = hit.astype(float)
    label[start + horizon > data_end.value] = np.nan
    snapshots[LABEL_COLUMN] = label
    snapshots.attrs[LEFT_OUT] = {"closed": int(closed.sum()), "past_target": int(past.sum())}
    return snapshots


def open_life_end(
    leads: pd.DataFrame, outcomes: pd.DataFrame | None, until: pd.Timestamp, stage: str, pql: pd.Series | None
) -> pd.Series:
    """The last instant each lead is a prospect: ``until``, or earlier when it closed or passed ``stage``."""
    ids = leads["lead_id"].reset_index(drop=True)
    end = np.full(len(ids), until.value, dtype=np.int64)
    if outcomes is not None and len(outcomes):
        closings = pd.Series(outcomes["closed_at"].array, index=outcomes["lead_id"].to_numpy())
        end = np.minimum(end, _per_lead(ids, closings.dropna()))
    end = np.minimum(end, _per_lead(ids, past_target_times(outcomes, stage, pql=pql)))
    return pd.Series(pd.to_datetime(end, utc=True).as_unit("ns"))


def replay_snapshots(
    leads: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    stage: str = "won",
    pql: pd.Series | None = None,
    max_rows: int = 1_000_000,
) -> pd.DataFrame:
    """The open leads as a nightly scoring job met them: one snapshot per lead and day in ``[start, end]``.

    A lead is in a night's run when it was created before that midnight and was still a prospect
    (not closed, not at or past ``stage``). When the nights hold more than ``max_rows`` snapshots, a
    stable share of the leads (by a hash of the id) is kept; ``attrs["fraction"]`` says which share,
    so counts of leads scale back by ``1 / fraction``. Columns: ``lead_id``, ``as_of``, ``created_at``.
    """
    start, end = to_utc(start).floor("D"), to_utc(end).floor("D")
    nights = pd.date_range(start, end, freq="D").as_unit("ns")
    ids = leads["lead_id"].reset_index(drop=True)
    created = pd.to_datetime(leads["created_at"], utc=True).dt.as_unit("ns").reset_index(drop=True)
    life_end = open_life_end(leads, outcomes, end + DAY, stage, pql)
    first = np.searchsorted(nights.asi8, created.array.asi8, side="right")  # the first night after creation
    last = np.searchsorted(nights.asi8, life_end.array.asi8, side="left")  # nights before the life ends
    nights_of_lead = np.maximum(last - first, 0)
    fraction = 1.0
    if nights_of_lead.sum() > max_rows:
        fraction = max_rows / float(nights_of_lead.sum())
        hashed = pd.util.hash_pandas_object(ids.astype(str), index=False).to_numpy()
        kept = (hashed % np.uint64(1_000_000)).astype(np.int64) < int(fraction * 1_000_000)
        nights_of_lead = np.where(kept, nights_of_lead, 0)
    lead_pos = np.repeat(np.arange(len(ids)), nights_of_lead)
    offset = np.arange(len(lead_pos)) - np.repeat(np.cumsum(nights_of_lead) - nights_of_lead, nights_of_lead)
    night = np.repeat(first, nights_of_lead) + offset
    replay = pd.DataFrame({
        "lead_id": ids.to_numpy()[lead_pos],
        "as_of": pd.to_datetime(nights.asi8[night], utc=True).as_unit("ns"),
        "created_at": created.to_numpy()[lead_pos],
    })  # fmt: skip
    replay.attrs["fraction"] = fraction
    return replay


def build_snapshots(
    leads: pd.DataFrame,
    outcomes: pd.DataFrame | None = None,
    *,
    policy: str = "every_days",
    days_after_creation: int = 14,
    every_days: int = 14,
    max_per_lead: int | None = None,
    as_of: object | None = None,
    horizon_days: int = 120,
    data_end: pd.Timestamp | None = None,
    stage: str = "won",
    pql: pd.Series | None = None,
) -> pd.DataFrame:
    """Snapshots of the leads under a policy, with labels; sorted by as_of, then lead_id.

    Parameters:
        policy: ``every_days`` (every N days of each lead's open life, at most ``max_per_lead``
            of them, evenly spread), ``days_after_creation`` (each lead N days after it appeared)
            or ``fixed`` (one ``as_of`` for every lead created by then).
        data_end: the last instant of the data; snapshots after it are not taken (but for ``fixed``)
            and labels whose horizon ends after it are censored. Default: the latest instant in the
            leads and outcomes.
        stage: the target stage of the label; ``pql`` needs ``pql`` (see :func:`pql_times`).

    Returns:
        A frame with ``lead_id``, ``as_of`` (UTC) and ``converted`` (1.0, 0.0 or NaN = censored);
        ``frame.attrs["left_out"]`` counts the candidates not taken (``closed``, ``past_target``).

    Example:
        >>> import pandas as pd
        >>> leads = pd.DataFrame({"lead_id": ["a", "b"],
        ...     "created_at": pd.to_datetime(["2026-01-01", "2026-03-01"], utc=True)})
        >>> outcomes = pd.DataFrame({"lead_id": ["a"], "outcome": [1],
        ...     "closed_at": pd.to_datetime(["2026-02-01"], utc=True)})
        >>> build_snapshots(leads, outcomes, policy="days_after_creation", days_after_creation=7,
        ...                 horizon_days=60, data_end=pd.Timestamp("2026-06-01", tz="UTC"))["converted"].tolist()
        [1.0, 0.0]
    """
    end = data_end if data_end is not None else data_end_of(leads, None, outcomes)
    if policy == "days_after_creation":
        candidates = as_of_days_after_creation(leads, days_after_creation)
    elif policy == "every_days":
        life_end = open_life_end(leads, outcomes, end, stage, pql)
        candidates = as_of_every_days(leads, every_days, life_end, max_per_lead)
    elif policy == "fixed":
        if as_of is None:
            raise LeadDataError("snapshot policy 'fixed' needs an as_of date")
        candidates = as_of_fixed(leads, as_of)
    else:
        raise LeadDataError(f"unknown snapshot policy {policy!r}; use every_days, days_after_creation or fixed")
    if policy != "fixed":
        candidates = candidates.loc[(candidates["as_of"] <= end).to_numpy()]
    snapshots = label_snapshots(candidates, outcomes, horizon_days=horizon_days, data_end=end, stage=stage, pql=pql)
    left_out = snapshots.attrs.get(LEFT_OUT, {})
    snapshots = snapshots.sort_values(["as_of", "lead_id"], kind="stable").reset_index(drop=True)
    snapshots.attrs[LEFT_OUT] = left_out
    return snapshots


def lead_weights(snapshots: pd.DataFrame, split: pd.Series | None = None) -> np.ndarray:
    """A weight per snapshot: each lead's snapshots (within one split) share one unit, scaled to mean 1.

    A lead open for a year has 26 fortnightly snapshots and a lead that converted in its first month
    two; unweighted, the long-open leads (mostly never converting) would outweigh the rest. Scaled so
    the weights of each split average 1, which keeps a learner's regularisation where it was.

    Example:
        >>> frame = pd.DataFrame({"lead_id": ["a", "a", "a", "b"]})
        >>> lead_weights(frame).tolist()
        [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    groups = pd.Series("all", index=snapshots.index) if split is None else split.astype(str)
    key = pd.DataFrame({"split": groups.to_numpy(), "lead": snapshots["lead_id"].astype(str).to_numpy()})
    per_lead = key.groupby(["split", "lead"], sort=False)["lead"].transform("size").to_numpy(dtype=float)
    weight = 1.0 / per_lead
    rows = key.groupby("split", sort=False)["lead"].transform("size").to_numpy(dtype=float)
    leads = key.groupby("split", sort=False)["lead"].transform("nunique").to_numpy(dtype=float)
    return weight * rows / leads


def time_split(
    snapshots: pd.DataFrame,
    *,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    gap_days: float | None = None,
    horizon_days: float = 120,
) -> pd.Series:
    """Assign each snapshot to train / validation / test by time, keeping the labels of one side unseen by the other.

    The labelled snapshots are ordered by as_of; the latest ``test_fraction`` form the test part and
    the latest ``validation_fraction`` of the rest the validation part (early stopping, calibration,
    model choice, threshold). Censored snapshots get ``censored``.

    With ``gap_days`` None (the default) the split *purges*: an earlier snapshot whose label window
    ``[as_of, as_of + horizon_days)`` reaches into the next part's period and whose lead has a
    snapshot in that part gets ``purged`` (its label would be the very conversion the later part
    is judged on). With ``gap_days`` set, every snapshot less than ``gap_days`` before the first
    test snapshot gets ``gap`` instead (an embargo of whole days, leads regardless).

    Example:
        >>> days = pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01"], utc=True)
        >>> frame = pd.DataFrame({"lead_id": ["b", "c", "d", "a", "a"], "as_of": days, "converted": 0.0})
        >>> time_split(frame, test_fraction=0.2, validation_fraction=0.25, horizon_days=45).tolist()
        ['train', 'train', 'validation', 'purged', 'test']
    """
    split = pd.Series("censored", index=snapshots.index, dtype=object)
    labelled = snapshots[LABEL_COLUMN].notna().to_numpy()
    as_of = snapshots["as_of"]
    if not labelled.any():
        return split
    test_start = _quantile_instant(as_of[labelled], 1 - test_fraction)
    is_test = labelled & (as_of >= test_start).to_numpy()
    if gap_days is not None:
        before = labelled & (as_of < test_start - gap_days * DAY).to_numpy()
        split[labelled] = "gap"
    else:
        before = labelled & ~is_test
        purged = _purge(snapshots, before, is_test, test_start, horizon_days)
        split[purged] = "purged"
        before &= ~purged
    split[is_test] = "test"
    if before.any():
        val_start = _quantile_instant(as_of[before], 1 - validation_fraction)
        is_valid = before & (as_of >= val_start).to_numpy()
        earlier = before & ~is_valid
        if gap_days is None:
            purged = _purge(snapshots, earlier, is_valid, val_start, horizon_days)
            split[purged] = "purged"
            earlier &= ~purged
        split[is_valid] = "validation"
        split[earlier] = "train"
    return split


def _purge(
    snapshots: pd.DataFrame, earlier: np.ndarray, later: np.ndarray, later_start: pd.Timestamp, horizon_days: float
) -> np.ndarray:
    """The earlier snapshots whose label window reaches ``later_start`` and whose lead is in the later part."""
    reaches = (snapshots["as_of"] + horizon_days * DAY > later_start).to_numpy()
    later_leads = pd.unique(snapshots.loc[later, "lead_id"].astype(str))
    shared = snapshots["lead_id"].astype(str).isin(later_leads).to_numpy()
    return earlier & reaches & shared


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
