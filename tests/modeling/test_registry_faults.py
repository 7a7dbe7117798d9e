"""Registry faults: an unreachable server fails fast and clearly; a failed run is marked failed and moves no alias."""

import socket
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


@pytest.fixture
def closed_port_uri(monkeypatch) -> str:
    """The URI of a real local port that nothing listens on (bound, then closed), set as the tracking URI."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _fails_fast_naming(uri: str, call) -> str:
    started = time.perf_counter()
    with pytest.raises(ModelError) as caught:
        call()
    assert time.perf_counter() - started < 10
    message = str(caught.value)
    assert f"MLflow tracking server at {uri} is unreachable" in message
    assert "MLFLOW_TRACKING_URI" in message and "server is running" in message
    assert "\n" not in message
    return message


@pytest.mark.parametrize("model_uri", [None, "models:/faults/1", "runs:/0123456789abcdef/model"])
def test_loading_from_an_unreachable_server_fails_fast_with_the_uri(closed_port_uri, model_uri):
    from leadml.modeling.loading import load_model

    config = parse_pipeline({"name": "faults", "mlflow": {"registered_model": "faults"}}, source="faults.yaml")
    _fails_fast_naming(closed_port_uri, lambda: load_model(config, model_uri))


def test_the_model_card_of_an_unreachable_server_fails_fast(closed_port_uri, tmp_path):
    from leadml.jobs.model_cards import fetch_model_card

    config = parse_pipeline({"name": "faults"}, source="faults.yaml")
    _fails_fast_naming(
        closed_port_uri, lambda: fetch_model_card(config, "models:/faults@champion", tmp_path / "c.html")
    )


def test_promoting_on_an_unreachable_server_fails_fast(closed_port_uri):
    config = parse_pipeline({"name": "faults"}, source="faults.yaml")
    _fails_fast_naming(closed_port_uri, lambda: registry.promote_version(config, 1))


@pytest.mark.parametrize(
    "command",
    [
        ["score", "--as-of", "2026-06-01", "--out", "scores.csv"],
        ["explain", "--lead", "L0000008"],
        ["report", "--model", "models:/p/1"],
        ["report"],  # the champion's card: no registry, so no card is drawn from a new training either
        ["promote", "--version", "1"],
    ],
    ids=["score", "explain", "report --model", "report", "promote"],
)
def test_commands_that_load_a_model_fail_fast_in_one_line(closed_port_uri, tmp_path, monkeypatch, capsys, command):
    from leadml.cli.app import main

    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\ndata: {source: simulator, simulator: {leads: 300, seed: 1}}\n"
        f"mlflow: {{tracking_uri: '{closed_port_uri}'}}\n"
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)  # whatever a command would write stays in tmp_path
    started = time.perf_counter()
    assert main([command[0], str(path), *command[1:]]) == 1
    assert time.perf_counter() - started < 10
    err = " ".join(capsys.readouterr().err.split())
    assert f"{closed_port_uri} is unreachable" in err and "MLFLOW_TRACKING_URI" in err
