"""Online equals batch: the served score of every lead equals ``leadml score --as-of`` at the same instant,
and with the same outcomes posted the server leaves out the leads the batch job leaves out."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from leadml.jobs.score import score_batch
from leadml.serve.app import create_app
from tests.serve.conftest import AS_OF, json_rows


def test_served_scores_equal_the_batch_scores_bit_for_bit(served_model, tmp_path):
    config, scoring, data = served_model
    score_batch(config, AS_OF, tmp_path / "batch.parquet", model_uri=scoring, reasons="all", history=False,
                progress=False)  # fmt: skip
    batch = pd.read_parquet(tmp_path / "batch.parquet")
    assert len(batch) > 200 and batch["is_mql"].any()

    app = create_app(config, model_uri=scoring, store=tmp_path / "serve.sqlite", as_of=AS_OF)
    with TestClient(app) as client:
        assert client.post("/leads", json=json_rows(data.leads)).status_code == 200
        events = json_rows(data.events.sort_values("timestamp", kind="stable"))  # replayed in time order
        for first in range(0, len(events), 5000):
            answer = client.post("/events", json=events[first : first + 5000])
            assert answer.status_code == 200, answer.text
        served = [client.get(f"/leads/{lead_id}").json()["score"] for lead_id in batch["lead_id"]]
        before_outcomes = set(app.state.service.store.latest())
        answer = client.post("/outcomes", json=json_rows(data.outcomes))
        assert answer.status_code == 200, answer.text
        after = app.state.service.store.latest()

    # the server knew every lead; with the outcomes, those closed before as_of leave it, as they leave the batch
    closed = set(data.outcomes.loc[data.outcomes["closed_at"] < pd.Timestamp(AS_OF, tz="UTC"), "lead_id"])
    assert closed and len(before_outcomes & closed) == len(closed)
    assert set(after) == set(batch["lead_id"]) and not set(after) & closed
    rescored = np.array([after[lead_id]["probability"] for lead_id in batch["lead_id"]], dtype=np.float64)
    assert np.array_equal(rescored, batch["probability"].to_numpy(dtype=np.float64))
    assert [after[lead_id]["overdue"] for lead_id in batch["lead_id"]] == batch["overdue"].tolist()

    probability = np.array([row["probability"] for row in served], dtype=np.float64)
    assert np.array_equal(probability, batch["probability"].to_numpy(dtype=np.float64))
    assert [row["tier"] for row in served] == batch["tier"].tolist()
    assert [row["score"] for row in served] == batch["score"].tolist()
    assert [row["reason_1"] for row in served] == batch["reason_1"].tolist()
    assert all(pd.Timestamp(row["as_of"]) == pd.Timestamp(AS_OF, tz="UTC") for row in served)
