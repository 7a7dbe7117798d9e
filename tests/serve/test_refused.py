"""Bad events and leads get 422 naming the field and the reason, and nothing of their request is stored."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from leadml.serve.app import create_app
from tests.serve.conftest import AS_OF, json_rows


@pytest.fixture
def client(served_model, tmp_path):
    config, scoring, data = served_model
    app = create_app(config, model_uri=scoring, store=tmp_path / "serve.sqlite", as_of=AS_OF)
    with TestClient(app) as client:
        assert client.post("/leads", json=json_rows(data.leads.head(5))).status_code == 200
        client.lead_ids = data.leads["lead_id"].head(5).tolist()
        yield client


def counts(client) -> dict:
    health = client.get("/health").json()
    return {key: health[key] for key in ("leads", "events", "scores", "alerts_pending")}


def good(lead: str, **changes) -> dict:
    event = {"lead_id": lead, "timestamp": "2026-02-20T10:00:00Z", "event_type": "page_view", "page": "pricing"}
    return {**event, **changes}


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        ({"timestamp": "yesterday-ish"}, "timestamp", "not dates|timestamp"),
        ({"timestamp": None}, "timestamp", "required"),
        ({"event_type": "  "}, "event_type", "required|empty"),
        ({"lead_id": "nobody"}, "lead_id", "unknown lead 'nobody'"),
        ({"page": {"url": "/pricing"}}, "page", "holds a dict"),
    ],
    ids=["bad-timestamp", "no-timestamp", "blank-type", "unknown-lead", "nested-value"],
)
def test_a_bad_event_refuses_its_whole_batch(client, bad, field, reason):
    import re

    before = counts(client)
    first, second = client.lead_ids[:2]
    answer = client.post("/events", json=[good(first), good(second, **bad), good(first, event_type="email_open")])
    assert answer.status_code == 422
    detail = answer.json()["detail"][0]
    assert detail["field"] == field and detail["loc"][-1] == field
    assert detail["loc"][1] == 1  # the second row of the request
    assert re.search(reason, detail["msg"]), detail["msg"]
    assert counts(client) == before  # nothing stored, not even the good rows


def test_a_missing_field_is_named(client):
    event = good(client.lead_ids[0])
    del event["event_type"]
    answer = client.post("/events", json=event)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["field"] == "event_type"


def test_a_new_lead_needs_created_at_and_good_events_are_taken(client):
    answer = client.post("/leads", json={"lead_id": "fresh", "job_title": "CTO"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["field"] == "created_at"
    answer = client.post("/leads", json={"lead_id": "fresh", "created_at": "not a date"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["field"] == "created_at"
    before = counts(client)
    answer = client.post("/events", json=[good(client.lead_ids[0]), good(client.lead_ids[1], timestamp=1771581600000)])
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 2 and counts(client)["events"] == before["events"] + 2
    assert {row["lead_id"] for row in answer.json()["scores"]} <= set(client.lead_ids[:2])


def test_an_update_keeps_the_fields_not_given(client):
    lead_id = client.lead_ids[0]
    stored = client.get(f"/leads/{lead_id}").json()
    answer = client.post("/leads", json={"lead_id": lead_id, "country": "DE"})
    assert answer.status_code == 200, answer.text
    after = client.get(f"/leads/{lead_id}").json()
    assert len(after["history"]) == len(stored["history"]) + 1
    assert client.get("/leads/nobody").status_code == 404


@pytest.mark.parametrize("endpoint", ["/events", "/leads", "/outcomes"])
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"lead_id": "L1", ', "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'"a text"', "row 0 is not a JSON object"),
        (b'[{"lead_id": "L1"}, 7]', "row 1 is not a JSON object"),
    ],  # fmt: skip
    ids=["cut-short", "not-utf8", "a-text", "a-number-in-the-list"],
)
def test_a_body_that_is_not_json_rows_is_refused(client, endpoint, body, reason):
    before = counts(client)
    answer = client.post(endpoint, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    (detail,) = answer.json()["detail"]
    assert detail["field"] == "body" and reason in detail["msg"]
    assert counts(client) == before
    schema = client.get("/openapi.json").json()["paths"][endpoint]["post"]["requestBody"]
    assert schema["required"] is True and "application/json" in schema["content"]
