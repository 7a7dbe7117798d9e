"""`mql.policy: capacity` in new MQLs a week: nightly scoring runs start about as many MQL spells as planned.

The threshold comes from the validation period's nightly runs replayed at training; this checks it
where it matters, on the nightly runs of a later fortnight scored by the real scoring job.
"""

from __future__ import annotations

import pandas as pd
import pytest

from leadml.core.config import parse_pipeline
from leadml.jobs.score import score_batch
from leadml.jobs.train import run_training
from leadml.modeling.registry import scoring_model

CAPACITY = 25
NIGHTS = pd.date_range("2026-06-01", "2026-06-15", freq="D", tz="UTC")


def spells_started(runs: list[pd.DataFrame]) -> int:
    """MQLs of each night that were not MQL the night before (a new lead counts when it starts as one)."""
    started = 0
    for before, after in zip(runs[:-1], runs[1:], strict=True):
        was = before.set_index("lead_id")["is_mql"].reindex(after["lead_id"]).fillna(False).to_numpy(dtype=bool)
        started += int((after["is_mql"].to_numpy(dtype=bool) & ~was).sum())
    return started


@pytest.mark.slow
def test_capacity_per_week_is_the_count_of_new_mqls_nightly_runs_start(tmp_path):
    config = parse_pipeline({
        "name": "capacity", "data": {"simulator": {"leads": 8000, "seed": 7, "base_rate": 0.08}},
        "snapshots": {"every_days": 30, "horizon_days": 100},
        "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 80}},
        "mql": {"policy": "capacity", "capacity_per_week": CAPACITY},
        "history": {"enabled": False},
    })  # fmt: skip
    run = run_training(config, log=False, n_boot=10)
    found = run.result.thresholds[run.result.chosen]
    assert found.note.startswith("capacity: ") and "nightly runs replayed" in found.note
    assert found.new_per_week is not None and 0.8 * CAPACITY <= found.new_per_week <= CAPACITY
    # the snapshot rule would have capped snapshots, several times more MQLs than leads handed over
    assert found.threshold > 0.2

    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    runs = []
    for night in NIGHTS:
        out = tmp_path / f"scores-{night:%m%d}.parquet"
        score_batch(config, night, out, model_uri=scoring, reasons=False, drift=False, progress=False)
        runs.append(pd.read_parquet(out, columns=["lead_id", "is_mql"]))
    per_week = spells_started(runs) / ((len(NIGHTS) - 1) / 7)
    # measured: 19.0 a week (the demo, capacity 60: 50.5); the band is 60 +- 15, i.e. +- 25 %
    assert 0.7 * CAPACITY <= per_week <= 1.3 * CAPACITY, per_week
