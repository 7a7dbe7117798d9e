"""Timestamps as exports spell them, read into UTC: ISO 8601, `2024-03-05 14:22`, epoch milliseconds.

Anything else needs ``timestamp_format`` (a strftime format, or ``epoch_ms`` / ``epoch_s``).
Day/month spellings such as ``07/01/2025`` are refused, never guessed: the same text is January 7
in Europe and July 1 in the United States. Naive values are taken as UTC.
"""

from __future__ import annotations

import re
import warnings
from datetime import datetime

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.data.columns import as_text, example_rows, is_blank

ISO_HINT = "use ISO 8601, e.g. 2026-03-01T12:00:00Z"
_NS_MIN = pd.Timestamp.min.tz_localize("UTC")
_NS_MAX = pd.Timestamp.max.tz_localize("UTC")
_CLOCK_WORDS = ["now", "today", "tomorrow", "yesterday"]  # pandas reads these from the clock
EPOCH_UNITS = {"epoch_ms": "ms", "epoch_s": "s"}  # the timestamp_format words
EPOCH_MS_RANGE = (10**11, 10**13 - 1)  # 12 or 13 digits: 1973-03-03 to 2286-11-20 (2262-04-11 in range)
_EPOCH_MS_TEXT = r"\d{12,13}(?:\.0*)?"
_DAY_MONTH = re.compile(
    r"(?P<first>\d{1,2})(?P<sep>[/.\-])(?P<second>\d{1,2})(?P=sep)(?P<year>\d{4}|\d{2})"
    r"(?:[ T](?P<clock>\d{1,2}:\d{2}(?::\d{2})?)?.*)?"
)


