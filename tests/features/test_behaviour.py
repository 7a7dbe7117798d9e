"""Behaviour features: every value of a hand-made case written out, properties, and the fast paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadml.core.errors import ConfigError, LeadDataError
from leadml.features.behaviour import parquet as behaviour_parquet
from leadml.features.behaviour.features import behaviour_features
from leadml.features.behaviour.matrix import FeatureMatrix, Layout
from leadml.features.behaviour.parquet import behaviour_features_from_parquet
from leadml.features.behaviour.partitioned import behaviour_features_partitioned
from leadml.features.behaviour.text import window_label
from leadml.features.timeline import kernel as timeline_kernel
from leadml.features.timeline.codes import code_leads, short_keys
from leadml.features.timeline.engine import EventTimeline

NAN = np.nan
ATTRIBUTES = {"page_view": {"page": ["pricing", "careers"]}}
SCENARIOS = {"content_path": ["email_open", "page_view[blog]", "webinar_attend", "download[case_study]"]}
TYPES = ["download", "email_click", "email_open", "form_submit", "page_view", "webinar_attend"]


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def hand_made():
    """Three leads with snapshots (A twice), one lead without events (C), one without snapshot (D)."""
    rows = [
        ("A", "2025-11-15 10:00", "email_open", None, None, "spring"),
        ("A", "2025-12-01 00:00", "email_open", None, None, None),  # exactly 90 days before A@03-01
        ("A", "2026-02-01 09:00", "page_view", "blog", None, None),
        ("A", "2026-02-01 17:00", "page_view", "pricing", None, None),  # same UTC day as the one above
        ("A", "2026-02-14 08:00", "webinar_attend", None, None, None),
        ("A", "2026-02-22 00:00", "page_view", "pricing", None, None),  # exactly 7 days before A@03-01
        ("A", "2026-02-28 23:00", "email_click", None, None, None),
        ("A", "2026-03-01 00:00", "form_submit", None, None, None),  # exactly at A@03-01: the future
        ("A", "2026-03-10 12:00", "download", None, "case_study", None),
        ("A", "2026-03-20 00:00", "download", None, "case_study", None),  # after every snapshot of A
        ("B", "2026-02-21 06:00", "page_view", "pricing", None, None),
        ("B", "2026-02-21 07:00", "page_view", "careers", None, None),
        ("B", "2026-02-25 00:00", "email_click", None, None, None),
        ("B", "2026-03-02 00:00", "page_view", "pricing", None, None),
        ("D", "2026-02-27 00:00", "page_view", "pricing", None, None),
    ]
    events = pd.DataFrame(rows, columns=["lead_id", "timestamp", "event_type", "page", "asset", "campaign"])
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    events["seconds"] = np.arange(len(events), dtype=float) * 10  # time on the page (read by OTHER_OPTIONS)
    events["event_type"] = events["event_type"].astype("category")
    snapshots = pd.DataFrame(
        {
            "lead_id": ["A", "C", "A", "B"],
            "as_of": [utc("2026-03-15 12:00"), utc("2026-03-01"), utc("2026-03-01"), utc("2026-03-01")],
        },
        index=[10, 11, 12, 13],
    )
    leads = pd.DataFrame(
        {
            "lead_id": ["A", "B", "C", "D"],
            "created_at": [utc("2026-01-01"), utc("2026-02-20"), utc("2026-02-27 12:00"), utc("2026-01-01")],
        }
    )
    return snapshots, events, leads


def decayed(*ages_days: float, half_life: float = 30.0) -> float:
    return float(sum(0.5 ** (age / half_life) for age in ages_days))


# Rows in snapshot order: A@03-15 12:00, C@03-01, A@03-01, B@03-01 (ages in days, counted by hand).
EXPECTED = {
    "download__count_7d": [1, 0, 0, 0],
    "download__count_30d": [1, 0, 0, 0],
    "download__count_90d": [1, 0, 0, 0],
    "download__days_since_last": [5.0, NAN, NAN, NAN],
    "email_click__count_7d": [0, 0, 1, 1],
    "email_click__count_30d": [1, 0, 1, 1],
    "email_click__count_90d": [1, 0, 1, 1],
    "email_click__days_since_last": [14 + 13 / 24, NAN, 1 / 24, 4.0],
    "email_open__count_7d": [0, 0, 0, 0],
    "email_open__count_30d": [0, 0, 0, 0],
    "email_open__count_90d": [0, 0, 1, 0],
    "email_open__days_since_last": [104.5, NAN, 90.0, NAN],
    "form_submit__count_7d": [0, 0, 0, 0],
    "form_submit__count_30d": [1, 0, 0, 0],
    "form_submit__count_90d": [1, 0, 0, 0],
    "form_submit__days_since_last": [14.5, NAN, NAN, NAN],
    "page_view__count_7d": [0, 0, 1, 0],
    "page_view__count_30d": [1, 0, 3, 2],
    "page_view__count_90d": [3, 0, 3, 2],
    "page_view__days_since_last": [21.5, NAN, 7.0, 7 + 17 / 24],
    "webinar_attend__count_7d": [0, 0, 0, 0],
    "webinar_attend__count_30d": [1, 0, 1, 0],
    "webinar_attend__count_90d": [1, 0, 1, 0],
    "webinar_attend__days_since_last": [29 + 4 / 24, NAN, 14 + 16 / 24, NAN],
    "page_view[pricing]__count_7d": [0, 0, 1, 0],
    "page_view[pricing]__count_30d": [1, 0, 2, 1],
    "page_view[pricing]__count_90d": [2, 0, 2, 1],
    "page_view[careers]__count_7d": [0, 0, 0, 0],
    "page_view[careers]__count_30d": [0, 0, 0, 1],
    "page_view[careers]__count_90d": [0, 0, 0, 1],
    "events__count_7d": [1, 0, 2, 1],
    "events__count_30d": [5, 0, 5, 3],
    "events__count_90d": [7, 0, 6, 3],
    "events__active_days_7d": [1, 0, 2, 1],
    "events__active_days_30d": [5, 0, 4, 2],
    "events__active_days_90d": [6, 0, 5, 2],
    "events__decayed_30d": [
        decayed(120 + 2 / 24, 104.5, 42 + 3 / 24, 41 + 19 / 24, 29 + 4 / 24, 21.5, 14 + 13 / 24, 14.5, 5),
        0.0,
        decayed(105 + 14 / 24, 90, 27 + 15 / 24, 27 + 7 / 24, 14 + 16 / 24, 7, 1 / 24),
        decayed(7 + 18 / 24, 7 + 17 / 24, 4),
    ],
    "events__velocity_7d": [1, 0, 2, -1],
    "scenario[content_path]__steps": [4, 0, 3, 0],
    "lead__age_days": [73.5, 1.5, 59.0, 9.0],
}


def test_hand_made_case_every_value():
    snapshots, events, leads = hand_made()
    features, infos = behaviour_features(snapshots, events, leads, attribute_counts=ATTRIBUTES, scenarios=SCENARIOS)
    assert list(features.columns) == list(EXPECTED)
    assert features.index.tolist() == [10, 11, 12, 13]
    assert set(features.dtypes) == {np.dtype("float32")}
    for name, values in EXPECTED.items():
        np.testing.assert_allclose(features[name].to_numpy(), values, rtol=2e-6, err_msg=name)
    assert [info.name for info in infos] == list(EXPECTED)
    assert {info.group for info in infos} == {"behaviour"}


def test_hand_made_case_with_one_snapshot_per_lead():
    """Without A's second snapshot the timeline takes its one-snapshot-per-lead fast path."""
    snapshots, events, leads = hand_made()
    features, _ = behaviour_features(
        snapshots.loc[[11, 12, 13]], events, leads, attribute_counts=ATTRIBUTES, scenarios=SCENARIOS
    )
    for name, values in EXPECTED.items():
        np.testing.assert_allclose(features[name].to_numpy(), values[1:], rtol=2e-6, err_msg=name)


