"""``leadml serve`` as a real process: events in, a webhook alert for a lead crossing into MQL, a kill -9,
a restart, and the same scores read back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from leadml.jobs.score import score_batch
from tests.serve.conftest import AS_OF, MODELS, SIMULATOR, json_rows


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Receiver:
    """A local HTTP server in a thread that keeps every JSON body posted to it."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                """Quiet: the receiver prints nothing into the test output."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(command: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=cwd, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def wait_ready(process: subprocess.Popen, url: str, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"leadml serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.3)
    pytest.fail(f"leadml serve did not answer in {seconds} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen | None, sig: int = signal.SIGKILL) -> None:
    if process is not None and process.poll() is None:
        os.kill(process.pid, sig)
        process.wait(30)


@pytest.mark.slow
def test_serve_alerts_on_mql_and_keeps_scores_over_a_kill(served_model, tmp_path):
    import mlflow.pyfunc

    from leadml.modeling.registry import LeadmlPyfunc

    config, scoring, data = served_model
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=LeadmlPyfunc(scoring))
    batch = score_batch(config, AS_OF, tmp_path / "batch.parquet", model_uri=scoring, reasons=False, history=False,
                        progress=False)  # fmt: skip
    assert batch.mql
    scores = pd.read_parquet(tmp_path / "batch.parquet")
    chosen = [*scores.loc[scores["is_mql"], "lead_id"].head(5), *scores.loc[~scores["is_mql"], "lead_id"].head(15)]
    mqls = set(scores.loc[scores["is_mql"], "lead_id"].head(5))
    leads = data.leads[data.leads["lead_id"].isin(chosen)]
    events = data.events[data.events["lead_id"].isin(chosen)]

    receiver = Receiver()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    pipeline = {"name": "serve_test", "data": SIMULATOR, "models": MODELS,
                "serve": {"store": "state/serve.sqlite", "webhook_url": receiver.url}}  # fmt: skip
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    command = [sys.executable, "-m", "leadml", "serve", "pipeline.yaml", "--port", str(port),
               "--model", str(tmp_path / "model"), "--as-of", AS_OF]  # fmt: skip
    log = tmp_path / "serve.log"
    process = restarted = None
    try:
        process = start(command, tmp_path, log)
        wait_ready(process, url, log)
        assert f"listening on {url}" in log.read_text()
        assert httpx.post(url + "leads", json=json_rows(leads), timeout=60).status_code == 200
        answer = httpx.post(url + "events", json=json_rows(events.sort_values("timestamp")), timeout=120)
        assert answer.status_code == 200, answer.text

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(a["lead_id"] in mqls and a["is_mql"] for a in receiver.received):
            time.sleep(0.2)
        alert = next(a for a in receiver.received if a["lead_id"] in mqls and a["is_mql"])
        assert not alert["was_mql"] and alert["to_tier"] != alert["from_tier"]
        assert alert["reasons"] and alert["reasons_added"] and alert["events_since"]
        assert alert["type"] == "tier_crossing"

        served = {lead: httpx.get(url + f"leads/{lead}").json()["score"] for lead in chosen}
        assert {lead for lead, row in served.items() if row and row["is_mql"]} == mqls
        queue = httpx.get(url + "queue").json()["queue"]
        assert {row["lead_id"] for row in queue} == mqls
        expected = scores.set_index("lead_id")["probability"]
        assert all(served[lead]["probability"] == expected[lead] for lead in chosen)

        stop(process)  # kill -9: no shutdown of any kind
        restarted = start(command, tmp_path, log)
        wait_ready(restarted, url, log)
        again = {lead: httpx.get(url + f"leads/{lead}").json()["score"] for lead in chosen}
        assert again == served
        assert httpx.get(url + "health").json()["events"] == len(events)
    finally:
        stop(process)
        stop(restarted)
        receiver.close()
