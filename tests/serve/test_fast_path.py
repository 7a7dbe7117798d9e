"""The served fast path equals the batch job: cached profile features, and events posted one request at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from leadml.data import contract
from leadml.features.chunk import profile_features
from leadml.jobs.score import score_batch
from leadml.serve.app import create_app
from leadml.serve.chunks import ProfileCache
from leadml.serve.scorer import events_frame, stored_events
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