def test_sentences_a_sales_manager_reads():
    snapshots, events, leads = hand_made()
    features, infos = behaviour_features(snapshots, events, leads, attribute_counts=ATTRIBUTES, scenarios=SCENARIOS)
    by_name = {info.name: info for info in infos}
    row = features.loc[10]
    said = {name: by_name[name].sentence(float(row[name])) for name in by_name}
    assert said["page_view[pricing]__count_90d"] == "Viewed the pricing page 2 times in the last 90 days"
    assert said["email_click__days_since_last"] == "Last e-mail click 14.5 days ago"
    assert said["events__active_days_30d"] == "Active on 5 of the last 30 days"
    assert said["scenario[content_path]__steps"] == "Completed 4 of 4 steps of the content path, in order"
    assert said["lead__age_days"] == "Became a lead 73.5 days ago"
    assert by_name["page_view[pricing]__count_30d"].attribute == ("page", "pricing")
    assert by_name["page_view[pricing]__count_30d"].window_days == 30
    assert by_name["events__decayed_30d"].window_days is None


def test_fixed_event_types_give_the_training_columns():
    snapshots, events, leads = hand_made()
    features, _ = behaviour_features(snapshots, events, windows=(7,), event_types=["demo_request", "page_view"])
    assert list(features.columns)[:4] == [
        "demo_request__count_7d",
        "demo_request__days_since_last",
        "page_view__count_7d",
        "page_view__days_since_last",
    ]
    assert features["demo_request__count_7d"].tolist() == [0, 0, 0, 0]
    assert features["demo_request__days_since_last"].isna().all()
    assert "lead__age_days" not in features.columns  # no leads, no created_at
    assert features["page_view__count_7d"].tolist() == [0, 0, 1, 0]


