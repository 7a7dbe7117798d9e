"""Registry faults: an unreachable server fails fast and clearly; a failed run is marked failed and moves no alias."""

import time

import pytest
from mlflow import MlflowClient

from leadml.core.config import parse_pipeline
from leadml.core.errors import ModelError
from leadml.jobs.train import run_training
from leadml.modeling import registry

REPO_RULES = __import__("pathlib").Path(__file__).resolve().parents[2] / "pipelines/rules/seed_points.yaml"


@pytest.fixture(scope="module")
def trained():
    config = parse_pipeline(
        {
            "name": "faults",
            "data": {"source": "simulator", "simulator": {"leads": 6000, "seed": 4}},
            "snapshots": {"horizon_days": 100},
            "rules": str(REPO_RULES),
            "models": {"lightgbm": {"n_estimators": 100}},
            "mlflow": {"registered_model": "faults"},
        },
        source="faults.yaml",
    )
    return config, run_training(config, log=False, n_boot=50)


def test_an_unreachable_server_fails_fast_with_the_uri(trained, monkeypatch):
    config, run = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r"MLflow tracking server at http://127\.0\.0\.1:9 is unreachable"):
        registry.log_training(config, run.trainset, run.result)
    assert time.perf_counter() - started < 15


def test_a_failed_run_is_marked_failed_and_moves_no_alias(trained, monkeypatch):
    config, run = trained
    first = registry.log_training(config, run.trainset, run.result)
    assert first.promoted and first.version == "1"

    def disk_full(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(registry, "_log_plots", disk_full)
    with pytest.raises(OSError, match="no space left"):
        registry.log_training(config, run.trainset, run.result)
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(config.mlflow.experiment).experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    assert str(client.get_model_version_by_alias("faults", "champion").version) == "1"
    assert [str(v.version) for v in client.search_model_versions("name='faults'")] == ["1"]


def test_promote_cli_reports_an_unreachable_server(tmp_path, monkeypatch, capsys):
    from leadml.cli.app import main

    path = tmp_path / "p.yaml"
    path.write_text("name: p\nmlflow: {tracking_uri: 'http://127.0.0.1:9'}\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert main(["promote", str(path), "--version", "1"]) == 1
    assert "is unreachable" in " ".join(capsys.readouterr().err.split())
