"""``write_table``'s Parquet: dictionaries for the columns that repeat, none for floats, same values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from leadml.data.io import dictionary_columns, write_table


def test_floats_are_written_plain_and_everything_reads_back_equal(tmp_path) -> None:
    frame = pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(1000)],
        "industry": pd.Categorical(np.array(["software", "retail", "missing"])[np.arange(1000) % 3]),
        "visits": np.arange(1000, dtype=np.int64) % 7,
        "count_7d": (np.arange(1000) % 5).astype(np.float32),
        "budget": np.linspace(0.0, 1.0, 1000),
        "as_of": pd.Timestamp("2026-07-01", tz="UTC"),
    })  # fmt: skip
    assert dictionary_columns(frame) == ["lead_id", "industry", "visits", "as_of"]
    path = write_table(frame, tmp_path / "features.parquet")
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "RLE_DICTIONARY" not in encodings["count_7d"] and "RLE_DICTIONARY" not in encodings["budget"]
    assert "RLE_DICTIONARY" in encodings["lead_id"] and "RLE_DICTIONARY" in encodings["visits"]
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame, check_exact=True)
