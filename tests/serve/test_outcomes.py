"""``POST /outcomes``: a lead closed before the instant is no longer scored or queued, an MQL that sales
accepted (``sql_at``) is not overdue, and a refused row stores nothing."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from leadml.jobs.score import score_batch
from leadml.serve.app import create_app
from tests.serve.conftest import AS_OF, json_rows

T0 = pd.Timestamp(AS_OF, tz="UTC")


@pytest.fixture
def three_mqls(served_model, tmp_path):
    """(config with 24-hour deadlines, scoring, data, three leads the batch job makes MQLs at AS_OF)."""
    config, scoring, data = served_model
    score_batch(config, AS_OF, tmp_path / "batch.parquet", model_uri=scoring, reasons=False, history=False,
                progress=False)  # fmt: skip
    scores = pd.read_parquet(tmp_path / "batch.parquet")
    tiers = [{"name": name, "min": low, "action": "Call", "within_hours": 24}
             for name, low in (("A", 0.5), ("B", 0.25), ("C", 0.1), ("D", None))]  # fmt: skip
    return config.with_overrides({"mql.tiers": tiers}), scoring, data, scores.loc[scores["is_mql"], "lead_id"].head(3)


def test_closed_leads_leave_and_accepted_mqls_are_not_overdue(three_mqls, tmp_path):
    config, scoring, data, chosen = three_mqls
    closed, accepted, waiting = chosen.tolist()
    now = {"t": T0}
    app = create_app(config, model_uri=scoring, store=tmp_path / "serve.sqlite", clock=lambda: now["t"])
    with TestClient(app) as client:
        client.post("/leads", json=json_rows(data.leads[data.leads["lead_id"].isin(chosen)]))
        client.post("/events", json=json_rows(data.events[data.events["lead_id"].isin(chosen)]))
        assert [row["sla"] for row in client.get("/queue").json()["queue"]] == ["due"] * 3

        now["t"] = T0 + pd.Timedelta(hours=25)  # every deadline has passed
        answer = client.post("/outcomes", json=[
            {"lead_id": closed, "outcome": "lost", "closed_at": (T0 + pd.Timedelta(hours=2)).isoformat()},
            {"lead_id": accepted, "sql_at": (T0 + pd.Timedelta(hours=30)).isoformat()},  # after now: not yet
        ])  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert [row["lead_id"] for row in answer.json()["scores"]] == [accepted]  # the closed lead is not scored
        queue = {row["lead_id"]: row["sla"] for row in client.get("/queue").json()["queue"]}
        assert queue == {accepted: "overdue", waiting: "overdue"}

        answer = client.post(
            "/outcomes", json={"lead_id": accepted, "sql_at": (T0 + pd.Timedelta(hours=3)).isoformat()}
        )
        assert answer.status_code == 200, answer.text
        queue = {row["lead_id"]: row["sla"] for row in client.get("/queue").json()["queue"]}
        assert queue == {accepted: "accepted", waiting: "overdue"}
        row = client.get(f"/leads/{accepted}").json()
        assert row["score"]["is_mql"] and row["score"]["overdue"] is False  # the batch job's hand-off state
        assert row["outcome"] == {"lead_id": accepted, "sql_at": (T0 + pd.Timedelta(hours=3)).isoformat()}

        gone = client.get(f"/leads/{closed}").json()
        assert gone["score"] is None and len(gone["history"]) == 2 and gone["outcome"]["outcome"] == "lost"
        later = client.post("/events", json={"lead_id": closed, "timestamp": T0.isoformat(), "event_type": "page_view"})
        assert later.status_code == 200 and later.json()["scores"] == []  # stored, but a closed lead is not scored
        assert client.get("/health").json()["outcomes"] == 2


def test_a_lead_closing_after_the_instant_stays_queued(three_mqls, tmp_path):
    config, scoring, data, chosen = three_mqls
    app = create_app(config, model_uri=scoring, store=tmp_path / "serve.sqlite", as_of=AS_OF)
    later = (T0 + pd.Timedelta(days=3)).isoformat()
    with TestClient(app) as client:
        client.post("/leads", json=json_rows(data.leads[data.leads["lead_id"].isin(chosen)]))
        client.post("/events", json=json_rows(data.events[data.events["lead_id"].isin(chosen)]))
        answer = client.post("/outcomes", json=[{"lead_id": k, "outcome": "won", "closed_at": later} for k in chosen])
        assert answer.status_code == 200 and len(answer.json()["scores"]) == 3
        assert sorted(row["lead_id"] for row in client.get("/queue").json()["queue"]) == sorted(chosen)


def test_a_refused_outcome_stores_nothing(three_mqls, tmp_path):
    config, scoring, data, chosen = three_mqls
    app = create_app(config, model_uri=scoring, store=tmp_path / "serve.sqlite", as_of=AS_OF)
    first = chosen.iloc[0]
    created = pd.Timestamp(data.leads.set_index("lead_id").loc[first, "created_at"])
    with TestClient(app) as client:
        client.post("/leads", json=json_rows(data.leads[data.leads["lead_id"] == first]))
        cases = [
            ([{"lead_id": first, "outcome": "won", "closed_at": AS_OF}, {"lead_id": "nobody", "outcome": "won",
              "closed_at": AS_OF}], "lead_id", 1),
            ([{"lead_id": first, "outcome": "maybe", "closed_at": AS_OF}], "outcome", None),
            ([{"lead_id": first, "outcome": "won", "closed_at": (created - pd.Timedelta(days=1)).isoformat()}],
             "closed_at", None),
        ]  # fmt: skip
        for body, field, row in cases:
            answer = client.post("/outcomes", json=body)
            assert answer.status_code == 422, answer.text
            detail = answer.json()["detail"][0]
            assert detail["field"] == field and (row is None or detail["loc"][1] == row)
        assert client.get("/health").json()["outcomes"] == 0
        assert client.get(f"/leads/{first}").json()["outcome"] is None
        assert 'leadml_serve_refused_total{endpoint="outcomes"} 3.0' in client.get("/metrics").text
