"""The group tables' padded terms and categorical words (engineer C, issue 19): the walk's bits either way.

The kernel reads a categorical split with few codes off a 64-bit word and any other off its look-up,
and adds every mask's terms padded with +0.0 to the tree's longest list. Both must give the walk's
bits on every kind of value, on a model with many categories (past the word) as on the simulated one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.modeling import subscore_tables
from leadml.modeling.lightgbm.effects import compile_booster, lightgbm_matrix, tree_group_margin
from leadml.modeling.subscore_tables import group_margin, group_tables

lightgbm = pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def many_categories():
    """A LightGBM model on a category of 90 levels (codes past a word's 63), numbers with NaN, and its matrix
    with odd rows: missing, negative, fractional and unknown codes, zeros and +-1e-36 (a category code is
    finite or missing: the walk cannot index a huge one)."""
    rng = np.random.default_rng(5)
    n = 6000
    level = rng.integers(0, 90, n)
    frame = pd.DataFrame({
        "level": pd.Categorical(level, categories=range(90)),
        "x": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "z": np.where(rng.random(n) < 0.3, 0.0, rng.normal(size=n)),
    })  # fmt: skip
    y = ((level % 7 < 3) ^ (frame["x"].fillna(0) > 0.3) ^ (rng.random(n) < 0.1)).astype(int)
    booster = lightgbm.train({"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 5, "max_cat_threshold": 64,
                              "cat_smooth": 1, "min_data_per_group": 5, "verbose": -1, "seed": 0},
                             lightgbm.Dataset(frame, y, categorical_feature=["level"]), num_boost_round=40)  # fmt: skip
    compiled = compile_booster(booster, booster.num_trees())
    X = lightgbm_matrix(compiled, frame)
    odd = np.array([[v, w, u] for v in (np.nan, -0.5, -1.0, 0.0, 0.5, 62.0, 63.0, 63.9, 64.0, 89.0, 90.0, 1e6)
                    for w in (np.nan, 0.0, 1e-36, 0.3) for u in (np.nan, 0.0, -1e-36, 1.0)], np.float64)  # fmt: skip
    return compiled, np.vstack([X, odd])


def _longest_lookup(tables) -> int:
    return int(np.diff(tables.cat_offsets).max()) if len(tables.cat_offsets) > 1 else 0


@pytest.mark.parametrize("word_codes", [63, 0])
def test_words_and_look_ups_give_the_walk_s_bits(many_categories, monkeypatch, word_codes):
    compiled, rows = many_categories
    monkeypatch.setattr(subscore_tables, "MIN_ROWS", 0)
    monkeypatch.setattr(subscore_tables, "WORD_CODES", word_codes)
    for columns in ([0], [1, 2], [0, 2], [0, 1, 2]):
        tables = group_tables(compiled, columns)
        assert tables is not None
        if 0 in columns:
            assert _longest_lookup(tables) > 63, "a look-up past the word's codes should be tested"
            assert (tables.cat_words != 0).any() == (word_codes > 0)
        np.testing.assert_array_equal(group_margin(tables, rows), tree_group_margin(compiled, rows, columns))


def test_padded_terms_hold_each_mask_s_list_then_zeros(many_categories):
    compiled, _ = many_categories
    tables = group_tables(compiled, [0, 1])
    assert tables is not None
    known = np.diff(tables.tree_splits)
    sizes = tables.widths * (1 << known)
    np.testing.assert_array_equal(tables.term_offsets, np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    assert len(tables.terms) == sizes.sum()


def test_tables_past_max_terms_are_left_to_the_walk(many_categories, monkeypatch):
    compiled, rows = many_categories
    monkeypatch.setattr(subscore_tables, "MAX_TERMS", 4)
    assert group_tables(compiled, [0, 1, 2]) is None