def parse_timestamps(
    frame: pd.DataFrame,
    column: str,
    source: str,
    *,
    timestamp_format: str | None = None,
    rows: np.ndarray | None = None,
) -> pd.Series:
    """Parse ``column`` to ``datetime64[ns, UTC]``; naive values are taken as UTC.

    Without ``timestamp_format``: ISO 8601 text with any offset (``Z``, ``+02:00``, mixed offsets,
    date only, a space for the ``T``, no seconds: ``2024-03-05 14:22``) is converted to UTC, and so
    are epoch milliseconds (HubSpot's exports), numbers or text of 12 or 13 digits, which covers
    1973-03-03T09:46:40Z to 2262-04-11 (later ones are outside the timestamp range). Nothing is
    guessed: day/month spellings (``07/01/2025``: 7 January or July 1?), words read from the clock
    (``now``, ``today``), missing values, dates outside 1677-2262 and other numbers (epoch seconds?)
    raise naming the rows. ``timestamp_format`` reads anything else: a strftime format
    (``"%d/%m/%Y %H:%M"``) or ``epoch_ms`` / ``epoch_s`` (numbers since 1970-01-01 UTC of any size).
    ``rows`` (a boolean mask) limits the parsing to the rows that must hold a time; others are NaT.

    Example:
        >>> frame = pd.DataFrame({"t": ["2024-03-05 14:22", 1709648520000, "2024-03-05T16:22+02:00"]})
        >>> parse_timestamps(frame, "t", "x.csv").nunique()
        1
    """
    values = frame[column]
    wanted = np.ones(len(values), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    if timestamp_format is not None and timestamp_format not in EPOCH_UNITS and "%" not in str(timestamp_format):
        raise LeadDataError(
            f"{source}: column '{column}': timestamp_format {timestamp_format!r} is neither a strftime "
            'format (e.g. "%d/%m/%Y %H:%M") nor epoch_ms / epoch_s'
        )
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        if rows is None and parsed.dt.unit == "ns" and not parsed.isna().any():
            return parsed.rename(column)  # typed, complete and in range already: no row-long copies
    elif timestamp_format in EPOCH_UNITS:
        parsed = _from_epoch(pd.to_numeric(values, errors="coerce"), EPOCH_UNITS[timestamp_format])
    elif timestamp_format is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(as_text(values), format=timestamp_format, utc=True, errors="coerce")
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        _check_epoch_ms_numbers(frame, column, source, wanted)
        parsed = _from_epoch(values.where(wanted), "ms")
    else:
        parsed = _parse_text(values)
    parsed = parsed.where(wanted)
    bad = parsed.isna().to_numpy() & wanted
    if bad.any():
        raise LeadDataError(_unparsed_message(frame, column, source, bad, timestamp_format))
    outside = ((parsed < _NS_MIN) | (parsed > _NS_MAX)).to_numpy()
    if outside.any():
        raise LeadDataError(
            f"{source}: column '{column}' has {int(outside.sum())} timestamps outside 1677-2262 "
            f"(first rows: {example_rows(frame, outside, column)}); {ISO_HINT}"
        )
    return parsed.dt.as_unit("ns").rename(column)


def _parse_text(values: pd.Series) -> pd.Series:
    """ISO 8601 text and epoch-millisecond text to UTC; anything else (clock words included) is NaT."""
    text = values.astype(object).where(values.notna(), None)
    spelled = as_text(values)
    clock = spelled.str.lower().isin(_CLOCK_WORDS).to_numpy()
    epoch = spelled.str.fullmatch(_EPOCH_MS_TEXT).to_numpy(dtype=bool)
    with warnings.catch_warnings():  # numbers inside text columns: NaT, reported by the caller
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(text.where(~(clock | epoch), None), utc=True, format="ISO8601", errors="coerce")
    if epoch.any():
        millis = pd.Series(np.nan, index=values.index)
        millis[epoch] = spelled[epoch].astype("float64")
        parsed = parsed.where(~epoch, _from_epoch(millis, "ms"))
    return parsed


def _from_epoch(numbers: pd.Series, unit: str) -> pd.Series:
    """Numbers since 1970-01-01 UTC in ``unit`` to UTC timestamps; NaN and overflow are NaT."""
    finite = numbers.where(np.isfinite(numbers.astype(float)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(finite, unit=unit, utc=True, errors="coerce")


def _check_epoch_ms_numbers(frame: pd.DataFrame, column: str, source: str, wanted: np.ndarray) -> None:
    """Raise on numbers that are not whole epoch milliseconds of 12 or 13 digits (seconds? days?)."""
    numbers = frame[column].astype(float).to_numpy()
    present = ~np.isnan(numbers) & wanted
    in_range = (numbers >= EPOCH_MS_RANGE[0]) & (numbers <= EPOCH_MS_RANGE[1])
    millis = in_range & (np.mod(np.where(in_range, numbers, 0), 1) == 0)
    other = present & ~millis
    if other.any():
        raise LeadDataError(
            f"{source}: column '{column}' holds numbers, not dates ({int(other.sum())} numeric values that "
            f"are not epoch milliseconds of 12 or 13 digits; first rows: {example_rows(frame, other, column)}); "
            "set timestamp_format: epoch_s (seconds) or epoch_ms for this table, or "
            f"{ISO_HINT}"
        )


def _unparsed_message(
    frame: pd.DataFrame, column: str, source: str, bad: np.ndarray, timestamp_format: str | None
) -> str:
    """The error for rows left without a time: missing, day/month spellings or unparseable."""
    values = frame[column]
    kind = "missing" if np.all(is_blank(values)[bad]) else "missing or unparseable"
    head = f"{source}: column '{column}' has {int(bad.sum())}"
    if timestamp_format is not None:
        return (
            f"{head} {kind} timestamps (first rows: {example_rows(frame, bad, column)}); "
            f"timestamp_format is {timestamp_format!r}: every value must match it"
        )
    spelled = as_text(values)
    day_month = bad & spelled.map(lambda value: day_month_readings(value) is not None).to_numpy(dtype=bool)
    if not day_month.any():
        return f"{head} {kind} timestamps (first rows: {example_rows(frame, bad, column)}); {ISO_HINT}"
    example = spelled.iloc[int(np.flatnonzero(day_month)[0])]
    day_first, month_first = day_month_format(example), day_month_format(example, day_first=False)
    why = (
        f"{example!r} reads as {' or '.join(day_month_readings(example) or ['no date'])}: the order of day and "
        f'month is not written and leadml does not guess; set timestamp_format: "{day_first}" (day first) '
        f'or "{month_first}" (month first) for this table'
    )
    if np.array_equal(day_month, bad):
        return f"{head} dates spelled day/month (first rows: {example_rows(frame, bad, column)}); {why}, or {ISO_HINT}"
    return (
        f"{head} {kind} timestamps (first rows: {example_rows(frame, bad, column)}); {ISO_HINT}; "
        f"{int(day_month.sum())} of them spell the date day/month: {why}"
    )


def day_month_readings(text: str) -> list[str] | None:
    """The ISO readings of a day/month spelling (``07/01/2025``), day first then month first.

    None when ``text`` is not such a spelling; a reading that is no date (``25/01`` month first) is
    left out. Used to refuse these spellings in data and in ``--as-of`` rather than guess.

    Example:
        >>> day_month_readings("07/01/2025 14:22"), day_month_readings("25.01.2025"), day_month_readings("2025-01-07")
        (['2025-01-07 (day first)', '2025-07-01 (month first)'], ['2025-01-25 (day first)'], None)
    """
    match = _DAY_MONTH.fullmatch(text.strip())
    if match is None:
        return None
    first, sep, second, year = match.group("first", "sep", "second", "year")
    year_code = "%Y" if len(year) == 4 else "%y"
    readings = []
    for order, name in ((("%d", "%m"), "day first"), (("%m", "%d"), "month first")):
        try:
            day = datetime.strptime(f"{first}{sep}{second}{sep}{year}", sep.join((*order, year_code)))
        except ValueError:
            continue
        readings.append(f"{day:%Y-%m-%d} ({name})")
    return readings


def day_month_format(text: str, *, day_first: bool = True) -> str:
    """The strftime format of a day/month spelling: ``07.01.2025 14:22`` -> ``%d.%m.%Y %H:%M``."""
    order = ("%d", "%m") if day_first else ("%m", "%d")
    match = _DAY_MONTH.fullmatch(text.strip())
    if match is None:
        return "/".join((*order, "%Y"))
    sep, year, clock = match.group("sep", "year", "clock")
    date = sep.join((*order, "%Y" if len(year) == 4 else "%y"))
    if not clock:
        return date
    return f"{date} {'%H:%M:%S' if clock.count(':') == 2 else '%H:%M'}"
