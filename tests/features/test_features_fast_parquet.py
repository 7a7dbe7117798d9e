"""`features_at` through the Arrow kernel (`open_leads_parquet`) gives the pandas path's frame, bit for bit.

Each case runs `features_at` twice: as it comes (the fast path when the events are plain Parquet)
and with the fast path switched off; the frames must be equal exactly (values, dtypes, column
order, categories). Cases: simulated data with and without outcomes, hand-made Parquet with ties,
events at and after as_of, missing attributes and values, leads created after as_of, closed leads;
and inputs the fast path must leave to the pandas path (orphans, early events, padded or blank
types, CSV), whose warnings and errors stay the same.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import leadml.features.open_leads_parquet as fast_path
from leadml.core.errors import LeadDataError
from leadml.data.contract import LeadDataWarning
from leadml.features.scoring_set import features_at
from leadml.features.snapshots import to_utc

AS_OF = "2026-03-01"


@pytest.fixture
def spy(monkeypatch) -> list[bool]:
    """Records, for every call of the fast path, whether it took the events (True) or declined."""
    calls: list[bool] = []
    original = fast_path.arrow_pipeline_data

    def recorded(*args, **kwargs):
        taken = original(*args, **kwargs)
        calls.append(taken is not None)
        return taken

    monkeypatch.setattr(fast_path, "arrow_pipeline_data", recorded)
    return calls


def pandas_path(pipeline: Path, as_of: str, monkeypatch) -> pd.DataFrame:
    """`features_at` with the fast path switched off."""
    with monkeypatch.context() as patch:
        patch.setattr(fast_path, "arrow_pipeline_data", lambda *args, **kwargs: None)
        return quiet_features(pipeline, as_of)


def quiet_features(pipeline: Path, as_of: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return features_at(pipeline, None, None, to_utc(as_of))


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.columns) == list(expected.columns)
    for column in expected.columns:
        if isinstance(expected[column].dtype, pd.CategoricalDtype):
            assert list(got[column].cat.categories) == list(expected[column].cat.categories), column


def write_pipeline(folder: Path, data: dict, features: dict | None = None, **sections) -> Path:
    path = folder / "pipeline.yaml"
    body: dict = {"name": "fast-parquet", "data": {"source": "tables", **data}, **sections}
    if features:
        body["features"] = features
    path.write_text(yaml.safe_dump(body, allow_unicode=True))
    return path


RICH_FEATURES = {
    "windows": [1, 7, 30],
    "attribute_counts": {"page_view": {"page": ["pricing", "café"]}},
    "scenarios": {"path": ["email_open", "page_view[pricing]"]},
    "event_values": {"purchase": "amount"},
}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    from leadml.data.simulate import write_simulation

    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, 3000, seed=23)
    return folder


@pytest.mark.parametrize("with_outcomes", [False, True])
@pytest.mark.parametrize("as_of", ["2025-09-01", "2026-07-01"])
@pytest.mark.parametrize("features", [None, {"attribute_counts": {"page_view": {"page": ["pricing", "blog"]}}}])
def test_simulated_fast_path_equals_pandas_path(
    simulated: Path, tmp_path: Path, monkeypatch, spy, with_outcomes, as_of, features
) -> None:
    data = {"leads": str(simulated / "leads.parquet"), "events": str(simulated / "events.parquet")}
    if with_outcomes:
        data["outcomes"] = str(simulated / "outcomes.parquet")
    pipeline = write_pipeline(tmp_path, data, features)
    got = quiet_features(pipeline, as_of)
    assert spy == [True]
    assert_same(got, pandas_path(pipeline, as_of, monkeypatch))


def clean_tables(folder: Path) -> dict:
    """Leads, events and outcomes as Parquet, the events clean for the contract, with the edge cases."""
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8"],
            "created_at": pd.to_datetime(
                [
                    "2026-01-01",
                    "2026-01-02",
                    "2026-01-03",
                    "2026-01-04",
                    "2026-02-01",
                    "2026-03-05",  # created after as_of: no row
                    "2026-01-05",
                    "2026-01-06",
                ],
                utc=True,
            ),
            "job_title": ["VP Sales", "Head of Marketing", None, "MSc student", "Ingénieur", "CEO", "n/a", "cto"],
            "industry": ["Software", " software ", "Select", None, "Énergie", "Retail", "UNKNOWN", "Retail"],
            "email_domain": ["acme.io", "gmail.com", None, "ann@web.de", "", "x.com", "gmail.com", "b.de"],
            "budget": [10.0, np.nan, 3.5, 0.0, np.nan, 1.0, 2.0, 4.0],
        }
    )
    rows = [
        ("L1", "2026-02-01T10:00:00Z", "page_view", "pricing", np.nan),
        ("L1", "2026-02-01T10:00:00Z", "email_open", None, np.nan),  # a tie, another type
        ("L1", "2026-02-01T10:00:00Z", "page_view", "café", np.nan),  # a tie, same type
        ("L1", "2026-03-01T00:00:00Z", "form", None, np.nan),  # at as_of: the future
        ("L2", "2026-02-27T00:00:00Z", "email_open", None, np.nan),
        ("L2", "2026-02-27T01:00:00Z", "page_view", "pricing", np.nan),
        ("L2", "2026-03-02T00:00:00Z", "page_view", "pricing", np.nan),  # after as_of
        ("L3", "2026-02-10T00:00:00Z", "purchase", None, 12.5),
        ("L3", "2026-02-11T00:00:00Z", "purchase", None, np.nan),  # a purchase without an amount
        ("L4", "2026-02-16T00:00:00Z", "page_view", None, np.nan),  # no page
        ("L4", "2026-02-15T00:00:00Z", "webinar", None, np.nan),  # out of time order in the file
        ("L6", "2026-03-06T00:00:00Z", "page_view", "pricing", np.nan),  # the lead created after as_of
        ("L7", "2026-02-28T23:59:59Z", "form", None, np.nan),  # a lead that closed before as_of
        ("L8", "2026-02-20T00:00:00Z", "purchase", None, 3.0),  # closed after as_of: still open
        ("L5", "2026-02-20T00:00:00Z", "email_open", None, np.nan),
    ]
    events = pd.DataFrame(rows, columns=["lead_id", "timestamp", "event_type", "page", "amount"])
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    outcomes = pd.DataFrame(
        {
            "lead_id": ["L7", "L8", "L1"],
            "outcome": ["won", "lost", "won"],
            "closed_at": pd.to_datetime(["2026-02-25", "2026-03-10", "2026-03-20"], utc=True),
        }
    )
    paths = {}
    for name, frame in (("leads", leads), ("events", events), ("outcomes", outcomes)):
        frame.to_parquet(folder / f"{name}.parquet", index=False)
        paths[name] = str(folder / f"{name}.parquet")
    return paths


@pytest.mark.parametrize("features", [None, RICH_FEATURES])
@pytest.mark.parametrize("with_outcomes", [False, True])
def test_hand_made_fast_path_equals_pandas_path(tmp_path: Path, monkeypatch, spy, features, with_outcomes) -> None:
    paths = clean_tables(tmp_path)
    if not with_outcomes:
        paths.pop("outcomes")
    pipeline = write_pipeline(tmp_path, paths, features)
    got = quiet_features(pipeline, AS_OF)
    assert spy == [True]
    assert_same(got, pandas_path(pipeline, AS_OF, monkeypatch))
    assert "L6" not in set(got["lead_id"])  # created after as_of
    assert ("L7" in set(got["lead_id"])) is not with_outcomes  # closed before as_of


def test_configured_event_types_and_naive_timestamps(tmp_path: Path, monkeypatch, spy) -> None:
    paths = clean_tables(tmp_path)
    events = pd.read_parquet(paths["events"])
    events["timestamp"] = events["timestamp"].dt.tz_localize(None)  # naive: taken as UTC
    events.to_parquet(paths["events"], index=False)
    pipeline = write_pipeline(tmp_path, paths, {"event_types": ["page_view", "demo_request"]})
    got = quiet_features(pipeline, AS_OF)
    assert spy == [True]
    assert_same(got, pandas_path(pipeline, AS_OF, monkeypatch))


def test_row_groups_and_microseconds(tmp_path: Path, monkeypatch, spy) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = clean_tables(tmp_path)
    events = pq.read_table(paths["events"])
    events = events.set_column(1, "timestamp", events.column("timestamp").cast(pa.timestamp("us", tz="UTC")))
    pq.write_table(events, paths["events"], row_group_size=4)  # four row groups, four dictionaries
    pipeline = write_pipeline(tmp_path, paths, RICH_FEATURES)
    got = quiet_features(pipeline, AS_OF)
    assert spy == [True]
    assert_same(got, pandas_path(pipeline, AS_OF, monkeypatch))


def edit_events(paths: dict, change) -> None:
    events = pd.read_parquet(paths["events"])
    change(events).to_parquet(paths["events"], index=False)


def with_orphan(events: pd.DataFrame) -> pd.DataFrame:
    orphan = events.iloc[[0]].assign(lead_id="L99")
    return pd.concat([events, orphan], ignore_index=True)


def with_early_event(events: pd.DataFrame) -> pd.DataFrame:
    return events.assign(timestamp=events["timestamp"].where(events.index != 4, pd.Timestamp("2025-12-01", tz="UTC")))


def with_padded_type(events: pd.DataFrame) -> pd.DataFrame:
    return events.assign(event_type=events["event_type"].where(events.index != 2, " page_view"))


@pytest.mark.parametrize(
    ("change", "on_orphans", "kind"),
    [
        (with_orphan, "drop", "orphan_events"),
        (with_early_event, "error", "early_events"),
        (with_padded_type, "error", None),
    ],
)
def test_what_the_contract_reports_goes_the_pandas_path(
    tmp_path: Path, monkeypatch, spy, change, on_orphans, kind
) -> None:
    paths = clean_tables(tmp_path)
    edit_events(paths, change)
    pipeline = write_pipeline(tmp_path, {**paths, "on_orphans": on_orphans})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = features_at(pipeline, None, None, to_utc(AS_OF))
    assert spy == [False]
    kinds = [w.message.kind for w in caught if isinstance(w.message, LeadDataWarning)]
    assert kinds.count(kind) == (1 if kind else 0)
    assert_same(got, pandas_path(pipeline, AS_OF, monkeypatch))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (with_orphan, "1 events of unknown leads"),
        (lambda events: events.assign(event_type=events["event_type"].where(events.index != 3, " ")), "event_type"),
        (lambda events: events.assign(lead_id=events["lead_id"].where(events.index != 1, "")), "lead_id"),
    ],
)
def test_the_contract_errors_are_unchanged(tmp_path: Path, spy, change, message) -> None:
    paths = clean_tables(tmp_path)
    edit_events(paths, change)
    pipeline = write_pipeline(tmp_path, paths)
    with pytest.raises(LeadDataError, match=message):
        quiet_features(pipeline, AS_OF)
    assert spy == [False]


def test_csv_events_and_column_maps_take_the_pandas_path(tmp_path: Path, spy) -> None:
    paths = clean_tables(tmp_path)
    pd.read_parquet(paths["events"]).to_csv(tmp_path / "events.csv", index=False)
    quiet_features(write_pipeline(tmp_path, {**paths, "events": str(tmp_path / "events.csv")}), AS_OF)
    events = pd.read_parquet(paths["events"]).rename(columns={"event_type": "kind"})
    events.to_parquet(tmp_path / "mapped.parquet", index=False)
    mapped = {"path": str(tmp_path / "mapped.parquet"), "columns": {"event_type": "kind"}}
    quiet_features(write_pipeline(tmp_path, {**paths, "events": mapped}), AS_OF)
    assert spy == [False, False]


def test_encode_by_distinct_equals_the_encoder() -> None:
    from leadml.features.open_leads_parquet import encode_by_distinct
    from leadml.features.profile import ProfileEncoder

    rows = pd.DataFrame(
        {
            "industry": pd.Categorical(["Software", " software ", None, "Select", "Retail", "Software", "Énergie"]),
            "country": pd.Series(["FR", "fr", None, "", "DE", "FR", np.nan], dtype=object),
            "size": pd.Series(["1-10", None, "1-10", "11-50", "n/a", "1-10", "11-50"], dtype="str"),
            "budget": [0.0, -0.0, np.nan, 3.5, 3.5, 1e300, np.nan],
            "seats": np.array([1, 2, 2, 3, 2**60 + 1, 2**60, 1], dtype=np.int64),
        },
        index=pd.RangeIndex(10, 17),
    )
    encoder = ProfileEncoder(["industry", "country", "size", "budget", "seats", "absent"], min_frequency=0.1)
    encoder.fit(rows.assign(absent=np.nan))
    for frame in (rows, rows.iloc[::-1], rows.iloc[:0], rows.assign(country=[1, "1", None, 1.0, "x", "y", "z"])):
        expected = encoder.transform(frame)
        got = encode_by_distinct(encoder, frame)
        assert_same(got, expected)
        assert np.array_equal(np.signbit(got["budget"].to_numpy()), np.signbit(expected["budget"].to_numpy()))
