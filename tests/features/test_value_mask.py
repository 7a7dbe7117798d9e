"""``EventTimeline.value_mask`` on text columns: coded once per column, equal to comparing every row's text."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from leadml.features.timeline import EventTimeline

SPELLINGS = ["pricing", "Pricing", "demo", "", "1", "None"]


def timeline_of(values: list[object]) -> EventTimeline:
    n = len(values)
    events = pd.DataFrame({
        "lead_id": [f"L{i % 3}" for i in range(n)],
        "timestamp": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="h"),
        "event_type": "page_view",
        "page": pd.Series(values, dtype=object),
    })  # fmt: skip
    snapshots = pd.DataFrame({"lead_id": ["L0", "L1", "L2"], "as_of": pd.Timestamp("2026-03-01", tz="UTC")})
    return EventTimeline.build(events, snapshots)


def by_text(timeline: EventTimeline, wanted: list[object]) -> np.ndarray:
    """The definition: the event's value is present and its text is one of the wanted texts."""
    values = timeline.column("page")
    return np.array([v is not None and not (isinstance(v, float) and np.isnan(v)) and str(v) in map(str, wanted)
                     for v in values])  # fmt: skip


def test_exact_masks_on_hand_made_pages() -> None:
    timeline = timeline_of(["pricing", None, "demo", "pricing", np.nan, "Pricing"])
    sorted_pages = list(timeline.column("page"))
    assert timeline.value_mask("page", "pricing").sum() == 2
    assert timeline.value_mask("page", ["pricing", "demo"]).sum() == 3
    assert timeline.value_mask("page", "None").sum() == 0  # a missing value is not the text "None"
    assert list(np.asarray(sorted_pages, dtype=object)[timeline.value_mask("page", "Pricing")]) == ["Pricing"]


def test_a_column_of_numbers_and_text_is_compared_as_text() -> None:
    timeline = timeline_of([1, 1.0, True, "1", None])
    assert timeline.value_mask("page", "1").sum() == 2  # 1 and "1"; not 1.0 ("1.0") nor True ("True")
    assert timeline.value_mask("page", ["1.0", "True"]).sum() == 2


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(SPELLINGS)), min_size=1, max_size=30),
       st.lists(st.sampled_from(SPELLINGS), min_size=1, max_size=3))  # fmt: skip
def test_equals_the_row_by_row_text_comparison(values: list[object], wanted: list[object]) -> None:
    timeline = timeline_of(values)
    for query in (wanted, wanted[0]):
        query_list = query if isinstance(query, list) else [query]
        assert np.array_equal(timeline.value_mask("page", query), by_text(timeline, query_list))
