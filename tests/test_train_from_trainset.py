"""Issue 22 item 5: ``leadml train PIPELINE --trainset FILE`` trains on a file from ``leadml trainset``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from leadml.cli.app import main
from leadml.core.config import load_pipeline
from leadml.core.errors import LeadDataError
from leadml.jobs.trainset_file import load_trainset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def pipeline(tmp_path) -> Path:
    config = {
        "name": "tiny",
        "data": {"simulator": {"leads": 1500, "seed": 3, "months": 12}},
        "snapshots": {"horizon_days": 100, "max_per_lead": 6},
        "rules": str(REPO / "pipelines/rules/seed_points.yaml"),
        "models": {"lightgbm": {"n_estimators": 120}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(run_id: str):
    run = MlflowClient().get_run(run_id)
    test = {k: v for k, v in run.data.metrics.items() if k.startswith("test.")}
    return run.data.params, test


@pytest.mark.slow  # a full training
def test_training_from_the_file_gives_the_same_choice_and_test_metrics(pipeline, tmp_path, capsys):
    assert main(["trainset", pipeline, "--out", tmp_path / "trainset.parquet"]) == 0
    assert main(["train", pipeline, "--promote", "never"]) == 0
    assert main(["train", pipeline, "--promote", "never", "--trainset", tmp_path / "trainset.parquet"]) == 0
    out = capsys.readouterr().out
    assert out.count("chosen: ") == 2
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("leadml").experiment_id], order_by=["attributes.start_time ASC"]
    )
    (direct, direct_test), (from_file, file_test) = (_run(r.info.run_id) for r in runs)
    assert from_file["chosen_model"] == direct["chosen_model"] and direct_test
    assert file_test == pytest.approx(direct_test, rel=1e-9, abs=1e-12)
    assert from_file["features.spec_hash"] == direct["features.spec_hash"]
    assert from_file["models.lightgbm.best_iteration"] == direct["models.lightgbm.best_iteration"]


def test_a_missing_column_or_another_feature_set_is_one_line_naming_file_and_column(pipeline, tmp_path, capsys):
    assert main(["trainset", pipeline, "--out", tmp_path / "trainset.parquet"]) == 0
    frame = pd.read_parquet(tmp_path / "trainset.parquet")
    config = load_pipeline(pipeline)
    frame.drop(columns="weight").to_parquet(tmp_path / "no_weight.parquet")
    with pytest.raises(LeadDataError, match=r"no_weight.parquet: column 'weight' is missing; a training set file"):
        load_trainset(config, tmp_path / "no_weight.parquet")
    frame.assign(shoe_size=1.0).to_parquet(tmp_path / "extra.parquet")
    with pytest.raises(LeadDataError, match=r"extra.parquet: column 'shoe_size' is not a feature of pipeline tiny"):
        load_trainset(config, tmp_path / "extra.parquet")
    other = config.with_overrides({"features.windows": [7, 30]})  # the file has the 90-day windows too
    with pytest.raises(LeadDataError, match=r"trainset.parquet: column '[^']*_90d' is not a feature of pipeline"):
        load_trainset(other, tmp_path / "trainset.parquet")
    frame.drop(columns="lead__age_days").to_parquet(tmp_path / "fewer.parquet")
    with pytest.raises(LeadDataError, match=r"fewer.parquet: column 'lead__age_days' is missing: it is a feature"):
        load_trainset(config, tmp_path / "fewer.parquet")
    edited = frame.copy()
    edited["lead__age_days"] = edited["lead__age_days"] + 1
    edited.to_parquet(tmp_path / "edited.parquet")
    with pytest.raises(LeadDataError, match=r"edited.parquet: column 'lead__age_days' does not hold the features"):
        load_trainset(config, tmp_path / "edited.parquet")
    capsys.readouterr()
    assert main(["train", pipeline, "--trainset", tmp_path / "no_weight.parquet"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "no_weight.parquet: column 'weight' is missing" in line


def test_the_file_read_back_is_the_training_set_it_was(pipeline, tmp_path):
    from leadml.features.build import build_trainset

    config = load_pipeline(pipeline)
    built = build_trainset(config)
    built.frame.to_csv(tmp_path / "trainset.csv", index=False)  # CSV too: categories come back as text
    loaded = load_trainset(config, tmp_path / "trainset.csv", data=built.data)
    assert loaded.builder.spec_hash() == built.builder.spec_hash()
    expected = built.frame.assign(split=built.frame["split"].astype(object))
    pd.testing.assert_frame_equal(loaded.frame, expected, check_exact=False, rtol=1e-6)
