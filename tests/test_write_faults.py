"""Writes that fail for real (disk full, read-only folder, a folder where the file goes, a damaged history day).

Each failure is one line naming the path (an :class:`OutputError`, a :class:`LeadmlError`), leaves
no temporary file, keeps the previous output byte for byte, and never half-writes the history. The
full disk and the read-only folder are real mounts (tmpfs, remounted read-only): the tests need
root and skip, saying why, where mounting is not allowed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from leadml.cli.app import main
from leadml.core.errors import LeadmlError, OutputError
from leadml.data.contract import LeadDataWarning
from leadml.data.io import TEMP_PREFIX, atomic_output, write_table, write_text
from leadml.jobs.history import load_history, record_scores
from leadml.jobs.output import ScoresWriter, unnamed_output

FULL = "no space left on the device"
READ_ONLY = "the folder is read-only"
A_FOLDER = "it is a folder, not a file"


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount ({' '.join(args)}): {done.stderr.strip() or done.returncode}")


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "64k", read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` on ``folder``; the block's setup runs first, then, with ``read_only``, the remount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (full disk, read-only folder) needs root; this test runs as a user")
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount_read_only(folder: Path) -> None:
    _mount("-o", "remount,ro", str(folder))


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(f"{TEMP_PREFIX}*"))


def big_scores(rows: int = 100_000) -> pd.DataFrame:
    """More than 64 KiB in any format (random floats do not compress)."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"lead_id": [f"L{i}" for i in range(rows)], "probability": rng.random(rows)})


def run(day: str, rows: int = 3) -> pd.DataFrame:
    """One day's scores for the history."""
    return pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(rows)], "as_of": pd.Timestamp(day, tz="UTC"),
        "probability": np.linspace(0.1, 0.9, rows), "score": np.arange(rows, dtype=np.int16) * 10,
        "tier": "nurture", "is_mql": False,
    })  # fmt: skip


# -- disk full ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["scores.csv", "scores.parquet"])
def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_previous_output(tmp_path, name):
    with small_disk(tmp_path / "disk") as disk:
        target = disk / name
        write_table(pd.DataFrame({"lead_id": ["L1"], "probability": [0.5]}), target)
        before = target.read_bytes()
        with pytest.raises(OutputError) as raised:
            write_table(big_scores(), target)
        assert str(raised.value) == f"{target}: cannot be written: {FULL}"
        assert isinstance(raised.value.__cause__, OSError) and raised.value.__cause__.errno == 28
        assert target.read_bytes() == before
        assert temp_files(disk) == []


def test_a_full_disk_under_write_text_and_the_streamed_scores_writer(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        page = disk / "report.html"
        write_text("<p>previous</p>", page)
        with pytest.raises(OutputError, match=rf"^{page}: cannot be written: {FULL}$"):
            write_text("x" * 200_000, page)
        assert page.read_text() == "<p>previous</p>"

        for name in ("streamed.parquet", "streamed.csv"):
            out = disk / name
            out.write_bytes(b"previous")
            table = pa.Table.from_pandas(big_scores(20_000), preserve_index=False)
            with pytest.raises(OutputError) as raised, unnamed_output(out) as sink:
                writer = ScoresWriter(sink, out, table.schema)
                try:
                    for _ in range(5):
                        writer.write(table)
                finally:
                    writer.close()
            assert str(raised.value) == f"{out}: cannot be written: {FULL}"
            assert out.read_bytes() == b"previous"
        assert temp_files(disk) == []


def test_a_full_disk_never_half_writes_the_history(tmp_path):
    with small_disk(tmp_path / "disk", size="256k") as disk:
        store = disk / "history"
        record_scores(run("2026-06-01"), store)
        day = record_scores(run("2026-06-02"), store)
        before = day.read_bytes()
        (disk / "filler").write_bytes(os.urandom(256 * 1024 - 16 * 1024))  # leave less than a day's file
        big = run("2026-06-02", rows=20_000)
        with pytest.raises(OutputError, match=rf"^{day}: cannot be written: {FULL}$"):
            record_scores(big, store)
        with pytest.raises(OutputError, match=f"as_of_date=2026-06-03/scores.parquet: cannot be written: {FULL}$"):
            record_scores(run("2026-06-03", rows=20_000), store)
        assert day.read_bytes() == before
        assert temp_files(disk) == []
        assert sorted(p.name for p in store.iterdir()) == ["as_of_date=2026-06-01", "as_of_date=2026-06-02"]
        assert load_history(store)["as_of"].dt.day.value_counts().to_dict() == {1: 3, 2: 3}


# -- read-only folder ----------------------------------------------------------------------------


def test_a_read_only_folder_is_one_line_naming_the_file(tmp_path):
    with small_disk(tmp_path / "disk", size="1m") as disk:
        table_out, text_out, streamed = disk / "scores.csv", disk / "card.html", disk / "streamed.parquet"
        write_table(pd.DataFrame({"lead_id": ["L1"]}), table_out)
        write_text("card", text_out)
        streamed.write_bytes(b"previous")
        store = disk / "history"
        day = record_scores(run("2026-06-01"), store)
        before = {path: path.read_bytes() for path in (table_out, text_out, streamed, day)}
        remount_read_only(disk)

        with pytest.raises(OutputError, match=rf"^{table_out}: cannot be written: {READ_ONLY}$"):
            write_table(big_scores(10), table_out)
        with pytest.raises(OutputError, match=rf"^{text_out}: cannot be written: {READ_ONLY}$"):
            write_text("new card", text_out)
        with (
            pytest.raises(OutputError, match=rf"^{streamed}: cannot be written: {READ_ONLY}$"),
            unnamed_output(streamed) as sink,
        ):
            Path(sink).write_bytes(b"new")
        with pytest.raises(OutputError, match=rf"^{day}: cannot be written: {READ_ONLY}$"):
            record_scores(run("2026-06-01"), store)
        new_day = store / "as_of_date=2026-06-02" / "scores.parquet"
        with pytest.raises(OutputError, match=rf"^{new_day}: cannot be written: {READ_ONLY}$"):
            record_scores(run("2026-06-02"), store)

        assert {path: path.read_bytes() for path in before} == before
        assert temp_files(disk) == []
        assert len(load_history(store)) == 3


# -- an output that is a folder ------------------------------------------------------------------


def test_an_output_that_is_a_folder_is_refused_before_anything_is_written(tmp_path):
    folder = tmp_path / "scores.parquet"
    (folder / "part-0.parquet").parent.mkdir()
    (folder / "part-0.parquet").write_bytes(b"kept")
    message = rf"^{folder}: cannot be written: {A_FOLDER}$"
    with pytest.raises(OutputError, match=message):
        write_table(big_scores(10), folder)
    with pytest.raises(OutputError, match=message):
        write_text("x", folder)
    with pytest.raises(OutputError, match=message), atomic_output(folder):
        pytest.fail("the block must not run")
    with pytest.raises(OutputError, match=message), unnamed_output(folder):
        pytest.fail("the block must not run")
    assert temp_files(tmp_path) == []
    assert sorted(os.listdir(folder)) == ["part-0.parquet"]
    assert (folder / "part-0.parquet").read_bytes() == b"kept"
    assert isinstance(OutputError("x"), LeadmlError) and isinstance(OutputError("x"), OSError)


def test_score_refuses_a_folder_before_loading_the_model(tmp_path, capsys):
    """The folder is named, not the missing model: the check comes before any work."""
    folder = tmp_path / "scores.csv"
    folder.mkdir()
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"name: p\nmlflow: {{tracking_uri: 'sqlite:///{tmp_path / 'none.db'}'}}\n")
    argv = ["score", str(pipeline), "--as-of", "2026-06-01", "--out", str(folder), "--model", "models:/nope/1"]
    assert main(argv) == 1
    assert capsys.readouterr().err == f"error: {folder}: cannot be written: {A_FOLDER}\n"
    assert not (tmp_path / "none.db").exists()  # no MLflow store was opened


