"""The card of the serving model (`leadml report`, `leadml demo`): the one logged with it, else drawn."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from leadml.core.errors import ModelError
from leadml.jobs.model_cards import CARD_ARTIFACT
from leadml.jobs.report import model_card
from leadml.jobs.train import TrainingRun, log_run
from leadml.modeling.train import train_models
from tests.modeling.test_train import config, make_trainset

CHAMPION = "models:/leadml@champion"


@pytest.fixture(scope="module")
def training() -> TrainingRun:
    """A small training run (synthetic snapshots, one profile column), not logged."""
    trainset, _, _ = make_trainset(3000, seed=5, columns=["industry"])
    return TrainingRun(trainset, train_models(config(), trainset, None, n_boot=50), None)


def test_the_card_logged_with_the_champion_is_the_one_written(training, tmp_path):
    outcome = log_run(config(), training.trainset, training.result)
    seen: list[str] = []
    card = model_card(config(), None, tmp_path / "card.html", training=training, progress=seen.append)
    assert card.logged and (card.run_id, card.model_uri, card.missing) == (outcome.run_id, CHAMPION, None)
    assert card.message == f"model card of {CHAMPION} (logged with run {outcome.run_id})"
    logged = MlflowClient().download_artifacts(outcome.run_id, CARD_ARTIFACT, str(tmp_path / "logged"))
    assert card.path.read_bytes() == Path(logged).read_bytes()
    assert seen == [f"looking for the model card logged with {CHAMPION}"]  # nothing trained


def test_no_champion_gives_a_card_drawn_from_the_run_at_hand(training, tmp_path):
    seen: list[str] = []
    card = model_card(config(), None, tmp_path / "card.html", training=training, title="Model card: here",
                      progress=seen.append)  # fmt: skip
    assert not card.logged and not card.trained and "has no alias 'champion'" in card.missing
    assert card.message == f"{card.missing}: drawing the card from the training run at hand"
    assert seen[-1] == card.message and "Model card: here" in card.path.read_text()


def test_a_model_without_a_logged_card_is_drawn_from_a_training_run_that_is_not_logged(tmp_path):
    small = config().with_overrides({"data.simulator.leads": 1500, "data.simulator.months": 8})
    with mlflow.start_run() as bare:  # a run that logged no card (trained before cards were logged)
        mlflow.set_tag("leadml.registered", "false")
    uri = f"runs:/{bare.info.run_id}/model"
    seen: list[str] = []
    card = model_card(small, uri, tmp_path / "card.html", progress=seen.append)
    assert card.trained and not card.logged and card.missing == f"{uri} has no model card logged with it"
    assert card.message == f"{card.missing}: drawing the card from a training run that is not logged"
    assert card.message in seen and seen[-1] == "scoring the rules baseline on every snapshot"  # a real training ran
    assert "Model card: test" in card.path.read_text()
    runs = MlflowClient().search_runs([bare.info.experiment_id])
    assert [r.info.run_id for r in runs] == [bare.info.run_id]  # ... and logged nothing


def test_a_model_asked_for_by_name_must_exist(training, tmp_path):
    log_run(config(), training.trainset, training.result)
    with pytest.raises(ModelError, match="has no version '9'"):
        model_card(config(), "models:/leadml/9", tmp_path / "card.html", training=training)
    assert not (tmp_path / "card.html").exists()
