"""The scores' columns read off their numbers and masks are the arrays pandas' own conversion gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from leadml.jobs.output import arrow_column

UTC = pa.timestamp("ns", tz="UTC")
CASES = [
    (
        pd.Series(
            pd.to_datetime(["2026-03-01 10:00:00.000000001", None, "1970-01-01 00:00:00"], utc=True, format="ISO8601")
        ),
        UTC,
    ),
    (pd.Series(pd.to_datetime(["2026-03-01", "2026-03-02"], utc=True).as_unit("us")), UTC),  # another unit
    (pd.Series(pd.to_datetime(["2026-03-01"]).tz_localize("Europe/Paris")), UTC),  # another zone
    (pd.Series(pd.array([3, None, -7, 100], dtype="Int16")), pa.int16()),
    (pd.Series(pd.array([None, None], dtype="Int16")), pa.int16()),
    (pd.Series(pd.array([5, 6], dtype="Int64")), pa.int16()),
    (pd.Series(np.array([True, False, True])), pa.bool_()),
    (pd.Series([True, None, False], dtype=object), pa.bool_()),
    (pd.Series(["a", None, "c"], dtype="str"), pa.string()),
    (pd.Series([None, None], dtype=object), pa.string()),
    (pd.Series(np.array([1, 2], dtype=np.int16)), pa.int16()),
    (pd.Series([], dtype="Int16"), pa.int16()),
    (pd.Series(pd.DatetimeIndex([], tz="UTC")), UTC),
]


@pytest.mark.parametrize(("values", "kind"), CASES)
def test_each_column_equals_pandas_conversion(values, kind):
    ours = arrow_column(values, kind)
    expected = pa.Array.from_pandas(values, type=kind)
    assert ours.type == expected.type
    assert ours.equals(expected), (ours, expected)
    assert ours.null_count == expected.null_count
