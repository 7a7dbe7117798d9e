"""Latency and throughput of ``leadml serve``: POST /events -> new score, one event and in batches, beside batch scoring.

    python benchmarks/serve_latency.py                       # 2,000 simulated leads, LightGBM of 60 trees
    python benchmarks/serve_latency.py --leads 5000 --single 300 --batch 1000
    python benchmarks/serve_latency.py --synchronous normal  # the store without a disk sync a request

A model is trained on the simulated leads (not logged) and saved as a model folder; ``leadml serve``
runs in a subprocess at a fixed as_of on a free port (it scores a made-up lead while it starts, before
``/health`` answers, so no request pays a warm-up). Every lead is posted first; then ``--single``
events are posted one request each (the time from sending the event to having its lead's new
score, reasons included, in the answer), then the remaining events of the data in requests of
``--batch`` events (sustained events/s). The batch path is ``score_batch`` of every open lead at the
same as_of in this process (reasons for all, as the server gives them).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

AS_OF = "2026-03-01"


def json_rows(frame: pd.DataFrame) -> list[dict]:
    rows = []
    for record in frame.to_dict("records"):
        rows.append({k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in record.items()
                     if not (v is None or (isinstance(v, float) and math.isnan(v)))})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--single", type=int, default=200, help="events posted one request each")
    parser.add_argument("--batch", type=int, default=1000, help="events a request for the throughput")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full",
                        help="serve.synchronous: a disk sync a request (full) or none (normal)")  # fmt: skip
    args = parser.parse_args()

    import httpx
    import mlflow.pyfunc
    import yaml

    from leadml.core.config import parse_pipeline
    from leadml.data.sources import load_pipeline_data
    from leadml.jobs.score import score_batch
    from leadml.jobs.train import run_training
    from leadml.modeling.registry import LeadmlPyfunc, scoring_model

    folder = Path(tempfile.mkdtemp(prefix="leadml-serve-bench-"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlruns.db'}")
    raw = {"name": "serve_bench", "data": {"simulator": {"leads": args.leads, "seed": 5}},
           "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 60}},
           "serve": {"store": str(folder / "serve.sqlite"), "synchronous": args.synchronous}}  # fmt: skip
    config = parse_pipeline(raw)
    run = run_training(config, log=False, n_boot=10)
    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    mlflow.pyfunc.save_model(str(folder / "model"), python_model=LeadmlPyfunc(scoring))
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    data = load_pipeline_data(config.data, need_outcomes=False)

    started = time.perf_counter()
    summary = score_batch(config, AS_OF, folder / "batch.parquet", model_uri=scoring, reasons="all", history=False,
                          progress=False)  # fmt: skip
    batch_seconds = time.perf_counter() - started

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "leadml", "serve", str(folder / "pipeline.yaml"), "--port", str(port),
               "--model", str(folder / "model"), "--as-of", AS_OF]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = httpx.Client(base_url=url, timeout=300)
        while True:
            try:
                if client.get("health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        started = time.perf_counter()
        client.post("leads", json=json_rows(data.leads)).raise_for_status()
        leads_seconds = time.perf_counter() - started
        events = json_rows(data.events.sort_values("timestamp", kind="stable"))
        single, rest = events[: args.single], events[args.single :]
        latencies = []
        for event in single:
            started = time.perf_counter()
            answer = client.post("events", json=event)
            answer.raise_for_status()
            assert answer.json()["scores"], "no new score in the answer"
            latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        for first in range(0, len(rest), args.batch):
            client.post("events", json=rest[first : first + args.batch]).raise_for_status()
        rest_seconds = time.perf_counter() - started
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(30)

    ms = np.array(latencies) * 1e3
    print(f"leads {args.leads:,}, events {len(events):,}, open leads at {AS_OF}: {summary.rows:,}")
    print(f"POST /leads ({args.leads:,} leads in one request): {leads_seconds:.1f} s")
    print(
        f"POST /events, one event a request ({len(single)}): p50 {np.percentile(ms, 50):.0f} ms, "
        f"p99 {np.percentile(ms, 99):.0f} ms"
    )
    print(
        f"POST /events, {args.batch:,} events a request: {len(rest):,} events in {rest_seconds:.1f} s = "
        f"{len(rest) / rest_seconds:,.0f} events/s"
    )
    print(
        f"batch path (score_batch, reasons for all): {summary.rows:,} leads in {batch_seconds:.1f} s = "
        f"{summary.rows / batch_seconds:,.0f} leads/s"
    )


if __name__ == "__main__":
    main()
