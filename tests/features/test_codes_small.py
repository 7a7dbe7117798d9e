"""The shortcuts of the Arrow coding for a few rows (a served lead) equal the general path.

``categorical`` reads a one-chunk column whose dictionary is sorted and distinct as it is; the same
column split in two chunks takes the union-and-recode path. ``code_leads`` matches up to
``FEW_IDS`` text ids in Python; with ``FEW_IDS = 0`` it takes the Arrow path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from leadml.features.timeline import codes
from leadml.features.timeline.codes import categorical, code_leads


def _split(column: pa.ChunkedArray) -> pa.ChunkedArray:
    chunk = column.chunk(0)
    return pa.chunked_array([chunk.slice(0, len(chunk) // 2), chunk.slice(len(chunk) // 2)], column.type)


def _assert_same(one: pd.Categorical, general: pd.Categorical) -> None:
    assert one.dtype == general.dtype
    assert list(one.categories) == list(general.categories)
    assert one.codes.dtype == general.codes.dtype
    assert np.array_equal(one.codes, general.codes)


@pytest.mark.parametrize("value_type", [pa.string(), pa.large_string()])
def test_a_sorted_dictionary_is_read_as_it_is(value_type):
    rng = np.random.default_rng(4)
    for n_values in (1, 2, 5, 126, 127, 300):
        words = sorted({f"w{int(k):05d}" for k in rng.integers(0, 10**5, n_values)} | {"Zeta", "zéro", "ä", "a b"})
        for rows in (0, 1, 7, 400):
            indices = rng.integers(0, len(words), rows)
            mask = rng.random(rows) < 0.2
            width = pa.int8() if len(words) < 127 else pa.int16()
            array = pa.DictionaryArray.from_arrays(pa.array(indices, width, mask=mask), pa.array(words, value_type))
            column = pa.chunked_array([array])
            assert codes._read_as_is(column) is not None
            _assert_same(categorical(column), categorical(_split(column)))
            assert (categorical(column).codes == -1).sum() == mask.sum()


def test_other_dictionaries_take_the_general_path():
    cases = [
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 0], pa.int8()), pa.array(["b", "a"])),  # unsorted
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 1], pa.int8()), pa.array(["a", "a"])),  # repeated
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 2], pa.int8()), pa.array(["a", None, "b"])),  # null value
    ]
    for array in cases:
        column = pa.chunked_array([array], array.type)
        assert codes._read_as_is(column) is None
    many = [f"v{k:05d}" for k in range(codes.AS_IS_VALUES + 1)]
    big = pa.chunked_array([pa.DictionaryArray.from_arrays(pa.array([0, 5, 7], pa.int16()), pa.array(many))])
    assert codes._read_as_is(big) is None
    assert list(categorical(big).categories[categorical(big).codes]) == ["v00000", "v00005", "v00007"]
    plain = pa.chunked_array([pa.array(["b", None, "a"])])
    assert codes._read_as_is(plain) is None
    assert list(categorical(plain).codes) == [1, -1, 0]


def _ids(rng, n: int, long: bool) -> list[str | None]:
    stem = "lead-0000-" if long else "L"
    return [f"{stem}{int(k)}" for k in rng.integers(0, 40, n)]


@pytest.mark.parametrize("long", [False, True], ids=["short-keys", "hashed"])
def test_few_ids_are_coded_as_the_arrow_path_codes_them(monkeypatch, long):
    rng = np.random.default_rng(9)
    cases = []
    for n_snapshots, n_events in ((1, 0), (1, 1), (1, 12), (3, 40), (60, 150)):
        snapshots = _ids(rng, n_snapshots, long)
        events = _ids(rng, n_events, long)
        if n_events > 2:
            events[1] = None  # a missing id codes as no snapshot
            events[2] = "unknown lead"
        for kind in (pa.string(), pa.large_string()):
            cases.append((pa.chunked_array([pa.array(snapshots, kind)]), pa.chunked_array([pa.array(events, kind)])))
        dictionary = pa.chunked_array([pa.array(events).dictionary_encode()]) if events else None
        if dictionary is not None:
            cases.append((pa.chunked_array([pa.array(snapshots)]), dictionary))
    few = [code_leads(s, e) for s, e in cases]
    monkeypatch.setattr(codes, "FEW_IDS", 0)
    for (snapshot_codes, event_codes, n_leads), (s, e) in zip(few, cases, strict=True):
        expected = code_leads(s, e)
        assert n_leads == expected[2]
        assert snapshot_codes.dtype == expected[0].dtype and np.array_equal(snapshot_codes, expected[0])
        assert event_codes.dtype == expected[1].dtype and np.array_equal(event_codes, expected[1])


def test_ids_that_are_not_text_or_missing_take_the_arrow_path():
    numbers = pa.chunked_array([pa.array([3, 1, 3])])
    assert codes._code_few(numbers, pa.chunked_array([pa.array(["1"])])) is None
    missing = pa.chunked_array([pa.array(["a", None])])
    assert codes._code_few(missing, pa.chunked_array([pa.array(["a"])])) is None
    many = pa.chunked_array([pa.array([f"L{k}" for k in range(codes.FEW_IDS + 1)])])
    assert codes._code_few(many, pa.chunked_array([pa.array([], pa.string())])) is None
    snapshot_codes, event_codes, n_leads = code_leads(numbers, pa.chunked_array([pa.array(["1", "3", "2"])]))
    assert list(snapshot_codes) == [0, 1, 0] and list(event_codes) == [1, 0, -1] and n_leads == 2
