"""EventTimeline: exact point-in-time ranges, checked against a slow reference loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadml.core.errors import LeadDataError
from leadml.features.timeline import kernel as timeline_kernel
from leadml.features.timeline.arrays import lower_bound, radix_argsort, sort_order
from leadml.features.timeline.engine import DAY_NS, EventTimeline, to_ns, window_ns
from leadml.features.timeline.kernel import NONE, standard_blocks

T0 = pd.Timestamp("2026-03-01", tz="UTC")
NS = pd.Timedelta(1, "ns")


def _events(rows):
    return pd.DataFrame(rows, columns=["lead_id", "timestamp", "event_type", "page"])


def test_bounds_are_exact_to_the_nanosecond():
    events = _events(
        [
            ("a", T0, "visit", "home"),  # at as_of: the future
            ("a", T0 - NS, "visit", "home"),  # just before as_of
            ("a", T0 - pd.Timedelta(days=7), "visit", "pricing"),  # exactly at the 7-day start: inside
            ("a", T0 - pd.Timedelta(days=7) - NS, "visit", "pricing"),  # just outside
            ("a", T0 + pd.Timedelta(days=1), "click", None),
        ]
    )
    snapshots = pd.DataFrame({"lead_id": ["a"], "as_of": [T0]})
    timeline = EventTimeline.build(events, snapshots)
    assert timeline.count().tolist() == [3]
    assert timeline.count(window_days=7).tolist() == [2]
    assert timeline.count(timeline.event_mask("visit", {"page": "pricing"}), window_days=7).tolist() == [1]
    assert timeline.count(timeline.event_mask("click")).tolist() == [0]
    assert timeline.days_since_last().tolist() == [1 / DAY_NS]
    assert np.isnan(timeline.days_since_last(timeline.event_mask("click"))[0])
    # 2026-02-21 23:59:59.999999999 and 2026-02-22 00:00 and 2026-02-28 23:59:59.999999999
    assert timeline.active_days().tolist() == [3]
    assert timeline.active_days(window_days=7).tolist() == [2]


def test_snapshots_keep_their_order_and_share_a_lead():
    events = _events(
        [
            ("b", T0 - pd.Timedelta(days=1), "visit", "x"),
            ("a", T0 - pd.Timedelta(days=3), "visit", "x"),
            ("a", T0 - pd.Timedelta(days=10), "click", "x"),
            ("zz", T0 - pd.Timedelta(days=1), "visit", "x"),  # no snapshot: ignored
        ]
    )
    snapshots = pd.DataFrame(
        {
            "lead_id": ["a", "c", "b", "a"],
            "as_of": [T0, T0, T0, T0 - pd.Timedelta(days=5)],
        }
    )
    timeline = EventTimeline.build(events, snapshots)
    assert timeline.n_snapshots == 4
    assert timeline.n_events == 3
    assert timeline.count().tolist() == [2, 0, 1, 1]
    assert timeline.count(window_days=4).tolist() == [1, 0, 1, 0]
    np.testing.assert_allclose(timeline.days_since_last(), [3.0, np.nan, 1.0, 5.0])
    np.testing.assert_allclose(
        timeline.decayed_sum(None, 3.0), [0.5 + 0.5 ** (10 / 3), 0, 0.5 ** (1 / 3), 0.5 ** (5 / 3)]
    )
    np.testing.assert_allclose(timeline.decayed_sum(None, 3.0, window_days=4), [0.5, 0, 0.5 ** (1 / 3), 0])
    click = timeline.event_mask("click")
    first = timeline.first_after(click)
    assert first[0] == to_ns(pd.Series([T0 - pd.Timedelta(days=10)]), "t")[0]
    assert first[1] == np.iinfo(np.int64).min
    after = timeline.first_after(timeline.event_mask("visit"), first)
    assert after[0] == to_ns(pd.Series([T0 - pd.Timedelta(days=3)]), "t")[0]
    assert after[3] == np.iinfo(np.int64).min


def test_where_accepts_lists_and_masks_are_not_cached_stale():
    events = _events(
        [("a", T0 - pd.Timedelta(days=d), "visit", page) for d, page in [(1, "x"), (2, "y"), (3, "z"), (4, None)]]
    )
    timeline = EventTimeline.build(events, pd.DataFrame({"lead_id": ["a"], "as_of": [T0]}))
    mask = timeline.event_mask(where={"page": ["x", "y"]})
    assert timeline.count(mask).tolist() == [2]
    mask &= timeline.event_mask(where={"page": "x"})  # changed in place: must not reuse the old sums
    assert timeline.count(mask).tolist() == [1]
    assert timeline.count(timeline.event_mask(["visit", "other"])).tolist() == [4]
    with pytest.raises(KeyError, match="no column 'channel'"):
        timeline.event_mask(where={"channel": "web"})


def test_empty_inputs():
    events = _events([]).astype({"timestamp": "datetime64[ns, UTC]"})
    snapshots = pd.DataFrame({"lead_id": ["a"], "as_of": [T0]})
    timeline = EventTimeline.build(events, snapshots)
    assert timeline.count().tolist() == [0]
    assert np.isnan(timeline.days_since_last()[0])
    assert timeline.active_days(window_days=7).tolist() == [0]
    assert timeline.decayed_sum(None, 30).tolist() == [0.0]
    no_snapshots = EventTimeline.build(_events([("a", T0, "visit", "x")]), snapshots.head(0))
    assert no_snapshots.count(window_days=7).shape == (0,)
    assert no_snapshots.decayed_sum(None, 30, window_days=7).shape == (0,)


def test_bad_input_names_the_column():
    snapshots = pd.DataFrame({"lead_id": ["a"], "as_of": [T0]})
    with pytest.raises(LeadDataError, match="missing column.*'event_type'"):
        EventTimeline.build(pd.DataFrame({"lead_id": ["a"], "timestamp": [T0]}), snapshots)
    with pytest.raises(LeadDataError, match="'as_of'.*1 missing timestamps"):
        EventTimeline.build(_events([("a", T0, "visit", "x")]), pd.DataFrame({"lead_id": ["a"], "as_of": [pd.NaT]}))


def test_timestamps_of_any_resolution_and_naive_mean_utc():
    stamps = pd.Series(pd.to_datetime(["2026-03-01T00:00:00"]).as_unit("s"))
    assert to_ns(stamps, "x")[0] == to_ns(pd.Series([T0]), "x")[0]


def test_sorting_helpers():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 200_000, 5000)
    assert np.array_equal(radix_argsort(codes), np.argsort(codes, kind="stable"))
    times = rng.integers(0, 50, 5000)
    order = sort_order(codes, times)
    assert np.array_equal(order, np.lexsort((times, codes)))
    assert sort_order(np.sort(codes), np.zeros(5000, np.int64)) is None
    hi = np.array([3, 3, 0])
    assert lower_bound(np.array([1, 2, 2]), np.array([0, 0, 0]), hi, np.array([2, 3, 9])).tolist() == [1, 3, 0]
    assert lower_bound(
        np.array([1, 2, 2]), np.array([0, 0]), np.array([3, 3]), np.array([2, 1]), strict=False
    ).tolist() == [3, 1]


# -- against a slow reference -------------------------------------------------------------------

QUARTER = DAY_NS // 4
event_rows = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 40), st.sampled_from(["a", "b"]), st.sampled_from(["x", "y"])),
    max_size=40,
)
snapshot_rows = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 44)), min_size=1, max_size=8)


def _frames(events_rows, snapshots_rows):
    events = pd.DataFrame(
        {
            "lead_id": [f"L{lead}" for lead, *_ in events_rows],
            "timestamp": pd.to_datetime([t * QUARTER for _, t, *_ in events_rows], utc=True),
            "event_type": [kind for _, _, kind, _ in events_rows],
            "page": [page for *_, page in events_rows],
        }
    )
    snapshots = pd.DataFrame(
        {
            "lead_id": [f"L{lead}" for lead, _ in snapshots_rows],
            "as_of": pd.to_datetime([t * QUARTER for _, t in snapshots_rows], utc=True),
        }
    )
    return events, snapshots


def _reference(events, snapshots, window, half_life):
    """The slow, obvious loop: one snapshot at a time, one event at a time."""
    times = to_ns(events["timestamp"], "t")
    rows = []
    for lead, as_of in zip(snapshots["lead_id"], to_ns(snapshots["as_of"], "t")):
        seen = [
            (t, page)
            for t, owner, kind, page in zip(times, events["lead_id"], events["event_type"], events["page"])
            if owner == lead and kind == "a" and t < as_of
        ]
        inside = [(t, page) for t, page in seen if t >= as_of - window * DAY_NS]
        rows.append(
            {
                "count": len(inside),
                "count_all": len(seen),
                "x": sum(page == "x" for _, page in inside),
                "since": (as_of - max(t for t, _ in seen)) / DAY_NS if seen else np.nan,
                "days": len({t // DAY_NS for t, _ in inside}),
                "decay": sum(0.5 ** ((as_of - t) / DAY_NS / half_life) for t, _ in seen),
                "decay_w": sum(0.5 ** ((as_of - t) / DAY_NS / half_life) for t, _ in inside),
                "first": min((t for t, _ in seen), default=np.iinfo(np.int64).min),
                "y": sum(page == "y" for _, page in inside),
                "x_all": sum(page == "x" for _, page in seen),
                "last_y": max((t for t, page in seen if page == "y"), default=np.iinfo(np.int64).min),
            }
        )
    return pd.DataFrame(rows)


@settings(max_examples=150, deadline=None)
@given(event_rows, snapshot_rows, st.sampled_from([0.25, 1, 2.5, 7]), st.sampled_from([0.5, 3.0, 30.0]))
def test_queries_equal_a_naive_loop(events_rows, snapshots_rows, window, half_life):
    events, snapshots = _frames(events_rows, snapshots_rows)
    timeline = EventTimeline.build(events, snapshots)
    a = timeline.event_mask("a")
    expected = _reference(events, snapshots, window, half_life)
    assert timeline.count(a, window).tolist() == expected["count"].tolist()
    assert timeline.count(a).tolist() == expected["count_all"].tolist()
    assert timeline.count(timeline.event_mask("a", {"page": "x"}), window).tolist() == expected["x"].tolist()
    np.testing.assert_allclose(timeline.days_since_last(a), expected["since"])
    assert timeline.active_days(a, window).tolist() == expected["days"].tolist()
    np.testing.assert_allclose(timeline.decayed_sum(a, half_life), expected["decay"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(timeline.decayed_sum(a, half_life, window), expected["decay_w"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(timeline.weighted_sum(a * 2.5, window), 2.5 * expected["count"], atol=1e-9)
    assert timeline.first_after(a).tolist() == expected["first"].tolist()
    page = np.where(a, timeline.codes_of("page", ["x", "y"]), -1)
    counts, last = timeline.count_by(page, 2, [window, None], last=True)
    assert counts[window][:, 0].tolist() == expected["x"].tolist()
    assert counts[window][:, 1].tolist() == expected["y"].tolist()
    assert counts[None][:, 0].tolist() == expected["x_all"].tolist()
    assert last[:, 1].tolist() == expected["last_y"].tolist()


@settings(max_examples=100, deadline=None)
@given(event_rows, snapshot_rows, st.sampled_from([0.25, 1, 2.5, 7]))
def test_one_snapshot_per_lead_fast_path_equals_a_naive_loop(events_rows, snapshots_rows, window):
    events, snapshots = _frames(events_rows, snapshots_rows)
    snapshots = snapshots.drop_duplicates("lead_id").iloc[::-1]  # one per lead, not in lead order
    timeline = EventTimeline.build(events, snapshots)
    assert timeline.one_snapshot_per_lead() is not None
    a = timeline.event_mask("a")
    expected = _reference(events, snapshots, window, 3.0)
    page = np.where(a, timeline.codes_of("page", ["x", "y"]), -1)
    counts, last = timeline.count_by(page, 2, [window], last=True)
    assert counts[window][:, 0].tolist() == expected["x"].tolist()
    assert counts[window][:, 1].tolist() == expected["y"].tolist()
    assert last[:, 1].tolist() == expected["last_y"].tolist()
    np.testing.assert_allclose(timeline.decayed_sum(a, 3.0), expected["decay"], rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(event_rows, snapshot_rows, st.randoms(use_true_random=False))
def test_row_order_of_events_does_not_matter(events_rows, snapshots_rows, random):
    events, snapshots = _frames(events_rows, snapshots_rows)
    shuffled = events.iloc[random.sample(range(len(events)), len(events))]
    first, second = EventTimeline.build(events, snapshots), EventTimeline.build(shuffled, snapshots)
    for timeline_a, timeline_b in [(first, second)]:
        assert (
            timeline_a.count(timeline_a.event_mask("b"), 2).tolist()
            == timeline_b.count(timeline_b.event_mask("b"), 2).tolist()
        )
        np.testing.assert_array_equal(timeline_a.days_since_last(), timeline_b.days_since_last())
        np.testing.assert_array_equal(timeline_a.active_days(None, 3), timeline_b.active_days(None, 3))
        np.testing.assert_allclose(timeline_a.decayed_sum(None, 2.0), timeline_b.decayed_sum(None, 2.0), rtol=1e-12)


@settings(max_examples=80, deadline=None)
@given(event_rows, snapshot_rows, st.sampled_from([0.25, 1, 2.5]), st.booleans())
def test_one_pass_equals_the_single_queries(events_rows, snapshots_rows, window, one_per_lead):
    """The one-pass kernel gives exactly the values of count / active_days / decayed_sum / count_by,
    in blocks of one or two snapshots (so block edges fall everywhere)."""
    events, snapshots = _frames(events_rows, snapshots_rows)
    if one_per_lead:
        snapshots = snapshots.drop_duplicates("lead_id").iloc[::-1]
    timeline = EventTimeline.build(events, snapshots)
    windows = [window, 7]
    types = timeline.codes_of("event_type", ["b", "a"])
    codes, lookup = timeline.coded("event_type", ["b", "a"])
    half_life = [window_ns(3.0)] if one_per_lead else []
    previous = timeline_kernel.BLOCK_CELLS
    timeline_kernel.BLOCK_CELLS = 2 * 3 * 5  # (types + 1) * (widths + 1) cells: one or two snapshots a block
    try:
        widths = [window_ns(w) for w in windows]
        stats = list(standard_blocks(timeline, codes, lookup, 2, widths, window_ns(1), half_life))
    finally:
        timeline_kernel.BLOCK_CELLS = previous
    assert len(stats) >= timeline.n_snapshots // 2
    seen = np.zeros(timeline.n_snapshots, dtype=int)
    counts, _ = timeline.count_by(types, 2, windows)
    _, last = timeline.count_by(types, 2, [None], last=True)
    for block in stats:
        rows = block.rows
        seen[rows] += 1
        for k, days in enumerate(windows):
            assert block.type_counts[k].T.tolist() == counts[days][rows].tolist()
            assert block.counts[k].tolist() == timeline.count(None, days)[rows].tolist()
            assert block.active_days[k].tolist() == timeline.active_days(None, days)[rows].tolist()
        expected_age = np.where(last[rows] == np.iinfo(np.int64).min, NONE, timeline.as_of[rows, None] - last[rows])
        assert block.type_age.T.tolist() == expected_age.tolist()
        assert block.velocity.tolist() == (2 * timeline.count(None, 1) - timeline.count(None, 2))[rows].tolist()
        if one_per_lead:  # bit for bit, not just close
            assert block.decayed[0].tolist() == timeline.decayed_sum(None, 3.0)[rows].tolist()
        else:
            assert block.decayed is None
    assert (seen == 1).all()
