"""Reading tables and writing outputs atomically: a failed write leaves nothing behind."""

from __future__ import annotations

import os
import re
import stat

import numpy as np
import pandas as pd
import pytest

from leadml.core.errors import LeadDataError
from leadml.data.io import TEMP_PREFIX, atomic_output, read_table, table_format, write_table, write_text


@pytest.fixture
def scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": ["007", "L2", "L3"],
            "as_of": pd.to_datetime(["2026-03-01", "2026-03-01", "2026-03-02"], utc=True),
            "probability": [0.125, 0.5, np.nan],
            "tier": ["MQL", "nurture", "unqualified"],
        }
    )


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".pq"])
def test_write_table_round_trip(scores, suffix, tmp_path):
    path = write_table(scores, tmp_path / "out" / f"scores{suffix}")
    assert path == tmp_path / "out" / f"scores{suffix}" and path.is_file()
    assert leftovers(path.parent) == []
    back = read_table(path, text_columns=["lead_id"])
    if suffix == ".csv":
        back["as_of"] = pd.to_datetime(back["as_of"], utc=True)
    pd.testing.assert_frame_equal(back, scores, check_dtype=False)
    assert back["lead_id"].tolist() == ["007", "L2", "L3"]


def test_read_table_selects_columns_and_passes_csv_options(tmp_path):
    path = tmp_path / "bank.csv"
    path.write_text('"age";"job";"y"\n58;"admin.";"no"\n44;"unknown";"yes"\n')
    table = read_table(path, columns=["age", "y"], sep=";")
    assert list(table.columns) == ["age", "y"] and table["age"].tolist() == [58, 44]


def test_a_failure_inside_the_block_leaves_nothing(tmp_path):
    target = tmp_path / "scores.parquet"
    with pytest.raises(RuntimeError, match="killed half way"), atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(TEMP_PREFIX)
        tmp.write_bytes(b"half a file")
        raise RuntimeError("killed half way")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failure_keeps_the_previous_target(scores, tmp_path):
    target = write_table(scores, tmp_path / "scores.csv")
    before = target.read_bytes()
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_text("lead_id\nonly a part")
        raise KeyboardInterrupt
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_a_failing_writer_keeps_the_previous_target(scores, tmp_path):
    target = write_table(scores, tmp_path / "scores.parquet")
    before = target.read_bytes()
    unwritable = scores.assign(probability=[object(), object(), object()])
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error type
        write_table(unwritable, target)
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_success_replaces_the_target_and_keeps_its_mode(tmp_path):
    target = write_text("old", tmp_path / "report.html")
    os.chmod(target, 0o640)
    write_text("<p>new</p>", target)
    assert target.read_text(encoding="utf-8") == "<p>new</p>"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_new_files_follow_the_umask_not_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        target = write_text("x", tmp_path / "new.txt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


@pytest.mark.parametrize("name", ["scores.xlsx", "scores", "scores.json"])
def test_unknown_extension_writes_nothing(scores, name, tmp_path):
    suffix = os.path.splitext(name)[1] or "(none)"
    with pytest.raises(LeadDataError, match=re.escape(f"{name}: unknown table format '{suffix}'; use a .csv")):
        write_table(scores, tmp_path / name)
    with pytest.raises(LeadDataError, match="unknown table format"):
        read_table(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_table_format():
    assert table_format("a/b.CSV") == "csv"
    assert table_format("b.parquet") == "parquet" and table_format("b.pq") == "parquet"


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(LeadDataError, match="absent.csv: file not found"):
        read_table(tmp_path / "absent.csv")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(LeadDataError, match="broken.parquet: cannot be read as parquet"):
        read_table(broken)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LeadDataError, match=r"empty.csv: the table is empty \(no header, no rows\)"):
        read_table(empty)
