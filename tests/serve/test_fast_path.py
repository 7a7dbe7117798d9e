"""The served fast path equals the batch job: cached profile features, and events posted one request at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from leadml.data import contract
from leadml.features.chunk import profile_features
from leadml.jobs.score import score_batch
from leadml.serve.app import create_app
from leadml.serve.chunks import ProfileCache, profile_key
from leadml.serve.scorer import events_frame, events_table, stored_events
from leadml.serve.store import ServeStore
from tests.serve.conftest import AS_OF, json_rows


def test_cached_profile_features_equal_the_encoders_output(served_model):
    config, scoring, data = served_model
    builder = scoring.builder
    leads = contract.validate_leads(data.leads.copy(), source="test")
    expected = profile_features(builder, leads.reset_index(drop=True))
    cache = ProfileCache(builder)
    first = cache.features(leads.reset_index(drop=True))
    again = cache.features(leads.reset_index(drop=True))  # every row from the cache now
    pd.testing.assert_frame_equal(first, expected, check_exact=True)
    pd.testing.assert_frame_equal(again, expected, check_exact=True)

    some = leads.sample(50, random_state=3).reset_index(drop=True)  # another order, other neighbours
    pd.testing.assert_frame_equal(cache.features(some), profile_features(builder, some), check_exact=True)
    one = some.iloc[[7]].reset_index(drop=True)
    pd.testing.assert_frame_equal(cache.features(one), profile_features(builder, one), check_exact=True)


def test_a_changed_profile_is_encoded_again(served_model):
    config, scoring, data = served_model
    builder = scoring.builder
    leads = contract.validate_leads(data.leads.head(3).copy(), source="test").reset_index(drop=True)
    cache = ProfileCache(builder)
    cache.features(leads)
    column = next(c for c in builder.encoder_.categorical_ if c in leads.columns)
    changed = leads.copy()
    changed[column] = changed[column].astype(object)
    changed.loc[0, column] = "a value never seen in training"
    pd.testing.assert_frame_equal(cache.features(changed), profile_features(builder, changed), check_exact=True)
    pd.testing.assert_frame_equal(cache.features(leads), profile_features(builder, leads), check_exact=True)


def test_a_lead_read_alone_keeps_the_entry_of_its_batch_read(served_model):
    """A lead posted in a batch, then read alone from its stored profile (its missing fields absent,
    its integer columns no longer floats beside a lead missing them), finds its cached features."""
    from leadml.serve.scorer import leads_frame

    config, scoring, data = served_model
    rows = json_rows(data.leads.head(60))
    batch = leads_frame(rows)
    cache = ProfileCache(scoring.builder)
    cache.features(batch)
    differ = 0
    for k in (0, 7, 31, 59):
        lone = leads_frame([rows[k]])
        differ += set(lone.columns) != set(batch.columns) or any(
            lone[c].dtype != batch[c].dtype for c in lone.columns if c in batch.columns
        )
        entry = cache._rows[str(rows[k]["lead_id"])]
        pd.testing.assert_frame_equal(cache.features(lone), profile_features(scoring.builder, lone), check_exact=True)
        assert cache._rows[str(rows[k]["lead_id"])] is entry, f"lead {k} was encoded again"
        kept = cache.features(lone)  # the lone frame kept: equal again, and apart from what a caller changes
        kept.iloc[0, 0] = np.nan if kept.dtypes.iloc[0] == np.float64 else None
        pd.testing.assert_frame_equal(cache.features(lone), profile_features(scoring.builder, lone), check_exact=True)
    assert differ, "no lone frame differed from the batch frame: the case is not exercised"


def test_the_profile_key_tells_apart_what_the_encoder_reads_apart():
    """Text columns: 50 in an integer column and 50.0 in a float one are two texts, two keys (the
    encoder cleans ``"50"`` and ``"50.0"``); numeric columns: both are the double 50.0, one key;
    a missing value and an absent column are one key."""
    read, numeric = ["size", "zip", "title"], {"size"}
    ints = pd.DataFrame({"size": [50], "zip": [50], "title": ["CEO"]})
    floats = pd.DataFrame({"size": [50.0], "zip": [50.0], "title": ["CEO"]})
    text = pd.DataFrame({"size": ["50"], "zip": ["50"], "title": ["CEO"]})
    (a,), (b,), (c,) = (profile_key(f, read, numeric) for f in (ints, floats, text))
    assert a[0] == b[0] == c[0] == "50.0"
    assert len({a[1], b[1], c[1]}) == 3
    absent = pd.DataFrame({"size": [np.nan], "zip": [None]})
    missing = pd.DataFrame({"size": [None], "zip": [np.nan], "title": [None]})
    assert profile_key(absent, read, numeric) == profile_key(missing, read, numeric)
    assert profile_key(pd.DataFrame({"size": [-0.0]}), ["size"], numeric) != profile_key(
        pd.DataFrame({"size": [0.0]}), ["size"], numeric
    )


def test_events_posted_one_request_at_a_time_score_as_the_batch_job(served_model, tmp_path):
    config, scoring, data = served_model
    score_batch(config, AS_OF, tmp_path / "batch.parquet", model_uri=scoring, reasons="all", history=False,
                progress=False)  # fmt: skip
    batch = pd.read_parquet(tmp_path / "batch.parquet")
    events = data.events.sort_values("timestamp", kind="stable")
    chosen = set(pd.Series(batch["lead_id"].unique()).sample(25, random_state=11))
    mine = events["lead_id"].astype(str).isin(chosen)

    app = create_app(config, model_uri=scoring, store=tmp_path / "serve.sqlite", as_of=AS_OF)
    with TestClient(app) as client:
        assert client.post("/leads", json=json_rows(data.leads)).status_code == 200
        rest = json_rows(events[~mine])
        for first in range(0, len(rest), 700):
            assert client.post("/events", json=rest[first : first + 700]).status_code == 200
        for event in json_rows(events[mine]):  # the sampled leads' events, one request each
            answer = client.post("/events", json=event)
            assert answer.status_code == 200, answer.text
        served = [client.get(f"/leads/{lead_id}").json()["score"] for lead_id in batch["lead_id"]]

    probability = np.array([row["probability"] for row in served], dtype=np.float64)
    assert np.array_equal(probability, batch["probability"].to_numpy(dtype=np.float64))
    for name in ("tier", "score", "is_mql", "grid_tier", "next_action", "mql_route", "reason_1", "reason_2",
                 "reason_3"):  # fmt: skip
        assert [row[name] for row in served] == [None if pd.isna(v) else v for v in batch[name]], name


def test_the_lean_events_frame_equals_the_contracts_check(served_model):
    config, scoring, data = served_model
    events = data.events.sort_values("timestamp", kind="stable").head(4000)
    names = sorted(c for c in events.columns if c not in ("lead_id", "timestamp", "event_type"))
    rows = [(0, str(r["lead_id"]), pd.Timestamp(r["timestamp"]).value, str(r["event_type"]),
             {n: r[n] for n in names if not pd.isna(r[n])}) for r in events.to_dict("records")]  # fmt: skip
    rows.append((0, rows[0][1], rows[0][2], "a type seen once", {names[0]: "text"} if names else {}))
    for part in (rows, rows[:1], [r for r in rows if r[1] == rows[5][1]]):
        checked = contract.validate_events(stored_events(part, names), source="test")
        pd.testing.assert_frame_equal(events_frame(part, names), checked, check_exact=True)
    assert events_frame([], names) is None
    t = pd.Timestamp("2026-02-01", tz="UTC").value
    hand = [(1, "b", t + 5, "visit", {"flag": True, "n": 2}), (2, "a", t, "visit", {"flag": "yes", "ü": "é"}),
            (3, "b", t + 5, "form", {"n": 1.5}), (4, "a", t - 1, "Visit", {}), (5, "b", t, "visit", {"flag": False})]  # fmt: skip
    for part in (hand, hand[2:3], hand[::-1]):
        for attributes in (["flag", "n", "ü"], ["never"]):
            checked = contract.validate_events(stored_events(part, attributes), source="test")
            pd.testing.assert_frame_equal(events_frame(part, attributes), checked, check_exact=True)


def test_the_lean_leads_frame_equals_the_contracts_check(served_model):
    """Stored profiles (as check_leads leaves them) typed in one go equal the contract's check of them;
    profiles that are not plain go through the contract itself."""
    from leadml.serve.inputs import check_leads
    from leadml.serve.scorer import leads_frame

    config, scoring, data = served_model
    profiles = list(check_leads(json_rows(data.leads.head(300)), {}, config).profiles.values())
    hand = [{"lead_id": "a", "created_at": "2026-01-02T03:04:05.123456789+00:00", "employees": 12, "plan": "pro"},
            {"lead_id": "b", "created_at": "2026-01-02T03:04:05+00:00", "employees": 1.5},
            {"lead_id": "c", "created_at": "2026-01-02", "won": True, "plan": None}]  # fmt: skip
    for part in (profiles, profiles[:1], profiles[7:8], profiles[::13], hand, hand[1:], hand[2:]):
        expected = contract.validate_leads(pd.DataFrame(part), source="test")
        pd.testing.assert_frame_equal(leads_frame(part), expected, check_exact=True)
    for odd in ([{"lead_id": 7, "created_at": "2026-01-02"}], [{"lead_id": " x ", "created_at": "2026-01-02"}],
                [{"lead_id": "x", "created_at": 1767312000000}]):  # fmt: skip
        expected = contract.validate_leads(pd.DataFrame(odd), source="test")
        pd.testing.assert_frame_equal(leads_frame(odd), expected, check_exact=True)


def test_scores_are_stored_in_one_statement_and_the_last_of_each_lead_is_its_latest(tmp_path):
    store = ServeStore(tmp_path / "s.sqlite")
    as_of = "2026-03-01T00:00:00+00:00"

    def row(lead_id: str, probability: float, tier: str) -> dict:
        return {"lead_id": lead_id, "as_of": as_of, "model_version": "1", "probability": probability, "tier": tier,
                "is_mql": tier == "MQL"}  # fmt: skip

    with store.transaction() as db:
        store.add_scores(db, [row("a", 0.1, "C"), row("b", 0.9, "MQL")], {"a": 4})
    with store.transaction() as db:
        store.add_scores(db, [row("b", 0.2, "C"), row("c", 0.5, "B"), row("c", 0.6, "B")], {})
        store.add_scores(db, [], {})
    latest = store.latest()
    assert {k: (v["probability"], v["tier"], v["last_event"]) for k, v in latest.items()} == {
        "a": (0.1, "C", 4), "b": (0.2, "C", 0), "c": (0.6, "B", 0)}  # fmt: skip
    assert [h["probability"] for h in store.history("b")] == [0.2, 0.9]
    assert store.counts()["scores"] == 5
    assert store.latest_mqls() == []
    store.close()


def test_the_events_table_equals_the_arrow_table_of_the_frame(served_model):
    """Stored rows straight to Arrow give the table the batch job makes of their frame (the same columns,
    types, dictionaries and nulls); an attribute mixing kinds gives the frame itself."""
    from leadml.jobs.inputs import _arrow_events

    config, scoring, data = served_model
    events = data.events.sort_values("timestamp", kind="stable").head(3000)
    names = sorted(c for c in events.columns if c not in ("lead_id", "timestamp", "event_type"))
    rows = [(0, str(r["lead_id"]), pd.Timestamp(r["timestamp"]).value, str(r["event_type"]),
             {n: r[n] for n in names if not pd.isna(r[n])}) for r in events.to_dict("records")]  # fmt: skip
    t = pd.Timestamp("2026-02-01", tz="UTC").value
    hand = [(1, " b", t + 5, "visit ", {"page": "pricing", "n": 2}), (2, "a", t, "visit", {"page": None, "n": 1.5}),
            (3, "b", t + 5, "form", {"n": float("nan")}), (4, "a", t - 1, "Visit", {"ü": "é"}), (5, "b", t, "visit", {})]  # fmt: skip
    many = [(k, f"L{k % 7}", t + k, f"type {k % 200}", {"page": f"p{k % 150}"}) for k in range(900)]  # int16 codes
    cases = [(rows, names), (rows[:1], names), (rows[:1], []), (hand, ["n", "page", "ü"]), (hand[::-1], ["never"]),
             (many, ["page"])]  # fmt: skip
    for part, attributes in cases:
        frame = events_frame(part, attributes)
        expected = _arrow_events(frame, list(frame.columns)).replace_schema_metadata()
        table = events_table(part, attributes)
        assert table.schema == expected.schema
        assert table.equals(expected)
    mixed = [(1, "a", t, "visit", {"flag": True}), (2, "a", t + 1, "visit", {"flag": "yes"})]
    pd.testing.assert_frame_equal(events_table(mixed, ["flag"]), events_frame(mixed, ["flag"]))
    assert events_table([], names) is None
