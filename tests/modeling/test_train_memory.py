"""Training's memory cuts change no result: split rows cut when asked, the leakage guard on a row
mask, memory handed back between steps; the models fitted are those eager copies of the rows give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.jobs.train import release_unused_memory
from leadml.modeling.estimators import LightGBMModel, LogisticModel, fit_model
from leadml.modeling.leakage import judge_leakage
from leadml.modeling.train import _Parts, train_models
from tests.modeling.test_leakage import _data
from tests.modeling.test_train import config, make_trainset


@pytest.fixture(scope="module")
def weighted():
    trainset, points, _ = make_trainset(3000, seed=2)
    weights = np.random.default_rng(2).uniform(0.2, 1.0, len(trainset.frame))
    trainset.frame["weight"] = weights  # each snapshot's share of its lead, as build_trainset gives it
    return trainset, points


def test_split_rows_are_the_row_selection_of_the_frame(weighted):
    trainset, points = weighted
    frame, features = trainset.frame, trainset.feature_names
    parts = _Parts.of(frame, features, points)
    labelled = frame["converted"].notna().to_numpy()
    for split in ("train", "validation", "test"):
        mask = labelled & (frame["split"] == split).to_numpy()
        pd.testing.assert_frame_equal(parts.X[split], frame.loc[mask, features])
        assert parts.X.index(split).equals(frame.index[mask])
    assert parts.X.columns == features and list(parts.X) == ["train", "validation", "test"]


def test_the_models_trained_are_those_eager_copies_of_the_rows_fit(weighted):
    trainset, points = weighted
    frame, features = trainset.frame, trainset.feature_names
    settings = {"lightgbm": {"n_estimators": 80}}
    result = train_models(config(**settings), trainset, points, n_boot=20)
    rows = {s: frame.loc[frame["split"] == s].dropna(subset=["converted"]) for s in ("train", "validation")}
    X, y = {s: r[features].copy() for s, r in rows.items()}, {s: r["converted"].to_numpy(int) for s, r in rows.items()}
    w = {s: r["weight"].to_numpy(float) for s, r in rows.items()}
    models = config(**settings).models
    lightgbm = fit_model(LightGBMModel.from_config(models.lightgbm, seed=0), X["train"], y["train"], X["validation"],
                         y["validation"], sample_weight=w["train"], valid_weight=w["validation"])  # fmt: skip
    logistic = fit_model(
        LogisticModel.from_config(models.logistic, seed=0), X["train"], y["train"], sample_weight=w["train"]
    )
    fitted = result.models["lightgbm"].estimator.booster_.model_to_string()
    assert fitted == lightgbm.booster_.model_to_string()
    ours = result.models["logistic"].estimator
    assert np.array_equal(ours.pipeline_[-1].coef_, logistic.pipeline_[-1].coef_)
    assert np.array_equal(ours.design_mean_, logistic.design_mean_)


def test_the_leakage_guard_on_a_row_mask_judges_as_on_the_copied_rows():
    y, features = _data(4000, seed=3)
    mask = np.random.default_rng(3).random(len(y)) < 0.6
    on_mask = judge_leakage(features, y[mask], rows=mask)
    on_copy = judge_leakage(features.loc[mask], y[mask])
    assert on_mask == on_copy and on_mask.findings


def test_handing_memory_back_is_harmless():
    before = np.arange(10.0)
    release_unused_memory()
    release_unused_memory()
    assert np.array_equal(before, np.arange(10.0))