def test_empty_snapshots_still_name_every_column():
    snapshots, events, leads = hand_made()
    features, infos = behaviour_features(snapshots.head(0), events, leads, event_types=TYPES)
    assert len(features) == 0
    assert list(features.columns) == [info.name for info in infos]
    assert "page_view__count_30d" in features.columns


def test_no_events_at_all_gives_zeros_and_no_type_columns():
    snapshots, events, leads = hand_made()
    features, _ = behaviour_features(snapshots, events.head(0), leads)
    assert [c for c in features.columns if "__count_" in c] == [
        "events__count_7d",
        "events__count_30d",
        "events__count_90d",
    ]
    assert (features.drop(columns="lead__age_days").to_numpy() == 0).all()
    assert features["lead__age_days"].tolist() == EXPECTED["lead__age_days"]


def test_bad_input_and_config_raise_clear_errors():
    snapshots, events, leads = hand_made()
    with pytest.raises(LeadDataError, match="missing column.*'event_type'"):
        behaviour_features(snapshots, events.drop(columns="event_type"))
    with pytest.raises(LeadDataError, match="no column 'channel'.*attribute"):
        behaviour_features(snapshots, events, attribute_counts={"page_view": {"channel": ["web"]}})
    with pytest.raises(ConfigError, match="features.windows.*positive"):
        behaviour_features(snapshots, events, windows=(0, 7))
    with pytest.raises(ConfigError, match="features.scenarios.bad: step 'page_view\\[blog'"):
        behaviour_features(snapshots, events, scenarios={"bad": ["page_view[blog"]})


