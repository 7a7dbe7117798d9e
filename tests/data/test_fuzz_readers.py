"""Fuzzing the CSV readers: any file reads as a frame or is one LeadDataError; leadml's own CSV reads back.

`read_table` sniffs separators (``,`` ``;`` tab ``|``), drops a byte order mark, reads latin-1 and
cp1252 when told and refuses duplicate headers. Hypothesis writes arbitrary bytes and CSV text
(random separators, encodings, quoting, newlines in cells, cells a spreadsheet would run as
formulas) and every reader must return a frame or raise leadml's own error, never another
exception. Frames written by :func:`write_table` (with the formula guard) and read by
:func:`read_output` give back the very values. Examples are derandomized: CI sees the same ones.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leadml.core.errors import LeadDataError, LeadmlError
from leadml.data.contract import LeadDataWarning, load_events, load_leads
from leadml.data.io import CSV_SEPARATORS, read_output, read_table, write_table

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252")

# text as exports hold it: formula starts, quotes, every separator, line breaks, accents, a BOM
pieces = st.sampled_from(
    ["=", "+", "-", "@", "'", '"', ",", ";", "\t", "|", "\n", "\r", "\r\n", " ", "é", "€", "ü", "\ufeff", "1", "-2.5",
     "L", "NA", "=HYPERLINK(\"x\")", "@SUM(A1)", "+1e3", "2026-01-01"]
)  # fmt: skip
cells = st.one_of(st.lists(pieces, max_size=4).map("".join), st.text(max_size=6))
raw_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from([b",", b";", b"\t", b"|", b'"', b"\n", b"\r", b"\xef\xbb\xbf", b"\xe9", b"\x80",
                              b"\xff\xfe", b"\x00", b"a", b"lead_id", b"created_at", b"2026-01-01", b"1"]),
             max_size=40).map(b"".join),
)  # fmt: skip


def read_or_refuse(read, one_line: bool = True):
    """The frame ``read`` returns, or None when it raises leadml's own error; any other exception fails.

    The readers' errors are one line; the contract's may quote a column name that holds a line break.
    """
    try:
        frame = read()
    except LeadmlError as exc:
        assert str(exc) and (not one_line or "\n" not in str(exc)), "an error is one line"
        return None
    assert isinstance(frame, pd.DataFrame)
    return frame


def read_all(path: Path, separator: str | None, encoding: str | None) -> None:
    """Every reader of a CSV file, as told (separator, encoding) and as sniffed."""
    read_or_refuse(lambda: read_table(path))
    read_or_refuse(lambda: read_table(path, separator=separator, encoding=encoding, text_columns=["lead_id"]))
    read_or_refuse(lambda: read_output(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeadDataWarning)  # early events and the like: counted, not the point here
        read_or_refuse(lambda: load_leads(path, separator=separator, encoding=encoding), one_line=False)
        read_or_refuse(lambda: load_events(path, encoding=encoding), one_line=False)


@FUZZ
@given(data=raw_bytes, separator=st.sampled_from([None, *CSV_SEPARATORS]), encoding=st.sampled_from([None, *ENCODINGS]))
def test_any_bytes_read_as_a_frame_or_a_lead_data_error(tmp_path, data, separator, encoding):
    path = tmp_path / "table.csv"
    path.write_bytes(data)
    read_all(path, separator, encoding)


@st.composite
def csv_files(draw) -> tuple[bytes, str, str]:
    """CSV bytes as some export writes them, with the separator and encoding used.

    The header is the contract's names or any cells; quoting is any of the csv module's (with a
    backslash to escape under ``QUOTE_NONE``); characters the encoding lacks become ``?``.
    """
    separator = draw(st.sampled_from(CSV_SEPARATORS))
    encoding = draw(st.sampled_from(ENCODINGS))
    width = draw(st.integers(1, 4))
    named = ["lead_id", "created_at", "note", "score"][:width]
    header = named if draw(st.booleans()) else draw(st.lists(cells, min_size=width, max_size=width))
    rows = draw(st.lists(st.lists(cells, min_size=width, max_size=width), max_size=6))
    dialect = {
        "delimiter": separator,
        "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC, csv.QUOTE_NONE])),
        "escapechar": "\\",
        "lineterminator": draw(st.sampled_from(["\n", "\r\n"])),
    }
    text = io.StringIO(newline="")
    try:
        csv.writer(text, **dialect).writerows([header, *rows])
    except csv.Error:  # QUOTE_NONNUMERIC cannot write every cell: minimal quoting then
        text = io.StringIO(newline="")
        csv.writer(text, delimiter=separator).writerows([header, *rows])
    return text.getvalue().encode(encoding, errors="replace"), separator, encoding


@FUZZ
@given(file=csv_files(), told=st.booleans())
def test_csv_text_reads_as_a_frame_or_a_lead_data_error(tmp_path, file, told):
    data, separator, encoding = file
    path = tmp_path / "table.csv"
    path.write_bytes(data)
    read_all(path, separator if told else None, encoding if told else None)


@st.composite
def output_frames(draw) -> pd.DataFrame:
    """A scores-like frame: text ids (never empty), reasons (some missing), a category, numbers."""
    n = draw(st.integers(0, 6))
    return pd.DataFrame(
        {
            "lead_id": draw(st.lists(cells.filter(bool), min_size=n, max_size=n)),
            "reason_1": draw(st.lists(st.none() | cells, min_size=n, max_size=n)),
            "tier": pd.Categorical(draw(st.lists(cells.filter(bool), min_size=n, max_size=n))),
            "score": draw(st.lists(st.integers(-(10**6), 10**6), min_size=n, max_size=n)),
            "probability": draw(st.lists(st.floats(allow_nan=False, width=64), min_size=n, max_size=n)),
        }
    )


def scores(**columns) -> pd.DataFrame:
    n = len(columns["lead_id"])
    return pd.DataFrame({"reason_1": [None] * n, "tier": pd.Categorical(["A"] * n), "score": [1] * n,
                         "probability": [0.5] * n, **columns})  # fmt: skip


def missing_as_none(values: pd.Series) -> list:
    return [None if pd.isna(value) else value for value in values]


@settings(FUZZ, max_examples=150)
@given(frame=output_frames())
@example(frame=scores(lead_id=["NA", "null", "None", "nan", "#N/A"]))  # pandas' missing spellings, as ids
@example(frame=scores(lead_id=["\rL6", "L\r7"], reason_1=["a\rb", "=1+1"]))  # a bare CR used to split the row
def test_what_leadml_writes_it_reads_back_the_same(tmp_path, frame):
    path = tmp_path / "scores.csv"
    write_table(frame, path)
    back = read_output(path, text_columns=["lead_id", "reason_1", "tier"])
    assert back["lead_id"].tolist() == frame["lead_id"].tolist()
    assert back["tier"].tolist() == frame["tier"].astype(str).tolist()
    assert missing_as_none(back["reason_1"]) == missing_as_none(frame["reason_1"].replace("", None))
    assert back["score"].tolist() == frame["score"].tolist()
    np.testing.assert_array_equal(back["probability"].to_numpy(dtype=float), frame["probability"].to_numpy())


def test_a_parser_error_is_one_line_naming_the_file_and_separator(tmp_path):
    path = tmp_path / "table.csv"
    path.write_bytes(b"\x00\n\x00\n,")
    with pytest.raises(LeadDataError) as caught:
        read_table(path)
    assert str(caught.value) == (
        f"{path}: cannot be read as csv (separator ','): Error tokenizing data. C error: Expected 1 fields in line 3, "
        "saw 2"
    )


def test_a_carriage_return_in_a_cell_ends_the_lines_with_crlf_and_only_then(tmp_path):
    write_table(scores(lead_id=["L1"], reason_1=["a\rb"]), tmp_path / "cr.csv")
    write_table(scores(lead_id=["L1"], reason_1=["ab"]), tmp_path / "plain.csv")
    assert (tmp_path / "cr.csv").read_bytes().count(b"\r\n") == 2 and b'"a\rb"' in (tmp_path / "cr.csv").read_bytes()
    assert b"\r" not in (tmp_path / "plain.csv").read_bytes()
