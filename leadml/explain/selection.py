"""Which leads get reasons: one rule for a whole run, whatever engine scores it and in how many pieces.

Reasons cost about a hundred predictions a lead, so a job explains a selection: ``all``; ``mql``
(at or above the threshold); ``top:N`` or ``top:N%`` (the N highest, or the highest N percent);
``default``, the MQLs and the top 20 %. The top is the top *of the run*: every lead of the run
sorted by probability, highest first, ties by ``lead_id`` (as text), and the first N of them. A job
that scores in pieces (pandas chunks, Spark partitions) measures the run first, :func:`top_cut`
over every lead's probability, and applies the :class:`TopCut` to each piece: both engines then
explain exactly the same leads, however the leads are split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = ["TopCut", "rows_to_explain", "top_count", "top_cut"]


@dataclass(frozen=True)
class TopCut:
    """The top of a run: a lead is in it when its probability is above ``probability``, or equal to it
    and its ``lead_id`` sorts at or before ``lead_id`` (None: every lead at that probability is in).

    Example:
        >>> cut = TopCut(0.5, "L2")
        >>> cut.contains(np.array([0.9, 0.5, 0.5, 0.1]), ["L9", "L1", "L3", "L0"]).tolist()
        [True, True, False, False]
    """

    probability: float
    lead_id: str | None = None

    def contains(self, probability: np.ndarray, lead_ids: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
        """Per lead, whether it is in the top (``lead_ids`` are needed only to split a tie at the cut)."""
        p = np.asarray(probability, dtype=float)
        inside = p > self.probability
        at_cut = p == self.probability
        if self.lead_id is None:
            return inside | at_cut
        tied = np.flatnonzero(at_cut)
        if len(tied):
            if lead_ids is None:
                raise ValueError("a cut between leads of equal probability needs their lead ids")
            ids = np.asarray(lead_ids, dtype=object)[tied].astype(str)
            inside[tied[ids <= self.lead_id]] = True
        return inside


def top_count(which: str, n: int) -> int | None:
    """How many leads of ``n`` the top part of ``which`` takes; None when it has no top (``all``, ``mql``).

    Raises:
        ValueError: ``which`` is not a selection.

    Example:
        >>> top_count("default", 11), top_count("top:3", 11), top_count("mql", 11)
        (3, 3, None)
    """
    if which in ("all", "mql"):
        return None
    if which == "default":
        which = "top:20%"
    elif not which.startswith("top:"):
        raise ValueError(f"reasons: unknown selection {which!r}; use all, mql, top:N or top:N%")
    text = which.removeprefix("top:")
    try:
        return int(np.ceil(n * float(text[:-1]) / 100)) if text.endswith("%") else int(text)
    except ValueError as exc:
        raise ValueError(f"reasons: {which!r} is not top:N or top:N%") from exc


def top_cut(
    probability: np.ndarray, lead_ids: Sequence[str] | np.ndarray | pa.Array | pa.ChunkedArray, which: str
) -> TopCut | None:
    """The :class:`TopCut` of ``which`` over a whole run (every lead's probability and id, in any order).

    Exact: the probability of the N-th lead, and when leads tie there, the id of the last one taken.
    None when ``which`` has no top part. ``lead_ids`` may be an Arrow array (compact for millions
    of leads); only the ids of tied leads are read.

    Example:
        >>> top_cut(np.array([0.1, 0.9, 0.5, 0.5]), ["a", "b", "d", "c"], "top:2")
        TopCut(probability=0.5, lead_id='c')
    """
    p = np.asarray(probability, dtype=float)
    n = len(p)
    count = top_count(which, n)
    if count is None:
        return None
    if count <= 0:
        return TopCut(math.inf)  # no lead is above infinity
    if count >= n:
        return TopCut(-math.inf)
    cut = float(np.partition(p, n - count)[n - count])  # the count-th highest
    above = int(np.count_nonzero(p > cut))
    tied = np.flatnonzero(p == cut)
    if above + len(tied) == count:
        return TopCut(cut)
    if isinstance(lead_ids, pa.Array | pa.ChunkedArray):
        ids = [str(i) for i in lead_ids.take(pa.array(tied)).to_pylist()]
    else:
        ids = [str(i) for i in np.asarray(lead_ids, dtype=object)[tied]]
    return TopCut(cut, sorted(ids)[count - above - 1])


def rows_to_explain(
    probability: np.ndarray,
    threshold: float | np.ndarray | None,
    which: str = "default",
    *,
    cut: TopCut | None = None,
    lead_ids: Sequence[str] | np.ndarray | None = None,
) -> np.ndarray:
    """Positions of the leads whose reasons are worth computing (explanations cost ~100x a prediction).

    ``which``: ``all``; ``mql`` (at or above the threshold, or each lead's own); ``top:N`` (the N highest) or
    ``top:N%`` (the highest N percent); ``default`` = the MQLs and the top 20 %. The top is ``cut``
    when given (the run's, from :func:`top_cut`); else these leads are the whole run: with
    ``lead_ids`` ties are split by id, as :func:`top_cut` splits them, without by position.

    Example:
        >>> rows_to_explain(np.array([0.1, 0.9, 0.5, 0.3, 0.2]), 0.4, "mql").tolist()
        [1, 2]
        >>> rows_to_explain(np.array([0.1, 0.9, 0.5, 0.3, 0.2]), 0.95, "top:40%").tolist()
        [1, 2]
        >>> rows_to_explain(np.array([0.1, 0.9, 0.5]), 0.95, "top:1", cut=TopCut(0.4)).tolist()
        [1, 2]
    """
    p = np.asarray(probability, dtype=float)
    n = len(p)
    mql = p >= threshold if threshold is not None else np.zeros(n, bool)
    count = top_count(which, n)  # an unknown selection fails here, even without leads
    if which == "all":
        return np.arange(n)
    if which == "mql":
        return np.flatnonzero(mql)
    keep = mql.copy() if which == "default" else np.zeros(n, bool)
    if cut is None and lead_ids is not None:
        cut = top_cut(p, lead_ids, which)
    if cut is not None:
        return np.flatnonzero(keep | cut.contains(p, lead_ids))
    keep[np.argsort(-p, kind="stable")[: max(count or 0, 0)]] = True
    return np.flatnonzero(keep)
