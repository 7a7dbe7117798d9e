"""Timestamps as CRMs export them: ISO 8601, ``2024-03-05 14:22``, epoch milliseconds, a stated format.

Day/month spellings (``07/01/2025``) are refused with the key to set, never guessed.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from leadml.core.errors import LeadDataError
from leadml.data.contract import load_leads
from leadml.data.timestamps import day_month_format, day_month_readings, parse_timestamps

UTC = "datetime64[ns, UTC]"
ISO = ["2024-03-05T14:22:00Z", "2023-01-02T08:00:00.123Z", "2026-12-31T23:59:59Z"]
MILLIS = [1709648520000, 1672646400123, 1798761599000]


def parse(values, **kwargs) -> pd.Series:
    frame = pd.DataFrame({"lead_id": [f"L{i + 1}" for i in range(len(values))], "t": values})
    return parse_timestamps(frame, "t", "x.csv", **kwargs)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_epoch_milliseconds_equal_the_iso_instants():
    expected = parse(ISO)
    assert expected.tolist()[0] == pd.Timestamp("2024-03-05 14:22", tz="UTC")
    pd.testing.assert_series_equal(parse(MILLIS), expected)  # integers
    pd.testing.assert_series_equal(parse([str(m) for m in MILLIS]), expected)  # text
    pd.testing.assert_series_equal(parse([float(m) for m in MILLIS]), expected)  # floats (a column with gaps)
    pd.testing.assert_series_equal(parse([MILLIS[0], ISO[1], str(MILLIS[2])]), expected)  # mixed in one column
    assert str(parse(MILLIS).dtype) == UTC


def test_epoch_milliseconds_from_a_csv_file(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("lead_id,created_at\n" + "".join(f"L{i},{m}\n" for i, m in enumerate(MILLIS)))
    assert load_leads(path)["created_at"].tolist() == [pd.Timestamp(t) for t in ISO]


def test_the_accepted_epoch_range_is_12_or_13_digits():
    assert parse([10**11])[0] == pd.Timestamp("1973-03-03 09:46:40", tz="UTC")
    assert parse([9_999_999_999_999 // 2])[0] == pd.Timestamp("2128-06-11 08:53:19.999", tz="UTC")
    for number in (99_999_999_999, 10**13, 1767225600, -1709648520000):  # 11 and 14 digits, seconds, negative
        with pytest.raises(LeadDataError, match="holds numbers, not dates"):
            parse([number])
    with pytest.raises(LeadDataError, match="has 1 timestamps outside 1677-2262"):
        parse([9_999_999_999_999])  # 13 digits but after 2262-04-11


def test_epoch_seconds_are_refused_with_the_key_to_set():
    message = (
        "x.csv: column 't' holds numbers, not dates (2 numeric values that are not epoch milliseconds of 12 or "
        "13 digits; first rows: row 1 (lead_id='L1', t=1709648520); row 2 (lead_id='L2', t=1709648521)); "
        "set timestamp_format: epoch_s (seconds) or epoch_ms for this table, or use ISO 8601, "
        "e.g. 2026-03-01T12:00:00Z"
    )
    with pytest.raises(LeadDataError, match=exactly(message)):
        parse([1709648520, 1709648521])


@pytest.mark.parametrize(
    ("timestamp_format", "values"),
    [
        ("epoch_ms", MILLIS),
        ("%d/%m/%Y %H:%M:%S.%f", ["05/03/2024 14:22:00.000", "02/01/2023 08:00:00.123", "31/12/2026 23:59:59.000"]),
        ("%Y-%m-%dT%H:%M:%S.%f%z", ["2024-03-05T16:22:00.000+0200", ISO[1], "2026-12-31T18:59:59.000-0500"]),
    ],
)
def test_a_stated_format_reads_the_same_instants(timestamp_format, values):
    pd.testing.assert_series_equal(parse(values, timestamp_format=timestamp_format), parse(ISO))


def test_epoch_seconds_with_the_stated_format():
    parsed = parse([1709648520, 1672646400.5, "1798761599", "  1798761599 "], timestamp_format="epoch_s")
    assert parsed.tolist() == [
        pd.Timestamp(t, tz="UTC")
        for t in ("2024-03-05 14:22", "2023-01-02 08:00:00.5", "2026-12-31 23:59:59", "2026-12-31 23:59:59")
    ]
    with pytest.raises(LeadDataError, match=re.escape("has 1 missing or unparseable timestamps (first rows: row 1")):
        parse(["2024-03-05"], timestamp_format="epoch_s")


def test_space_separator_without_seconds():
    assert (
        parse(["2024-03-05 14:22", "2024-03-05 14:22:00"]).tolist() == [pd.Timestamp("2024-03-05 14:22", tz="UTC")] * 2
    )


@pytest.mark.parametrize("value", ["07/01/2025", "1/2/2026", "07.01.2025 14:22", "07-01-25"])
def test_day_month_spellings_are_refused(value):
    with pytest.raises(LeadDataError, match="dates spelled day/month .* leadml does not guess; set timestamp_format"):
        parse(["2025-01-01", value])


def test_day_month_message_says_why_and_the_key():
    message = (
        "x.csv: column 't' has 2 dates spelled day/month (first rows: row 1 (lead_id='L1', t='07/01/2025'); "
        "row 2 (lead_id='L2', t='1/2/2026')); '07/01/2025' reads as 2025-01-07 (day first) or 2025-07-01 "
        "(month first): the order of day and month is not written and leadml does not guess; set timestamp_format: "
        '"%d/%m/%Y" (day first) or "%m/%d/%Y" (month first) for this table, or use ISO 8601, e.g. '
        "2026-03-01T12:00:00Z"
    )
    with pytest.raises(LeadDataError, match=exactly(message)):
        parse(["07/01/2025", "1/2/2026", "2025-01-07"])


def test_day_month_among_other_bad_values_is_explained_too():
    with pytest.raises(
        LeadDataError,
        match=re.escape("has 2 missing or unparseable timestamps")
        + ".*"
        + re.escape("1 of them spell the date day/month: '25.12.2025 08:00' reads as 2025-12-25 (day first): ")
        + ".*"
        + re.escape('set timestamp_format: "%d.%m.%Y %H:%M" (day first) or "%m.%d.%Y %H:%M" (month first)'),
    ):
        parse(["not a date", "25.12.2025 08:00"])


def test_the_day_first_format_reads_them():
    parsed = parse(["07/01/2025", "25/12/2025", "1/2/2026"], timestamp_format="%d/%m/%Y")
    assert parsed.tolist() == [pd.Timestamp(t, tz="UTC") for t in ("2025-01-07", "2025-12-25", "2026-02-01")]


def test_values_that_do_not_match_the_stated_format():
    message = (
        "x.csv: column 't' has 1 missing or unparseable timestamps (first rows: row 2 (lead_id='L2', "
        "t='2025-01-07')); timestamp_format is '%d/%m/%Y': every value must match it"
    )
    with pytest.raises(LeadDataError, match=exactly(message)):
        parse(["07/01/2025", "2025-01-07"], timestamp_format="%d/%m/%Y")


def test_a_stated_format_reads_numbers_written_without_separators():
    assert parse([20250107, 20251225], timestamp_format="%Y%m%d").tolist() == [
        pd.Timestamp("2025-01-07", tz="UTC"),
        pd.Timestamp("2025-12-25", tz="UTC"),
    ]


def test_an_unknown_format_word_is_refused():
    with pytest.raises(LeadDataError, match=re.escape("timestamp_format 'dd/mm/yyyy' is neither a strftime format")):
        parse(["2025-01-07"], timestamp_format="dd/mm/yyyy")


def test_rows_limits_the_parsing():
    parsed = parse(["2025-01-07", None, "garbage"], rows=np.array([True, False, False]))
    assert parsed.iloc[0] == pd.Timestamp("2025-01-07", tz="UTC") and parsed.iloc[1:].isna().all()
    with pytest.raises(LeadDataError, match=re.escape("has 1 missing timestamps (first rows: row 2 (lead_id='L2'")):
        parse(["2025-01-07", None, "garbage"], rows=np.array([True, True, False]))


def test_day_month_readings_and_formats():
    assert day_month_readings("07/01/2025") == ["2025-01-07 (day first)", "2025-07-01 (month first)"]
    assert day_month_readings("31/01/2025") == ["2025-01-31 (day first)"]
    assert day_month_readings("2025-01-07") is None and day_month_readings("20250107") is None
    assert day_month_format("7-1-25 10:00:00") == "%d-%m-%y %H:%M:%S"
    assert day_month_format("07/01/2025", day_first=False) == "%m/%d/%Y"
