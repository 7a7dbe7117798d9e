"""Small inputs take shorter roads (one block of numeric columns, LightGBM on one thread): the same bits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadml.data import contract
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


def test_the_numeric_blocks_give_the_matrix_of_the_columns_one_by_one(served_model, monkeypatch):
    """Numbers read off the frame's blocks (every numpy dtype a feature frame holds, any layout,
    nullable floats and text left to the by-name path) equal the matrix built column by column."""
    config, scoring, data = served_model
    plan = scoring._booster_plan()
    features = _features(scoring, data, 60)
    name = next(n for n in plan[0] if n not in plan[1] and features[n].dtype == np.float64)
    odd = features.copy()
    odd[name] = pd.array(odd[name].to_numpy(), dtype="Float64")  # a pandas extension array: by name
    shuffled = features[list(reversed(features.columns))]  # the same columns in another order
    frames = {"frame": features, "one lead": features.iloc[[17]].reset_index(drop=True), "nullable": odd,
              "reordered": shuffled, "again": features}  # fmt: skip
    blocks = {label: scoring.matrix(frame, plan) for label, frame in frames.items()}
    monkeypatch.setattr(type(scoring), "_by_blocks", False)  # every column by name
    for label, frame in frames.items():
        by_name = scoring.matrix(frame, plan)
        assert blocks[label].dtype == by_name.dtype == np.float64
        np.testing.assert_array_equal(blocks[label], by_name, err_msg=label)
    np.testing.assert_array_equal(blocks["one lead"], blocks["frame"][[17]])


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


def test_column_arrays_are_the_columns_by_name():
    """Each column read off the blocks holds what ``frame[name]`` holds (values, dtype, missing);
    of a repeated name, the first column."""
    from leadml.modeling.frame_blocks import column_arrays

    frame = pd.DataFrame({"n": [1, 2, 3], "t": ["x", None, "z"], "c": pd.Categorical(["u", "v", None]),
                          "f": [1.5, np.nan, 0.0], "h": np.array([1, 2, 3], dtype=np.float32),
                          "i": pd.array([1, None, 3], dtype="Int16"), "b": [True, False, True]})  # fmt: skip
    frame["late"] = frame["f"] * 2  # a column added afterwards: a block of its own
    frame["at"] = pd.to_datetime(["2026-01-01", None, "2026-03-01"]).tz_localize("UTC")
    frame["naive"] = pd.to_datetime(["2026-01-02", "2026-02-02", None])
    frame = pd.concat([frame, frame[["at", "naive"]].add_suffix("_2")], axis=1)._consolidate()  # 2-D datetime blocks
    assert any(block.values.shape[0] == 2 for block in frame._mgr.blocks if block.values.dtype.kind == "M")
    arrays = column_arrays(frame)
    assert list(arrays) != [] and set(arrays) == set(frame.columns)
    for name in frame.columns:
        pd.testing.assert_series_equal(pd.Series(arrays[name], name=name), frame[name], check_exact=True)
    twice = pd.concat([frame[["n"]], frame[["f"]].rename(columns={"f": "n"})], axis=1)
    assert list(column_arrays(twice)) == ["n"] and column_arrays(twice)["n"].tolist() == [1, 2, 3]  # the first
