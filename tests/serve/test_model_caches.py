"""The per-model caches of the scoring steps give what the steps gave without them, bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from leadml.data import contract
from leadml.features.chunk import profile_features
from leadml.modeling.contributions import explain_margin
from leadml.modeling.drift_reference import make_reference, out_of_range
from leadml.serve.chunks import ProfileCache


def _rebuilt_matrix(scoring, features: pd.DataFrame) -> np.ndarray:
    """The booster matrix from a plan made afresh, with no cache (what every call did before)."""
    plan = scoring._make_booster_plan()
    fresh = pickle.loads(pickle.dumps(scoring))  # a pickle holds no cache
    assert "_plan_cache" not in fresh.__dict__
    fresh.__dict__["_plan_cache"] = None
    return fresh.matrix(features, plan)


def test_the_cached_booster_plan_and_codes_equal_rebuilt_ones(served_model):
    config, scoring, data = served_model
    leads = contract.validate_leads(data.leads.head(40).copy(), source="test").reset_index(drop=True)
    profile = ProfileCache(scoring.builder)
    features = profile.features(leads)  # the served frames: one dtype object per categorical
    others = profile_features(scoring.builder, leads)  # other dtype objects, same values
    for name in scoring.feature_names:
        if name not in features.columns:
            features[name] = others[name] = np.arange(len(leads), dtype=float)
    first = scoring.booster_matrix(features)
    plan = scoring._booster_plan()
    assert scoring._booster_plan() is plan  # kept
    assert plan[0] == scoring._make_booster_plan()[0]
    again = scoring.booster_matrix(features)  # the codes of every categorical from the cache now
    expected = _rebuilt_matrix(scoring, features)
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(again, expected)
    np.testing.assert_array_equal(scoring.booster_matrix(others), expected)
    one = features.iloc[[3]].reset_index(drop=True)
    np.testing.assert_array_equal(scoring.booster_matrix(one), expected[[3]])
    text = features.astype({name: object for name in plan[1]})  # text columns: mapped, never cached
    np.testing.assert_array_equal(scoring.booster_matrix(text), expected)


def test_the_plan_follows_a_changed_model(served_model):
    config, scoring, data = served_model
    model = pickle.loads(pickle.dumps(scoring))
    plan = model._booster_plan()
    model.model = pickle.loads(pickle.dumps(model.model))  # a new model object (a reload, a refit)
    assert model._booster_plan() is not plan
    kept = model._booster_plan()
    name = next(iter(kept[1]))
    model.categories = {**model.categories, name: list(reversed(model.categories[name]))}
    changed = model._booster_plan()
    assert changed is not kept
    assert changed[1][name].tolist() == model._make_booster_plan()[1][name].tolist()
    assert changed[1][name].tolist() != kept[1][name].tolist()


def test_explaining_the_booster_matrix_equals_explaining_the_frame(served_model):
    config, scoring, data = served_model
    leads = contract.validate_leads(data.leads.copy(), source="test").reset_index(drop=True)
    features = ProfileCache(scoring.builder).features(leads)
    for j, name in enumerate(scoring.feature_names):
        if name not in features.columns:
            rng = np.random.default_rng(j)
            features[name] = np.where(rng.random(len(leads)) < 0.2, np.nan, rng.poisson(3, len(leads)).astype(float))
    info = scoring.builder.feature_info_
    framed = explain_margin(scoring.model, features, info)
    matrix = scoring.booster_matrix(features)
    given = explain_margin(scoring.model, features, info, matrix=matrix)
    np.testing.assert_array_equal(given.values, framed.values)
    np.testing.assert_array_equal(given.column_values, framed.column_values)
    np.testing.assert_array_equal(given.margin, framed.margin)
    assert given.base_value == framed.base_value
    one = explain_margin(scoring.model, features.iloc[[5]], info, matrix=matrix[[5]])
    np.testing.assert_array_equal(one.values, framed.values[[5]])


def _out_of_range_column_by_column(reference, features, first=()):
    """out_of_range as it was written: one column at a time, through pd.to_numeric."""
    flagged = pd.Series("", index=features.index, dtype=object)
    columns = reference.get("columns", {})
    order = [c for c in first if c in features.columns] + [c for c in features.columns if c not in first]
    open_rows = np.ones(len(features), dtype=bool)
    for name in order:
        span = columns.get(name, {}).get("range")
        if not span or name == "probability":
            continue
        values = pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            outside = open_rows & ((values < span[0]) | (values > span[1]))
        if outside.any():
            flagged.iloc[np.flatnonzero(outside)] = name
            open_rows &= ~outside
    return flagged


def test_out_of_range_at_once_equals_column_by_column():
    rng = np.random.default_rng(7)
    n = 300
    train = pd.DataFrame({
        "age": rng.uniform(0, 30, n), "visits": rng.poisson(4, n).astype(float), "count": rng.integers(0, 9, n),
        "flag": rng.random(n) < 0.5, "small": rng.uniform(-1, 1, n).astype("float32"),
        "level": pd.Categorical(rng.choice(["a", "b"], n)),
    })  # fmt: skip
    reference = make_reference(train, rng.random(n))
    reference["columns"]["text"] = {"kind": "numeric", "range": [1.0, 1.5]}  # text read as numbers
    scored = pd.DataFrame({
        "count": rng.integers(-2, 12, n), "visits": np.where(rng.random(n) < 0.2, np.nan, rng.poisson(5, n) * 1.0),
        "age": rng.uniform(-5, 40, n), "flag": rng.random(n) < 0.5, "small": rng.uniform(-2, 2, n).astype("float32"),
        "level": pd.Categorical(rng.choice(["a", "c"], n)), "text": rng.choice(["1", "2", "x", None], n),
        "nullable": pd.array(rng.integers(0, 5, n), dtype="Int64"),
    }, index=pd.RangeIndex(10, 10 + n))  # fmt: skip
    reference["columns"]["nullable"] = {"kind": "numeric", "range": [1.0, 3.0]}
    scored.loc[scored.index[:5], "nullable"] = pd.NA
    for first in ((), ("age",), ("visits", "missing", "age")):
        got = out_of_range(reference, scored, first=first)
        expected = _out_of_range_column_by_column(reference, scored, first=first)
        pd.testing.assert_series_equal(got, expected)
        assert (got != "").sum() > 0
    for k in (0, 3, 17, 299):  # one lead, as a served request reads it
        one = scored.iloc[[k]]
        pd.testing.assert_series_equal(out_of_range(reference, one), _out_of_range_column_by_column(reference, one))
    pd.testing.assert_series_equal(out_of_range(reference, scored.iloc[:0]), _out_of_range_column_by_column(
        reference, scored.iloc[:0]))  # fmt: skip
    assert out_of_range(None, scored).eq("").all()
