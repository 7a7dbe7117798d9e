"""The sub-scores' group effects by tables: the walk's bits on every kind of value, and the same scores file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from leadml.core.config import LightGBMConfig, parse_pipeline
from leadml.features.build import build_trainset
from leadml.modeling import subscore_tables
from leadml.modeling.estimators import LightGBMModel
from leadml.modeling.lightgbm.effects import compile_booster, lightgbm_matrix, tree_group_margin
from leadml.modeling.subscore_tables import group_margin, group_tables
from leadml.modeling.subscores import _groups, _scenario_columns, group_effects


@pytest.fixture(scope="module")
def model_and_rows(small_sim):
    """A LightGBM model on simulated snapshots and its matrix of the validation rows."""
    from leadml.data.sources import PipelineData

    config = parse_pipeline({"name": "tables", "data": {"simulator": {"leads": 3000, "seed": 11}}})
    trainset = build_trainset(config, PipelineData.from_simulation(small_sim))
    frame, names = trainset.frame, trainset.feature_names
    train, valid = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    model = LightGBMModel.from_config(LightGBMConfig(n_estimators=120, min_child_samples=10), seed=0)
    model.fit(train[names], train["converted"], eval_set=(valid[names], valid["converted"]))
    compiled = compile_booster(model.booster_, model.n_trees_)
    X = lightgbm_matrix(compiled, model.lightgbm_frame(frame[names]))
    return model, compiled, X, trainset


def _odd_rows(compiled, X: np.ndarray) -> np.ndarray:
    """Rows that put every split's threshold, its float neighbours, zero, +-1e-35, NaN, infinities (not
    in a categorical column), negative and fractional category codes and codes past the known ones
    in every column."""
    values = [0.0, -0.0, 1e-35, -1e-35, 2e-35, np.nan, np.inf, -np.inf, -0.5, -1.0, 0.5, 1.5, 2.99, 1e6]
    categorical: set[int] = set()
    for tree in compiled.trees:
        stack = [tree]
        while stack:
            node = stack.pop()
            if not hasattr(node, "left"):
                continue
            stack += [node.left, node.right]
            if node.categories is None:
                values += [node.threshold, np.nextafter(node.threshold, np.inf), np.nextafter(node.threshold, -np.inf)]
            else:
                values += [float(c) for c in node.categories] + [float(node.categories.max()) + 1.0]
                categorical.add(node.feature)
    rng = np.random.default_rng(3)
    odd = np.array(X[rng.integers(0, len(X), len(values))], dtype=np.float64)
    for j in range(X.shape[1]):  # each column gets the values in a different order
        column = rng.permutation(np.asarray(values, dtype=np.float64))[: len(odd)]
        if j in categorical:  # a category code is finite or missing (the walk cannot index infinity)
            column[np.isinf(column)] = np.nan
        odd[:, j] = column
    return np.vstack([X, odd])


def test_the_tables_give_the_walk_s_bits_on_every_kind_of_value(model_and_rows, monkeypatch):
    model, compiled, X, trainset = model_and_rows
    monkeypatch.setattr(subscore_tables, "MIN_ROWS", 0)
    rows = _odd_rows(compiled, X)
    names = list(model.feature_names_in_)
    groups = {**_groups(names, trainset.feature_info), "scenario": _scenario_columns(names),
              "every feature": list(range(len(names))), "none": [], "a few": [0, 3, len(names) - 1]}  # fmt: skip
    assert any(node_is_categorical(tree) for tree in compiled.trees), "the model should split on a category"
    for name, columns in groups.items():
        tables = group_tables(compiled, columns)
        assert tables is not None, name
        fast = group_margin(tables, rows)
        assert fast is not None, name
        np.testing.assert_array_equal(fast, tree_group_margin(compiled, rows, columns), err_msg=name)


def node_is_categorical(node) -> bool:
    if not hasattr(node, "left"):
        return False
    return node.categories is not None or node_is_categorical(node.left) or node_is_categorical(node.right)


def test_small_batches_and_deep_trees_are_left_to_the_walk(model_and_rows, monkeypatch):
    _, compiled, X, _ = model_and_rows
    tables = group_tables(compiled, range(X.shape[1]))
    assert group_margin(tables, X[:10]) is None  # fewer rows than MIN_ROWS
    assert group_margin(None, X) is None
    monkeypatch.setattr(subscore_tables, "MAX_KNOWN", 1)
    assert group_tables(compiled, range(X.shape[1])) is None


def test_group_effects_are_the_same_with_and_without_the_tables(model_and_rows, monkeypatch):
    model, _, _, trainset = model_and_rows
    features = trainset.frame[trainset.feature_names]
    monkeypatch.setattr(subscore_tables, "MIN_ROWS", 10**9)
    walked = group_effects(model, features, trainset.feature_info, scenario=True)
    monkeypatch.setattr(subscore_tables, "MIN_ROWS", 0)
    tabled = group_effects(model, features, trainset.feature_info, scenario=True)
    pd.testing.assert_frame_equal(tabled, walked, check_exact=True)


def test_the_scoring_job_writes_the_same_table_with_the_fast_paths(tmp_path, monkeypatch):
    """Sub-scores by tables, sorted lead chunks kept as they are: the scores table of the old paths."""
    from leadml.data.simulate import write_simulation
    from leadml.jobs import inputs
    from leadml.jobs.score import score_batch
    from leadml.jobs.train import run_training
    from leadml.modeling.registry import scoring_model

    config = parse_pipeline({"name": "fast", "data": {"simulator": {"leads": 4000, "seed": 11}},
                             "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 60}}})  # fmt: skip
    run = run_training(config, log=False, n_boot=10)
    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    folder = tmp_path / "tables"
    write_simulation(folder, 3000, seed=12, chunk_size=700)
    data = {"source": "tables", "leads": str(folder / "leads.parquet"), "events": str(folder / "events.parquet")}
    tables = parse_pipeline({"name": "fast", "data": data})  # no outcomes: every lead is open
    written = {}
    for name, min_rows, sorted_check in (("old", 10**9, lambda ids: False), ("fast", 0, inputs._increasing)):
        monkeypatch.setattr(subscore_tables, "MIN_ROWS", min_rows)
        monkeypatch.setattr(inputs, "_increasing", sorted_check)
        out = tmp_path / name / "scores.parquet"
        score_batch(tables, "2026-03-01", out, model_uri=scoring, reasons=False, chunk_leads=700, history=False)
        written[name] = pq.read_table(out)
    assert written["fast"].num_rows > 1000
    assert written["fast"].column("fit_score").null_count == 0
    assert written["fast"].equals(written["old"])
