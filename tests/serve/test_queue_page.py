"""The live queue page in the real Chromium: MQLs appear in hand-off order without a reload."""

from __future__ import annotations

import threading
import time

import httpx
import pandas as pd
import pytest

from leadml.jobs.score import score_batch
from leadml.serve.app import create_app
from tests.explain.cdp import Browser, find_chromium
from tests.serve.conftest import AS_OF, json_rows
from tests.serve.test_process import free_port

CHROMIUM = find_chromium()


def rows_shown(browser: Browser) -> list[str]:
    return browser.evaluate("Array.from(document.querySelectorAll('#queue tr')).map(r => r.dataset.lead)")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary: apt-get install -y chromium, or set LEADML_CHROMIUM")
def test_the_queue_page_shows_new_mqls_without_a_reload(served_model, tmp_path):
    import uvicorn

    config, scoring, data = served_model
    score_batch(config, AS_OF, tmp_path / "batch.parquet", model_uri=scoring, reasons=False, history=False,
                progress=False)  # fmt: skip
    scores = pd.read_parquet(tmp_path / "batch.parquet")
    chosen = [*scores.loc[scores["is_mql"], "lead_id"].head(4), *scores.loc[~scores["is_mql"], "lead_id"].head(6)]
    app = create_app(config, model_uri=scoring, store=tmp_path / "serve.sqlite", as_of=AS_OF)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.post(url + "leads", json=json_rows(data.leads[data.leads["lead_id"].isin(chosen)])).is_success
        with Browser(CHROMIUM, tmp_path / "profile") as browser:
            browser.events.clear()
            browser.call("Page.navigate", url=url)
            browser.wait_for("Page.loadEventFired")
            before = rows_shown(browser)
            events = data.events[data.events["lead_id"].isin(chosen)].sort_values("timestamp")
            assert httpx.post(url + "events", json=json_rows(events), timeout=60).is_success
            queue = [row["lead_id"] for row in httpx.get(url + "queue").json()["queue"]]
            assert set(queue) == set(scores.loc[scores["is_mql"], "lead_id"].head(4)) and len(queue) > len(before)
            deadline = time.monotonic() + 15
            while rows_shown(browser) != queue and time.monotonic() < deadline:
                time.sleep(0.2)
            assert rows_shown(browser) == queue  # in hand-off order, and no reload happened
            status = browser.evaluate("document.getElementById('status').textContent")
            assert status.startswith(f"{len(queue)} MQLs at 2026-03-01")
            assert browser.errors() == []
    finally:
        server.should_exit = True
        thread.join(30)
