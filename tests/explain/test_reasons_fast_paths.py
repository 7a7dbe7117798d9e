"""The cheap paths of the reasons step give what the general ones give, bit for bit.

A served lead is explained alone, so ``reason_table`` and ``explain_margin`` skip per-call pandas
overhead: JSON numbers written in Python for a few leads (Arrow's cast for many), columns read off
the frame's blocks, the output frame built from its arrays, and what depends only on the model and
its features kept between calls. These tests hold each against the general path, on hand-made
edge cases and on simulated values of every kind a feature frame holds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadml.explain import sentences
from leadml.explain.sentences import reason_table
from leadml.features.behaviour.text import days_since_info
from leadml.features.metadata import FeatureInfo
from leadml.modeling.contributions import (
    Contributions,
    _same_base,
    explain_margin,
    feature_groups,
    probability_map,
)

EDGES = [0.0, -0.0, 1e-4, -1e-4, 0.00015, 0.1 + 0.2, 1.0, -1.0, 2.5, 45000.0, 123456.789, 9999999999.999998, 1e10,
         12345678901.0, 999999999999999.9, 1e15, -1e15, 1e16, 1e21, 1e-5, 1e-7, 5e-324, 1.7976931348623157e308,
         np.inf, -np.inf]  # fmt: skip


def _simulated_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Numbers of every magnitude a feature or a contribution may have, rounded as the JSON rounds them or not."""
    scale = 10.0 ** rng.integers(-8, 18, n)
    raw = rng.normal(0, 1, n) * scale
    decimals = rng.integers(0, 6, n)
    return np.where(decimals < 3, np.round(raw, 4), np.where(decimals < 5, np.round(raw, 2), raw))


def _both_ways(values: np.ndarray, contributions: np.ndarray, points: np.ndarray) -> tuple[list[str], list[str]]:
    general = sentences._json_numbers(values, contributions, points).to_pylist()
    return sentences._json_number_texts(values, contributions, points), general


@pytest.mark.filterwarnings("ignore:overflow encountered")  # rounding the largest double, as the batch does
def test_json_numbers_written_in_python_are_arrows_on_edge_values():
    """Each edge value alone (plain ones in Python, the others through Arrow) and all of them at once."""
    for x in EDGES:
        for values, said in ((np.array([x]), np.array([0.5])), (np.array([0.5]), np.array([x]))):
            small, general = _both_ways(values, said, said)
            assert small == general, x
    values = np.array(EDGES + [np.nan])
    small, general = _both_ways(values, np.zeros(len(values)), np.zeros(len(values)))
    assert small == general and small[len(EDGES)] == "null"


def test_json_numbers_in_the_plain_range_never_call_arrow(monkeypatch):
    """Plain numbers (and missing values) take the Python path, and it writes what Arrow writes."""
    rng = np.random.default_rng(5)
    values = np.round(rng.normal(0, 1, 2000) * 10.0 ** rng.integers(-3, 9, 2000), 4)
    values[rng.random(2000) < 0.1] = np.nan
    said, points = np.round(rng.normal(0, 2, 2000), 4), np.round(rng.normal(0, 20, 2000), 2)
    general = sentences._json_numbers(values, said, points).to_pylist()

    def no_arrow(*args):
        raise AssertionError("plain numbers went to Arrow")

    monkeypatch.setattr(sentences, "_json_numbers", no_arrow)
    assert sentences._json_number_texts(values, said, points) == general
    assert "null" in general and "0" in general


def test_json_numbers_written_in_python_are_arrows_on_simulated_values():
    """Half a million simulated numbers of every magnitude, in small batches as a few leads give them."""
    rng = np.random.default_rng(7)
    numbers = _simulated_numbers(rng, 3 * 200_000).reshape(3, -1)
    numbers[0, rng.random(numbers.shape[1]) < 0.05] = np.nan  # missing values
    expected = sentences._json_numbers(*numbers).to_pylist()
    assert sentences._json_number_texts(*numbers) == expected  # at least one number out of range: Arrow
    for start in range(0, 20_000, 5):
        chunk = numbers[:, start : start + 5]
        small, general = _both_ways(*chunk)
        assert small == general, chunk


