"""Array kernels under the behaviour features: stable sorting, vectorised bisection, range expansion.

Pure numpy on integer arrays, no notion of leads or time windows (those live in
:mod:`leadml.features.timeline.engine`). Each function replaces what would otherwise be a Python loop per
lead by a few whole-array operations.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# work in blocks whose temporaries (a few MB) the allocator recycles instead of mapping fresh pages
BLOCK_EVENTS = 1 << 20


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


def expand(
    lo: np.ndarray, hi: np.ndarray, max_snapshots: int, max_events: int = BLOCK_EVENTS
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield ``(first, last, owner, event)`` blocks listing every event index in ``[lo, hi)``.

    ``owner`` is the snapshot of each listed event; blocks hold snapshots ``first .. last - 1``,
    at most ``max_snapshots`` of them and about ``max_events`` events, so memory stays bounded.
    """
    lengths = np.maximum(hi - lo, 0).astype(np.int64)
    ends = np.cumsum(lengths)
    first, n = 0, len(lengths)
    while first < n:
        done = ends[first - 1] if first else 0
        enough = int(np.searchsorted(ends, done + max_events, "right"))
        last = min(n, first + max_snapshots, max(first + 1, enough))
        counts = lengths[first:last]
        owner = np.repeat(np.arange(first, last), counts)
        offsets = np.cumsum(counts) - counts
        event = np.arange(len(owner), dtype=np.int64) + np.repeat(lo[first:last] - offsets, counts)
        yield first, last, owner, event
        first = last


def running_sums(
    times: np.ndarray,
    weights: np.ndarray,
    half_life: int | None,
    q_code: np.ndarray,
    q_time: np.ndarray,
    q_stop: np.ndarray,
    q_start: np.ndarray,
) -> np.ndarray:
    """Per query instant, the sum of ``weights`` of its lead's events before it, optionally decayed.

    A query is (lead code, instant ``q_time``, ``q_stop`` = index of the lead's first event at or
    after the instant, ``q_start`` = the lead's first event). The queries of a lead are sorted by
    time; the events between two consecutive ones belong to the later one, so every event is
    touched once and its decay weight ``2 ** ((time - q_time) / half_life)`` stays in (0, 1]. A
    running total then walks each lead's queries in rank order (a loop over ranks, not leads).
    """
    order = np.lexsort((q_time, q_code))
    s_code, s_time, s_stop = q_code[order], q_time[order], q_stop[order]
    same_lead = np.zeros(len(order), dtype=bool)
    same_lead[1:] = (s_code[1:] == s_code[:-1]) & (s_code[1:] >= 0)
    prev_stop = np.where(same_lead, np.roll(s_stop, 1), q_start[order])
    totals = np.zeros(len(order))
    for _, _, owner, event in expand(prev_stop, np.maximum(s_stop, prev_stop), len(order) + 1):
        values = weights[event]
        if half_life is not None:
            values = values * np.exp2((times[event] - s_time[owner]) / half_life)
        totals += np.bincount(owner, weights=values, minlength=len(order))
    rank = np.zeros(len(order), dtype=np.int64)
    if len(order):
        run_start = np.flatnonzero(~same_lead)
        rank = np.arange(len(order)) - np.repeat(run_start, np.diff(np.append(run_start, len(order))))
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(1, rank.max(initial=0) + 2))
    for k in range(1, len(bounds)):
        index = by_rank[bounds[k - 1] : bounds[k]]
        carry = totals[index - 1]
        if half_life is not None:
            carry = carry * np.exp2(-(s_time[index] - s_time[index - 1]) / half_life)
        totals[index] += carry
    result = np.empty(len(order))
    result[order] = totals
    return result
