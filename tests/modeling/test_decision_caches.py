"""What the decision columns keep between calls (ranges to check, sub-score groups, tree sums) gives
what computing it afresh gives, and a changed model, frame or feature info is never read from the
kept values. A served lead reads them at every request; a batch once a chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.features.metadata import FeatureInfo
from leadml.modeling import drift_reference, subscores
from leadml.modeling.drift_reference import make_reference, out_of_range_names
from leadml.modeling.routes import _ranks


def _fresh(monkeypatch, module, memo: str) -> None:
    """Empty one of a module's memos (for the test only: each call then computes afresh)."""
    monkeypatch.setattr(getattr(module, memo), "_values", {})


def _frame(rng: np.random.Generator, n: int, columns: list[str]) -> pd.DataFrame:
    values = {name: rng.normal(0, 2, n) for name in columns}
    values[columns[0]] = rng.integers(-3, 4, n)  # an integer column beside the floats
    frame = pd.DataFrame(values)
    frame.iloc[::5, 1] = np.nan
    return frame


def test_out_of_range_with_kept_plans_equals_a_fresh_plan_for_every_frame_and_reference(monkeypatch):
    rng = np.random.default_rng(8)
    columns = ["age", "visits", "clicks", "pages"]
    train = _frame(rng, 200, columns)
    references = [make_reference(train, rng.random(200)), make_reference(train * 0.5, rng.random(200))]
    frames = [_frame(rng, 60, columns), _frame(rng, 60, columns[::-1]), _frame(rng, 60, columns[:2]).iloc[:1]]
    for first in ((), ("pages",), ("age", "missing"), ("pages", "pages")):  # a name twice: checked twice
        for reference in references:
            for frame in frames:
                kept = [out_of_range_names(reference, frame, first) for _ in range(2)]
                _fresh(monkeypatch, drift_reference, "_PLANS")
                fresh = out_of_range_names(reference, frame, first)
                for got in kept:
                    assert got.tolist() == fresh.tolist() and got.dtype == object
                for k in range(len(frame)):  # each lead alone, as a served request reads it
                    assert out_of_range_names(reference, frame.iloc[[k]], first).tolist() == fresh[k : k + 1].tolist()
    assert any(name is not None for name in fresh)


def test_a_frame_with_new_columns_under_a_kept_index_id_is_read_afresh():
    rng = np.random.default_rng(9)
    reference = make_reference(_frame(rng, 100, ["a", "b", "c"]), rng.random(100))
    frame = pd.DataFrame({"a": [100.0], "b": [0.0], "c": [0.0]})
    assert out_of_range_names(reference, frame).tolist() == ["a"]
    frame.columns = ["c", "b", "a"]  # a new Index: its own names
    assert out_of_range_names(reference, frame).tolist() == ["c"]
    other = make_reference(_frame(rng, 100, ["a", "b", "c"]) * 1000, rng.random(100))
    assert out_of_range_names(other, frame).tolist() == [None]


def test_kept_sub_score_groups_are_the_fresh_ones_and_the_caller_s_own(monkeypatch):
    names = ["job", "visits", "scenario[x]__steps", "size", "clicks"]
    info = [FeatureInfo(name="job", group="profile", source="job", kind="categorical"),
            FeatureInfo(name="size", group="profile", source="size", kind="numeric"),
            FeatureInfo(name="visits", group="behaviour", source="visit", kind="numeric"),
            FeatureInfo(name="clicks", group="behaviour", source="click", kind="numeric")]  # fmt: skip
    first = subscores._groups(names, info)
    assert first == {"fit": [0, 3], "engagement": [1, 4]}
    first["fit"].append(99)  # the caller's own lists: the kept ones stay as they were
    assert subscores._groups(names, info) == {"fit": [0, 3], "engagement": [1, 4]}
    assert subscores._groups(names[::-1], info) == {"fit": [1, 4], "engagement": [0, 3]}
    fewer = info[:3]
    assert subscores._groups(names, fewer) == {"fit": [0, 3], "engagement": [1]}
    _fresh(monkeypatch, subscores, "_GROUPS")
    assert subscores._groups(names, fewer) == subscores._group_columns(names, fewer)