def test_an_output_under_a_file_names_the_output(tmp_path):
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" / "scores.csv"
    with pytest.raises(OutputError, match=rf"^{out}: cannot be written: a part of its folder path is a file"):
        write_table(big_scores(10), out)
    assert (tmp_path / "a_file").read_text() == "x"


# -- a damaged history day -----------------------------------------------------------------------


def three_days(store: Path) -> Path:
    """Three days of history; the middle day's file cut in half (a truncated copy, a full disk)."""
    for day in ("2026-06-01", "2026-06-02", "2026-06-03"):
        record_scores(run(day), store)
    damaged = store / "as_of_date=2026-06-02" / "scores.parquet"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    return damaged


def damaged_message(damaged: Path) -> str:
    return (
        f"{damaged}: the score history of 2026-06-02 is left out: the file is damaged (truncated or not Parquet); "
        "score that day again to replace it"
    )


def test_a_truncated_history_day_is_left_out_with_a_warning_and_the_other_days_load(tmp_path):
    store = tmp_path / "history"
    damaged = three_days(store)
    with pytest.warns(LeadDataWarning) as caught:
        history = load_history(store)
    assert [str(w.message) for w in caught] == [damaged_message(damaged)]
    assert caught[0].message.kind == "damaged_history"
    assert sorted(history["as_of"].dt.strftime("%Y-%m-%d").unique()) == ["2026-06-01", "2026-06-03"]
    assert len(history) == 6
    with pytest.warns(LeadDataWarning):
        assert load_history(store, lead_ids=["L1"])["score"].tolist() == [10, 10]

    record_scores(run("2026-06-02"), store)  # scoring the day again replaces the damaged file
    assert len(load_history(store)) == 9


def test_a_history_with_no_readable_day_is_refused_naming_the_files(tmp_path):
    store = tmp_path / "history"
    day = record_scores(run("2026-06-01"), store)
    day.write_bytes(b"PAR1")
    with pytest.warns(LeadDataWarning), pytest.raises(LeadmlError) as raised:
        load_history(store)
    assert str(raised.value) == (f"{store}: no day of the score history can be read (damaged: {day}); score again")


def test_leadml_history_prints_the_damaged_day_as_one_line(tmp_path, pipelines_dir, capsys):
    store = tmp_path / "history"
    damaged = three_days(store)
    code = main(["history", str(pipelines_dir / "demo.yaml"), "--store", str(store), "--as-of", "2026-06-03"])
    err = capsys.readouterr().err
    assert code == 0, err
    # one warning; rich wraps it at the width of the (captured, 80 columns) stderr, so compare without blanks
    assert err.count("warning:") == 1
    assert "".join(f"warning: {damaged_message(damaged)}".split()) in "".join(err.split())
    assert "Traceback" not in err
