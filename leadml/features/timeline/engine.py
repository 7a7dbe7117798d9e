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
from typing import Literal

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.features.timeline.arrays import lower_bound, sort_order
from leadml.features.timeline.codes import frame_lead_codes
from leadml.features.timeline.kernel import DAY_NS, count_by, new_day_flags, scan_sums

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
        self._text_codes: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        # lead k's events are [lead_bounds[k], lead_bounds[k + 1]) (codes are sorted)
        fits = codes.dtype.kind in "iu" and np.iinfo(codes.dtype).max >= self.n_leads
        needles = np.arange(self.n_leads + 1, dtype=codes.dtype if fits else np.int64)
        self.lead_bounds = np.searchsorted(codes, needles).astype(np.int64)
        known = snapshot_codes >= 0
        safe = np.where(known, snapshot_codes, 0)
        self.lead_start = np.where(known, self.lead_bounds[safe], 0)
        self._lead_stop = np.where(known, self.lead_bounds[safe + 1], 0)
        self._stop: np.ndarray | None = None
        self._starts: dict[int, np.ndarray] = {}
        self._prefix_cache: tuple[object, np.ndarray, np.ndarray] | None = None
        self._all_days: tuple[np.ndarray, np.ndarray] | None = None
        self._single: np.ndarray | Literal[False] | None = None  # False: not one snapshot per lead

    @property
    def stop(self) -> np.ndarray:
        """Per snapshot, the index of its lead's first event at or after as_of (computed on first use)."""
        if self._stop is None:
            self._stop = lower_bound(self.times, self.lead_start, self._lead_stop, self.as_of)
        return self._stop

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def build(cls, events: pd.DataFrame, snapshots: pd.DataFrame) -> EventTimeline:
        """Code ``events`` by the leads of ``snapshots`` and sort them once by (lead, time).

        ``events`` needs ``lead_id``, ``timestamp``, ``event_type`` (other columns are attributes
        for :meth:`event_mask`); ``snapshots`` needs ``lead_id`` and ``as_of`` and keeps its row
        order. Events of leads without a snapshot are ignored.
        """
        required = (
            ("events", events, ("lead_id", "timestamp", "event_type")),
            ("snapshots", snapshots, ("lead_id", "as_of")),
        )
        for table, frame, needed in required:
            missing = [c for c in needed if c not in frame.columns]
            if missing:
                raise LeadDataError(
                    f"<{table} table>: missing column(s) {', '.join(map(repr, missing))} "
                    f"(columns present: {', '.join(map(str, frame.columns[:12]))})"
                )
        leads = pd.Index(pd.unique(snapshots["lead_id"].astype(str).to_numpy()))
        snapshot_codes = leads.get_indexer(snapshots["lead_id"].astype(str).to_numpy()).astype(np.int32)
        event_codes = frame_lead_codes(leads, events["lead_id"])
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
    ) -> EventTimeline:
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
        wanted: list[object]
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            wanted = [value]
        else:
            wanted = list(value)
        values = self.column(name)
        if isinstance(values, pd.Categorical):
            hit = np.flatnonzero(np.isin(values.categories.astype(str), [str(v) for v in wanted]))
            if len(hit) == 1:
                return values.codes == hit[0]
            return np.isin(values.codes, hit)
        if values.dtype.kind in "iufb" and all(isinstance(v, (int, float, bool, np.number)) for v in wanted):
            return np.isin(values, np.asarray(wanted))  # what isin does with a list
        coded = self._coded_text(name, values)
        if coded is not None:  # each distinct text compared once, the events by their code
            codes, spellings = coded
            return np.isin(codes, np.flatnonzero(np.isin(spellings, [str(v) for v in wanted])))
        text = pd.Series(values, copy=False).astype(str)
        return text.isin([str(v) for v in wanted]).to_numpy() & pd.notna(values)

    def _coded_text(self, name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(codes, spellings)`` of a text column, once per column (missing values: code -1).

        None when some value is not a string: a hash table takes 1, 1.0 and True for one key,
        whose texts differ, so such a column is compared as text row by row.
        """
        if name not in self._text_codes:
            codes, spellings = pd.factorize(values)
            text_only = all(isinstance(spelling, str) for spelling in spellings)
            self._text_codes[name] = (codes, np.asarray(spellings, dtype=object)) if text_only else None
        return self._text_codes[name]

    def codes_of(self, name: str, values: Sequence) -> np.ndarray:
        """Each sorted event's position of its ``name`` value in ``values`` (-1: another or missing)."""
        codes, lookup = self.coded(name, values)
        return lookup[codes]  # a missing value has code -1: the appended "not wanted"

    def coded(self, name: str, values: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, lookup)`` with ``lookup[codes]`` equal to :meth:`codes_of` (``lookup[-1] = -1``).

        ``codes`` are the column's own category codes (no copy for a categorical column), so a
        caller working in blocks can map just the events it needs.
        """
        wanted = pd.Index([str(v) for v in values])
        width = np.int8 if len(wanted) < 127 else np.int16 if len(wanted) < 32_000 else np.int32
        column = self.column(name)
        if isinstance(column, pd.Categorical):
            categories, codes = column.categories, column.codes
        else:
            codes, categories = pd.factorize(column)
        return codes, np.append(wanted.get_indexer(pd.Index(categories).astype(str)), -1).astype(width)

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
        return self.start_ns(window_ns(window_days))

    def start_ns(self, width: int) -> np.ndarray:
        """:meth:`start` for a window of ``width`` integer nanoseconds (cached)."""
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
        serves every window and code (see :func:`~leadml.features.timeline.kernel.count_by`).
        """
        widths = {w: None if w is None else window_ns(w) for w in windows}
        return count_by(self, codes, n_codes, widths, last)

    def one_snapshot_per_lead(self) -> np.ndarray | None:
        """The snapshot of each lead when every lead has exactly one, else None (cached)."""
        if self._single is None:
            known = self.snapshot_codes[self.snapshot_codes >= 0]
            single = len(known) == self.n_snapshots == self.n_leads
            single = single and not np.any(np.bincount(known, minlength=self.n_leads) != 1)
            if single:
                lead_snapshot = np.zeros(self.n_leads, np.int64)
                lead_snapshot[self.snapshot_codes] = np.arange(self.n_snapshots)
                self._single = lead_snapshot
            else:
                self._single = False
        return None if self._single is False else self._single

    def weighted_sum(self, weights: np.ndarray, window_days: float | None = None) -> np.ndarray:
        """Per snapshot, the sum of per-event ``weights`` (aligned with the sorted events) in the window."""
        weights = np.asarray(weights, dtype=np.float64)
        return scan_sums(self, weights, None, None if window_days is None else window_ns(window_days))

    def decayed_sum(
        self, mask: np.ndarray | None, half_life_days: float, window_days: float | None = None
    ) -> np.ndarray:
        """Per snapshot, the sum of ``0.5 ** (age_days / half_life_days)`` over masked events in the window.

        Exact to float rounding without a window; with one it is the total before as_of minus the
        decayed total before the window start (relative error grows like ``2 ** (W / H)``).
        """
        weights = np.ones(self.n_events) if mask is None else np.asarray(mask, dtype=np.float64)
        width = None if window_days is None else window_ns(window_days)
        return scan_sums(self, weights, window_ns(half_life_days), width)
