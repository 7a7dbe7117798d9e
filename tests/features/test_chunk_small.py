"""The features of a chunk do not depend on the chunk's size: one lead alone gets its row of all the leads at once.

The server calls :func:`~leadml.features.chunk.chunk_features` for the leads of one request, the
batch job for chunks of 100,000 leads; both must give a lead the same snapshot and features, bit
for bit (values, dtypes, categories, NaN places). Sorted text ids take the array route of
:func:`~leadml.features.scoring_set.open_leads`; shuffled leads take :func:`build_snapshots` itself,
so the two routes are held equal here, and both are held to ``FeatureBuilder.transform``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from leadml.core.config import FeatureConfig
from leadml.features.chunk import check_chunk, chunk_features
from leadml.features.scoring_set import _fixed_snapshots, open_leads
from leadml.features.snapshots import LEFT_OUT, to_utc
from leadml.jobs.inputs import _arrow_events, frame_inputs
from tests.features.simulated_builder import simulated_with_builder

AS_OF = "2026-03-01"
TARGETS = ("won", "sql", "opportunity", "mql", "pql")


@pytest.fixture(scope="module")
def simulated():
    """(data with outcomes, a fitted builder, as_of) of 2,000 simulated leads."""
    return simulated_with_builder("chunk_small", 2000, 5, AS_OF)


def chunked(builder, data, stamp, chunk_leads: int, leads: pd.DataFrame | None = None, target: str = "won"):
    """Snapshots, features and left-out counts of ``leads`` built chunk by chunk as the job builds them."""
    leads = data.leads if leads is None else leads
    features = builder.features or FeatureConfig()
    inputs = frame_inputs(leads, data.events, data.outcomes, stamp, features=features, chunk_leads=chunk_leads)
    parts, left_out = [], {"closed": 0, "past_target": 0}
    for chunk in inputs.chunks(prefetch=False):
        snapshots, rows = chunk_features(builder, chunk.leads, chunk.events, chunk.outcomes, stamp, target=target)
        assert list(rows.columns) == builder.feature_names_
        for key, count in snapshots.attrs[LEFT_OUT].items():
            left_out[key] += count
        if len(snapshots):  # an empty frame's ids are object, not text: not a row to compare
            parts.append((snapshots, rows))
    snapshots = pd.concat([s for s, _ in parts], ignore_index=True)
    return snapshots, pd.concat([f for _, f in parts], ignore_index=True), left_out


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal values, dtypes, categories (in order), NaN places, index and column types."""
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_index_type=True, check_column_type=True)
    for column in expected.columns:
        if isinstance(expected[column].dtype, pd.CategoricalDtype):
            assert list(got[column].cat.categories) == list(expected[column].cat.categories), column


@pytest.mark.parametrize("target", ["won", "sql"])
def test_one_lead_at_a_time_equals_all_at_once(simulated, target):
    data, builder, stamp = simulated
    everyone = chunked(builder, data, stamp, len(data.leads), target=target)
    assert everyone[2]["closed"] > 0 and len(everyone[0]) > 200
    rng = np.random.default_rng(7)
    is_open = data.leads["lead_id"].isin(everyone[0]["lead_id"]).to_numpy()
    picked = np.r_[rng.choice(np.flatnonzero(is_open), 100, replace=False), rng.choice(np.flatnonzero(~is_open), 50)]
    some = data.leads.iloc[np.unique(picked)].reset_index(drop=True)
    alone = chunked(builder, data, stamp, 1, some, target=target)
    together = chunked(builder, data, stamp, len(some), some, target=target)
    mine = everyone[0]["lead_id"].isin(some["lead_id"]).to_numpy()
    for got in (alone, together):
        assert_same(got[0], everyone[0].loc[mine].reset_index(drop=True))
        assert_same(got[1], everyone[1].loc[mine].reset_index(drop=True))
    assert alone[2] == together[2]


@pytest.mark.parametrize("chunk_leads", [64, 333])
def test_chunk_sizes_give_the_same_rows(simulated, chunk_leads):
    data, builder, stamp = simulated
    everyone = chunked(builder, data, stamp, len(data.leads))
    pieces = chunked(builder, data, stamp, chunk_leads)
    assert_same(pieces[0], everyone[0])
    assert_same(pieces[1], everyone[1])
    assert pieces[2] == everyone[2]


def test_shuffled_leads_take_the_frame_route_to_the_same_rows(simulated):
    data, builder, stamp = simulated
    inputs = frame_inputs(data.leads, data.events, data.outcomes, stamp, features=builder.features or FeatureConfig(),
                          chunk_leads=len(data.leads))  # fmt: skip
    chunk = next(iter(inputs.chunks(prefetch=False)))
    snapshots, features = chunk_features(builder, chunk.leads, chunk.events, chunk.outcomes, stamp)
    shuffled = chunk.leads.sample(frac=1.0, random_state=3)  # neither sorted nor indexed 0..n-1
    assert open_leads(shuffled, chunk.outcomes, stamp)[1] is None
    again = chunk_features(builder, shuffled, chunk.events, chunk.outcomes, stamp)
    assert_same(again[0], snapshots)
    assert_same(again[1], features)
    assert again[0].attrs == snapshots.attrs
    check_chunk(builder, snapshots, features, chunk.leads, chunk.events, sample=len(snapshots))


