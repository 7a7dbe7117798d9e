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
from leadml.features.behaviour_arrays import BLOCK_EVENTS, expand, lower_bound, running_sums, sort_order

DAY_NS = 86_400 * 10**9
BLOCK_CELLS = 1 << 20  # (snapshot, code, bucket) cells counted per block
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


def new_day_flags(times: np.ndarray) -> np.ndarray:
    """``flags[i]``: event i falls on another UTC calendar day than event i - 1 (``flags[0]`` True).

    Works in blocks so that the day numbers (int64 floor division) never take a full-size array.
    """
    flags = np.ones(len(times), dtype=bool)
    for first in range(1, len(times), BLOCK_EVENTS):
        block = times[first - 1 : first + BLOCK_EVENTS]
        days = block // DAY_NS
        np.not_equal(days[1:], days[:-1], out=flags[first : first + len(days) - 1])
    return flags


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
        bounds = np.zeros(self.n_leads + 1, dtype=np.int64)
        np.cumsum(np.bincount(codes, minlength=self.n_leads), out=bounds[1:])  # codes are sorted
        known = snapshot_codes >= 0
        safe = np.where(known, snapshot_codes, 0)
        self.lead_start = np.where(known, bounds[safe], 0).astype(np.int64)
        lead_stop = np.where(known, bounds[safe + 1], 0).astype(np.int64)
        self.stop = lower_bound(times, self.lead_start, lead_stop, as_of)
        self._starts: dict[int, np.ndarray] = {}
        self._prefix_cache: tuple[object, np.ndarray, np.ndarray] | None = None
        self._all_days: tuple[np.ndarray, np.ndarray] | None = None
        self._single: np.ndarray | bool | None = None

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def build(cls, events: pd.DataFrame, snapshots: pd.DataFrame) -> "EventTimeline":
        """Code ``events`` by the leads of ``snapshots`` and sort them once by (lead, time).

        ``events`` needs ``lead_id``, ``timestamp``, ``event_type`` (other columns are attributes
        for :meth:`event_mask`); ``snapshots`` needs ``lead_id`` and ``as_of`` and keeps its row
        order. Events of leads without a snapshot are ignored.
        """
        required = (("events", events, ("lead_id", "timestamp", "event_type")), ("snapshots", snapshots, ("lead_id", "as_of")))
        for table, frame, needed in required:
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
        as_of = np.asarray(as_of, dtype=np.int64)
        return cls(codes, times, np.asarray(snapshot_codes), as_of, n_leads, columns, rows)

    # -- selecting events ------------------------------------------------------------------
    @property
    def n_snapshots(self) -> int:
        return len(self.as_of)

    @property
    def n_events(self) -> int:
        return len(self.times)

    @property
    def column_names(self) -> list[str]:
        """The attribute columns (and ``event_type``) that :meth:`event_mask` can filter on."""
        return list(self._raw_columns)

    def column(self, name: str):
        """An attribute column of the events, in the timeline's sorted order (numpy or Categorical)."""
        if name not in self._sorted_columns:
            if name not in self._raw_columns:
                raise KeyError(f"the events have no column {name!r} (columns: {sorted(self._raw_columns)})")
            raw = self._raw_columns[name]
            values = raw.array if isinstance(raw, pd.Series) else raw
            if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
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
        single = isinstance(value, (str, bytes)) or not isinstance(value, Sequence)
        wanted = [value] if single else list(value)
        values = self.column(name)
        if isinstance(values, pd.Categorical):
            hit = np.flatnonzero(np.isin(values.categories.astype(str), [str(v) for v in wanted]))
            if len(hit) == 1:
                return values.codes == hit[0]
            return np.isin(values.codes, hit)
        if values.dtype.kind in "iufb" and all(isinstance(v, (int, float, bool, np.number)) for v in wanted):
            return np.isin(values, wanted)
        text = pd.Series(values, copy=False).astype(str)
        return text.isin([str(v) for v in wanted]).to_numpy() & pd.notna(values)

    def codes_of(self, name: str, values: Sequence) -> np.ndarray:
        """Each sorted event's position of its ``name`` value in ``values`` (-1: another or missing)."""
        wanted = pd.Index([str(v) for v in values])
        width = np.int8 if len(wanted) < 127 else np.int16 if len(wanted) < 32_000 else np.int32
        column = self.column(name)
        if isinstance(column, pd.Categorical):
            categories, codes = column.categories, column.codes
        else:
            codes, categories = pd.factorize(column)
        lookup = np.append(wanted.get_indexer(pd.Index(categories).astype(str)), -1).astype(width)
        return lookup[codes]  # a missing value has code -1: the appended "not wanted"

    def event_mask(
        self,
        event_type: str | Sequence[str] | None = None,
        where: Mapping[str, object | Sequence] | None = None,
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
        if self._prefix_cache is not None:
            seen, same, prefix = self._prefix_cache
            if seen is mask and np.array_equal(same, mask):  # the same mask, not changed in place
                return prefix
        checked = np.asarray(mask, dtype=bool)
        if checked.shape != (self.n_events,):
            raise ValueError(f"mask has shape {checked.shape}, expected ({self.n_events},)")
        dtype = np.int32 if self.n_events < 2**31 - 1 else np.int64
        prefix = np.zeros(self.n_events + 1, dtype=dtype)
        np.cumsum(checked, dtype=dtype, out=prefix[1:])
        self._prefix_cache = (mask, checked.copy(), prefix)
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
        if len(positions) == 0:
            return np.full(len(lo), _NO_TIME)
        times = self.times[positions[np.where(found, lo, 0)]]
        return np.where(found, times, _NO_TIME)

    def active_days(self, mask: np.ndarray | None = None, window_days: float | None = None) -> np.ndarray:
        """Per snapshot, distinct UTC calendar days with a masked event in the window."""
        start = self.start(window_days)
        if mask is None:
            lo, hi = start, self.stop
            new_day, firsts = self._day_starts(None)
        else:
            prefix = self._prefix(mask)
            lo, hi = prefix[start].astype(np.int64), prefix[self.stop].astype(np.int64)
            new_day, firsts = self._day_starts(np.flatnonzero(mask))
        if len(new_day) == 0:
            return np.zeros(self.n_snapshots, dtype=np.int64)
        # the first event in the window may continue a day whose first event lies before the window
        carried = (hi > lo) & ~new_day[np.minimum(lo, len(new_day) - 1)]
        return firsts[hi] - firsts[lo] + carried

    def _day_starts(self, positions: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Flags of events that start a new UTC day (vs the previous selected event), and their prefix.

        Across two leads a flag may be wrong, but only for a lead's first event, which the carry in
        :meth:`active_days` corrects. Cached for all events (``positions`` None).
        """
        if positions is None and self._all_days is not None:
            return self._all_days
        new_day = new_day_flags(self.times if positions is None else self.times[positions])
        firsts = np.zeros(len(new_day) + 1, dtype=np.int32 if len(new_day) < 2**31 - 1 else np.int64)
        np.cumsum(new_day, out=firsts[1:])
        if positions is None:
            self._all_days = (new_day, firsts)
        return new_day, firsts

    # -- many categories at once -----------------------------------------------------------
    def count_by(
        self, codes: np.ndarray, n_codes: int, windows: Sequence[float | None], last: bool = False
    ) -> tuple[dict, np.ndarray | None]:
        """Per snapshot and code, the events in each window, and optionally the last event's time.

        ``codes`` gives each sorted event a category in ``[0, n_codes)`` (-1: not counted), such as
        its event type. Returns ``({window: counts (n_snapshots, n_codes)}, last)`` where ``last``
        holds int64 ns times (int64 min: none before as_of), or None when not asked for. One pass
        serves every window and code: each event's age picks its bucket (the narrowest window
        holding it, "older", or "not yet"), a ``bincount`` counts (snapshot, code, bucket) cells
        and a cumulative sum over buckets gives the window counts.
        """
        windows = list(dict.fromkeys(windows))
        widths = sorted(window_ns(w) for w in windows if w is not None)
        n_buckets = len(widths) + 2  # the windows, older, at or after as_of
        slots = n_codes + 1  # the codes and "not counted"
        counts = {w: np.zeros((self.n_snapshots, n_codes), dtype=np.int32) for w in windows}
        times = np.full((self.n_snapshots, n_codes), _NO_TIME, dtype=np.int64) if last else None
        if n_codes == 0 or self.n_snapshots == 0 or self.n_events == 0:
            return counts, times
        full = last or None in windows or not widths
        lo = self.lead_start if full else self.start(max(w for w in windows if w is not None))
        for rows, local, owner, event in self._event_blocks(lo, max(1, BLOCK_CELLS // (slots * n_buckets))):
            code = codes[event]
            age = self.as_of[owner] - self.times[event]
            bucket = np.zeros(len(age), dtype=np.int64)
            for width in widths:
                bucket += age > width
            future = age <= 0
            bucket[future] = n_buckets - 1
            cell = local * slots + np.where(code < 0, n_codes, code)
            counted = np.bincount(cell * n_buckets + bucket, minlength=len(rows) * slots * n_buckets)
            grid = counted.reshape(len(rows), slots, n_buckets)
            running = np.zeros((len(rows), n_codes), dtype=np.int32)
            for k in range(len(widths) + 1):  # window k holds buckets 0..k; k = len(widths): all
                running += grid[:, :n_codes, k]
                for window in windows:
                    if k == (len(widths) if window is None else widths.index(window_ns(window))):
                        counts[window][rows] = running
            if times is not None:
                index = np.arange(event.start, event.stop) if isinstance(event, slice) else event
                latest = np.full(len(rows) * slots, -1, dtype=np.int64)
                np.maximum.at(latest, cell, np.where(future | (code < 0), -1, index))
                latest = latest.reshape(len(rows), slots)[:, :n_codes]
                times[rows] = np.where(latest >= 0, self.times[np.maximum(latest, 0)], _NO_TIME)
        return counts, times

    def _event_blocks(self, lo: np.ndarray, max_rows: int):
        """Yield ``(rows, local, owner, event)``: blocks of snapshots with their events in ``[lo, stop)``.

        ``rows`` are the block's snapshots, ``owner`` each listed event's snapshot and ``local`` its
        position in ``rows``; ``event`` indexes the events (a slice or an index array). When every
        lead has one snapshot, a block is a run of leads and lists all their events (callers drop
        the ones at or after as_of by age); otherwise each snapshot's range is listed.
        """
        lead_snapshot = self._lead_snapshot()
        if lead_snapshot is None:
            for first, last, owner, event in expand(lo, self.stop, max_rows):
                yield np.arange(first, last), owner - first, owner, event
            return
        bounds = np.searchsorted(self.codes, np.arange(0, self.n_leads + 1, max_rows))
        bounds = np.append(bounds, len(self.codes)) if bounds[-1] != len(self.codes) else bounds
        for k in range(len(bounds) - 1):
            first_lead = k * max_rows
            rows = lead_snapshot[first_lead : min(first_lead + max_rows, self.n_leads)]
            event = slice(int(bounds[k]), int(bounds[k + 1]))
            local = self.codes[event].astype(np.int64) - first_lead
            yield rows, local, rows[local], event

    def _lead_snapshot(self) -> np.ndarray | None:
        """The snapshot of each lead when every lead has exactly one, else None."""
        if self._single is None:
            known = self.snapshot_codes[self.snapshot_codes >= 0]
            single = len(known) == self.n_snapshots == self.n_leads
            single = single and not np.any(np.bincount(known, minlength=self.n_leads) != 1)
            self._single = np.zeros(self.n_leads, np.int64) if single else False
            if single:
                self._single[self.snapshot_codes] = np.arange(self.n_snapshots)
        return None if self._single is False else self._single

    def weighted_sum(self, weights: np.ndarray, window_days: float | None = None) -> np.ndarray:
        """Per snapshot, the sum of per-event ``weights`` (aligned with the sorted events) in the window."""
        weights = np.asarray(weights, dtype=np.float64)
        return self._scan(weights, None, window_days)

    def decayed_sum(
        self, mask: np.ndarray | None, half_life_days: float, window_days: float | None = None
    ) -> np.ndarray:
        """Per snapshot, the sum of ``0.5 ** (age_days / half_life_days)`` over masked events in the window.

        Exact to float rounding without a window; with one it is the total before as_of minus the
        decayed total before the window start (relative error grows like ``2 ** (W / H)``).
        """
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
            if half_life is not None and self._lead_snapshot() is not None:
                return self._decayed_single(weights, half_life)
            return self._running(weights, half_life, self.as_of, self.stop)
        width = window_ns(window_days)
        q_time = np.concatenate([self.as_of, self.as_of - width])
        q_stop = np.concatenate([self.stop, self.start(window_days)])
        totals = self._running(weights, half_life, q_time, q_stop, repeat=2)
        now, before = totals[: self.n_snapshots], totals[self.n_snapshots :]
        factor = 1.0 if half_life is None else 0.5 ** (width / half_life)
        result = now - factor * before
        empty = self.stop == self.start(window_days)
        return np.where(empty, 0.0, result if half_life is None else np.maximum(result, 0.0))

    def _decayed_single(self, weights: np.ndarray, half_life: int) -> np.ndarray:
        """Decayed sums when every lead has one snapshot: each event weighs against its own as_of."""
        totals = np.zeros(self.n_snapshots)
        for rows, local, owner, event in self._event_blocks(self.lead_start, BLOCK_EVENTS // 16):
            age = self.as_of[owner] - self.times[event]
            values = np.where(age > 0, weights[event] * np.exp2(-age / half_life), 0.0)
            totals[rows] += np.bincount(local, weights=values, minlength=len(rows))
        return totals

    def _running(
        self,
        weights: np.ndarray,
        half_life: int | None,
        q_time: np.ndarray,
        q_stop: np.ndarray,
        repeat: int = 1,
    ) -> np.ndarray:
        q_code = np.tile(self.snapshot_codes, repeat)
        return running_sums(
            self.times, weights, half_life, q_code, q_time, q_stop, np.tile(self.lead_start, repeat)
        )


def _lead_codes(leads: pd.Index, lead_ids: pd.Series) -> np.ndarray:
    """Each event's position in ``leads`` (-1 for leads without a snapshot), hashing each id once.

    The ids are dictionary-encoded by Arrow (one hash per row, in C, no Python strings), then only
    the distinct ids are looked up among the snapshots' leads.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(lead_ids.dtype, pd.CategoricalDtype):
        categories, codes = lead_ids.cat.categories, lead_ids.cat.codes.to_numpy()
    else:
        values = lead_ids if pd.api.types.is_string_dtype(lead_ids.dtype) else lead_ids.astype(str)
        encoded = pc.dictionary_encode(pa.array(values, from_pandas=True))
        if isinstance(encoded, pa.ChunkedArray):  # Arrow-backed strings come in chunks
            empty = pa.array([], pa.dictionary(pa.int32(), pa.string()))
            encoded = encoded.combine_chunks() if encoded.num_chunks else empty
        if encoded.null_count:
            encoded = pa.DictionaryArray.from_arrays(pc.fill_null(encoded.indices, -1), encoded.dictionary)
        categories = encoded.dictionary.to_pandas()
        codes = np.asarray(encoded.indices)
    lookup = np.append(leads.get_indexer(pd.Index(categories).astype(str)), -1).astype(np.int32)
    return lookup[codes]  # -1 (a missing id) takes the appended "no snapshot"
