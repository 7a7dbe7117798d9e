"""The FastAPI app of ``leadml serve``: routes over :class:`~leadml.serve.service.ServeService`.

``POST /events`` and ``POST /leads`` take one row or a list; a row the data contract refuses gives
422 with ``field`` and the reason (``msg``), and nothing of that request is stored. ``GET
/leads/{id}`` is a lead's last score with reasons and its history, ``GET /queue`` the MQLs in
hand-off order, ``GET /`` the live queue page, ``GET /health``, ``GET /metrics`` (Prometheus) and
``GET /alerts`` (the outbox). ``POST /outcomes`` takes closings and stage times (``sql_at``): a
closed lead leaves the queue, an accepted MQL is never overdue. ``POST /model/reload`` loads the
champion again while requests keep being served; with ``serve.reload_seconds`` a thread does the
same when the champion alias moves (:mod:`leadml.serve.reload`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from leadml.core.config import PipelineConfig
from leadml.serve.alerts import WebhookSender
from leadml.serve.checkpoints import BACKSTOP_PAGES, LogCheckpointer
from leadml.serve.inputs import InvalidInput
from leadml.serve.metrics import CONTENT_TYPE, ServeMetrics
from leadml.serve.page import queue_page
from leadml.serve.reload import ChampionWatcher, watched_uri
from leadml.serve.scorer import LiveScorer
from leadml.serve.service import ServeService
from leadml.serve.store import ServeStore, store_path

__all__ = ["create_app", "settle_memory"]


_ROWS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}}}}}  # fmt: skip


async def _rows(request: Request) -> list[dict]:
    """The body's rows: one JSON object or a list of them (``InvalidInput`` otherwise).

    Read and parsed here rather than declared as a FastAPI body: the rows are checked by the data
    contract anyway, and FastAPI's validation and encoding of free-form JSON cost a one-event
    request ~0.3 ms of its 25."""
    try:
        payload = json.loads(await request.body())
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidInput("body", f"the body is not JSON: {error}") from None
    rows = payload if isinstance(payload, list) else [payload]
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInput("body", f"row {k} is not a JSON object", k)
    return rows


def settle_memory() -> None:
    """Collect, then move every object alive into the collector's permanent generation (``gc.freeze``).

    What the service holds for its life (the model, pandas, the libraries: over a million objects)
    is then never scanned again: a full collection while requests run cost ~140 ms, each time it came
    (once every 200 one-event requests), against a p99 target of 25 ms. Called when the app starts
    and after a model switch (unfrozen first, so that the old model can be collected).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def create_app(
    config: PipelineConfig,
    *,
    model_uri: str | os.PathLike | Any | None = None,
    store: str | os.PathLike | None = None,
    as_of: object | None = None,
    webhook_url: str | None = None,
    clock: Callable[[], pd.Timestamp] | None = None,
) -> FastAPI:
    """The app serving ``config``'s champion (or ``model_uri``) over the store (default :func:`store_path`).

    ``as_of`` fixes the scoring instant (a replay; default: now, or ``clock``); ``webhook_url``
    (default ``serve.webhook_url``) receives the tier-crossing alerts. The model is loaded here, so
    a bad URI fails before the server listens.
    """
    from leadml.features.snapshots import to_utc

    if as_of is not None:
        fixed = to_utc(as_of)
        clock = lambda: fixed  # noqa: E731
    scorer = LiveScorer(config, model_uri)
    backstop = BACKSTOP_PAGES if config.serve.checkpoint_seconds > 0 else None
    state = ServeStore(store or store_path(config), config.serve.synchronous, checkpoint_pages=backstop)
    service = ServeService(config, state, scorer, clock)
    checkpointer = LogCheckpointer(state.path, config.serve.checkpoint_seconds) if backstop else None
    metrics = ServeMetrics()
    metrics.set_model(scorer.loaded.name, scorer.loaded.version, scorer.loaded.uri)
    url = webhook_url or config.serve.webhook_url
    sender = WebhookSender(service.store, url) if url else None
    if sender is not None:
        service.on_alerts = sender.notify
    switching = threading.Lock()

    def switch(trigger: str) -> Any:
        """Load the model again and name it in the metrics: the manual reload and the watcher's."""
        with switching:
            loaded = scorer.reload()
            metrics.set_model(loaded.name, loaded.version, loaded.uri)
            metrics.switches.labels(trigger).inc()
            settle_memory()
        return loaded

    followed = watched_uri(config, model_uri)
    watcher = None
    if followed is not None and config.serve.reload_seconds > 0:
        watcher = ChampionWatcher(config, followed, config.serve.reload_seconds, lambda: scorer.loaded.version,
                                  lambda: switch("champion"))  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settle_memory()
        if checkpointer is not None:
            checkpointer.start()
        if sender is not None:
            sender.start()
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()
            if sender is not None:
                sender.stop()
            if checkpointer is not None:
                checkpointer.stop()
            service.store.close()
            gc.unfreeze()

    app = FastAPI(title=f"leadml serve: {config.name}", lifespan=lifespan)
    app.state.service, app.state.metrics, app.state.sender = service, metrics, sender
    app.state.watcher, app.state.checkpointer = watcher, checkpointer

    def refused(endpoint: str, error: InvalidInput) -> JSONResponse:
        metrics.refused.labels(endpoint).inc()
        return JSONResponse(status_code=422, content={"detail": error.detail()})

    @app.post("/events", openapi_extra=_ROWS_BODY)
    async def post_events(request: Request) -> Response:
        """One event or a list: stored with the new scores of their leads, or 422 and nothing stored."""
        try:
            done = await run_in_threadpool(service.post_events, await _rows(request))
        except InvalidInput as error:
            return refused("events", error)
        metrics.took_events(done.stored, done.seconds)
        metrics.alerts.inc(len(done.alerts))
        return JSONResponse(done.body())

    @app.post("/leads", openapi_extra=_ROWS_BODY)
    async def post_leads(request: Request) -> Response:
        """One lead or a list (upserts: the fields given replace the stored ones), each rescored."""
        try:
            done = await run_in_threadpool(service.post_leads, await _rows(request))
        except InvalidInput as error:
            return refused("leads", error)
        metrics.leads.inc(done.stored)
        metrics.latency.labels("leads").observe(done.seconds)
        metrics.alerts.inc(len(done.alerts))
        return JSONResponse(done.body())

    @app.post("/outcomes", openapi_extra=_ROWS_BODY)
    async def post_outcomes(request: Request) -> Response:
        """One outcome row or a list (closings, ``sql_at``), stored with their leads' new scores, or 422."""
        try:
            done = await run_in_threadpool(service.post_outcomes, await _rows(request))
        except InvalidInput as error:
            return refused("outcomes", error)
        metrics.outcomes.inc(done.stored)
        metrics.latency.labels("outcomes").observe(done.seconds)
        metrics.alerts.inc(len(done.alerts))
        return JSONResponse(done.body())

    @app.get("/leads/{lead_id}")
    def get_lead(lead_id: str) -> Any:
        """The lead's last score (probability, score, tier, reasons, decisions) and its score history."""
        found = service.lead(lead_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"unknown lead {lead_id!r}")
        return found

    @app.get("/queue")
    def get_queue() -> Any:
        """The current MQLs, earliest deadline first, with their SLA state now."""
        return {"as_of": service.as_of().isoformat(), "model_version": scorer.loaded.version, "queue": service.queue()}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return queue_page(config.name)

    @app.get("/alerts")
    def get_alerts(limit: int = 100) -> Any:
        return {"alerts": service.store.alerts(limit)}

    @app.get("/health")
    def health() -> Any:
        loaded = scorer.loaded
        return {"status": "ok", "pipeline": config.name, "model": {"uri": loaded.uri, "name": loaded.name,
                "version": loaded.version}, "as_of": service.as_of().isoformat(), **service.store.counts()}  # fmt: skip

    @app.get("/metrics")
    def get_metrics() -> Response:
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    @app.post("/model/reload")
    def reload() -> Any:
        """Load the model again (the champion may have moved); requests in flight finish on the old one."""
        loaded = switch("manual")
        return {"uri": loaded.uri, "name": loaded.name, "version": loaded.version}

    return app
