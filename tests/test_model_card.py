"""The card of the serving model (`leadml report`, `leadml demo`): the one logged with it, else drawn;
what it shows at the MQL threshold, of calibration and per configured segment; the metrics its run logs."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from leadml.core.config import EvaluationConfig
from leadml.core.errors import ModelError
from leadml.explain.report import write_model_card
from leadml.jobs.model_cards import CARD_ARTIFACT
from leadml.jobs.report import model_card
from leadml.jobs.train import TrainingRun, log_run
from leadml.modeling.evaluate import mql_confusion
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
    assert card.message in seen and "scoring the rules baseline on every snapshot" in seen  # a real training ran
    assert "Model card: test" in card.path.read_text()
    runs = MlflowClient().search_runs([bare.info.experiment_id])
    assert [r.info.run_id for r in runs] == [bare.info.run_id]  # ... and logged nothing


def test_a_model_asked_for_by_name_must_exist(training, tmp_path):
    log_run(config(), training.trainset, training.result)
    with pytest.raises(ModelError, match="has no version '9'"):
        model_card(config(), "models:/leadml/9", tmp_path / "card.html", training=training)
    assert not (tmp_path / "card.html").exists()


INDUSTRY = EvaluationConfig(segments=["industry"], min_conversions=10)


def test_the_card_shows_the_confusion_f1_both_binnings_and_the_configured_segment(training, tmp_path):
    result = training.result
    text = write_model_card(result, training.trainset, tmp_path / "card.html", evaluation=INDUSTRY).read_text()
    chosen = result.chosen
    confusion = mql_confusion(result.thresholds, result.predictions, result.counts).set_index(["split", "model"])
    assert 'id="confusion"' in text
    for split in ("validation", "test"):
        row = confusion.loc[(split, chosen)]
        n = int(row["rows"])
        for count in ("tp", "fp", "fn", "tn"):  # each cell: the count and its share of all snapshots
            assert f"<td>{int(row[count]):,} ({int(row[count]) / n:.1%})</td>" in text, (split, count)
        assert f"{split.capitalize()} ({n:,} snapshots): F1 {row['f1']:.3f}" in text
    low, high = result.evaluation.metrics.set_index(["model", "metric"]).loc[(chosen, "f1"), ["low", "high"]]
    assert f"F1 {confusion.loc[('test', chosen), 'f1']:.3f} [{low:.3f}, {high:.3f}]" in text
    assert "<th>f1</th>" in text  # the metrics table of every candidate, with intervals
    assert "<h3>Calibration error of each binning</h3>" in text
    for binning in ("equal-mass", "equal-width"):
        assert f"<th>ECE ({binning})</th>" in text and f"{chosen}: {binning} bins</h3>" in text
    assert "<td>0.9–1.0</td>" in text  # every equal-width bin listed, the top one too

    assert "<h3>industry</h3>" in text and "<h3>source</h3>" not in text
    # by hand: conversions and MQL rate per industry of the test snapshots
    industry = training.trainset.frame.loc[(training.trainset.frame["split"] == "test")
                                           & training.trainset.frame["converted"].notna(), "industry"]  # fmt: skip
    by_level = pd.DataFrame({"industry": industry.astype(str).to_numpy(), "y": result.predictions["converted"],
                             "mql": result.predictions[chosen] >= result.threshold}).groupby("industry")  # fmt: skip
    conversions, rates = by_level["y"].sum(), by_level["mql"].mean()
    greyed = conversions < INDUSTRY.min_conversions
    assert 0 < greyed.sum() < len(greyed)  # some levels judged, some not
    segment = text[text.index("<h3>industry</h3>") :]
    assert segment.count('<tr class="thin">') == greyed.sum()
    assert segment.count("too few conversions to judge (fewer than 10)") == greyed.sum()
    for level in conversions.index[greyed]:
        assert f'<tr class="thin"><td>{level}</td>' in segment
    judged = rates[~greyed]
    ratio = judged.min() / judged.max()
    assert f"= {ratio:.2f}, " in segment
    flagged = ratio < 0.8
    assert ("below 0.8: flagged by the four-fifths rule" in segment) == flagged
    assert ('<p class="note flag">Ratio of MQL rates' in segment) == flagged


def test_a_logged_run_holds_f1_and_the_confusion_counts_and_its_card_the_configured_segment(training, tmp_path):
    configured = config().model_copy(update={"evaluation": INDUSTRY})
    outcome = log_run(configured, training.trainset, training.result)
    metrics = MlflowClient().get_run(outcome.run_id).data.metrics
    result = training.result
    confusion = mql_confusion(result.thresholds, result.predictions, result.counts)
    assert set(confusion["model"]) == set(result.models)
    for row in confusion.to_dict("records"):
        for key in ("tp", "fp", "fn", "tn", "f1"):
            assert metrics[f"{row['split']}.{row['model']}.{key}"] == pytest.approx(row[key]), (row["split"], key)
    for name in result.models:
        assert metrics[f"test.{name}.f1.low"] <= metrics[f"test.{name}.f1"] <= metrics[f"test.{name}.f1.high"]
        assert metrics[f"test.{name}.ece"] == pytest.approx(result.evaluation.value(name, "ece"))
        for key in ("ece_equal_width", "max_bin_error_equal_width", "max_bin_error_equal_mass"):
            assert np.isfinite(metrics[f"test.{name}.{key}"]), key
    assert (
        metrics[f"test.{result.chosen}.tp"] + metrics[f"test.{result.chosen}.fn"]
        == result.predictions["converted"].sum()
    )
    logged = MlflowClient().download_artifacts(outcome.run_id, CARD_ARTIFACT, str(tmp_path / "logged"))
    card = Path(logged).read_text()
    assert "<h3>industry</h3>" in card and "<h3>country</h3>" not in card
