"""``events_of`` (engineer C, issue 19): the events of some leads, as the cast-then-``is_in`` it replaces picks
them, on dictionary and plain id columns with nulls, unknown and repeated ids, and an empty chunk."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leadml.features.chunk import events_of


def _events() -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(4)
    names = pa.array([f"L{i:05d}" for i in range(50)] + [None], pa.string())
    dictionary = pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 51, 400), pa.int32()), names)
    with_null = pa.DictionaryArray.from_arrays(pa.array([3, None, 50, 7, 3], pa.int32()), names)
    plain = pa.array([f"L{i:05d}" for i in rng.integers(0, 60, 300)] + [None], pa.string())
    ids = pa.chunked_array([dictionary, with_null, dictionary.slice(0, 0)])
    table = pa.table({"lead_id": ids, "n": pa.array(np.arange(len(ids)))})
    other = pa.table({"lead_id": pa.chunked_array([plain, plain.slice(0, 0)]), "n": pa.array(np.arange(len(plain)))})
    return table, other


def test_events_of_picks_the_rows_the_cast_and_is_in_pick():
    wanted = pa.array(["L00003", "L00007", "L00049", "L00055", "nobody"], pa.string())
    for table in _events():
        old = table.filter(pc.is_in(table.column("lead_id").cast(pa.string()), value_set=wanted))
        mask = events_of(table, wanted)
        assert mask.null_count == 0 and len(mask) == table.num_rows
        picked = table.filter(mask)
        assert picked.num_rows > 0
        assert picked.equals(old)
