"""The pyfunc's shorter roads give the general roads' bits: text mapped by a dict, the booster matrix
built in a thread's kept memory."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_train import config, make_trainset

from leadml.modeling.lightgbm.compiled import MIN_ROWS
from leadml.modeling.registry import scoring_model
from leadml.modeling.scoring_model import _mapped_codes, _text_codes
from leadml.modeling.train import train_models

TEXT = st.sampled_from(["a", "b", "c", "zz", "", "missing", "other", "nan", "None"])


@pytest.fixture(scope="module")
def lightgbm():
    """A calibrated LightGBM packed for scoring, and its features repeated past the compiled trees' threshold."""
    trainset, points, _ = make_trainset(4000, seed=5)
    result = train_models(config(), trainset, points, n_boot=20)
    scoring = scoring_model(result, trainset, config().mql.tiers)
    scoring.model = result.models["lightgbm"]
    assert scoring._booster_plan() is not None
    features = trainset.frame[result.feature_names]
    repeats = -(-MIN_ROWS // len(features)) + 1
    many = pd.concat([features] * repeats, ignore_index=True)
    return scoring, many.astype({name: "str" for name in scoring.categories})  # as a feature file gives them


@settings(max_examples=200, deadline=None)
@given(
    distinct=st.lists(TEXT, unique=True, max_size=9),
    levels=st.lists(TEXT, unique=True, max_size=6),
)
def test_text_by_a_dict_gets_the_codes_of_the_series_mapping(distinct, levels):
    """Any distinct text and any levels (with or without ``other`` / ``missing``): the same codes, same dtype."""
    index = pd.Index(levels, dtype=object)
    by_dict = _text_codes(np.asarray(distinct, dtype=object), index)
    by_series = _mapped_codes(pd.Series([*distinct, None], dtype=object), index)
    assert by_dict is not None
    assert by_dict.dtype == by_series.dtype
    assert by_dict.tolist() == by_series.tolist()


def test_values_other_than_text_and_repeated_levels_take_the_series_mapping():
    index = pd.Index(["1", "other", "missing"], dtype=object)
    assert _text_codes(np.asarray(["1", 1], dtype=object), index) is None
    assert _text_codes(np.asarray(["1"], dtype=object), pd.Index(["1", "1"], dtype=object)) is None


def test_score_in_kept_memory_gives_the_fresh_matrix_bits(lightgbm):
    """Frames of falling and rising size, each after the kept memory was filled with junk: the
    probabilities of a fresh matrix, bit for bit, and the memory is reused, not remade."""
    scoring, features = lightgbm
    plan = scoring._booster_plan()
    cache = scoring.__dict__["_plan_cache"]
    sizes = [len(features), MIN_ROWS, 500, 3, len(features) - 7]
    for size in sizes:
        frame = features.iloc[len(features) - size :]  # another slice each time: no entry stays right by chance
        kept = cache.scratch(size, len(plan[0]))
        kept[:] = np.nan if size % 2 else 1e300
        expected = scoring.model.predict_proba(scoring.prepare(frame))[:, 1]
        assert np.array_equal(scoring.probability(frame), expected), size
        scores = scoring.score(frame)
        assert np.array_equal(scores["probability"].to_numpy(), expected), size
        assert scores.index.equals(frame.index)
    memory = cache._scratch.memory
    assert len(memory) == len(features) * len(plan[0])  # the largest frame's, kept for the next
    assert cache.scratch(MIN_ROWS, len(plan[0])).base is memory


def test_each_thread_has_its_own_kept_memory_and_large_matrices_are_not_kept(lightgbm, monkeypatch):
    scoring, features = lightgbm
    plan = scoring._booster_plan()
    cache = scoring.__dict__["_plan_cache"]
    here = cache.scratch(10, len(plan[0]))
    there: list[np.ndarray | None] = []
    worker = threading.Thread(target=lambda: there.append(cache.scratch(10, len(plan[0]))))
    worker.start()
    worker.join()
    assert there[0] is not None and here is not None
    assert not np.shares_memory(here, there[0])
    assert here.flags.f_contiguous and here.shape == (10, len(plan[0])) and here.dtype == np.float64
    monkeypatch.setattr("leadml.modeling.scoring_model.SCRATCH_BYTES", 8 * len(plan[0]) * 10)
    assert cache.scratch(11, len(plan[0])) is None
    frame = features.iloc[:50]
    expected = scoring.model.predict_proba(scoring.prepare(frame))[:, 1]
    assert np.array_equal(scoring.score(frame)["probability"].to_numpy(), expected)
