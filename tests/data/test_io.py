"""Reading tables (CSV as CRM exports write them: separators, encodings, headers) and writing outputs atomically."""

from __future__ import annotations

import os
import re
import stat

import numpy as np
import pandas as pd
import pytest

from leadml.core.errors import LeadDataError
from leadml.data import io as table_io
from leadml.data.io import (
    TEMP_PREFIX,
    atomic_output,
    first_undecodable,
    read_table,
    sniff_separator,
    table_format,
    write_table,
    write_text,
)


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


# ---------------------------------------------------------------- CSV as CRM exports write them


def test_semicolon_latin1_export_with_accents_and_a_quoted_newline(tmp_path):
    path = tmp_path / "contacts.csv"
    text = (
        "Record ID;Company;Notes;Create Date\n"
        '0042;Société Générale;"called twice;\nwill call back";2024-03-05 14:22\n'
        '0043;"Müller, Lefèvre & Fils";;2024-03-06 09:00\n'
    )
    path.write_bytes(text.encode("latin-1"))
    table = read_table(path, encoding="latin-1", text_columns=["Record ID"])
    assert list(table.columns) == ["Record ID", "Company", "Notes", "Create Date"]
    assert table["Record ID"].tolist() == ["0042", "0043"]
    assert table["Company"].tolist() == ["Société Générale", "Müller, Lefèvre & Fils"]
    assert table["Notes"].iloc[0] == "called twice;\nwill call back"
    assert len(table) == 2


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "ISO-8859-1", "windows-1252"])
def test_latin1_spellings_of_the_encoding(encoding, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_bytes("lead_id;city\n1;Besançon\n".encode("latin-1"))
    assert read_table(path, encoding=encoding)["city"].tolist() == ["Besançon"]


@pytest.mark.parametrize(("separator", "name"), [("\t", "tab"), ("|", "pipe"), (";", "semicolon"), (",", "comma")])
def test_separator_is_sniffed(separator, name, tmp_path):
    path = tmp_path / f"{name}.csv"
    rows = [["lead_id", "company", "note"], ["1", "Acme", "a, b; c | d"], ["2", "Initech", "plain"]]
    path.write_text("\n".join(separator.join(f'"{v}"' if "," in v else v for v in row) for row in rows) + "\n")
    table = read_table(path)
    assert list(table.columns) == ["lead_id", "company", "note"]
    assert table["note"].tolist() == ["a, b; c | d", "plain"]


def test_a_given_separator_wins_over_sniffing(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("a,b;c\n1,2;3\n")
    assert list(read_table(path)) == ["a", "b;c"]
    assert list(read_table(path, separator=";")) == ["a,b", "c"]
    assert list(read_table(path, sep=";")) == ["a,b", "c"]  # pandas' spelling, as before
    assert list(read_table(tmp_path / "odd.csv", separator="tab")) == ["a,b;c"]


def test_separator_must_be_one_character(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a;b\n1;2\n")
    with pytest.raises(LeadDataError, match=re.escape(f"{path}: separator ';;' is not one character; use ','")):
        read_table(path, separator=";;")
    with pytest.raises(ValueError, match="two separators given"):
        read_table(path, separator=";", sep=",")


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("id;amount;city\n1;1,5;Lyon\n2;2,25;Nice\n", ";"),  # decimal commas do not split the header
        ("id,amount\n1,3\n", ","),
        ("id\tname\n1\tA, B\n", "\t"),
        ("id|name|x\n1|A;B|2\n", "|"),
        ('"a;b",c\n"1;2",3\n', ","),  # a quoted ';' does not count
        ('a;b\n1;"two\nlines"\n2;x\n', ";"),  # nor a quoted newline
        ("lead_id\nL1\nL2\n", ","),  # one column: nothing to split
        ("", ","),
        ("a,b;c;d\n1,2;3;4\n", ";"),  # both consistent: the one giving more columns
        ("a,b;c\n1,2;3\n", ","),  # a tie: the first of , ; tab |
        ("a;b;c,d\n1;2;3\n4;5;6\n", ";"),  # ',' splits the header but not the rows
    ],
)
def test_sniff_separator(sample, expected):
    assert sniff_separator(sample) == expected


def test_sniffing_ignores_a_cut_off_last_record():
    # the sample stops inside a quoted field: its last record is partial and not counted
    assert sniff_separator('a;b\n1;2\n3;"x,y,z,w', complete=False) == ";"


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefflead_id,city\n1,Zürich\n".encode())
    table = read_table(path)
    assert list(table.columns) == ["lead_id", "city"] and table["city"].tolist() == ["Zürich"]
    assert list(read_table(path, encoding="utf-8").columns) == ["lead_id", "city"]


def test_not_utf8_without_encoding_names_the_byte_and_the_key(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_bytes("lead_id;company\n1;Acme\n2;Société\n".encode("latin-1"))
    message = (
        f"{path}: byte 0xe9 at offset 29 (line 3) is not valid UTF-8 text; the file is probably Latin-1 "
        "or Windows-1252: set `encoding: latin-1` (or `encoding: cp1252`) for this table"
    )
    with pytest.raises(LeadDataError, match=f"^{re.escape(message)}$"):
        read_table(path)


def test_a_bad_byte_past_the_sniffed_head_is_found_too(tmp_path, monkeypatch):
    monkeypatch.setattr(table_io, "SNIFF_BYTES", 16)
    monkeypatch.setattr(table_io, "_SCAN_BYTES", 7)  # chunks that cut 'é' (2 bytes in UTF-8) in half
    path = tmp_path / "long.csv"
    head = "lead_id,city\n1,Orléans\n2,Besançon\n".encode()
    path.write_bytes(head + "3,Bâle\n".encode("latin-1"))
    with pytest.raises(LeadDataError, match=re.escape(f"byte 0xe2 at offset {len(head) + 3} (line 4)")):
        read_table(path)


def test_first_undecodable(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("ok\né\n".encode() + b"x\xff\n")
    assert first_undecodable(path, "utf-8") == (7, 0xFF, 3)
    assert first_undecodable(path, "latin-1") is None
    path.write_bytes("é".encode()[:1])  # cut at the end of the file
    assert first_undecodable(path, "utf-8") == (0, 0xC3, 1)


def test_cp1252_undefined_byte_names_cp1252(tmp_path):
    path = tmp_path / "w.csv"
    path.write_bytes(b"a,b\n1,\x81\n")
    with pytest.raises(LeadDataError, match=re.escape("byte 0x81 at offset 6 (line 2) is not valid cp1252 text")):
        read_table(path, encoding="cp1252")


def test_unknown_encoding(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(LeadDataError, match=re.escape(f"{path}: unknown encoding 'latin-9000'; use utf-8")):
        read_table(path, encoding="latin-9000")


def test_duplicate_header_names_are_refused_with_their_positions(tmp_path):
    path = tmp_path / "deals.csv"
    path.write_text("Deal ID;Owner;Amount;Owner;Close Date;Amount;Owner;;\n1;a;2;b;2024-01-01;3;c;;\n")
    message = (
        f"{path}: the header names 2 column(s) more than once: 'Owner' (columns 2, 4, 7); "
        "'Amount' (columns 3, 6); rename them so that each column has its own name"
    )
    with pytest.raises(LeadDataError, match=f"^{re.escape(message)}$"):
        read_table(path)


def test_blank_header_names_are_not_duplicates(tmp_path):
    path = tmp_path / "trailing.csv"
    path.write_text("a;b;;\n1;2;;\n")
    assert list(read_table(path))[:2] == ["a", "b"]


def test_parquet_ignores_the_csv_options(scores, tmp_path):
    path = write_table(scores, tmp_path / "s.parquet")
    back = read_table(path, separator=";", encoding="latin-1")
    pd.testing.assert_frame_equal(back, scores)


def test_the_examples_in_the_docstrings_run():
    import doctest

    import leadml.data.columns
    import leadml.data.contract

    for module in (table_io, leadml.data.columns, leadml.data.contract):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_a_ragged_file_names_the_separator_used(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a;b\n1;2\n3;4;5\n")
    with pytest.raises(
        LeadDataError, match=re.escape(f"{path}: cannot be read as csv (separator ';'): Error tokenizing")
    ):
        read_table(path)
