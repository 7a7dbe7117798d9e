"""Which leads get reasons: the top of the whole run, the same however the run is split."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from leadml.explain.selection import TopCut, rows_to_explain, top_count, top_cut


def _run(n: int, seed: int, ties: bool = False):
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    if ties:  # a binned calibration: many leads share a probability
        p = np.round(p, 1)
    ids = np.array([f"L{i:05d}" for i in rng.permutation(n)], dtype=object)
    return p, ids


def _whole_run(p: np.ndarray, ids: np.ndarray, count: int) -> set[str]:
    """The definition: sorted by probability (highest first), ties by lead_id; the first ``count``."""
    order = sorted(range(len(p)), key=lambda i: (-p[i], ids[i]))
    return {ids[i] for i in order[:count]}


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("which", ["default", "top:20%", "top:7", "top:0", "top:100%"])
def test_the_cut_picks_the_top_of_the_run_in_any_pieces(which, ties):
    p, ids = _run(503, seed=3, ties=ties)
    threshold = 0.85
    cut = top_cut(p, ids, which)
    count = top_count(which, len(p))
    expected = _whole_run(p, ids, count)
    if which == "default":
        expected |= set(ids[p >= threshold])
    for pieces in (1, 2, 7):  # chunks or partitions of any size, in any order
        picked: set[str] = set()
        for rows in np.array_split(np.random.default_rng(pieces).permutation(len(p)), pieces):
            chosen = rows_to_explain(p[rows], threshold, which, cut=cut, lead_ids=ids[rows])
            picked |= set(ids[rows][chosen])
        assert picked == expected, pieces
    alone = rows_to_explain(p, threshold, which, lead_ids=ids)  # one piece is the whole run
    assert set(ids[alone]) == expected


def test_ties_at_the_cut_are_split_by_lead_id_exactly():
    p = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    ids = ["e", "d", "b", "c", "a"]
    cut = top_cut(p, ids, "top:3")
    assert cut == TopCut(0.5, "c")
    assert cut.contains(p, ids).tolist() == [True, False, True, True, False]
    assert top_cut(p, pa.array(ids), "top:3") == cut  # Arrow ids (the pandas engine's first pass)
    assert top_cut(p, ids, "top:4") == TopCut(0.5)  # every tied lead is in: no id needed
    assert top_cut(p, ids, "top:0") == TopCut(math.inf) and top_cut(p, ids, "top:9") == TopCut(-math.inf)
    assert top_cut(p, ids, "mql") is None and top_cut(p, ids, "all") is None
    with pytest.raises(ValueError, match="needs their lead ids"):
        cut.contains(p)


def test_unknown_selections_are_refused_without_leads():
    with pytest.raises(ValueError, match="unknown selection 'best'"):
        top_count("best", 0)
    with pytest.raises(ValueError, match="is not top:N or top:N%"):
        rows_to_explain(np.zeros(0), None, "top:many")
