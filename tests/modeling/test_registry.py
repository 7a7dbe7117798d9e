"""MLflow: the run's contents, registration, champion / challenger, promotion, a fresh-process load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient
from test_train import config, make_trainset

from leadml.core.errors import ModelError
from leadml.jobs.train import log_run
from leadml.modeling.registry import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_TRACKING_URI,
    data_fingerprint,
    log_training,
    promote_version,
    scoring_model,
    tracking_uri,
)
from leadml.modeling.scoring_model import level_codes
from leadml.modeling.train import train_models

WEAK_COLUMNS = ["industry"]


@pytest.fixture(autouse=True)
def mlflow_in_tmp(tmp_path, monkeypatch):
    """Every run, model and artifact of these tests lives in the test's temp folder."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def strong():
    trainset, points, _ = make_trainset(4000, seed=5)
    return trainset, train_models(config(), trainset, points, n_boot=100)


@pytest.fixture(scope="module")
def weak():
    trainset, _, _ = make_trainset(4000, seed=5, columns=WEAK_COLUMNS)
    # f1: the weak model's isotonic steps tie 253 snapshots at its top, more than a capacity of 10 a week allows
    return trainset, train_models(config(mql={}), trainset, None, n_boot=100)  # no rules: a model is chosen


def _aliases(name: str) -> dict[str, str]:
    model = MlflowClient().get_registered_model(name)
    return {alias: str(version) for alias, version in model.aliases.items()}


def test_a_run_holds_config_fingerprint_metrics_plots_and_a_scoring_model(strong, mlflow_in_tmp):
    trainset, result = strong
    outcome = log_training(config(), trainset, result)
    assert outcome.version == "1" and outcome.promoted and "first champion" in outcome.reason
    assert outcome.tracking_uri == f"sqlite:///{mlflow_in_tmp / 'mlruns.db'}"
    assert _aliases("leadml") == {CHAMPION: "1", CHALLENGER: "1"}

    client = MlflowClient()
    run = client.get_run(outcome.run_id)
    assert run.data.params["data_fingerprint"] == data_fingerprint(trainset)
    assert run.data.params["chosen_model"] == result.chosen
    metrics = run.data.metrics
    for name in ("rules", "logistic", "lightgbm"):
        assert metrics[f"test.{name}.roc_auc"] == pytest.approx(result.evaluation.value(name, "roc_auc"))
        assert f"test.{name}.roc_auc.low" in metrics and f"validation.{name}.pr_auc" in metrics
    assert "vs_rules.lightgbm.pr_auc" in metrics
    assert metrics["rows.test"] == (trainset.frame["split"] == "test").sum() == 880
    assert metrics["base_rate.train"] == pytest.approx(result.counts.set_index("split").loc["train", "base_rate"])
    files = {f.path for f in client.list_artifacts(outcome.run_id)}
    for folder in ("plots", "evaluation", "features"):
        files |= {f.path for f in client.list_artifacts(outcome.run_id, folder)}
    for expected in (
        "config.json",
        "reason.txt",
        "plots/roc.png",
        "plots/pr.png",
        "plots/calibration.png",
        "plots/gains.png",
        "plots/scores.png",
        "evaluation/metrics.json",
        "features/metadata.json",
    ):
        assert expected in files, expected
    assert (mlflow_in_tmp / "mlartifacts").is_dir()

    # a fresh process loads the champion by alias and scores a feature frame (categoricals as text,
    # as `leadml features` writes them: the signature declares them as strings)
    scoring = scoring_model(result, trainset, config().mql.tiers)
    features = trainset.frame.loc[trainset.frame["split"] == "test", result.feature_names].head(50)
    features.astype({name: object for name in scoring.categories}).to_parquet(mlflow_in_tmp / "features.parquet")
    signature = mlflow.models.get_model_info("models:/leadml@champion").signature
    inputs = {spec.name: getattr(spec.type, "name", repr(spec.type)) for spec in signature.inputs}
    features_in = {name: inputs.pop(name) for name in result.feature_names}
    assert features_in == {name: "string" if name in scoring.categories else "double" for name in result.feature_names}
    assert "lead_id" in inputs and set(inputs.values()) == {"Any"}  # the leads input's columns, passed as given
    script = (
        "import mlflow, pandas as pd; "
        "m = mlflow.pyfunc.load_model('models:/leadml@champion'); "
        "m.predict(pd.read_parquet('features.parquet')).to_parquet('scores.parquet')"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=mlflow_in_tmp, capture_output=True)
    scores = pd.read_parquet(mlflow_in_tmp / "scores.parquet")
    expected = scoring.score(features)
    assert list(scores.columns) == ["probability", "score", "tier", "is_mql"]
    assert np.array_equal(scores["probability"].to_numpy(), expected["probability"].to_numpy())
    assert scores["tier"].tolist() == expected["tier"].tolist()
    assert scores["is_mql"].tolist() == expected["is_mql"].tolist()


