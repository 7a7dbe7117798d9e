"""The leakage guard: what it flags on hand-made data, on the real data sets, and that train stops."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import load_pipeline, parse_pipeline
from leadml.features.build import build_trainset
from leadml.modeling.leakage import LeakageError, check_leakage, find_leakage, missing_decides
from tests.conftest import datasets_dir_or_skip

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def _data(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    status = np.where(
        y == 1,
        rng.choice(["closed won", "will revert", "call back"], n, p=[0.5, 0.3, 0.2]),
        rng.choice(["ringing", "no interest", "call back"], n, p=[0.5, 0.3, 0.2]),
    )
    return y, pd.DataFrame(
        {
            "visits": rng.poisson(2 + y, n).astype(float),  # honest signal
            "noise_id": pd.Categorical([f"page{i}" for i in rng.integers(0, 500, n)]),
            "sales_status": pd.Categorical(status),
            "call_seconds": np.where(y == 1, rng.gamma(5, 60, n), rng.gamma(1.5, 40, n)),
            "deal_size": np.where(y == 1, rng.normal(1000, 100, n), np.nan),
        }
    )


def test_flags_post_outcome_columns_and_not_honest_ones():
    y, features = _data()
    findings = {f.feature: f for f in find_leakage(features, y)}
    assert set(findings) == {"sales_status", "call_seconds", "deal_size"}
    assert findings["sales_status"].certain_share >= 0.5
    assert findings["deal_size"].missing_decides
    assert any("ROC-AUC" in r for r in findings["call_seconds"].reasons)


def test_many_levels_do_not_look_predictive_out_of_fold():
    y, features = _data(seed=1)
    assert find_leakage(features[["noise_id"]], y) == []


def test_missing_decides_needs_both_classes_and_a_clean_split():
    y = np.array([1, 1, 0, 0], dtype=float)
    assert missing_decides(pd.Series([1.0, 2.0, np.nan, np.nan]), y)
    assert missing_decides(pd.Series([np.nan, np.nan, 3.0, 4.0]), y)
    assert not missing_decides(pd.Series([1.0, np.nan, np.nan, np.nan]), y)
    assert not missing_decides(pd.Series([1.0, 2.0, 3.0, 4.0]), y)


def test_the_simulator_has_no_leak(small_sim):
    from leadml.data.sources import PipelineData

    data = PipelineData.from_simulation(small_sim)
    config = parse_pipeline({"name": "sim", "snapshots": {"horizon_days": 100}})
    assert check_leakage(build_trainset(config, data), config) == []


def _real(pipeline, monkeypatch, **profile):
    monkeypatch.setenv("LEADML_DATASETS", str(datasets_dir_or_skip()))
    raw = load_pipeline(PIPELINES / pipeline).resolved_dict()
    raw["profile"].update(profile)
    return parse_pipeline(raw, source=pipeline, base=PIPELINES)


@pytest.mark.realdata
@pytest.mark.parametrize(
    "pipeline, column",
    [
        ("x_education.yaml", "Tags"),
        ("x_education.yaml", "Lead Quality"),
        ("bank_marketing.yaml", "duration"),
    ],
)
def test_the_guard_stops_training_on_known_leaks(pipeline, column, monkeypatch):
    config = _real(pipeline, monkeypatch, allow_leaky=[column])
    trainset = build_trainset(config)
    with pytest.raises(
        LeakageError, match=rf"suspected leakage, training stopped: '{column}'.*leakage\.allow: \[{column}\]"
    ):
        check_leakage(trainset, config)
    raw = config.resolved_dict()
    raw["leakage"]["allow"] = [column]
    allowed = parse_pipeline(raw, source=pipeline, base=PIPELINES)
    assert [f.feature for f in check_leakage(trainset, allowed)] == [column]


@pytest.mark.realdata
@pytest.mark.parametrize("pipeline", ["x_education.yaml", "bank_marketing.yaml"])
def test_the_shipped_real_pipelines_pass_the_guard(pipeline, monkeypatch):
    config = _real(pipeline, monkeypatch)
    assert check_leakage(build_trainset(config), config) == []


@pytest.mark.realdata
def test_leadml_train_stops_and_names_tags(tmp_path, monkeypatch):
    import subprocess
    import sys

    import yaml

    monkeypatch.setenv("LEADML_DATASETS", str(datasets_dir_or_skip()))
    raw = yaml.safe_load((PIPELINES / "x_education.yaml").read_text())
    raw["profile"]["allow_leaky"] = ["Tags"]
    raw["data"]["datasets_dir"] = str(datasets_dir_or_skip())
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, "-m", "leadml.cli.app", "train", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "suspected leakage" in result.stderr and "'Tags'" in result.stderr
