"""Running ``leadml serve``: metrics, the champion reloaded under load, the webhook's retries with backoff."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from leadml.serve.alerts import WebhookSender, backoff_seconds
from leadml.serve.app import create_app
from leadml.serve.store import ServeStore
from tests.serve.conftest import AS_OF, json_rows


def test_metrics_count_events_and_name_the_model(served_model, tmp_path):
    config, scoring, data = served_model
    app = create_app(config, model_uri=scoring, store=tmp_path / "serve.sqlite", as_of=AS_OF)
    lead_ids = data.leads["lead_id"].head(3).tolist()
    with TestClient(app) as client:
        client.post("/leads", json=json_rows(data.leads.head(3)))
        events = data.events[data.events["lead_id"].isin(lead_ids)]
        client.post("/events", json=json_rows(events))
        client.post("/events", json={"lead_id": lead_ids[0]})  # refused: no timestamp, no type
        text = client.get("/metrics").text
    assert f"leadml_serve_events_total {float(len(events))}" in text
    assert 'leadml_serve_ingest_seconds_bucket{endpoint="events",le="0.025"}' in text
    assert 'leadml_serve_ingest_seconds_count{endpoint="events"} 1.0' in text
    assert 'leadml_serve_refused_total{endpoint="events"} 1.0' in text
    assert re.search(r'leadml_serve_model_info\{name="[^"]+",uri="<in memory>",version=""\} 1.0', text)
    assert "leadml_serve_events_per_second" in text


def test_a_reload_drops_no_request(served_model, tmp_path):
    import mlflow.pyfunc

    from leadml.modeling.registry import LeadmlPyfunc

    config, scoring, data = served_model
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=LeadmlPyfunc(scoring))
    app = create_app(config, model_uri=str(tmp_path / "model"), store=tmp_path / "serve.sqlite", as_of=AS_OF)
    lead_ids = data.leads["lead_id"].head(20).tolist()
    events = json_rows(data.events[data.events["lead_id"].isin(lead_ids)].sort_values("timestamp"))
    with TestClient(app) as client:
        assert client.post("/leads", json=json_rows(data.leads.head(20))).status_code == 200
        with ThreadPoolExecutor(4) as pool:
            posts = [pool.submit(client.post, "/events", json=events[k : k + 10]) for k in range(0, len(events), 10)]
            reloads = [pool.submit(client.post, "/model/reload") for _ in range(2)]
            statuses = [f.result().status_code for f in posts + reloads]
        assert statuses == [200] * len(statuses)
        assert client.get("/health").json()["events"] == len(events)


def test_the_webhook_retries_with_backoff_until_delivered(tmp_path):
    answers = [500, 503, 204]
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(answers.pop(0) if answers else 204)
            self.end_headers()

        def log_message(self, *args):
            """Quiet: the receiver prints nothing into the test output."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    store = ServeStore(tmp_path / "serve.sqlite")
    with store.transaction() as db:
        store.add_alerts(db, [{"lead_id": "L1", "to_tier": "A", "reasons": ["a reason"]}])
    sender = WebhookSender(store, f"http://127.0.0.1:{server.server_address[1]}/", base_backoff=0.05).start()
    try:
        deadline = time.monotonic() + 20
        while not (store.alerts() and store.alerts()[0]["delivered"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        alert = store.alerts()[0]
        assert alert["delivered"] and alert["attempts"] == 3 and len(received) == 3
        assert received[-1] == {"type": "tier_crossing", "lead_id": "L1", "to_tier": "A", "reasons": ["a reason"]}
    finally:
        sender.stop()
        server.shutdown()
        server.server_close()
        store.close()
    assert backoff_seconds(3, 0.05) == pytest.approx(0.2)


def test_an_mql_keeps_its_deadline_from_the_start_of_its_spell(served_model, tmp_path):
    """The queue's SLA state comes from the score history: a later score of the same MQL keeps
    ``mql_since`` and ``due_at`` (as the batch job's hand-off does), and the lead turns overdue."""
    import pandas as pd

    from leadml.jobs.score import score_batch

    config, scoring, data = served_model
    score_batch(config, AS_OF, tmp_path / "batch.parquet", model_uri=scoring, reasons=False, history=False,
                progress=False)  # fmt: skip
    scores = pd.read_parquet(tmp_path / "batch.parquet")
    lead_id = scores.loc[scores["is_mql"], "lead_id"].iloc[0]
    now = {"t": pd.Timestamp(AS_OF, tz="UTC")}
    tiers = [{"name": name, "min": low, "action": "Call", "within_hours": 24}
             for name, low in (("A", 0.5), ("B", 0.25), ("C", 0.1), ("D", None))]  # fmt: skip
    config = config.with_overrides({"mql.tiers": tiers})  # the model's tiers, each with a deadline
    app = create_app(config, model_uri=scoring, store=tmp_path / "serve.sqlite", clock=lambda: now["t"])
    with TestClient(app) as client:
        client.post("/leads", json=json_rows(data.leads[data.leads["lead_id"] == lead_id]))
        client.post("/events", json=json_rows(data.events[data.events["lead_id"] == lead_id]))
        first = client.get(f"/leads/{lead_id}").json()["score"]
        assert first["is_mql"] and pd.Timestamp(first["mql_since"]) == now["t"]
        [queued] = client.get("/queue").json()["queue"]
        assert queued["lead_id"] == lead_id and queued["sla"] == "due"
        now["t"] = pd.Timestamp(first["due_at"]) + pd.Timedelta(hours=1)
        client.post("/events", json={"lead_id": lead_id, "timestamp": AS_OF, "event_type": "page_view"})
        later = client.get(f"/leads/{lead_id}").json()
        assert later["score"]["is_mql"]  # still an MQL an hour after its deadline: the same spell, now overdue
        assert later["score"]["mql_since"] == first["mql_since"] and later["score"]["due_at"] == first["due_at"]
        [queued] = client.get("/queue").json()["queue"]
        assert queued["sla"] == "overdue" and queued["hours_left"] < 0
        assert len(later["history"]) == 3  # the profile alone, the events, the later event


def test_the_examples_in_the_docstrings_run():
    import doctest

    import leadml.serve.alerts

    assert doctest.testmod(leadml.serve.alerts).failed == 0


def test_the_store_syncs_as_the_pipeline_says(served_model, tmp_path):
    """``serve.synchronous``: full (the default) syncs every commit, normal does not; others are refused."""
    from leadml.core.config import parse_pipeline
    from leadml.core.errors import ConfigError

    config, scoring, data = served_model
    assert config.serve.synchronous == "full"
    for name, level in (("full", 2), ("normal", 1)):
        store = ServeStore(tmp_path / f"{name}.sqlite", name)
        assert store._query("PRAGMA synchronous") == [(level,)]
        store.close()
    relaxed = config.model_copy(update={"serve": config.serve.model_copy(update={"synchronous": "normal"})})
    app = create_app(relaxed, model_uri=scoring, store=tmp_path / "app.sqlite", as_of=AS_OF)
    with TestClient(app):
        assert app.state.service.store._query("PRAGMA synchronous") == [(1,)]
    with pytest.raises(ValueError):
        ServeStore(tmp_path / "other.sqlite", "off")
    with pytest.raises((ConfigError, ValueError)):
        parse_pipeline({"name": "x", "serve": {"synchronous": "off"}})


def test_a_thread_checkpoints_the_log_off_the_request_path(served_model, tmp_path):
    """With ``serve.checkpoint_seconds`` the log is moved into the database file by a thread: the file
    alone (without its ``-wal``) then holds every acknowledged row; the requests' own threshold is
    the backstop. With 0 there is no thread and SQLite checkpoints inside the requests."""
    import shutil
    import sqlite3
    import time

    from leadml.serve.checkpoints import BACKSTOP_PAGES

    config, scoring, data = served_model
    serve = config.serve.model_copy(update={"checkpoint_seconds": 0.2, "synchronous": "normal"})
    app = create_app(config.model_copy(update={"serve": serve}), model_uri=scoring, store=tmp_path / "s.sqlite",
                     as_of=AS_OF)  # fmt: skip
    leads = data.leads.head(20)
    events = data.events[data.events["lead_id"].isin(leads["lead_id"])].head(60)
    with TestClient(app) as client:
        store, checkpointer = app.state.service.store, app.state.checkpointer
        assert store._query("PRAGMA wal_autocheckpoint") == [(BACKSTOP_PAGES,)]
        assert client.post("/leads", json=json_rows(leads)).status_code == 200
        assert client.post("/events", json=json_rows(events)).status_code == 200
        before, deadline = checkpointer.checkpoints, time.monotonic() + 10
        while checkpointer.checkpoints == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.checkpoints > before
        shutil.copyfile(tmp_path / "s.sqlite", tmp_path / "alone.sqlite")
        alone = sqlite3.connect(tmp_path / "alone.sqlite")
        assert alone.execute("SELECT COUNT(*) FROM events").fetchone() == (len(events),)
        assert alone.execute("SELECT COUNT(DISTINCT lead_id) FROM latest").fetchone()[0] > 0
        alone.close()
    assert not checkpointer._thread.is_alive()

    serve = config.serve.model_copy(update={"checkpoint_seconds": 0})
    app = create_app(config.model_copy(update={"serve": serve}), model_uri=scoring, store=tmp_path / "t.sqlite",
                     as_of=AS_OF)  # fmt: skip
    with TestClient(app):
        assert app.state.checkpointer is None
        assert app.state.service.store._query("PRAGMA wal_autocheckpoint") == [(1000,)]