def test_parquet_and_partitioned_paths_give_the_same_values(tmp_path):
    snapshots, events, leads = hand_made()
    expected, infos = behaviour_features(snapshots, events, leads, attribute_counts=ATTRIBUTES, scenarios=SCENARIOS)
    table = snapshots.assign(created_at=snapshots["lead_id"].map(leads.set_index("lead_id")["created_at"]))
    table.to_parquet(tmp_path / "snapshots.parquet", index=False)
    events.to_parquet(tmp_path / "events.parquet", index=False)
    options = dict(attribute_counts=ATTRIBUTES, scenarios=SCENARIOS)
    fast = behaviour_features_from_parquet(
        tmp_path / "snapshots.parquet", tmp_path / "events.parquet", tmp_path / "fast.parquet", **options
    )
    assert [i.name for i in fast] == [i.name for i in infos]
    written = pd.read_parquet(tmp_path / "fast.parquet")
    assert written["lead_id"].tolist() == ["A", "C", "A", "B"]
    pd.testing.assert_frame_equal(written.drop(columns=["lead_id", "as_of"]), expected.reset_index(drop=True))
    behaviour_features_partitioned(
        tmp_path / "snapshots.parquet",
        tmp_path / "events.parquet",
        tmp_path / "parts.parquet",
        n_partitions=3,
        **options,
    )
    parts = pd.read_parquet(tmp_path / "parts.parquet").sort_values(["lead_id", "as_of"]).reset_index(drop=True)
    both = written.sort_values(["lead_id", "as_of"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(parts, both)
    assert not list(tmp_path.glob(".leadml-*"))  # spill and temp files are gone


def test_simulated_data_agrees_across_paths(small_sim, tmp_path):
    leads = small_sim.leads
    snapshots = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": leads["created_at"] + pd.Timedelta(days=21)})
    events = small_sim.events
    expected, _ = behaviour_features(snapshots, events, leads)
    assert (expected["events__count_90d"] > 0).mean() > 0.5
    assert (expected["events__count_7d"] <= expected["events__count_30d"]).all()
    snapshots.to_parquet(tmp_path / "snapshots.parquet", index=False)
    events.to_parquet(tmp_path / "events.parquet", index=False)
    leads[["lead_id", "created_at"]].to_parquet(tmp_path / "leads.parquet", index=False)
    behaviour_features_from_parquet(
        tmp_path / "snapshots.parquet",
        tmp_path / "events.parquet",
        tmp_path / "out.parquet",
        leads_path=tmp_path / "leads.parquet",
    )
    written = pd.read_parquet(tmp_path / "out.parquet").drop(columns=["lead_id", "as_of"])
    pd.testing.assert_frame_equal(written, expected.reset_index(drop=True))


# -- the layout: each family of columns is one slice, named and filled together --------------------

OTHER_OPTIONS = {
    "windows": (1, 7.5), "event_types": ["page_view", "demo_request"], "decay_half_lives": (2, 30),
    "velocity": False, "lead_age": False, "scenarios": None,
    "attribute_counts": {"page_view": {"page": ["pricing", "careers", "blog"]}, "download": {"asset": "case_study"}},
    "event_values": {"page_view": "seconds"},
}  # fmt: skip


def _hand_made_matrix(kind: type[FeatureMatrix] = FeatureMatrix, snapshots=None, lead_age=True, **options):
    all_snapshots, events, leads = hand_made()
    snapshots = all_snapshots if snapshots is None else snapshots
    created = snapshots["lead_id"].map(leads.set_index("lead_id")["created_at"])
    created_ns = created.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    options = {"event_types": TYPES, "attribute_counts": ATTRIBUTES, "scenarios": SCENARIOS, **options}
    return kind(EventTimeline.build(events, snapshots), created_at=created_ns if lead_age else None, **options)


def _family_names(features: FeatureMatrix) -> dict:
    """Each family's column names written from the naming rules, apart from the layout's code."""
    labels = {days: window_label(days) for days in features.windows}
    names = {("type_count", d): [f"{t}__count_{labels[d]}d" for t in features.types] for d in features.windows}
    names["days_since"] = [f"{t}__days_since_last" for t in features.types]
    for event_type, by_column in features.attribute_counts.items():
        for column, values in by_column.items():
            for d in features.windows:
                family = ("attribute_count", event_type, column, d)
                names[family] = [f"{event_type}[{v}]__count_{labels[d]}d" for v in values]
    for event_type, columns in features.event_values.items():
        for column in columns:
            for stat in ("sum", "mean", "max"):
                family = ("value", event_type, column, stat)
                names[family] = [f"{event_type}.{column}__{stat}_{labels[d]}d" for d in features.windows]
            names[("value_days_since", event_type, column)] = [f"{event_type}.{column}__days_since_last"]
    names["events_count"] = [f"events__count_{labels[d]}d" for d in features.windows]
    names["active_days"] = [f"events__active_days_{labels[d]}d" for d in features.windows]
    names.update({("decayed", h): [f"events__decayed_{window_label(h)}d"] for h in features.half_lives})
    names.update({"velocity": ["events__velocity_7d"]} if features.velocity else {})
    names.update({("scenario", name): [f"scenario[{name}]__steps"] for name in features.steps})
    names.update({"lead_age": ["lead__age_days"]} if features.created_at is not None else {})
    return names


def _disagreements(layout: Layout, names: dict) -> list:
    return [family for family in names if family not in layout.slices or layout.names_of(family) != names[family]]


@pytest.mark.parametrize(("rows", "options"), [([10, 11, 12, 13], {}), ([11, 12, 13], OTHER_OPTIONS)])
def test_each_family_slice_holds_its_names_and_every_column_is_written(rows, options):
    features = _hand_made_matrix(snapshots=hand_made()[0].loc[rows], **options)
    names, layout = _family_names(features), features.layout
    assert set(layout.slices) == set(names)
    assert _disagreements(layout, names) == []
    columns = range(len(features.infos))
    assert sorted(i for family in layout.slices for i in columns[layout.slice_of(family)]) == list(columns)
    features.matrix[:] = -7777.0  # a value no feature takes: any cell left holding it was never written
    features.fill_all()
    assert not (features.matrix == -7777.0).any()


def test_a_planted_layout_mistake_is_caught():
    features = _hand_made_matrix()
    layout = features.layout
    # two families trading slices still cover every column once, but their names say otherwise
    slices = layout.slices
    slices["events_count"], slices["active_days"] = slices["active_days"], slices["events_count"]
    assert _disagreements(layout, _family_names(features)) == ["events_count", "active_days"]
    # an offset off by one: a column in two families, another in none
    shifted = _hand_made_matrix().layout
    rows = shifted.slices["events_count"]
    shifted.slices["events_count"] = slice(rows.start + 1, rows.stop + 1)
    with pytest.raises(AssertionError, match="'events__count_7d' in 0 families, 'events__active_days_7d' in 2"):
        shifted.check()
    # one row of values would be broadcast over a family of three columns
    with pytest.raises(AssertionError, match="'active_days': values of shape \\(4,\\) for 3 columns"):
        features._writer(set())("active_days", np.zeros(4))


def test_a_family_left_unwritten_is_caught(monkeypatch):
    monkeypatch.setattr(FeatureMatrix, "_fill_whole_columns", lambda self, *args, **kwargs: None)
    with pytest.raises(AssertionError, match="never written.*'attribute_count', 'page_view', 'page', 7"):
        _hand_made_matrix().fill_all()


class _ReversedFamilies(FeatureMatrix):
    """The families laid out in the opposite order (each in a block of its own)."""

    def _lay_out(self) -> Layout:
        usual, layout = super()._lay_out(), Layout()
        for family in reversed(usual.slices):
            layout.add(family, usual.infos[usual.slices[family]])
        return layout


@pytest.mark.parametrize("rows", [[10, 11, 12, 13], [11, 12, 13]])  # several snapshots of a lead, then one each
def test_reordered_families_move_their_values_with_their_names(rows):
    snapshots = hand_made()[0].loc[rows]
    features = _hand_made_matrix(_ReversedFamilies, snapshots).fill_all().frame()
    assert list(features.columns)[:2] == ["lead__age_days", "scenario[content_path]__steps"]
    assert sorted(features.columns) == sorted(EXPECTED)
    for name, values in EXPECTED.items():
        np.testing.assert_allclose(features[name].to_numpy(), values[-len(rows) :], rtol=2e-6, err_msg=name)


# -- properties -----------------------------------------------------------------------------------

HOUR = pd.Timedelta(hours=1)
START = utc("2026-01-01")
rows = st.lists(
    st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 24 * 40), st.sampled_from(["open", "click", "view"])),
    max_size=30,
)
snapshot_rows = st.lists(
    st.tuples(st.sampled_from(["A", "B", "C", "E"]), st.integers(0, 24 * 40)), min_size=1, max_size=6
)


