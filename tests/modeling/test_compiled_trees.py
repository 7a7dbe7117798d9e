"""The compiled trees give ``Booster.predict``'s bits on every kind of value, and step aside when they do not apply."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from leadml.modeling.lightgbm import compiled as compiled_trees
from leadml.modeling.lightgbm.compiled import (
    ZERO_THRESHOLD,
    booster_probability,
    compile_trees,
    probabilities,
    raw_scores,
    splits_in_order,
)


def _training_frame(n: int = 4000, seed: int = 8) -> tuple[pd.DataFrame, np.ndarray]:
    """Numbers with NaN, with many zeros, small counts, and a category of 40 levels (bitsets over 32)."""
    rng = np.random.default_rng(seed)
    a = np.where(rng.random(n) < 0.2, np.nan, rng.normal(0, 1, n))
    b = np.where(rng.random(n) < 0.4, 0.0, rng.exponential(2, n))
    c = rng.integers(0, 6, n).astype(float)
    level = rng.integers(0, 40, n)
    logit = np.sin(2 * np.nan_to_num(a, nan=1.5)) + 0.6 * b * (c > 2) - 0.4 * c + np.isin(level % 7, [0, 3]) * 1.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({"a": a, "b": b, "c": c, "level": pd.Categorical(level, categories=range(40))})
    return frame, y


def _booster(zero_as_missing: bool, **params) -> lgb.Booster:
    frame, y = _training_frame()
    options = dict(n_estimators=60, num_leaves=7, min_child_samples=5, max_cat_to_onehot=3, min_data_per_group=5,
                   cat_smooth=1, zero_as_missing=zero_as_missing, verbose=-1)  # fmt: skip
    return lgb.LGBMClassifier(**{**options, **params}).fit(frame, y).booster_


def _splits(booster: lgb.Booster) -> list[dict]:
    return [split for tree in booster.dump_model()["tree_info"] for split in splits_in_order(tree["tree_structure"])]


def _awkward_rows(booster: lgb.Booster, seed: int = 3) -> np.ndarray:
    """Rows built from every threshold and its float neighbours, zeros of every kind, NaN, infinities,
    negative, fractional, unseen and huge category codes, mixed at random."""
    splits = _splits(booster)
    numeric = np.array([float(s["threshold"]) for s in splits if s["decision_type"] != "=="])
    near = np.concatenate([numeric, np.nextafter(numeric, np.inf), np.nextafter(numeric, -np.inf)])
    zeros = [0.0, -0.0, 1e-36, -1e-36, ZERO_THRESHOLD, -ZERO_THRESHOLD, np.nextafter(ZERO_THRESHOLD, 1.0),
             np.nextafter(-ZERO_THRESHOLD, -1.0)]  # fmt: skip
    odd = [np.nan, np.inf, -np.inf, 1e300, -1e300]
    codes = [*range(-2, 45), 2.5, 7.9999, 1e12, -0.5]
    rng = np.random.default_rng(seed)
    n = 30_000
    X = np.empty((n, 4))
    for j in range(3):
        pool = np.concatenate([near, zeros, odd, rng.normal(0, 2, 50)])
        X[:, j] = rng.choice(pool, n)
    X[:, 3] = rng.choice(np.array([*codes, *zeros, np.nan]), n)
    return X


@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_probabilities_and_raw_scores_are_booster_predicts_bits(zero_as_missing):
    booster = _booster(zero_as_missing)
    kinds = {(s["decision_type"], s["missing_type"]) for s in _splits(booster)}
    expected = {("<=", "Zero"), ("==", "None")} if zero_as_missing else {("<=", "NaN"), ("<=", "None"), ("==", "None")}
    assert expected <= kinds  # every routing rule this setting makes is in the model
    if not zero_as_missing:
        assert any(
            len(s["threshold"].split("||")) > 1 and max(map(int, s["threshold"].split("||"))) >= 32
            for s in _splits(booster)
            if s["decision_type"] == "=="
        )  # a bitset past its first word
    trees = compile_trees(booster)
    assert trees is not None and trees.n_features == 4
    X = _awkward_rows(booster)
    np.testing.assert_array_equal(raw_scores(trees, X), booster.predict(X, raw_score=True))
    np.testing.assert_array_equal(probabilities(trees, X), booster.predict(X))
    np.testing.assert_array_equal(probabilities(trees, np.asfortranarray(X)), booster.predict(X))


def test_fewer_trees_and_another_sigmoid_are_followed():
    booster = _booster(False, objective="binary", sigmoid=0.7)
    X = _awkward_rows(booster, seed=5)
    trees = compile_trees(booster, num_iteration=17)
    assert trees is not None and trees.sigmoid == 0.7 and len(trees.tree_splits) == 18
    np.testing.assert_array_equal(probabilities(trees, X), booster.predict(X, num_iteration=17))
    assert not np.array_equal(probabilities(trees, X), booster.predict(X))


def test_a_tree_of_one_leaf_adds_its_value():
    frame, y = _training_frame(n=600)
    booster = lgb.LGBMClassifier(n_estimators=5, num_leaves=2, min_child_samples=400, verbose=-1).fit(frame, y).booster_
    roots = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    assert any("split_index" not in root for root in roots)
    X = _awkward_rows(booster)
    np.testing.assert_array_equal(probabilities(compile_trees(booster), X), booster.predict(X))


@pytest.mark.parametrize(
    "params",
    [
        {"objective": "multiclass", "num_class": 3},
        {"linear_tree": True},
        {"num_leaves": 31},
        {"objective": "regression"},
    ],
    ids=["multiclass", "linear-trees", "over-12-splits", "regression"],
)
def test_models_the_kernel_does_not_cover_are_left_to_lightgbm(params):
    frame, y = _training_frame(n=3000)
    if params.get("objective") == "multiclass":
        y = y + (frame["c"].to_numpy() > 3)
    options = {"n_estimators": 20, "min_child_samples": 5, "verbose": -1, "num_leaves": 7, **params}
    model = lgb.LGBMRegressor(**options) if params.get("objective") == "regression" else lgb.LGBMClassifier(**options)
    booster = model.fit(frame.drop(columns="level"), y).booster_
    assert compile_trees(booster) is None
    if params.get("objective") is None:  # a binary model: booster_probability still answers, through LightGBM
        X = _awkward_rows(booster)[:, :3]
        np.testing.assert_array_equal(booster_probability(booster, X), booster.predict(X))


def test_booster_probability_uses_the_kernel_only_for_large_batches(monkeypatch):
    booster = _booster(False)
    X = _awkward_rows(booster)
    calls = []
    original = compiled_trees.probabilities
    monkeypatch.setattr(compiled_trees, "probabilities", lambda trees, M: calls.append(len(M)) or original(trees, M))
    small = X[: compiled_trees.MIN_ROWS - 1]
    np.testing.assert_array_equal(booster_probability(booster, small), booster.predict(small))
    np.testing.assert_array_equal(booster_probability(booster, X), booster.predict(X))
    assert calls == [len(X)]
    assert compiled_trees.compiled_for(booster) is compiled_trees.compiled_for(booster)  # made once


def test_a_matrix_of_the_wrong_width_is_refused():
    booster = _booster(False)
    with pytest.raises(ValueError, match="takes 4 columns"):
        raw_scores(compile_trees(booster), np.zeros((3, 5)))


def test_where_numba_cannot_cache_its_kernels_lightgbm_scores_and_says_so(monkeypatch, tmp_path, caplog):
    """numba refuses to define a cached kernel when no cache folder is writable (a RuntimeError at import)."""
    from leadml.core import kernels as numba_kernels
    from leadml.modeling.lightgbm.treeshap import lightgbm_contributions

    (tmp_path / "unwritable_kernels.py").write_text(
        "raise RuntimeError(\"cannot cache function 'raw_kernel': no locator available for file 'kernel.py'\")\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(numba_kernels, "_REFUSED", {})
    monkeypatch.setattr(compiled_trees, "_KERNELS", "unwritable_kernels")
    from leadml.modeling.lightgbm import treeshap

    monkeypatch.setattr(treeshap, "_KERNELS", "unwritable_kernels")
    booster = _booster(False)
    X = _awkward_rows(booster)
    with caplog.at_level("WARNING", logger="leadml.numba"):
        np.testing.assert_array_equal(booster_probability(booster, X), booster.predict(X))
        frame = pd.DataFrame(X[:, :3], columns=["a", "b", "c"]).assign(level=pd.Categorical(np.zeros(len(X), int)))
        assert lightgbm_contributions(booster, frame) is None  # the caller asks LightGBM's pred_contrib
    warnings = [r.getMessage() for r in caplog.records if r.name == "leadml.numba"]
    assert len(warnings) == 1 and "no locator available" in warnings[0] and "NUMBA_CACHE_DIR" in warnings[0]
    with pytest.raises(RuntimeError, match="cannot be loaded here"):
        raw_scores(compile_trees(booster), X)
