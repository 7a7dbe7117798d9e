"""Small inputs take shorter roads (one block of numeric columns, LightGBM on one thread): the same bits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadml.data import contract
from leadml.modeling import scoring_model
from leadml.modeling.lightgbm.compiled import ONE_THREAD_ROWS, booster_probability, thread_options
from leadml.serve.chunks import ProfileCache


def _features(scoring, data, rows: int) -> pd.DataFrame:
    leads = contract.validate_leads(data.leads.head(rows).copy(), source="test").reset_index(drop=True)
    features = ProfileCache(scoring.builder).features(leads)
    rng = np.random.default_rng(4)
    kinds = [np.float64, np.float32, np.int64, np.bool_]
    for k, name in enumerate(n for n in scoring.feature_names if n not in features.columns):
        values = rng.integers(0, 5, len(leads))
        features[name] = values.astype(kinds[k % len(kinds)])  # every numeric dtype a feature frame may hold
    return features


def test_the_numeric_block_of_a_small_frame_equals_the_columns_one_by_one(served_model, monkeypatch):
    config, scoring, data = served_model
    features = _features(scoring, data, 60)
    plan = scoring._booster_plan()
    small = scoring.matrix(features, plan)
    monkeypatch.setattr(scoring_model, "SMALL_FRAME", 0)  # every frame column by column
    by_column = scoring.matrix(features, plan)
    assert small.dtype == by_column.dtype == np.float64
    np.testing.assert_array_equal(small, by_column)
    one = features.iloc[[17]].reset_index(drop=True)
    monkeypatch.setattr(scoring_model, "SMALL_FRAME", 1_000)
    np.testing.assert_array_equal(scoring.matrix(one, plan), by_column[[17]])


def test_lightgbm_on_one_thread_gives_the_bits_of_its_threads(served_model):
    config, scoring, data = served_model
    estimator = scoring.model.estimator
    X = scoring.matrix(_features(scoring, data, 1_500), scoring._booster_plan())
    assert thread_options(1) == {"num_threads": 1} and thread_options(ONE_THREAD_ROWS) == {}
    booster = estimator.booster_
    threads = booster.predict(X, num_iteration=estimator.n_trees_)  # 1,500 rows: the booster's threads
    np.testing.assert_array_equal(booster_probability(booster, X[:10], estimator.n_trees_), threads[:10])
    contrib = booster.predict(X, pred_contrib=True)
    np.testing.assert_array_equal(booster.predict(X[:10], pred_contrib=True, num_threads=1), contrib[:10])
