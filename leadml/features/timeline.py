"""The one place for time: what each snapshot could see of a lead's events at its as_of.

:class:`EventTimeline` integer-codes the events by the snapshots' leads, sorts them by (lead, time)
once, and finds for every snapshot the range of its lead's events that lie strictly before as_of.
Every per-snapshot query is then vectorised numpy over those ranges: counts are differences of
prefix sums, "last event" is a lookup in the positions of the selected events, decayed and weighted
sums are scans over disjoint intervals. Nothing loops over leads in Python.

The point-in-time rule lives here and only here: an event counts at ``as_of`` when
``timestamp < as_of``; a window of W days is ``as_of - W days <= timestamp < as_of``, compared as
integer nanoseconds (exact: an event at as_of is the future, one at as_of - W days is inside).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from leadml.errors import LeadDataError

DAY_NS = 86_400 * 10**9
_NO_TIME = np.iinfo(np.int64).min


def to_ns(values: pd.Series | pd.Index | np.ndarray, what: str) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch in UTC (naive values are taken as UTC).

    Any resolution (s, ms, us, ns) is accepted; missing values raise :class:`LeadDataError`.
    """
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if not pd.api.types.is_datetime64_any_dtype(series):
        try:
            series = pd.to_datetime(series, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise LeadDataError(f"{what}: values are not timestamps ({exc})") from exc
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    stamps = series.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]")
    if np.isnat(stamps).any():
        bad = np.flatnonzero(np.isnat(stamps))
        raise LeadDataError(
            f"{what}: {len(bad)} missing timestamps (first rows: {', '.join(map(str, bad[:3] + 1))}); "
            "every row needs a time"
        )
    return stamps.view(np.int64)


def window_ns(window_days: float) -> int:
    """A window of ``window_days`` days in integer nanoseconds (exact for whole and decimal days)."""
    if not window_days > 0:
        raise ValueError(f"a window must be a positive number of days, got {window_days!r}")
    return int(pd.Timedelta(days=window_days).value)