def _events(event_rows) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [lead for lead, _, _ in event_rows],
            "timestamp": pd.Series([START + hours * HOUR for _, hours, _ in event_rows], dtype="datetime64[ns, UTC]"),
            "event_type": [kind for _, _, kind in event_rows],
            "page": ["pricing" if hours % 3 == 0 else "blog" for _, hours, _ in event_rows],
            "amount": [float(hours % 7) if hours % 5 else None for _, hours, _ in event_rows],
        }
    )


def _features(snapshots, events):
    return behaviour_features(
        snapshots,
        events,
        windows=(1, 7),
        event_types=["click", "open", "view", "other"],
        attribute_counts={"view": {"page": ["pricing"]}},
        decay_half_lives=(2, 30),
        scenarios={"path": ["open", "view[pricing]", "click"]},
        event_values={"view": "amount"},
    )[0]


@settings(max_examples=60, deadline=None)
@given(rows, snapshot_rows, rows, st.data())
def test_events_at_or_after_as_of_change_nothing(event_rows, snap_rows, later_rows, data):
    snapshots = pd.DataFrame(
        {
            "lead_id": [lead for lead, _ in snap_rows],
            "as_of": pd.Series([START + hours * HOUR for _, hours in snap_rows], dtype="datetime64[ns, UTC]"),
        }
    )
    events = _events(event_rows)
    before = _features(snapshots, events)
    last_as_of = snapshots.groupby("lead_id")["as_of"].max()
    # new events at or after the last as_of of their lead, and events of leads with no snapshot
    future = _events(later_rows)
    future["timestamp"] = future["timestamp"] + (future["lead_id"].map(last_as_of).fillna(START) - START)
    # changing an existing event that is already in the future of every snapshot of its lead
    changed = events.copy()
    late = (changed["timestamp"] >= changed["lead_id"].map(last_as_of).fillna(START)).to_numpy()
    changed.loc[late, "event_type"] = data.draw(st.sampled_from(["click", "other"]))
    changed.loc[late, "page"] = "pricing"
    changed.loc[late, "amount"] = 1000.0
    after = _features(snapshots, pd.concat([changed, future], ignore_index=True))
    pd.testing.assert_frame_equal(before, after)