def test_the_kept_expected_margin_is_the_trees_sum(small_sim):
    from leadml.core.config import LightGBMConfig, parse_pipeline
    from leadml.data.sources import PipelineData
    from leadml.features.build import build_trainset
    from leadml.modeling.estimators import LightGBMModel
    from leadml.modeling.lightgbm.effects import compile_booster

    config = parse_pipeline({"name": "caches", "data": {"simulator": {"leads": 3000, "seed": 11}}})
    trainset = build_trainset(config, PipelineData.from_simulation(small_sim))
    frame, names = trainset.frame, trainset.feature_names
    frame = frame[frame["split"] == "train"]
    model = LightGBMModel.from_config(LightGBMConfig(n_estimators=20), seed=0).fit(frame[names], frame["converted"])
    booster, compiled, expected = subscores._trees(model)
    assert booster is model.booster_ and subscores._compiled(model) is compiled
    fresh = compile_booster(model.booster_, model.n_trees_)
    assert np.float64(expected).view(np.int64) == np.float64(fresh.expected_margin()).view(np.int64)
    model.fit(frame[names].iloc[::2], frame["converted"].iloc[::2])  # fitted again: its new trees
    assert subscores._trees(model)[0] is model.booster_ and subscores._compiled(model) is not compiled


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_route_ranks_are_nan_to_num_s(dtype):
    values = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5.0, 100.0, -3.0, 1e38], dtype=dtype)
    scores = np.column_stack([values, values[::-1], np.roll(values, 2)])
    expected = np.nan_to_num(scores, nan=-1.0)
    got = _ranks(scores)
    assert got.dtype == expected.dtype and np.array_equal(got.view(np.uint8), expected.view(np.uint8))


def test_a_few_effects_get_the_scores_numpy_ranks_give_them(monkeypatch):
    """Up to SMALL_SCORES effects are ranked by bisection on Python floats: the same int16 scores as
    searchsorted on every kind of value (on a grid point, between ties, beyond the ends, -0.0, inf);
    a NaN effect or grid goes to numpy."""
    rng = np.random.default_rng(10)
    grids = {"fit": np.quantile(rng.normal(0, 1, 500), np.linspace(0, 1, 1001), method="inverted_cdf"),
             "engagement": np.sort(np.r_[np.zeros(300), rng.integers(-3, 4, 700).astype(float)]),
             "scenario": np.array([np.nan, 0.0, 1.0])}  # fmt: skip
    scale = subscores.SubscoreScale()
    scale.quantiles_ = grids
    picked = np.r_[grids["fit"][::97], grids["engagement"][::50], -0.0, 0.0, -np.inf, np.inf, 1e300, -1e300]
    values = np.r_[picked, rng.normal(0, 2, 200), np.nan]
    by_numpy = {f"{name}_score": subscores._scores(grid, values) for name, grid in grids.items()}
    for start in range(len(values)):
        for size in (1, 2, 5, subscores.SMALL_SCORES):
            part = values[start : start + size]
            got = scale.score_arrays({name: part for name in grids})
            for name, scores in got.items():
                assert scores.dtype == np.int16 and np.array_equal(scores, by_numpy[name][start : start + size])
    monkeypatch.setattr(subscores, "SMALL_SCORES", -1)
    assert all(np.array_equal(scale.score_arrays({"fit": values})["fit_score"], by_numpy["fit_score"]) for _ in "ab")
    fresh = grids["fit"] + 1.0  # a grid replaced: its own floats
    scale.quantiles_ = {"fit": fresh}
    monkeypatch.undo()
    assert np.array_equal(scale.score_arrays({"fit": values[:3]})["fit_score"], subscores._scores(fresh, values[:3]))