def _mixed_frame(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, list[FeatureInfo]]:
    """A feature frame with a column of each kind a frame may hold (missing values in each)."""
    missing = rng.random(n) < 0.2
    ints = pd.array(rng.integers(0, 5, n), dtype="Int64")
    ints[missing] = pd.NA
    floats = pd.array(np.round(rng.normal(0, 3, n), 3), dtype="Float64")
    floats[rng.random(n) < 0.2] = pd.NA
    words = np.array(["vp", "staff_member", "missing", None], dtype=object)[rng.integers(0, 4, n)]
    levels = ["email", "paid_search", "other", "missing"]
    frame = pd.DataFrame({
        "visits": rng.poisson(2, n).astype(np.float32),
        "revenue": np.where(missing, np.nan, rng.choice([1e16, 2.5e15, 45000.0, 0.00012], n)),
        "seats": ints,
        "score": floats,
        "active": rng.random(n) < 0.5,
        "title": pd.Series(words, dtype=object).to_numpy(),
        "country": pd.array(np.where(missing, None, rng.choice(["France", "united_states"], n)), dtype="str"),
        "source": pd.Categorical(np.array(levels + [None], dtype=object)[rng.integers(0, 5, n)], categories=levels),
        "demo_request__days_since_last": np.where(missing, np.nan, rng.exponential(20, n)),
    }, index=pd.Index(rng.permutation(n) * 3 + 7))  # fmt: skip
    info = [FeatureInfo(name, "profile", name, template=f"{name}: {{value}}") for name in frame.columns[:-1]]
    return frame, [*info, days_since_info("demo_request")]


def _contributions(frame: pd.DataFrame, rng: np.random.Generator) -> Contributions:
    values = np.round(rng.normal(0, 0.6, (len(frame), frame.shape[1])), 3)
    values[rng.random(values.shape) < 0.1] = 0.0  # ties and reasons below min_effect
    margin = -0.5 + values.sum(axis=1)
    to_probability = probability_map(None)
    names = list(frame.columns)
    return Contributions(
        values=values, features=names, base_value=-0.5, margin=margin, probability=to_probability(margin),
        index=frame.index, kind="logistic", columns=names, column_values=values,
        column_group=np.arange(len(names)), to_probability=to_probability,
    )  # fmt: skip


def test_each_lead_of_a_frame_of_every_kind_alone_gets_its_row_of_the_whole(monkeypatch):
    """Columns of every kind (nullable numbers, booleans, objects, text, categoricals, numbers beyond
    the plain range): each lead alone (Python join, Python numbers) equals its row of the whole
    table through Arrow, which equals the whole table through Python."""
    rng = np.random.default_rng(17)
    frame, info = _mixed_frame(150, rng)
    contributions = _contributions(frame, rng)
    bar = np.clip(contributions.probability + rng.normal(0, 0.05, len(frame)), 0.01, 0.99)
    monkeypatch.setattr(sentences, "SMALL_TABLE", 0)
    whole = reason_table(contributions, frame, info, threshold=bar)
    monkeypatch.setattr(sentences, "SMALL_TABLE", len(frame))
    pd.testing.assert_frame_equal(reason_table(contributions, frame, info, threshold=bar), whole, check_exact=True)
    for position in range(len(frame)):
        alone = reason_table(contributions.take([position]), frame.iloc[[position]], info, threshold=bar[[position]])
        pd.testing.assert_frame_equal(alone, whole.iloc[[position]], check_exact=True)
    said = [entry for text in whole["reasons"] for entry in json.loads(text)]
    assert {entry["feature"] for entry in said} == set(frame.columns)
    assert any(entry["value"] is None for entry in said) and 1e16 in [entry["value"] for entry in said]


