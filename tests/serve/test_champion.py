"""The champion followed without a call: when the registry's alias moves, the service switches models
while posts keep being answered, logs the switch and counts it in /metrics."""

from __future__ import annotations

import logging
import threading
import time

from fastapi.testclient import TestClient

from leadml.modeling.loading import default_model_uri
from leadml.serve.app import create_app
from leadml.serve.reload import watched_uri
from tests.serve.conftest import AS_OF, json_rows


def register_versions(config, scoring, count: int) -> None:
    """Log ``count`` finished runs of the same model, each registered as a new version of the pipeline's name."""
    import mlflow

    from leadml.modeling.registry import LeadmlPyfunc, _mlflow_at, tracking_uri

    with _mlflow_at(tracking_uri(config)):
        for _ in range(count):
            with mlflow.start_run():
                mlflow.pyfunc.log_model(name="model", python_model=LeadmlPyfunc(scoring),
                                        registered_model_name=config.mlflow.registered_model,
                                        pip_requirements=[])  # fmt: skip


def set_champion(config, version: int) -> None:
    from mlflow import MlflowClient

    from leadml.modeling.registry import tracking_uri

    where = tracking_uri(config)
    MlflowClient(tracking_uri=where, registry_uri=where).set_registered_model_alias(
        config.mlflow.registered_model, "champion", str(version)
    )


def test_only_an_alias_is_followed(served_model):
    config, scoring, _ = served_model
    assert watched_uri(config, None) == default_model_uri(config) == "models:/leadml@champion"
    assert watched_uri(config, "models:/other@challenger") == "models:/other@challenger"
    assert watched_uri(config, "models:/leadml/3") is None
    assert watched_uri(config, "runs:/abc/model") is None
    assert watched_uri(config, scoring) is None


def test_the_service_follows_the_champion_while_posts_go_on(served_model, tmp_path, caplog):
    config, scoring, data = served_model
    register_versions(config, scoring, 2)
    set_champion(config, 1)
    config = config.with_overrides({"serve.reload_seconds": 0.2})
    app = create_app(config, store=tmp_path / "serve.sqlite", as_of=AS_OF)  # the default: the champion
    lead_ids = data.leads["lead_id"].head(30).tolist()
    events = json_rows(data.events[data.events["lead_id"].isin(lead_ids)].sort_values("timestamp"))
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()
    caplog.set_level(logging.WARNING, logger="leadml.serve")

    with TestClient(app) as client:
        assert client.post("/leads", json=json_rows(data.leads.head(30))).status_code == 200
        assert client.get("/health").json()["model"]["version"] == "1"
        time.sleep(0.6)  # ticks with the alias unchanged load nothing
        assert 'trigger="champion"' not in client.get("/metrics").text

        def post() -> None:
            k = 0
            while not stop.is_set():
                answer = client.post("/events", json=events[k % len(events) : k % len(events) + 5])
                statuses.append(answer.status_code)
                touched = [row["lead_id"] for row in answer.json()["scores"]]  # the model each post was scored by
                versions.append(
                    "/".join(sorted({r["model_version"] for r in app.state.service.store.latest(touched).values()}))
                )
                k += 5

        poster = threading.Thread(target=post)
        poster.start()
        try:
            time.sleep(0.5)
            set_champion(config, 2)
            deadline = time.monotonic() + 15
            while client.get("/health").json()["model"]["version"] != "2" and time.monotonic() < deadline:
                time.sleep(0.1)
            switched = time.monotonic() < deadline
            time.sleep(0.5)  # posts go on under the new model
        finally:
            stop.set()
            poster.join(60)
        assert switched, "the service did not switch to version 2 within 15 s"
        text = client.get("/metrics").text
        answer = client.post("/events", json=events[:3])
        last = app.state.service.store.latest([row["lead_id"] for row in answer.json()["scores"]])

    assert statuses and set(statuses) == {200}
    assert answer.status_code == 200 and last and {row["model_version"] for row in last.values()} == {"2"}
    assert versions[0] == "1" and versions[-1] == "2" and versions == sorted(versions)  # one switch, 1 then 2
    assert set(versions) == {"1", "2"}
    assert 'leadml_serve_model_switches_total{trigger="champion"} 1.0' in text
    assert 'leadml_serve_model_info{name="leadml",uri="models:/leadml@champion",version="2"} 1.0' in text
    assert [r.getMessage() for r in caplog.records if r.name == "leadml.serve"] == ["champion leadml v1 -> v2"]


def test_no_watcher_for_a_fixed_model_or_when_off(served_model, tmp_path):
    config, scoring, _ = served_model
    register_versions(config, scoring, 1)
    set_champion(config, 1)
    off = config.with_overrides({"serve.reload_seconds": 0})
    apps = [create_app(config, model_uri=scoring, store=tmp_path / "a.sqlite"),
            create_app(config, model_uri="models:/leadml/1", store=tmp_path / "b.sqlite"),
            create_app(off, store=tmp_path / "c.sqlite"), create_app(config, store=tmp_path / "d.sqlite")]  # fmt: skip
    for app in apps:
        app.state.service.store.close()
    assert [app.state.watcher is None for app in apps] == [True, True, True, False]
    assert apps[-1].state.watcher.seconds == 60 and apps[-1].state.watcher.uri == "models:/leadml@champion"
