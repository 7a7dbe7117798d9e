"""A small model on 2,000 simulated leads and the rows of their tables as JSON, for the serve tests."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from leadml.core.config import parse_pipeline

AS_OF = "2026-03-01"
SIMULATOR = {"simulator": {"leads": 2000, "seed": 5}}
MODELS = {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 60}}


def serve_pipeline(**extra):
    return parse_pipeline({"name": "serve_test", "data": SIMULATOR, "models": MODELS, **extra})


def json_rows(frame: pd.DataFrame) -> list[dict]:
    """Table rows as a client would post them: timestamps in ISO 8601, missing values left out."""
    rows = []
    for record in frame.to_dict("records"):
        row = {}
        for key, value in record.items():
            if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
                continue
            row[key] = value.isoformat() if isinstance(value, pd.Timestamp) else value
        rows.append(row)
    return rows


@pytest.fixture(scope="session")
def served_model():
    """(config, scoring model, data) of a LightGBM trained on the 2,000 simulated leads (not logged)."""
    from leadml.data.sources import load_pipeline_data
    from leadml.jobs.train import run_training
    from leadml.modeling.registry import scoring_model

    config = serve_pipeline()
    run = run_training(config, log=False, n_boot=10)
    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    return config, scoring, load_pipeline_data(config.data, need_outcomes=False)