@settings(max_examples=40, deadline=None)
@given(rows, snapshot_rows, st.randoms(use_true_random=False))
def test_row_order_of_events_changes_nothing(event_rows, snap_rows, random):
    snapshots = pd.DataFrame(
        {
            "lead_id": [lead for lead, _ in snap_rows],
            "as_of": pd.Series([START + hours * HOUR for _, hours in snap_rows], dtype="datetime64[ns, UTC]"),
        }
    )
    events = _events(event_rows)
    shuffled = events.iloc[random.sample(range(len(events)), len(events))]
    pd.testing.assert_frame_equal(_features(snapshots, events), _features(snapshots, shuffled))


# -- the Parquet path's building blocks ----------------------------------------------------------

ids = st.text(alphabet=st.sampled_from(["a", "b", "Z", "\x00", "é", "7"]), max_size=10)


@settings(max_examples=150, deadline=None)
@given(st.lists(ids, max_size=12), st.lists(st.one_of(ids, st.none()), max_size=30), st.booleans())
def test_lead_codes_equal_a_dictionary_lookup(snapshot_ids, event_ids, sort):
    """Short ids (integer keys), long ones, NUL bytes, empty strings, repeats: all coded alike."""
    if sort:
        snapshot_ids = sorted(set(snapshot_ids))
    first: dict[str, int] = {}
    for lead in snapshot_ids:
        first.setdefault(lead, len(first))
    parts = [event_ids[:10], event_ids[10:25], event_ids[25:]]  # row groups, each with its dictionary
    column = pa.chunked_array([pc.dictionary_encode(pa.array(part, pa.string())) for part in parts])
    snapshot_codes, event_codes, n_leads = code_leads(pa.chunked_array([pa.array(snapshot_ids, pa.string())]), column)
    assert snapshot_codes.tolist() == [first[lead] for lead in snapshot_ids]
    assert event_codes.tolist() == [first.get(lead, -1) if lead is not None else -1 for lead in event_ids]
    assert n_leads == len(first)


def test_short_keys_are_exact_or_absent():
    assert short_keys(pa.array(["b", "ab", "a", ""])).argsort().tolist() == [3, 2, 1, 0]  # ordered like the strings
    assert short_keys(pa.array(["a", "a\x00"])) is None  # padding would make them equal
    assert short_keys(pa.array(["a\x00", "b\x00"])) is not None  # same length: exact
    assert short_keys(pa.array(["123456789"])) is None  # longer than 8 bytes
    assert short_keys(pa.array(["a", None])) is None


def test_streamed_row_groups_equal_the_frame_path(small_sim, tmp_path, monkeypatch):
    """Rows are written in row groups while the next blocks are computed; the file is the same."""
    monkeypatch.setattr(behaviour_parquet, "ROW_GROUP_ROWS", 700)
    monkeypatch.setattr(timeline_kernel, "BLOCK_CELLS", 1 << 12)
    leads = small_sim.leads
    snapshots = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": leads["created_at"] + pd.Timedelta(days=30)})
    expected, _ = behaviour_features(snapshots, small_sim.events, windows=(3, 30))
    snapshots.to_parquet(tmp_path / "snapshots.parquet", index=False)
    small_sim.events.to_parquet(tmp_path / "events.parquet", index=False)
    behaviour_features_from_parquet(
        tmp_path / "snapshots.parquet", tmp_path / "events.parquet", tmp_path / "out.parquet", windows=(3, 30)
    )
    assert pq.ParquetFile(tmp_path / "out.parquet").metadata.num_row_groups >= len(snapshots) // 1000
    written = pd.read_parquet(tmp_path / "out.parquet")
    assert written["lead_id"].tolist() == snapshots["lead_id"].tolist()
    pd.testing.assert_frame_equal(written.drop(columns=["lead_id", "as_of"]), expected)
