"""The one-lead shortcuts of the chunk step give what the general pandas steps give, bit for bit.

:func:`~leadml.features.chunk.chunk_features` builds its feature frame once from its blocks
(no concat), the snapshots from arrays (``_from_arrays``, ``_simple_new``), the served profile
columns from kept arrays (:meth:`~leadml.serve.chunks.ProfileCache.arrays`). Each is held here to
the general route (concat, the frame constructor, ``tz_localize``, ``profile_features``) on
simulated and hand-made data, for one lead, a few, and all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import FeatureConfig
from leadml.data import contract
from leadml.features import chunk, snapshots
from leadml.features.behaviour import matrix
from leadml.features.chunk import chunk_features, profile_arrays, profile_features
from leadml.features.snapshots import arrays_frame, to_utc, utc_array
from leadml.features.timeline.engine import window_ns
from leadml.jobs.inputs import frame_inputs
from leadml.serve.chunks import ProfileCache
from tests.features.simulated_builder import simulated_with_builder

AS_OF = "2026-03-01"


@pytest.fixture(scope="module")
def simulated():
    """(data with outcomes, a fitted builder, as_of) of 600 simulated leads."""
    return simulated_with_builder("chunk_blocks", 600, 11, AS_OF)


def assert_identical(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal values (the same bits), dtypes, categories in order, index and column labels."""
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_index_type=True, check_column_type=True)
    for name in expected.columns:
        want, have = expected[name], got[name]
        if isinstance(want.dtype, pd.CategoricalDtype):
            assert list(have.cat.categories) == list(want.cat.categories), name
            np.testing.assert_array_equal(have.cat.codes.to_numpy(), want.cat.codes.to_numpy())
        elif want.dtype.kind in "fiub":
            assert have.to_numpy().tobytes() == want.to_numpy().tobytes(), name


def chunks_of(data, builder, stamp, chunk_leads: int):
    features = builder.features or FeatureConfig()
    inputs = frame_inputs(data.leads, data.events, data.outcomes, stamp, features=features, chunk_leads=chunk_leads)
    return list(inputs.chunks(prefetch=False))


@pytest.mark.parametrize("chunk_leads", [1, 7, 600])
def test_the_frame_from_blocks_equals_the_concat(simulated, monkeypatch, chunk_leads):
    data, builder, stamp = simulated
    parts = chunks_of(data, builder, stamp, chunk_leads)
    parts = parts[:: max(1, len(parts) // 40)]  # forty chunks, spread over the leads
    made = [chunk_features(builder, c.leads, c.events, c.outcomes, stamp) for c in parts]
    monkeypatch.setattr(chunk, "_from_blocks", None)  # the concat of a profile frame and the behaviour frame
    for part, (taken, features) in zip(parts, made):
        again = chunk_features(builder, part.leads, part.events, part.outcomes, stamp)
        assert_identical(taken, again[0])
        assert_identical(features, again[1])
        assert list(features.columns) == builder.feature_names_
    assert sum(len(s) for s, _ in made) > 0


def test_the_frame_from_blocks_is_a_frame_of_its_own(simulated):
    data, builder, stamp = simulated
    part = next(
        c
        for c in chunks_of(data, builder, stamp, 5)
        if len(chunk_features(builder, c.leads, c.events, c.outcomes, stamp)[0])
    )
    cache = ProfileCache(builder)
    first = chunk_features(builder, part.leads, part.events, part.outcomes, stamp, profile_of=cache.arrays)[1]
    kept = first.copy(deep=True)
    first.iloc[:, :] = first.iloc[::-1].to_numpy()  # written in place: nothing kept may change
    again = chunk_features(builder, part.leads, part.events, part.outcomes, stamp, profile_of=cache.arrays)[1]
    assert_identical(again, kept)


@pytest.mark.parametrize("size", [1, 3, 600])
def test_cached_profile_arrays_equal_the_encoder(simulated, size):
    data, builder, stamp = simulated
    leads = contract.validate_leads(data.leads.copy(), source="test").reset_index(drop=True)
    cache = ProfileCache(builder)
    expected = profile_features(builder, leads)
    for start in range(0, min(len(leads), 60 if size < 600 else 600), size):
        rows = leads.iloc[start : start + size].reset_index(drop=True)
        for _ in range(2):  # computed, then from the cache
            got = cache.arrays(rows)
            assert list(got) == list(profile_arrays(builder, rows))
            framed = pd.DataFrame(got, index=rows.index)
            assert_identical(framed, expected.iloc[start : start + size].reset_index(drop=True))
            assert_identical(cache.features(rows), framed)


def test_profile_features_equal_the_frame_of_their_arrays(simulated):
    data, builder, _ = simulated
    leads = contract.validate_leads(data.leads.head(50).copy(), source="test").reset_index(drop=True)
    arrays = profile_arrays(builder, leads)
    assert list(arrays) == list(builder.encoder_.feature_names_out_)
    assert_identical(profile_features(builder, leads), pd.DataFrame(arrays, index=leads.index))


@pytest.mark.parametrize("n", [0, 1, 2, 1000])
def test_utc_array_equals_tz_localize(monkeypatch, n):
    for value in (to_utc(AS_OF).value, 0, -86_400 * 10**9 + 1):
        expected = pd.array(np.full(n, value, dtype=np.int64).view("datetime64[ns]")).tz_localize("UTC")
        got = utc_array(value, n)
        assert got.dtype == expected.dtype and str(got.dtype.tz) == str(expected.dtype.tz)
        assert got.asi8.tobytes() == expected.asi8.tobytes()
        pd.testing.assert_extension_array_equal(got, expected)
        got[:] = pd.Timestamp("2020-01-01", tz="UTC")  # an array of its own: the next is made afresh
        assert (utc_array(value, n).asi8 == value).all()
    monkeypatch.setattr(snapshots, "_simple_new", None)
    pd.testing.assert_extension_array_equal(utc_array(5, n), pd.array(np.full(n, 5).view("M8[ns]")).tz_localize("UTC"))


@pytest.mark.parametrize("n", [0, 1, 5])
def test_arrays_frame_equals_the_frame_constructor(monkeypatch, n):
    def columns() -> dict:
        ids = pd.array([f"L{i}" for i in range(n)], dtype="str")
        return {"lead_id": ids, "as_of": utc_array(7, n), "x": np.arange(n, dtype=np.float32)}

    index = pd.RangeIndex(n)
    expected = pd.DataFrame(columns(), index=index, copy=False)
    got = arrays_frame(columns(), index)
    assert_identical(got, expected)
    got["lead_id"] = "changed"  # labels of its own: the next frame keeps its names
    assert list(arrays_frame(columns(), index).columns) == ["lead_id", "as_of", "x"]
    monkeypatch.setattr(snapshots, "_from_arrays", None)
    assert_identical(snapshots.arrays_frame(columns(), index), expected)


def test_kept_window_widths_equal_window_ns():
    for days in (7, 7.0, 30, 0.5, 1.25, 90, np.float64(30.0), 365):
        assert matrix._window_ns(days) == window_ns(days)
        assert type(matrix._window_ns(days)) is int
