"""CSV formula guard: text cells Excel would run as formulas get a leading ', and read back as written."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadml.data.io import guard_formulas, read_output, read_table, unguard_formulas, write_table
from leadml.jobs.output import ScoresWriter, guard_text, unnamed_output

IDS = ['=HYPERLINK("http://x")', "+L2", "-L3", "@SUM(A1)", "\tL5", "\rL6", "L7", "'=L8", "-2.5", None]
GUARDED = ['\'=HYPERLINK("http://x")', "'+L2", "'-L3", "'@SUM(A1)", "'\tL5", "'\rL6", "L7", "''=L8", "-2.5", None]


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": IDS,
            "score": [-1, 2, -3, 4, 5, 6, 7, 8, 9, 10],
            "reason_1": pd.Categorical(["=cmd|' /C calc'!A0"] * 5 + ["visited pricing"] * 5),
        }
    )


def test_text_cells_that_start_like_a_formula_get_a_quote_and_numbers_do_not():
    guarded = guard_formulas(frame())
    assert guarded["lead_id"].tolist()[:9] == GUARDED[:9] and pd.isna(guarded["lead_id"].iloc[9])
    assert guarded["score"].tolist() == [-1, 2, -3, 4, 5, 6, 7, 8, 9, 10]
    assert guarded["reason_1"].tolist() == ["'=cmd|' /C calc'!A0"] * 5 + ["visited pricing"] * 5
    assert unguard_formulas(guarded).equals(frame())


def test_write_table_guards_csv_and_read_output_reads_back_the_original(tmp_path):
    # pandas' CSV writer does not quote a bare carriage return (a separate issue): that cell is left out here
    write_table(frame().drop(index=5), tmp_path / "rules.csv")
    raw = pd.read_csv(tmp_path / "rules.csv", dtype={"lead_id": str})
    assert raw["lead_id"].tolist()[:8] == GUARDED[:5] + GUARDED[6:9]
    assert raw["score"].tolist() == [-1, 2, -3, 4, 5, 7, 8, 9, 10]
    assert raw["reason_1"].iloc[0] == "'=cmd|' /C calc'!A0"
    back = read_output(tmp_path / "rules.csv", text_columns=["lead_id"])
    assert back["lead_id"].tolist()[:8] == IDS[:5] + IDS[6:9]
    assert back["reason_1"].tolist() == frame()["reason_1"].drop(index=5).tolist()
    # read as input (read_table), nothing is stripped
    assert read_table(tmp_path / "rules.csv", text_columns=["lead_id"])["lead_id"].iloc[0] == GUARDED[0]


def test_parquet_is_data_and_is_written_as_is(tmp_path):
    write_table(frame(), tmp_path / "rules.parquet")
    assert pd.read_parquet(tmp_path / "rules.parquet")["lead_id"].tolist()[:9] == IDS[:9]


def test_the_streamed_csv_writer_guards_text_columns_only(tmp_path):
    table = pa.table(
        {
            "lead_id": pa.array(IDS, pa.string()),
            "probability": pa.array([-0.5] * 10, pa.float64()),
            "feature_text": pa.array(["-2.0", "3.0", "nan", "-inf"] * 2 + ["1e-05", "-1"], pa.string()),
        }
    )
    for name in ("scores.csv", "scores.parquet"):
        out = tmp_path / name
        with unnamed_output(out) as sink:
            writer = ScoresWriter(sink, out, table.schema)
            writer.write(table)
            writer.close()
    raw = pd.read_csv(tmp_path / "scores.csv", dtype={"lead_id": str}, keep_default_na=False)
    assert raw["lead_id"].tolist()[:9] == GUARDED[:9]
    assert raw["probability"].tolist() == [-0.5] * 10
    assert pd.read_csv(tmp_path / "scores.csv")["feature_text"].dtype == float  # numbers as text stay numbers
    back = read_output(tmp_path / "scores.csv", text_columns=["lead_id"])
    assert back["lead_id"].tolist()[:9] == IDS[:9]
    assert pq.read_table(tmp_path / "scores.parquet").column("lead_id").to_pylist() == IDS


def test_guard_text_leaves_a_column_without_formulas_alone():
    column = pa.chunked_array([["L1", "L2"], [None]])
    assert guard_text(column) is column


def test_a_guarded_scores_csv_enters_the_history_with_its_original_ids(tmp_path):
    from leadml.jobs.history import load_history, record_scores

    scores = pd.DataFrame(
        {
            "lead_id": ["=HYPERLINK(1)", "+L2", "L3"],
            "as_of": pd.to_datetime(["2026-06-01"] * 3, utc=True),
            "probability": [0.9, 0.5, 0.1],
            "score": [90, 50, 10],
            "reason_1": ["-Viewed pricing", "@mention", "plain"],
        }
    )
    write_table(scores, tmp_path / "scores.csv")
    assert pd.read_csv(tmp_path / "scores.csv")["lead_id"].tolist() == ["'=HYPERLINK(1)", "'+L2", "L3"]
    record_scores(tmp_path / "scores.csv", tmp_path / "history")
    history = load_history(tmp_path / "history")
    assert sorted(history["lead_id"]) == sorted(scores["lead_id"])
    assert sorted(history["reason_1"]) == sorted(scores["reason_1"])