def test_a_column_off_the_blocks_is_the_column_by_name():
    """Every kind of column read off the frame's blocks has the values and dtype of ``frame[name]``."""
    frame, _ = _mixed_frame(30, np.random.default_rng(2))
    frame["when"] = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    frame["naive"] = pd.date_range("2024-01-01", periods=30, freq="h")
    frame["count"] = np.arange(30)
    for name in frame.columns:
        read = sentences._column(frame, name)
        assert read.dtype == frame[name].dtype and np.ndim(read) == 1, name
        pd.testing.assert_series_equal(pd.Series(read, index=frame.index, name=name), frame[name], check_exact=True)


def test_the_table_frame_is_the_frame_of_its_columns():
    """The reason table's frame, built from its arrays, equals pandas' constructor on the same columns."""
    text = pd.array(["a (raises)", "", '[{"feature": "x"}]', "MQL: 34 %"] * 2, dtype="str")
    data = {"reason_1": text[0:2], "counter_reason_1": text[2:4], "reasons": text[4:6], "why": text[6:8]}
    for index in (pd.RangeIndex(2), pd.Index(["b", "a"]), pd.Index([7, 3], name="lead")):
        built = sentences._text_frame(data, index)
        pd.testing.assert_frame_equal(built, pd.DataFrame(data, index=index), check_exact=True)
        built.columns.name = "renamed"  # the labels are the frame's own
        assert sentences._text_frame(data, index).columns.name is None


def test_category_texts_belong_to_their_dtype_object():
    """Equal unordered dtypes may list their categories otherwise: each keeps its own texts."""
    first = pd.CategoricalDtype(["b", "a", "missing"])
    second = pd.CategoricalDtype(["a", "missing", "b"])
    assert first == second
    assert sentences._category_texts(first) == ["b", "a", "missing"]
    assert sentences._category_texts(second) == ["a", "missing", "b"]
    numbers = pd.CategoricalDtype([3, 1, 2])
    assert sentences._category_texts(numbers) == [str(numbers.categories[u]) for u in range(3)]


def test_feature_groups_kept_between_calls_follow_the_feature_set():
    """The grouping kept per model is recomputed for other infos, and callers cannot change it."""
    columns = ["budget", "budget__missing", "visits"]
    joined = [FeatureInfo("budget", "profile", "budget"), FeatureInfo("budget__missing", "profile", "budget")]
    apart = [FeatureInfo("budget", "profile", "budget"), FeatureInfo("budget__missing", "profile", "flag")]
    names, group = feature_groups(columns, joined)
    assert (names, group.tolist()) == (["budget", "visits"], [0, 0, 1])
    names.append("changed")
    group[:] = 9
    assert feature_groups(columns, joined)[0] == ["budget", "visits"]
    assert feature_groups(columns, joined)[1].tolist() == [0, 0, 1]
    names, group = feature_groups(columns, apart)
    assert (names, group.tolist()) == (["budget", "budget__missing", "visits"], [0, 1, 2])


@pytest.mark.parametrize(
    "column, base",
    [([0.5, 0.5], 0.5), ([0.5, 0.5 + 1e-12], 0.5), ([0.5, 0.5 + 3e-12], 0.5), ([np.inf, np.inf], np.inf),
     ([np.inf, 1.0], np.inf), ([np.nan], np.nan), ([0.5, np.nan], 0.5), ([-np.inf], np.inf), ([], 0.0)],
)  # fmt: skip
def test_the_base_value_check_is_allclose(column, base):
    values = np.array(column, dtype=float)
    assert _same_base(values, base) == np.allclose(values, base, rtol=0, atol=1e-12)


def test_explain_margin_twice_gives_the_same_contributions(trained, trainset, test_rows):
    """The grouping kept between calls changes nothing: a second call (cached) equals the first."""
    for name in ("lightgbm", "logistic"):
        model = trained.models[name]
        first = explain_margin(model, test_rows, trainset.feature_info, background=test_rows)
        again = explain_margin(model, test_rows, trainset.feature_info, background=test_rows)
        assert first.features == again.features and first.columns == again.columns
        np.testing.assert_array_equal(first.values, again.values)
        np.testing.assert_array_equal(first.column_group, again.column_group)
        assert first.column_group.flags.writeable