def test_a_new_version_takes_champion_only_when_better_on_the_same_test_rows(strong, weak):
    (weak_set, weak_result), (strong_set, strong_result) = weak, strong
    first = log_run(config(), weak_set, weak_result)  # the job's logging: the registry's, with the card
    assert first.promoted and _aliases("leadml") == {CHAMPION: "1", CHALLENGER: "1"}
    assert [a.path for a in MlflowClient().list_artifacts(first.run_id, "reports")] == ["reports/model_card.html"]

    better = log_training(config(), strong_set, strong_result)
    assert better.version == "2" and better.promoted, better.reason
    assert better.champion_version == "1" and better.new_metric > better.champion_metric
    # the weak champion was scored with its own (rebuilt) feature set on the strong set's test rows
    assert better.champion_metric == pytest.approx(weak_result.evaluation.value(weak_result.chosen, "pr_auc"))
    assert _aliases("leadml") == {CHAMPION: "2", CHALLENGER: "2"}

    worse = log_training(config(), weak_set, weak_result)
    assert worse.version == "3" and not worse.promoted
    assert "does not beat champion version 2 on pr_auc" in worse.reason
    assert _aliases("leadml") == {CHAMPION: "2", CHALLENGER: "3"}
    run = MlflowClient().get_run(worse.run_id)
    assert run.data.tags["leadml.promoted"] == "False" and "champion.pr_auc" in run.data.metrics
    # the paired interval of the gain brackets the gain, and says how sure it is
    for outcome in (better, worse):
        gain = outcome.comparison
        assert (
            gain.gain_low <= gain.gain <= gain.gain_high and gain.gain == outcome.new_metric - outcome.champion_metric
        )
        assert f"the gain {gain.gain:+.4f} has a 95 % paired interval [{gain.gain_low:+.4f}" in outcome.reason
    assert better.comparison.share_better > 0.5 > worse.comparison.share_better
    assert run.data.metrics["champion.pr_auc.gain_high"] == pytest.approx(worse.comparison.gain_high)

    never = log_training(config(), strong_set, strong_result, promote="never")
    assert not never.promoted and _aliases("leadml") == {CHAMPION: "2", CHALLENGER: "4"}
    assert promote_version(config(), 3) == "2"
    assert _aliases("leadml")[CHAMPION] == "3"
    with pytest.raises(ModelError, match="registered model 'leadml' has no version 99"):
        promote_version(config(), 99)


def _with_margin(margin: float):
    """The margin under the point rule (the gain itself must clear it); the interval rule: test_promotion.py."""
    base = config()
    settings = {"promote_margin": margin, "promote_rule": "point"}
    return base.model_copy(update={"mlflow": base.mlflow.model_copy(update=settings)})


def test_a_gain_within_the_margin_does_not_take_champion(strong, weak):
    (weak_set, weak_result), (strong_set, strong_result) = weak, strong
    log_training(config(), weak_set, weak_result)
    gain = log_training(config(), strong_set, strong_result, promote="never").comparison.gain
    assert gain > 0
    margin = round(gain + 0.001, 3)  # just above the strong model's gain
    within = log_training(_with_margin(margin), strong_set, strong_result)
    assert (
        not within.promoted and f"does not beat champion version 1 on pr_auc by more than {margin:g}" in within.reason
    )
    beyond = log_training(_with_margin(round(gain - 0.001, 3)), strong_set, strong_result)
    assert beyond.promoted and _aliases("leadml")[CHAMPION] == beyond.version


def test_cold_start_logs_the_run_but_registers_nothing(monkeypatch, tmp_path):
    trainset, points, _ = make_trainset(2000, seed=6)
    result = train_models(config(min_positives=100_000), trainset, points, n_boot=50)
    outcome = log_training(config(), trainset, result)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'other.db'}"  # no process-wide URI left behind
    monkeypatch.setenv("MLFLOW_TRACKING_URI", outcome.tracking_uri)
    assert outcome.version is None and not outcome.promoted
    assert outcome.reason.startswith("no model registered: cold start")
    run = MlflowClient().get_run(outcome.run_id)
    assert run.data.tags["leadml.registered"] == "false" and run.info.status == "FINISHED"
    assert MlflowClient().search_registered_models() == []


