"""Per-rule queries on an :class:`EventTimeline`: counts, the k-th latest event, decayed sums.

The timeline decides what each snapshot can see (its ranges ``start(W) .. stop`` over events
sorted by lead and time); this module only reads those ranges for the events that one rule selects.
:class:`SelectedEvents` computes the prefix count of the selection once and answers every
question a rule asks from it, touching only the selected events: a rule on a rare event type costs
little even among 20,000,000 events.

What it adds to the timeline: the time of the k-th most recent selected event per snapshot (for a
once-firing rule with ``min_count: k`` and decay), a decayed sum that walks only the selected
events visible to each snapshot (falling back to :meth:`EventTimeline.decayed_sum` when snapshots
of the same lead overlap so much that this would repeat work many times), and the progress along
an ordered path of steps (:func:`path_progress`, for scenario rules).
"""

from __future__ import annotations

import numpy as np

from leadml.features.timeline.engine import EventTimeline, window_ns

# the direct decayed sum expands (snapshot, event) pairs in chunks of this many
_PAIRS_PER_CHUNK = 4_000_000
# ... and is used while the pairs number at most this many times the selected events (+ snapshots)
_MAX_REPEAT = 8
_NONE = np.iinfo(np.int64).min  # a path step not reached


class SelectedEvents:
    """The events selected by one mask, with per-snapshot ranges into them.

    Attributes:
        positions: indices (into the timeline's sorted events) of the selected events, ascending.
        prefix: ``prefix[i]`` = number of selected events among the first ``i`` events.
    """

    def __init__(self, timeline: EventTimeline, mask: np.ndarray):
        self.timeline = timeline
        self.mask = np.asarray(mask, dtype=bool)
        self.positions = np.flatnonzero(self.mask)
        dtype = np.int32 if timeline.n_events < 2**31 - 1 else np.int64
        self.prefix = np.zeros(timeline.n_events + 1, dtype=dtype)
        np.cumsum(self.mask, dtype=dtype, out=self.prefix[1:])
        self.hi = self.prefix[timeline.stop].astype(np.int64)
        self._lows: dict[float | None, np.ndarray] = {}

    def low(self, window_days: float | None) -> np.ndarray:
        """Per snapshot, the index (into ``positions``) of its first selected event in the window."""
        if window_days not in self._lows:
            self._lows[window_days] = self.prefix[self.timeline.start(window_days)].astype(np.int64)
        return self._lows[window_days]

    def count(self, window_days: float | None = None) -> np.ndarray:
        """Per snapshot, the number of selected events in the window."""
        return self.hi - self.low(window_days)

    def kth_latest_age_ns(self, k: int, window_days: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per snapshot: the count in the window and the age (as_of - time, ns) of the k-th latest.

        Where fewer than ``k`` selected events lie in the window the age is 0 (the count tells).
        """
        count = self.count(window_days)
        have = count >= k
        age = np.zeros(len(count), dtype=np.int64)
        if have.any():
            kth = self.positions[self.hi[have] - k]
            age[have] = self.timeline.as_of[have] - self.timeline.times[kth]
        return count, age

    def decayed_sum(self, half_life_days: float, window_days: float | None = None) -> np.ndarray:
        """Per snapshot, the sum of ``0.5 ** (age / half_life)`` over selected events in the window.

        An event exactly one half-life old adds exactly 0.5 (``exp2(-age_ns / half_life_ns)``).
        """
        lo = self.low(window_days)
        counts = self.hi - lo
        n_pairs = int(counts.sum())
        if n_pairs > _MAX_REPEAT * len(self.positions) + len(counts):
            return self.timeline.decayed_sum(self.mask, half_life_days, window_days)
        half_life = float(window_ns(half_life_days))
        totals = np.zeros(len(counts))
        ends = np.cumsum(counts)
        cut = np.searchsorted(ends, np.arange(_PAIRS_PER_CHUNK, n_pairs, _PAIRS_PER_CHUNK), side="left")
        for first, last in zip(np.r_[0, cut + 1], np.r_[cut + 1, len(counts)], strict=True):
            totals[first:last] = self._decayed_chunk(first, last, lo, counts, half_life)
        return totals

    def _decayed_chunk(self, first: int, last: int, lo: np.ndarray, counts: np.ndarray, half_life: float) -> np.ndarray:
        """Decayed sums of snapshots ``first:last`` by expanding their (snapshot, event) pairs."""
        part = counts[first:last]
        owner = np.repeat(np.arange(last - first), part)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(part) - part, part)
        events = self.positions[np.repeat(lo[first:last], part) + offset]
        age = self.timeline.as_of[first:last][owner] - self.timeline.times[events]
        return np.bincount(owner, weights=np.exp2(-age / half_life), minlength=last - first)


def path_progress(
    timeline: EventTimeline, step_masks: list[np.ndarray], max_gap_days: float | None, window_days: float | None
) -> np.ndarray:
    """Per snapshot, how many steps of an ordered path the lead completed before as_of (see :func:`path_walk`)."""
    return path_walk(timeline, step_masks, max_gap_days, window_days)[0]


def path_walk(
    timeline: EventTimeline,
    step_masks: list[np.ndarray],
    max_gap_days: float | None,
    window_days: float | None,
    *,
    first_times: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Walk an ordered path: per snapshot, the steps the lead completed before as_of (0 to all).

    Step k counts when an event matching it comes strictly after a counted step k - 1 and, with
    ``max_gap_days``, at most that many days after it; every step lies inside the window. The
    events are walked in time order keeping, per step, the latest time it was reached (and the
    latest before that, for events sharing a timestamp): the latest is the best start for the next
    step, so the walk finds the longest path any choice of events gives. It runs over the events'
    rank within each snapshot, vectorised across snapshots.

    Returns the steps done and, with ``first_times``, per snapshot and step when the step was first
    reached (int64 ns; int64 min where it was not: the earliest path, for the days between steps).
    """
    n, k_steps = timeline.n_snapshots, len(step_masks)
    if n == 0 or timeline.n_events == 0 or k_steps == 0:
        done = np.zeros(n, dtype=np.int64)
        return done, (np.full((n, k_steps), _NONE, dtype=np.int64) if first_times else None)
    latest = np.full((n, k_steps), _NONE, dtype=np.int64)
    prior = np.full((n, k_steps), _NONE, dtype=np.int64)  # the latest time strictly before ``latest``
    earliest = np.full((n, k_steps), _NONE, dtype=np.int64)
    matches = np.column_stack(step_masks)
    relevant = matches.any(axis=1)
    positions = np.flatnonzero(relevant)
    prefix = np.zeros(timeline.n_events + 1, dtype=np.int64)
    np.cumsum(relevant, out=prefix[1:])
    lo, hi = prefix[timeline.start(window_days)], prefix[timeline.stop]
    count = hi - lo
    gap = None if max_gap_days is None else window_ns(max_gap_days)
    for rank in range(int(count.max(initial=0))):
        active = np.flatnonzero(count > rank)
        event = positions[lo[active] + rank]
        when = timeline.times[event]
        step_hit = matches[event]
        for k in range(k_steps - 1, -1, -1):  # from the last step down: one event is never two steps
            ok = step_hit[:, k]
            if k:
                before = latest[active, k - 1]
                before = np.where(before < when, before, prior[active, k - 1])  # strictly earlier
                ok = ok & (before != _NONE)
                if gap is not None:
                    ok &= when - before <= gap
            rows = active[ok]
            newer = latest[rows, k] < when[ok]
            if first_times:
                first = rows[latest[rows, k] == _NONE]
                earliest[first, k] = timeline.times[positions[lo[first] + rank]]
            prior[rows[newer], k] = latest[rows[newer], k]
            latest[rows, k] = np.maximum(latest[rows, k], when[ok])
    done = (latest != _NONE).sum(axis=1)
    return done, (earliest if first_times else None)