def radix_argsort(codes: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative integer codes by 16-bit passes (numpy radix-sorts 16-bit keys)."""
    codes = np.asarray(codes)
    order = np.argsort((codes & 0xFFFF).astype(np.uint16), kind="stable")
    high = codes >> 16
    while len(codes) and high.max(initial=0) > 0:
        order = order[np.argsort((high[order] & 0xFFFF).astype(np.uint16), kind="stable")]
        high = high >> 16
    return order


def sort_order(codes: np.ndarray, times: np.ndarray) -> np.ndarray | None:
    """The permutation sorting events by (lead code, time), or None when they already are.

    Checks the cheap cases first: already sorted (the contract's order), or sorted by time only
    (a log export), where one stable radix sort by lead code is enough.
    """
    if len(codes) < 2:
        return None
    same = codes[1:] == codes[:-1]
    if bool(np.all((codes[1:] > codes[:-1]) | (same & (times[1:] >= times[:-1])))):
        return None
    if not bool(np.all(times[1:] >= times[:-1])):
        by_time = np.argsort(times, kind="stable")
        return by_time[radix_argsort(codes[by_time])]
    return radix_argsort(codes)


def lower_bound(times: np.ndarray, lo: np.ndarray, hi: np.ndarray, x: np.ndarray, strict: bool = True) -> np.ndarray:
    """Per query, the first index in ``[lo, hi)`` with ``times >= x`` (``> x`` when not ``strict``).

    ``times`` is sorted within every ``[lo, hi)``; all queries are bisected together, so the Python
    loop runs log2(longest range) times, not once per lead.
    """
    lo = np.asarray(lo, dtype=np.int64).copy()
    hi = np.asarray(hi, dtype=np.int64).copy()
    x = np.asarray(x, dtype=np.int64)
    active = np.flatnonzero(lo < hi)
    while len(active):
        low, high = lo[active], hi[active]
        mid = (low + high) >> 1
        probe = times[mid]
        right = probe < x[active] if strict else probe <= x[active]
        low = np.where(right, mid + 1, low)
        high = np.where(right, high, mid)
        lo[active], hi[active] = low, high
        active = active[low < high]
    return lo


class EventTimeline:
    """Events sorted by (lead, time) and, per snapshot, the range of its lead's events before as_of.

    Build it with :meth:`build` (frames) or :meth:`from_arrays` (already integer-coded columns, the
    fast path for big Parquet files). Masks returned by :meth:`event_mask` are over the timeline's
    sorted events and feed every query.

    Example:
        >>> events = pd.DataFrame({
        ...     "lead_id": ["a", "a", "b"],
        ...     "timestamp": pd.to_datetime(["2026-01-01", "2026-01-05", "2026-01-02"], utc=True),
        ...     "event_type": ["page_view", "email_click", "page_view"]})
        >>> snapshots = pd.DataFrame({"lead_id": ["a", "b"],
        ...     "as_of": pd.to_datetime(["2026-01-05", "2026-01-10"], utc=True)})
        >>> timeline = EventTimeline.build(events, snapshots)
        >>> timeline.count().tolist()                       # the click at as_of is the future
        [1, 1]
        >>> timeline.count(timeline.event_mask("page_view"), window_days=4).tolist()
        [1, 0]
    """

    def __init__(
        self,
        codes: np.ndarray,
        times: np.ndarray,
        snapshot_codes: np.ndarray,
        as_of: np.ndarray,
        n_leads: int,
        columns: Mapping[str, np.ndarray | pd.Series | pd.Categorical] | None = None,
        order: np.ndarray | None = None,
    ):
        """Prefer :meth:`build` or :meth:`from_arrays`; arrays here are already sorted by (code, time)."""
        self.codes = codes
        self.times = times
        self.n_leads = int(n_leads)
        self.snapshot_codes = snapshot_codes
        self.as_of = as_of
        self._raw_columns = dict(columns or {})
        self._order = order
        self._sorted_columns: dict[str, object] = {}
        bounds = np.searchsorted(codes, np.arange(self.n_leads + 1), side="left")
        known = snapshot_codes >= 0
        safe = np.where(known, snapshot_codes, 0)
        self.lead_start = np.where(known, bounds[safe], 0).astype(np.int64)
        lead_stop = np.where(known, bounds[safe + 1], 0).astype(np.int64)
        self.stop = lower_bound(times, self.lead_start, lead_stop, as_of)
        self._starts: dict[int, np.ndarray] = {}
        self._prefix_cache: tuple[object, np.ndarray] | None = None

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def build(cls, events: pd.DataFrame, snapshots: pd.DataFrame) -> "EventTimeline":
        """Code ``events`` by the leads of ``snapshots`` and sort them once by (lead, time).

        ``events`` needs ``lead_id``, ``timestamp``, ``event_type`` (other columns are attributes
        for :meth:`event_mask`); ``snapshots`` needs ``lead_id`` and ``as_of`` and keeps its row
        order. Events of leads without a snapshot are ignored.
        """
        for table, frame, needed in (("events", events, ("lead_id", "timestamp")), ("snapshots", snapshots, ("lead_id", "as_of"))):
            missing = [c for c in needed if c not in frame.columns]
            if missing:
                raise LeadDataError(
                    f"<{table} table>: missing column(s) {', '.join(map(repr, missing))} "
                    f"(columns present: {', '.join(map(str, frame.columns[:12]))})"
                )
        leads = pd.Index(pd.unique(snapshots["lead_id"].astype(str).to_numpy()))
        snapshot_codes = leads.get_indexer(snapshots["lead_id"].astype(str).to_numpy()).astype(np.int32)
        event_codes = _lead_codes(leads, events["lead_id"])
        keep = np.flatnonzero(event_codes >= 0)
        codes = event_codes[keep]
        times = to_ns(events["timestamp"], "<events table>: column 'timestamp'")[keep]
        as_of = to_ns(snapshots["as_of"], "<snapshots table>: column 'as_of'")
        columns = {name: events[name] for name in events.columns if name not in ("lead_id", "timestamp")}
        return cls.from_arrays(codes, times, snapshot_codes, as_of, len(leads), columns, rows=keep)

    @classmethod
    def from_arrays(
        cls,
        codes: np.ndarray,
        times: np.ndarray,
        snapshot_codes: np.ndarray,
        as_of: np.ndarray,
        n_leads: int,
        columns: Mapping[str, object] | None = None,
        rows: np.ndarray | None = None,
    ) -> "EventTimeline":
        """Build from integer lead codes (``0 <= code < n_leads``) and int64 ns times, in any order.

        ``snapshot_codes`` gives each snapshot's lead code (-1: a lead without events). ``columns``
        are attribute columns aligned with the events before ``rows`` (the positions kept) is applied.
        """
        codes = np.asarray(codes)
        times = np.asarray(times, dtype=np.int64)
        order = sort_order(codes, times)
        if order is not None:
            codes, times = codes[order], times[order]
            rows = order if rows is None else rows[order]
        return cls(codes, times, np.asarray(snapshot_codes), np.asarray(as_of, dtype=np.int64), n_leads, columns, rows)

    # -- selecting events ------------------------------------------------------------------
    @property
    def n_snapshots(self) -> int:
        return len(self.as_of)

    @property
    def n_events(self) -> int:
        return len(self.times)

    def column(self, name: str):
        """An attribute column of the events, in the timeline's sorted order (numpy or Categorical)."""
        if name not in self._sorted_columns:
            if name not in self._raw_columns:
                raise KeyError(f"the events have no column {name!r} (columns: {sorted(self._raw_columns)})")
            raw = self._raw_columns[name]
            values = raw.array if isinstance(raw, pd.Series) else raw
            if isinstance(values, pd.Categorical) or isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
                values = pd.Categorical(values)
                codes = values.codes if self._order is None else values.codes[self._order]
                values = pd.Categorical.from_codes(codes, dtype=values.dtype)
            else:
                values = np.asarray(values)
                values = values if self._order is None else values[self._order]
            self._sorted_columns[name] = values
        return self._sorted_columns[name]

    def value_mask(self, name: str, value: object | Sequence) -> np.ndarray:
        """Events whose column ``name`` equals ``value`` (or any of a list of values), as strings."""
        wanted = [value] if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) else list(value)
        values = self.column(name)
        if isinstance(values, pd.Categorical):
            cats = values.categories.astype(str)
            hit = np.isin(cats, [str(v) for v in wanted])
            return hit[values.codes] & (values.codes >= 0)
        if values.dtype.kind in "iufb" and all(isinstance(v, (int, float, bool, np.number)) for v in wanted):
            return np.isin(values, wanted)
        return pd.Series(values, copy=False).astype(str).isin([str(v) for v in wanted]).to_numpy() & pd.notna(values)

    def event_mask(
        self, event_type: str | Sequence[str] | None = None, where: Mapping[str, object | Sequence] | None = None
    ) -> np.ndarray:
        """Boolean mask over the sorted events: of ``event_type`` and matching every ``where`` filter."""
        mask = np.ones(self.n_events, dtype=bool)
        if event_type is not None:
            mask &= self.value_mask("event_type", event_type)
        for name, value in (where or {}).items():
            mask &= self.value_mask(name, value)
        return mask

    # -- ranges ----------------------------------------------------------------------------
    def start(self, window_days: float | None = None) -> np.ndarray:
        """Per snapshot, the first event index inside the window (``as_of - W <= timestamp``)."""
        if window_days is None:
            return self.lead_start
        width = window_ns(window_days)
        if width not in self._starts:
            self._starts[width] = lower_bound(self.times, self.lead_start, self.stop, self.as_of - width)
        return self._starts[width]

    def _prefix(self, mask: np.ndarray) -> np.ndarray:
        """``prefix[i]`` = number of masked events before index i (cached for the last mask)."""
        if self._prefix_cache is not None and self._prefix_cache[0] is mask:
            return self._prefix_cache[1]
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.n_events,):
            raise ValueError(f"mask has shape {mask.shape}, expected ({self.n_events},)")
        dtype = np.int32 if self.n_events < 2**31 - 1 else np.int64
        prefix = np.zeros(self.n_events + 1, dtype=dtype)
        np.cumsum(mask, dtype=dtype, out=prefix[1:])
        self._prefix_cache = (mask, prefix)
        return prefix

    # -- queries ---------------------------------------------------------------------------
    def count(self, mask: np.ndarray | None = None, window_days: float | None = None) -> np.ndarray:
        """Per snapshot, the number of masked events in the window (all before as_of when None)."""
        start = self.start(window_days)
        if mask is None:
            return (self.stop - start).astype(np.int64)
        prefix = self._prefix(mask)
        return (prefix[self.stop] - prefix[start]).astype(np.int64)

    def days_since_last(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Per snapshot, days (float) from the last masked event before as_of to as_of; NaN if none."""
        if self.n_events == 0:
            return np.full(self.n_snapshots, np.nan)
        if mask is None:
            last = self.stop - 1
            found = self.stop > self.lead_start
        else:
            prefix = self._prefix(mask)
            positions = np.flatnonzero(mask)
            if len(positions) == 0:
                return np.full(self.n_snapshots, np.nan)
            before = prefix[self.stop].astype(np.int64)
            found = before > prefix[self.lead_start]
            last = positions[np.maximum(before - 1, 0)]
        age = self.as_of - self.times[np.where(found, last, 0)]
        return np.where(found, age / DAY_NS, np.nan)

    def first_after(self, mask: np.ndarray | None, after: np.ndarray | None = None) -> np.ndarray:
        """Per snapshot, the time (int64 ns) of the first masked event before as_of and strictly after
        ``after`` (ns; None: any); ``np.iinfo(np.int64).min`` where there is none.

        Used for ordered paths ("step k happened after step k-1").
        """
        if mask is None:
            mask = np.ones(self.n_events, dtype=bool)
        prefix = self._prefix(mask)
        positions = np.flatnonzero(mask)
        lo = prefix[self.lead_start].astype(np.int64)
        hi = prefix[self.stop].astype(np.int64)
        if after is not None:
            masked_times = self.times[positions]
            after = np.asarray(after, dtype=np.int64)
            has_after = after != _NO_TIME
            lo = np.where(has_after, lower_bound(masked_times, lo, hi, after, strict=False), lo)
        found = lo < hi
        times = self.times[positions[np.where(found, lo, 0)]] if len(positions) else np.zeros(len(lo), np.int64)
        return np.where(found, times, _NO_TIME)

    def active_days(self, mask: np.ndarray | None = None, window_days: float | None = None) -> np.ndarray:
        """Per snapshot, distinct UTC calendar days with a masked event in the window."""
        positions = np.arange(self.n_events) if mask is None else np.flatnonzero(mask)
        prefix = None if mask is None else self._prefix(mask)
        start = self.start(window_days)
        lo = start if prefix is None else prefix[start].astype(np.int64)
        hi = self.stop if prefix is None else prefix[self.stop].astype(np.int64)
        days = np.floor_divide(self.times[positions], DAY_NS)
        codes = self.codes[positions]
        new_day = np.ones(len(positions), dtype=bool)
        new_day[1:] = (days[1:] != days[:-1]) | (codes[1:] != codes[:-1])
        firsts = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(new_day, out=firsts[1:])
        any_event = hi > lo
        # the first event in the window may continue a day whose first event lies before the window
        carried = any_event & ~new_day[np.minimum(lo, max(len(positions) - 1, 0))] if len(positions) else any_event
        return firsts[hi] - firsts[lo] + carried.astype(np.int64)

    def weighted_sum(self, weights: np.ndarray, window_days: float | None = None) -> np.ndarray:
        """Per snapshot, the sum of per-event ``weights`` (aligned with the sorted events) in the window."""
        weights = np.asarray(weights, dtype=np.float64)
        return self._scan(weights, None, window_days)

    def decayed_sum(
        self, mask: np.ndarray | None, half_life_days: float, window_days: float | None = None
    ) -> np.ndarray:
        """Per snapshot, the sum of ``0.5 ** (age_days / half_life_days)`` over masked events in the window."""
        weights = np.ones(self.n_events) if mask is None else np.asarray(mask, dtype=np.float64)
        return self._scan(weights, window_ns(half_life_days), window_days)

    def _scan(self, weights: np.ndarray, half_life: int | None, window_days: float | None) -> np.ndarray:
        """Sums of (optionally decayed) weights before as_of, minus the part before the window start.

        Every query instant q (as_of, and as_of - W for windows) of a lead is sorted by time; the
        events between two consecutive instants of a lead belong to the later one, so each event is
        touched once and decay weights stay in (0, 1]. A running total then walks each lead's
        instants in rank order (a Python loop over ranks, vectorised across leads).
        """
        if window_days is None:
            totals = self._running(weights, half_life, self.as_of, self.stop)
            return totals
        width = window_ns(window_days)
        q_time = np.concatenate([self.as_of, self.as_of - width])
        q_stop = np.concatenate([self.stop, self.start(window_days)])
        totals = self._running(weights, half_life, q_time, q_stop, repeat=2)
        now, before = totals[: self.n_snapshots], totals[self.n_snapshots :]
        factor = 1.0 if half_life is None else 0.5 ** (width / half_life)
        result = now - factor * before
        empty = self.stop == self.start(window_days)
        return np.where(empty, 0.0, result if half_life is None else np.maximum(result, 0.0))

    def _running(
        self, weights: np.ndarray, half_life: int | None, q_time: np.ndarray, q_stop: np.ndarray, repeat: int = 1
    ) -> np.ndarray:
        q_code = np.tile(self.snapshot_codes, repeat)
        q_start = np.tile(self.lead_start, repeat)
        order = np.lexsort((q_time, q_code))
        s_code, s_time, s_stop = q_code[order], q_time[order], q_stop[order]
        same_lead = np.zeros(len(order), dtype=bool)
        same_lead[1:] = (s_code[1:] == s_code[:-1]) & (s_code[1:] >= 0)
        prev_stop = np.where(same_lead, np.roll(s_stop, 1), q_start[order])
        lengths = np.maximum(s_stop - prev_stop, 0)
        owner = np.repeat(np.arange(len(order)), lengths)
        if len(owner):
            event_index = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(prev_stop, lengths)
            values = weights[event_index]
            if half_life is not None:
                values = values * np.exp2(-(s_time[owner] - self.times[event_index]) / half_life)
            increments = np.bincount(owner, weights=values, minlength=len(order))
        else:
            increments = np.zeros(len(order))
        rank = np.zeros(len(order), dtype=np.int64)
        if len(order):
            run_start = np.flatnonzero(~same_lead)
            rank = np.arange(len(order)) - np.repeat(run_start, np.diff(np.append(run_start, len(order))))
        totals = increments
        by_rank = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[by_rank], np.arange(1, rank.max(initial=0) + 2))
        for k in range(1, len(bounds)):
            idx = by_rank[bounds[k - 1] : bounds[k]]
            carry = totals[idx - 1]
            if half_life is not None:
                carry = carry * np.exp2(-(s_time[idx] - s_time[idx - 1]) / half_life)
            totals[idx] += carry
        result = np.empty(len(order))
        result[order] = totals
        return result


def _lead_codes(leads: pd.Index, lead_ids: pd.Series) -> np.ndarray:
    """Each event's position in ``leads`` (-1 for leads without a snapshot), hashing each id once."""
    ids = lead_ids.astype(str) if not isinstance(lead_ids.dtype, pd.CategoricalDtype) else lead_ids
    if isinstance(ids.dtype, pd.CategoricalDtype):
        cat = ids.array
        lookup = leads.get_indexer(cat.categories.astype(str))
        return np.where(cat.codes >= 0, lookup[cat.codes], -1).astype(np.int32)
    codes, uniques = pd.factorize(ids.to_numpy(), sort=False)
    lookup = leads.get_indexer(pd.Index(uniques).astype(str))
    return lookup[codes].astype(np.int32) if len(codes) else np.zeros(0, np.int32)