def test_events_table_equals_the_selected_frames_table(simulated):
    events = simulated[0].events
    for wanted in (["lead_id", "timestamp", "event_type"], ["lead_id", "timestamp", "event_type", "page"],
                   list(events.columns)):  # fmt: skip
        expected = pa.Table.from_pandas(events[wanted], preserve_index=False)
        assert _arrow_events(events, wanted).equals(expected, check_metadata=True)
    names = list(events.columns)
    names[-1] = names[-2]  # two attribute columns of one name
    repeated = events.set_axis(names, axis=1)
    assert len(names) > 4 and not repeated.columns.is_unique
    wanted = ["lead_id", "timestamp", "event_type"]
    expected = pa.Table.from_pandas(repeated[wanted], preserve_index=False)
    assert _arrow_events(repeated, wanted).equals(expected, check_metadata=True)


def random_tables(seed: int, n_leads: int, stamp: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Leads (sorted text ids; some created after as_of, some without a time), outcomes with every stage
    (before, at and after as_of, or never) and PQL times."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(10 * n_leads + 10, n_leads, replace=False))
    lead_ids = pd.array([f"L{i:06d}" for i in ids], dtype="str")
    days = pd.to_timedelta(rng.integers(-300, 20, n_leads), unit="D")
    created = pd.Series(stamp + days, dtype="datetime64[ns, UTC]")
    created[rng.random(n_leads) < 0.1] = stamp  # created at as_of itself: a prospect
    created[rng.random(n_leads) < 0.05] = pd.NaT
    leads = pd.DataFrame({"lead_id": lead_ids, "created_at": created})

    def times(share: float) -> np.ndarray:
        offsets = pd.to_timedelta(rng.integers(-60, 60, n_leads), unit="D").to_numpy()
        at = (stamp + pd.TimedeltaIndex(offsets)).as_unit("ns")
        chosen = rng.random(n_leads) < share
        return np.where(chosen, at.asi8, np.iinfo(np.int64).min)

    def stamps(values: np.ndarray) -> pd.Series:
        return pd.Series(pd.to_datetime(values, utc=True).as_unit("ns"))

    closed = times(0.5)
    closed[rng.random(n_leads) < 0.1] = stamp.value  # closed at as_of itself: still open
    outcomes = pd.DataFrame({"lead_id": lead_ids, "outcome": rng.integers(0, 2, n_leads).astype(np.int8),
                             "closed_at": stamps(closed), "mql_at": stamps(times(0.4)),
                             "sql_at": stamps(times(0.3)), "opportunity_at": stamps(times(0.2))})  # fmt: skip
    outcomes = outcomes.loc[rng.random(n_leads) < 0.7].reset_index(drop=True)
    pql_rows = rng.random(n_leads) < 0.3
    pql = pd.Series(stamps(times(1.0)).to_numpy()[pql_rows], index=np.asarray(lead_ids, dtype=object)[pql_rows])
    return leads, outcomes, pql


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_leads", [0, 1, 2, 5, 40, 1000])
def test_open_leads_equals_the_fixed_policy(seed, n_leads):
    stamp = to_utc(AS_OF)
    leads, outcomes, pql = random_tables(seed, n_leads, stamp)
    for target in TARGETS:
        for their_outcomes in (outcomes, outcomes.iloc[:0], None):
            for their_pql in (pql, pql.iloc[:0], None) if target == "pql" else (None,):
                expected = _fixed_snapshots(leads, their_outcomes, stamp, target, their_pql)
                got, positions = open_leads(leads, their_outcomes, stamp, target=target, pql=their_pql)
                assert_same(got, expected)
                assert got.attrs == expected.attrs
                if positions is not None:
                    assert (leads["lead_id"].to_numpy()[positions] == got["lead_id"].to_numpy()).all()
                shuffled = leads.iloc[::-1]
                again, none = open_leads(shuffled, their_outcomes, stamp, target=target, pql=their_pql)
                assert none is None or len(leads) < 2
                assert_same(again, expected)


def test_every_lead_closed_or_created_later():
    stamp = to_utc(AS_OF)
    leads = pd.DataFrame({"lead_id": pd.array(["a", "b"], dtype="str"),
                          "created_at": pd.Series(pd.to_datetime(["2026-01-01", "2026-05-01"], utc=True))})  # fmt: skip
    outcomes = pd.DataFrame({"lead_id": ["a"], "outcome": np.int8([0]),
                             "closed_at": pd.to_datetime(["2026-02-01"], utc=True)})  # fmt: skip
    for frame, their_outcomes in ((leads, outcomes), (leads.iloc[1:], None), (leads.iloc[:0], None)):
        got, _ = open_leads(frame.reset_index(drop=True), their_outcomes, stamp)
        expected = _fixed_snapshots(frame.reset_index(drop=True), their_outcomes, stamp, "won", None)
        assert_same(got, expected)
        assert got.attrs == expected.attrs and len(got) == 0