def test_tracking_uri_environment_wins_over_config(monkeypatch):
    mlflow_settings = config().mlflow.model_copy(update={"tracking_uri": "sqlite:///x.db"})
    configured = config().model_copy(update={"mlflow": mlflow_settings})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-env.db")
    assert tracking_uri(configured) == "sqlite:///from-env.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking_uri(configured) == "sqlite:///x.db"
    assert tracking_uri(config()) == DEFAULT_TRACKING_URI == "sqlite:///mlruns.db"


def test_fingerprint_follows_the_data(strong):
    trainset, _ = strong
    assert data_fingerprint(trainset) == data_fingerprint(trainset)
    frame = trainset.frame.copy()
    frame.loc[frame.index[0], "converted"] = 1 - frame["converted"].iloc[0]
    changed = type(trainset)(frame=frame, builder=trainset.builder, data=trainset.data)
    assert data_fingerprint(changed) != data_fingerprint(trainset)


def test_the_scoring_model_maps_strings_unknown_levels_and_missing_values(strong):
    trainset, result = strong
    scoring = scoring_model(result, trainset, config().mql.tiers)
    features = trainset.frame[result.feature_names].head(4).copy()
    as_text = features.astype({c: object for c in scoring.categories})
    assert np.array_equal(scoring.probability(as_text), scoring.probability(features))
    odd = as_text.copy()
    column = next(iter(scoring.categories))
    odd[column] = ["never-seen", None, "never-seen", None]
    prepared = scoring.prepare(odd)
    assert prepared[column].tolist() == ["other", "missing", "other", "missing"]
    with pytest.raises(ModelError, match="lacks 1 columns the model needs"):
        scoring.score(features.drop(columns=column))
    # a Categorical with other categories (in another order, one unseen) is read by its text
    levels = scoring.categories[column]
    shuffled = pd.Categorical([levels[1], "never-seen", None, levels[0]], categories=["never-seen", *levels[::-1]])
    prepared = scoring.prepare(odd.assign(**{column: shuffled}))
    assert prepared[column].tolist() == [levels[1], "other", "missing", levels[0]]
    assert list(prepared[column].cat.categories) == list(levels)
    assert scoring.probability(features.iloc[:0]).shape == (0,)


def _row_by_row(values: list, levels: list[str]) -> list[int]:
    """The definition of a level code, one value at a time."""
    codes = []
    for value in values:
        text = "missing" if pd.isna(value) else str(value)
        text = text if text in levels else "other"
        codes.append(levels.index(text) if text in levels else -1)
    return codes


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.sampled_from(["a", "b", "c", "zz", "", None, float("nan")]), min_size=0, max_size=30),
    levels=st.permutations(["a", "b", "missing", "other"]).map(list) | st.just(["a", "b"]),
    kind=st.sampled_from(["str", "object", "category"]),
)
def test_level_codes_map_each_distinct_value_as_the_definition_maps_each_row(values, levels, kind):
    series = pd.Series(values, dtype=object)
    if kind == "str":
        series = series.astype("str")
    elif kind == "category":
        series = series.astype("category")
    assert level_codes(series, levels).tolist() == _row_by_row(values, levels)


def test_numbers_in_a_categorical_column_read_as_their_text():
    assert level_codes(pd.Series([1, 2, 3]), ["1", "3", "other"]).tolist() == [0, 2, 1]
    assert level_codes(pd.Series([1.5, np.nan]), ["1.5", "missing"]).tolist() == [0, 1]


