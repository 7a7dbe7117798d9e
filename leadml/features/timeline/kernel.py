"""Whole-timeline passes of :class:`~leadml.features.timeline.engine.EventTimeline`, block by block.

:func:`standard_blocks` is the one pass behind the standard behaviour features: counts per event
type and window, the age of the last event of each type, all-events counts, distinct active days,
velocity and decayed engagement come from the same walk over blocks of snapshots with their
events. Each event's age picks its bucket (the narrowest window holding it, or "ignored" for
older and future events), one ``bincount`` over (type, bucket, snapshot) cells gives every count,
and a cumulative sum over buckets turns buckets into windows. Blocks stay small (about 10^5
cells), so the temporaries live in the CPU cache and the allocator recycles them instead of
mapping fresh pages. Its values equal the timeline's single queries (``count``,
``active_days``, ``decayed_sum``, ``count_by``) bit for bit; it only makes fewer passes.

The timeline's ``count_by`` and decayed sums (:func:`count_by`, :func:`scan_sums`) and the UTC day
flags of ``active_days`` (:func:`new_day_flags`) live here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from leadml.features.timeline.arrays import BLOCK_EVENTS, expand, lower_bound, running_sums

DAY_NS = 86_400 * 10**9
BLOCK_CELLS = 1 << 17  # (type, bucket, snapshot) cells per block: small enough for the CPU cache
NONE = np.iinfo(np.int64).max  # age of the last event of a type that has none
_NO_TIME = np.iinfo(np.int64).min


@dataclass
class BlockStats:
    """The standard features of one block of snapshots (``rows``), one array row per output row.

    ``type_counts[k][j]``: events of type j in window k (windows in the order asked);
    ``type_age[j]``: age in ns of the last event of type j before as_of (:data:`NONE`: none);
    ``counts[k]`` and ``active_days[k]``: all events and distinct UTC days in window k;
    ``velocity``: twice the events of the last ``velocity_ns`` minus those of twice as long;
    ``decayed[h]``: the decayed sums (float64), None when asked to leave them out.
    """

    rows: slice | np.ndarray
    type_counts: list[np.ndarray]
    type_age: np.ndarray
    counts: np.ndarray
    active_days: np.ndarray
    velocity: np.ndarray | None
    decayed: np.ndarray | None


def standard_blocks(
    timeline,
    type_codes: np.ndarray,
    type_lookup: np.ndarray,
    n_types: int,
    windows: Sequence[int],
    velocity_ns: int | None = None,
    half_lives: Sequence[int] = (),
) -> Iterator[BlockStats]:
    """Yield :class:`BlockStats` for blocks of snapshots covering every snapshot once.

    ``type_lookup[type_codes]`` gives each sorted event its type in ``[0, n_types)`` (-1: another
    type; see :meth:`~leadml.features.timeline.engine.EventTimeline.coded`);
    ``windows`` and ``half_lives`` are widths in integer ns. Decayed sums are computed only
    when every lead has one snapshot (pass ``half_lives`` then; see
    :meth:`~leadml.features.timeline.engine.EventTimeline.one_snapshot_per_lead`).
    """
    widths = sorted(set(windows) | ({velocity_ns, 2 * velocity_ns} if velocity_ns else set()))
    edges = np.array(widths, dtype=np.int64)
    picked = [widths.index(w) for w in windows]
    n_buckets = len(widths) + 1  # the windows, then "ignored" (older than every window, or not yet)
    slots = n_types + 1  # the types, then "another type"
    max_rows = max(1, BLOCK_CELLS // (slots * n_buckets))
    slot_of = np.append(np.arange(n_types, dtype=np.int64), n_types)[type_lookup]  # -1 reads the last entry
    for rows, local, age, events, n in snapshot_blocks(timeline, max_rows):
        ignored = age <= 0
        bucket = np.zeros(len(age), dtype=np.int8)
        for width in edges:
            bucket += (age > width).view(np.int8)
        bucket[ignored] = len(widths)
        slot = slot_of[type_codes[events]]  # a code of -1 (missing) reads the last entry too
        # counts: one bincount over (slot, bucket, snapshot), windows by a cumulative sum of buckets
        cell = slot * (n_buckets * n)
        cell += bucket.astype(np.int64) * n
        cell += local
        grid = np.bincount(cell, minlength=slots * n_buckets * n).reshape(slots, n_buckets, n)
        in_window = grid[:, : len(widths)].copy()
        for k in range(1, len(widths)):  # a cumulative sum over buckets (np.cumsum is slow on axis 1)
            in_window[:, k] += in_window[:, k - 1]
        counts = in_window.sum(axis=0)
        # the last event of each type: its age is the smallest among the type's events before as_of
        latest = np.full(slots * n, NONE, dtype=np.int64)
        slot[ignored] = n_types
        slot *= n
        slot += local
        np.minimum.at(latest, slot, age)
        # active days: events in the window minus those on the same UTC day as the previous event
        # of the same snapshot while that one is in the window too (then so is the later one)
        day = timeline.times[events] // DAY_NS
        repeat = (day[1:] == day[:-1]) & (local[1:] == local[:-1]) & ~ignored[1:]
        pair = bucket[:-1].astype(np.int64) * n
        pair += local[1:]
        repeats = np.bincount(pair[repeat], minlength=n_buckets * n).reshape(n_buckets, n)[: len(widths)]
        for k in range(1, len(widths)):
            repeats[k] += repeats[k - 1]
        active = counts - repeats
        velocity = None
        if velocity_ns:
            velocity = 2 * counts[widths.index(velocity_ns)] - counts[widths.index(2 * velocity_ns)]
        decayed = None
        if half_lives:
            decayed = np.empty((len(half_lives), n))
            for h, half_life in enumerate(half_lives):
                # exp2(-age / half_life), and exp2(-inf) = 0 for events at or after as_of
                values = age / -float(half_life)
                values[ignored] = -np.inf
                decayed[h] = np.bincount(local, weights=np.exp2(values, out=values), minlength=n)
        yield BlockStats(
            rows=rows,
            type_counts=[in_window[:n_types, k] for k in picked],
            type_age=latest.reshape(slots, n)[:n_types],
            counts=counts[picked],
            active_days=active[picked],
            velocity=velocity,
            decayed=decayed,
        )


def count_by(
    timeline, codes: np.ndarray, n_codes: int, widths: dict, last: bool = False
) -> tuple[dict, np.ndarray | None]:
    """:meth:`EventTimeline.count_by` with ``widths`` mapping each window to its ns width (None: all).

    Each event's age picks its bucket (the narrowest window holding it, "older", or "not yet"), a
    ``bincount`` counts (snapshot, code, bucket) cells and a cumulative sum over buckets gives
    the window counts.
    """
    edges = sorted(w for w in widths.values() if w is not None)
    n_buckets = len(edges) + 2  # the windows, older, at or after as_of
    slots = n_codes + 1  # the codes and "not counted"
    n_snapshots = timeline.n_snapshots
    counts = {w: np.zeros((n_snapshots, n_codes), dtype=np.int32) for w in widths}
    times = np.full((n_snapshots, n_codes), _NO_TIME, dtype=np.int64) if last else None
    if n_codes == 0 or n_snapshots == 0 or timeline.n_events == 0:
        return counts, times
    full = last or None in widths.values() or not edges
    lo = None if full else timeline.start_ns(edges[-1])
    for rows, local, age, event, n in snapshot_blocks(timeline, max(1, BLOCK_CELLS // (slots * n_buckets)), lo):
        code = codes[event]
        bucket = np.zeros(len(age), dtype=np.int64)
        for width in edges:
            bucket += age > width
        future = age <= 0
        bucket[future] = n_buckets - 1
        cell = local * slots + np.where(code < 0, n_codes, code)
        counted = np.bincount(cell * n_buckets + bucket, minlength=n * slots * n_buckets)
        grid = counted.reshape(n, slots, n_buckets)
        running = np.zeros((n, n_codes), dtype=np.int32)
        for k in range(len(edges) + 1):  # window k holds buckets 0..k; k = len(edges): all
            running += grid[:, :n_codes, k]
            for window, width in widths.items():
                if k == (len(edges) if width is None else edges.index(width)):
                    counts[window][rows] = running
        if times is not None:
            index = np.arange(event.start, event.stop) if isinstance(event, slice) else event
            latest = np.full(n * slots, -1, dtype=np.int64)
            np.maximum.at(latest, cell, np.where(future | (code < 0), -1, index))
            latest = latest.reshape(n, slots)[:, :n_codes]
            times[rows] = np.where(latest >= 0, timeline.times[np.maximum(latest, 0)], _NO_TIME)
    return counts, times


@dataclass
class ValueStats:
    """Per window (rows, in the order asked) and snapshot (columns): the sum, count and max of the
    valued events in the window; ``last_age`` is each snapshot's age in ns of its last valued
    event before as_of (:data:`NONE`: none)."""

    sums: np.ndarray
    counts: np.ndarray
    maxima: np.ndarray
    last_age: np.ndarray


def value_stats(timeline, values: np.ndarray, widths: Sequence[int]) -> ValueStats:
    """Sums, counts and maxima of ``values`` (float64 per sorted event; NaN: the event has no value
    or is of another type) in each window of ``widths`` ns, and the age of the last valued event.

    Only the valued events are touched: they keep their (lead, time) order, so each snapshot's
    events in a window are one run ``[start, stop)`` of them; runs are listed block by block
    (:func:`~leadml.features.timeline.arrays.expand`) and reduced in order, so a sum adds the same
    values in the same order whatever the chunking of the leads.
    """
    n = timeline.n_snapshots
    valued = np.flatnonzero(~np.isnan(values))
    before = np.zeros(timeline.n_events + 1, dtype=np.int64)
    np.cumsum(~np.isnan(values), out=before[1:])
    lo, hi = before[timeline.lead_start], before[timeline.stop]
    times, numbers = timeline.times[valued], values[valued]
    stats = ValueStats(
        sums=np.zeros((len(widths), n)),
        counts=np.zeros((len(widths), n), dtype=np.int64),
        maxima=np.full((len(widths), n), np.nan),
        last_age=np.full(n, NONE, dtype=np.int64),
    )
    found = hi > lo
    stats.last_age[found] = timeline.as_of[found] - times[hi[found] - 1]
    for k, width in enumerate(widths):
        start = lower_bound(times, lo, hi, timeline.as_of - width)
        for _, _, owner, event in expand(start, hi, BLOCK_EVENTS):
            if not len(event):
                continue
            runs = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            who = owner[runs]
            picked = numbers[event]
            stats.sums[k, who] = np.add.reduceat(picked, runs)
            stats.counts[k, who] = np.diff(np.append(runs, len(event)))
            stats.maxima[k, who] = np.maximum.reduceat(picked, runs)
    return stats


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


def scan_sums(timeline, weights: np.ndarray, half_life: int | None, width: int | None) -> np.ndarray:
    """Per snapshot, sums of (optionally decayed) ``weights`` before as_of, minus the part before
    the window start (``width`` ns; None: no window). See ``EventTimeline.decayed_sum``.

    Every query instant q (as_of, and as_of - W for windows) of a lead is sorted by time; the
    events between two consecutive instants of a lead belong to the later one, so each event is
    touched once and decay weights stay in (0, 1]. A running total then walks each lead's
    instants in rank order (a Python loop over ranks, vectorised across leads).
    """
    if width is None:
        if half_life is not None and timeline.one_snapshot_per_lead() is not None:
            return _decayed_single(timeline, weights, half_life)
        return _running(timeline, weights, half_life, timeline.as_of, timeline.stop)
    q_time = np.concatenate([timeline.as_of, timeline.as_of - width])
    start = timeline.start_ns(width)
    totals = _running(timeline, weights, half_life, q_time, np.concatenate([timeline.stop, start]), repeat=2)
    now, before = totals[: timeline.n_snapshots], totals[timeline.n_snapshots :]
    factor = 1.0 if half_life is None else 0.5 ** (width / half_life)
    result = now - factor * before
    empty = timeline.stop == start
    return np.where(empty, 0.0, result if half_life is None else np.maximum(result, 0.0))


def _decayed_single(timeline, weights: np.ndarray, half_life: int) -> np.ndarray:
    """Decayed sums when every lead has one snapshot: each event weighs against its own as_of."""
    totals = np.zeros(timeline.n_snapshots)
    for rows, local, age, event, n in snapshot_blocks(timeline, BLOCK_EVENTS // 16):
        values = np.where(age > 0, weights[event] * np.exp2(-age / half_life), 0.0)
        totals[rows] += np.bincount(local, weights=values, minlength=n)
    return totals


def _running(timeline, weights, half_life, q_time: np.ndarray, q_stop: np.ndarray, repeat: int = 1) -> np.ndarray:
    q_code = np.tile(timeline.snapshot_codes, repeat)
    q_start = np.tile(timeline.lead_start, repeat)
    return running_sums(timeline.times, weights, half_life, q_code, q_time, q_stop, q_start)


def snapshot_blocks(timeline, max_rows: int, lo: np.ndarray | None = None):
    """Yield ``(rows, local, age, events, n)``: ``n`` snapshots ``rows`` and their listed events.

    ``local`` is each listed event's snapshot within the block and ``age`` its ``as_of - time``
    (ns); ``events`` indexes the timeline's events (a slice or an index array). With one snapshot
    per lead a block is a run of leads and lists all their events, later ones too (their age is
    not positive); otherwise each snapshot lists its events in ``[lo, stop)`` (``lo``: default
    the lead's first event).
    """
    lead_snapshot = timeline.one_snapshot_per_lead()
    if lead_snapshot is None:
        lo = timeline.lead_start if lo is None else lo
        for first, last, owner, event in expand(lo, timeline.stop, max_rows):
            local = owner - first
            age = timeline.as_of[first:last][local] - timeline.times[event]
            yield slice(first, last), local, age, event, last - first
        return
    bounds = timeline.lead_bounds
    in_order = bool(np.array_equal(lead_snapshot, np.arange(len(lead_snapshot))))
    lead_as_of = timeline.as_of if in_order else timeline.as_of[lead_snapshot]
    for first in range(0, timeline.n_leads, max_rows):
        last = min(first + max_rows, timeline.n_leads)
        lead_events = slice(int(bounds[first]), int(bounds[last]))
        local = timeline.codes[lead_events] - np.int64(first)
        age = lead_as_of[first:last][local] - timeline.times[lead_events]
        rows = slice(first, last) if in_order else lead_snapshot[first:last]
        yield rows, local, age, lead_events, last - first