def test_the_booster_path_gives_the_frame_paths_probabilities_bit_for_bit(strong):
    """LightGBM scores a float matrix of booster codes; the generic path a prepared frame: same numbers."""
    trainset, result = strong
    lightgbm = scoring_model(result, trainset, config().mql.tiers)
    lightgbm.model = result.models["lightgbm"]
    assert lightgbm._booster_plan() is not None
    features = trainset.frame[result.feature_names].iloc[::7].copy()
    numeric = [name for name in result.feature_names if name not in lightgbm.categories]
    column = next(iter(lightgbm.categories))
    variants = {
        "categorical": features,
        "text": features.astype({name: "str" for name in lightgbm.categories}),
        "odd": features.astype({name: object for name in lightgbm.categories}).assign(
            **{
                column: np.resize(["never-seen", None, lightgbm.categories[column][0]], len(features)),
                numeric[0]: features[numeric[0]].astype("float32").where(np.arange(len(features)) % 3 > 0),
                numeric[1]: features[numeric[1]].astype(str),  # numbers as text are parsed, as before
            }
        ),
        "reordered": features[result.feature_names[::-1]],
    }
    for name, variant in variants.items():
        generic = lightgbm.model.predict_proba(lightgbm.prepare(variant))[:, 1]
        assert np.array_equal(lightgbm.probability(variant), generic), name
    shuffled = features.sample(frac=1.0, random_state=0)
    assert np.array_equal(lightgbm.score(shuffled)["probability"].loc[features.index].to_numpy(),
                          lightgbm.score(features)["probability"].to_numpy())  # fmt: skip

    logistic = scoring_model(result, trainset, config().mql.tiers)
    logistic.model = result.models["logistic"]
    assert logistic._booster_plan() is None
    assert np.array_equal(logistic.probability(features),
                          logistic.model.predict_proba(logistic.prepare(features))[:, 1])  # fmt: skip


@pytest.mark.slow
def test_retraining_on_later_closed_deals_promotes_only_a_better_model(pipelines_dir):
    import yaml

    from leadml.core.config import parse_pipeline
    from leadml.data.contract import validate_outcomes
    from leadml.data.simulate import simulate
    from leadml.data.sources import PipelineData
    from leadml.features.build import build_trainset
    from leadml.rules.ruleset import RuleSet

    raw = yaml.safe_load((pipelines_dir / "demo.yaml").read_text())
    pipeline = parse_pipeline(raw, source="demo.yaml", base=pipelines_dir)
    sim = simulate(12_000, 3, base_rate=0.08)
    outcomes = validate_outcomes(sim.outcomes)
    cut = sim.data_end - pd.Timedelta(days=120)  # month M: four months before the end

    def run(config, data):
        trainset = build_trainset(config, data)
        snapshots = trainset.frame[["lead_id", "as_of"]]
        points = RuleSet.load(config.rules).score_snapshots(snapshots, data.leads, data.events)["points"]
        result = train_models(config, trainset, pd.Series(points.to_numpy(dtype=float), index=trainset.frame.index),
                              n_boot=200)  # fmt: skip
        return log_training(config, trainset, result), result

    early = PipelineData(
        leads=sim.leads[sim.leads["created_at"] < cut], events=sim.events[sim.events["timestamp"] < cut],
        outcomes=outcomes[outcomes["closed_at"] < cut], data_end=cut,
    )  # fmt: skip
    full = PipelineData(leads=sim.leads, events=sim.events, outcomes=outcomes, data_end=sim.data_end)
    first, _ = run(pipeline, early)
    assert first.promoted and first.version == "1"

    second, result = run(pipeline, full)
    assert second.champion_version == "1"
    assert second.promoted == (second.comparison.gain_low > 0)  # the paired interval wholly above 0
    assert second.new_metric == pytest.approx(result.evaluation.value(result.chosen, "pr_auc"))
    champion = "2" if second.promoted else "1"

    poor = parse_pipeline({**raw, "profile": {"columns": ["country"]}, "features": {"event_types": ["email_open"]}},
                          source="demo.yaml", base=pipelines_dir)  # fmt: skip
    third, weak = run(poor, full)
    assert weak.chosen != "rules" and third.version == "3", third.reason
    assert not third.promoted and third.new_metric < third.champion_metric, third.reason
    assert _aliases(pipeline.mlflow.registered_model) == {CHAMPION: champion, CHALLENGER: "3"}


def test_a_model_card_is_fetched_only_from_a_run_that_logged_one(weak, tmp_path):
    from leadml.jobs.model_cards import CARD_ARTIFACT, fetch_model_card

    weak_set, weak_result = weak
    outcome = log_run(config(), weak_set, weak_result)
    assert fetch_model_card(config(), "models:/leadml@champion", tmp_path / "card.html") == outcome.run_id
    logged = MlflowClient().download_artifacts(outcome.run_id, CARD_ARTIFACT, str(tmp_path / "logged"))
    assert (tmp_path / "card.html").read_bytes() == Path(logged).read_bytes()
    assert "Model card: test" in (tmp_path / "card.html").read_text()
    with mlflow.start_run() as bare:  # a run with no card (e.g. trained before cards were logged)
        mlflow.set_tag("leadml.registered", "false")
    assert fetch_model_card(config(), f"runs:/{bare.info.run_id}/model", tmp_path / "none.html") is None
    assert not (tmp_path / "none.html").exists()
