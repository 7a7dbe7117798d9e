"""The data contract: every promised error, on hand-made frames and through CSV and Parquet files."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from leadml.core.errors import LeadDataError
from leadml.data import contract
from leadml.data.columns import apply_column_map, parse_binary_label
from leadml.data.contract import (
    LeadDataWarning,
    load_events,
    load_flat,
    load_leads,
    load_outcomes,
    validate_events,
    validate_flat,
    validate_leads,
    validate_outcomes,
)
from leadml.data.timestamps import parse_timestamps

UTC = "datetime64[ns, UTC]"
MODES = ["frame", "csv", "parquet"]
VALIDATE = {
    "leads": validate_leads,
    "events": validate_events,
    "outcomes": validate_outcomes,
    "flat": validate_flat,
}
LOAD = {"leads": load_leads, "events": load_events, "outcomes": load_outcomes, "flat": load_flat}


def run(mode: str, table: str, frame: pd.DataFrame, tmp_path, **kwargs):
    """Validate ``frame`` in memory, or write it as CSV / Parquet and load it; return (result, source)."""
    if mode == "frame":
        return VALIDATE[table](frame, **kwargs), f"<{table} table>"
    path = tmp_path / f"{table}.{mode}"
    if mode == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return LOAD[table](path, **kwargs), str(path)


def source_of(mode: str, table: str, tmp_path) -> str:
    return f"<{table} table>" if mode == "frame" else str(tmp_path / f"{table}.{mode}")


def pattern(*parts: str) -> str:
    """A regex matching the parts in this order, each taken literally."""
    return ".*".join(re.escape(part) for part in parts)


def raises(mode, table, frame, tmp_path, *parts, **kwargs):
    """Assert that validating/loading ``frame`` raises LeadDataError naming the source and ``parts``."""
    source = source_of(mode, table, tmp_path)
    with pytest.raises(LeadDataError, match=pattern(source + ":", *parts)):
        run(mode, table, frame, tmp_path, **kwargs)


@pytest.fixture
def leads() -> pd.DataFrame:
    return validate_leads(
        pd.DataFrame(
            {
                "lead_id": ["L1", "L2", "L3"],
                "created_at": ["2026-01-01", "2026-01-10", "2026-02-01"],
                "job_level": ["director", "student", "manager"],
            }
        )
    )


def events_frame(**overrides) -> pd.DataFrame:
    base = {
        "lead_id": ["L2", "L1", "L1", "L3"],
        "timestamp": ["2026-01-12", "2026-01-05T10:00:00Z", "2026-01-02", "2026-02-03"],
        "event_type": ["page_view", "email_click", "page_view", "form_submit"],
        "page": ["pricing", None, "home", None],
    }
    return pd.DataFrame({**base, **overrides})


def outcomes_frame(**overrides) -> pd.DataFrame:
    base = {
        "lead_id": ["L1", "L2", "L3"],
        "outcome": ["won", "lost", "won"],
        "closed_at": ["2026-02-01", "2026-03-01", "2026-03-15"],
    }
    return pd.DataFrame({**base, **overrides})


# ---------------------------------------------------------------- errors, each table, each mode


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("table", "frame", "kwargs", "missing", "present"),
    [
        ("leads", pd.DataFrame({"lead_id": ["L1"], "job": ["cto"]}), {}, "'created_at'", "lead_id, job"),
        (
            "events",
            pd.DataFrame({"lead_id": ["L1"], "timestamp": ["2026-01-01"]}),
            {},
            "'event_type'",
            "lead_id, timestamp",
        ),
        ("outcomes", pd.DataFrame({"lead_id": ["L1"], "won": [1]}), {}, "'outcome', 'closed_at'", "lead_id, won"),
        ("flat", pd.DataFrame({"lead_id": ["L1"], "visits": [3]}), {"label": "y"}, "'y'", "lead_id, visits"),
    ],
)
def test_missing_required_column(mode, table, frame, kwargs, missing, present, tmp_path):
    raises(
        mode,
        table,
        frame,
        tmp_path,
        f"missing required column(s) {missing} in the {table} table",
        f"columns present: {present}",
        **kwargs,
    )


@pytest.mark.parametrize("mode", MODES)
def test_missing_mapped_column_names_the_mapping(mode, tmp_path):
    frame = pd.DataFrame({"id": ["L1"], "created_at": ["2026-01-01"]})
    raises(
        mode,
        "leads",
        frame,
        tmp_path,
        "'lead_id' (mapped from 'Prospect ID')",
        columns={"lead_id": "Prospect ID"},
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("table", ["leads", "outcomes", "flat"])
def test_duplicate_lead_id(mode, table, tmp_path):
    ids = ["L1", "L2", "L1", "L3", "L2", "L2"]
    frame = pd.DataFrame(
        {
            "lead_id": ids,
            "created_at": "2026-01-01",
            "outcome": "won",
            "closed_at": "2026-02-01",
            "y": "no",
        }
    )
    kwargs = {"label": "y"} if table == "flat" else {}
    raises(
        mode,
        table,
        frame,
        tmp_path,
        "column 'lead_id' has 2 duplicated ids over 5 rows",
        "row 1 (lead_id='L1'); row 2 (lead_id='L2'); row 3 (lead_id='L1')",
        f"the {table} table needs one row per lead",
        **kwargs,
    )


@pytest.mark.parametrize("mode", MODES)
def test_unparseable_timestamps(mode, tmp_path):
    frame = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5"],
            "created_at": ["2026-01-01", "not a date", "2026-02-30", "03/01/2026", "now"],
        }
    )
    raises(
        mode,
        "leads",
        frame,
        tmp_path,
        "column 'created_at' has 4 missing or unparseable timestamps",
        "row 2 (lead_id='L2', created_at='not a date'); row 3 (lead_id='L3', created_at='2026-02-30');"
        " row 4 (lead_id='L4', created_at='03/01/2026')",
        "use ISO 8601",
    )


@pytest.mark.parametrize("mode", MODES)
def test_missing_timestamps(mode, tmp_path):
    frame = events_frame(timestamp=["2026-01-12", None, "2026-01-02", None])
    raises(
        mode,
        "events",
        frame,
        tmp_path,
        "column 'timestamp' has 2 missing timestamps",
        "row 2 (lead_id='L1', timestamp=<missing>); row 4 (lead_id='L3', timestamp=<missing>)",
    )


def test_all_missing_timestamps_in_csv_are_missing_not_numbers(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("lead_id,created_at\nL1,\nL2,\n")
    with pytest.raises(LeadDataError, match=pattern(str(path), "'created_at' has 2 missing timestamps")):
        load_leads(path)


@pytest.mark.parametrize("mode", MODES)
def test_numeric_timestamps(mode, tmp_path):
    frame = outcomes_frame(closed_at=[1767225600, 1767312000, 1767398400])
    raises(
        mode,
        "outcomes",
        frame,
        tmp_path,
        "column 'closed_at' holds numbers, not dates (3 numeric values",
        "row 1 (lead_id='L1', closed_at=1767225600)",
    )


@pytest.mark.parametrize("mode", MODES)
def test_timestamps_outside_the_nanosecond_range(mode, tmp_path):
    frame = pd.DataFrame({"lead_id": ["L1", "L2"], "created_at": ["2026-01-01", "9999-12-31"]})
    raises(
        mode,
        "leads",
        frame,
        tmp_path,
        "column 'created_at' has 1 timestamps outside 1677-2262",
        "row 2 (lead_id='L2', created_at='9999-12-31')",
    )


@pytest.mark.parametrize("mode", MODES)
def test_events_of_unknown_leads_raise_by_default(mode, leads, tmp_path):
    frame = events_frame(lead_id=["L2", "L9", "L1", "L8"])
    raises(
        mode,
        "events",
        frame,
        tmp_path,
        "column 'lead_id' has 2 events of unknown leads",
        "row 2 (lead_id='L9'); row 4 (lead_id='L8')",
        "on_orphans='drop'",
        leads=leads,
    )


@pytest.mark.parametrize("mode", MODES)
def test_events_of_unknown_leads_dropped_with_exact_count(mode, leads, tmp_path):
    frame = events_frame(lead_id=["L2", "L9", "L1", "L9"])
    source = source_of(mode, "events", tmp_path)
    with pytest.warns(LeadDataWarning, match=pattern(source, "dropped 2 events of unknown leads", "row 2")):
        events, _ = run(mode, "events", frame, tmp_path, leads=leads, on_orphans="drop")
    assert len(events) == 2
    assert events["lead_id"].tolist() == ["L1", "L2"]
    assert set(events["lead_id"]) <= set(leads["lead_id"])


def test_orphan_policy_must_be_known(leads):
    with pytest.raises(ValueError, match="on_orphans must be 'error' or 'drop', not 'ignore'"):
        validate_events(events_frame(), leads=leads, on_orphans="ignore")


@pytest.mark.parametrize("mode", MODES)
def test_outcome_not_binary(mode, tmp_path):
    frame = outcomes_frame(outcome=["won", "maybe", "LOST"])
    raises(
        mode,
        "outcomes",
        frame,
        tmp_path,
        "column 'outcome' has 1 values that are not a binary outcome",
        "0 missing; seen: maybe",
        "row 2 (lead_id='L2', outcome='maybe')",
        "use won/lost",
    )


@pytest.mark.parametrize("mode", MODES)
def test_missing_outcome_is_counted(mode, tmp_path):
    frame = outcomes_frame(outcome=["won", None, "lost"])
    raises(
        mode,
        "outcomes",
        frame,
        tmp_path,
        "column 'outcome' has 1 values that are not a binary outcome",
        "1 missing",
        "row 2 (lead_id='L2', outcome=<missing>)",
    )


@pytest.mark.parametrize("mode", MODES)
def test_event_before_creation_warns_and_is_kept(mode, leads, tmp_path):
    frame = events_frame(timestamp=["2026-01-09", "2025-12-31T23:59:59Z", "2026-01-02", "2026-02-03"])
    source = source_of(mode, "events", tmp_path)
    with pytest.warns(
        LeadDataWarning,
        match=pattern(
            source,
            "column 'timestamp' has 2 events before their lead's created_at",
            "row 1 (lead_id='L2', timestamp=2026-01-09T00:00:00+00:00); "
            "row 2 (lead_id='L1', timestamp=2025-12-31T23:59:59+00:00)",
            "they are kept",
        ),
    ):
        events, _ = run(mode, "events", frame, tmp_path, leads=leads)
    assert len(events) == 4


def test_early_events_name_input_rows_even_after_orphans_are_dropped(leads):
    frame = events_frame(lead_id=["L9", "L9", "L1", "L1"], timestamp=["2026-01-01"] * 3 + ["2025-06-01"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = validate_events(frame, leads=leads, on_orphans="drop")
    messages = [str(w.message) for w in caught if w.category is LeadDataWarning]
    assert len(messages) == 2
    assert "dropped 2 events" in messages[0]
    assert "has 1 events before" in messages[1] and "row 4 (lead_id='L1'" in messages[1]
    assert len(events) == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("table", ["leads", "events", "outcomes", "flat"])
def test_empty_table(mode, table, tmp_path):
    frame = pd.DataFrame({"lead_id": pd.Series([], dtype=str), "y": pd.Series([], dtype=str)})
    kwargs = {"label": "y"} if table == "flat" else {}
    raises(mode, table, frame, tmp_path, "the table is empty (0 rows)", **kwargs)


@pytest.mark.parametrize("table", ["leads", "events", "outcomes", "flat"])
def test_empty_csv_file_without_header(table, tmp_path):
    path = tmp_path / f"{table}.csv"
    path.write_text("")
    kwargs = {"label": "y"} if table == "flat" else {}
    with pytest.raises(LeadDataError, match=pattern(str(path), "the table is empty (no header, no rows)")):
        LOAD[table](path, **kwargs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("table", ["leads", "events", "outcomes"])
def test_missing_or_empty_ids(mode, table, tmp_path):
    frame = pd.DataFrame(
        {
            "lead_id": ["L1", None, "  ", "L4"],
            "created_at": "2026-01-01",
            "timestamp": "2026-01-02",
            "event_type": "page_view",
            "outcome": "won",
            "closed_at": "2026-02-01",
        }
    )
    raises(
        mode,
        table,
        frame,
        tmp_path,
        "column 'lead_id' has 2 missing or empty values",
        "row 2 (lead_id=<missing>); row 3",
        "every row needs an id",
    )


@pytest.mark.parametrize("mode", MODES)
def test_empty_event_type(mode, tmp_path):
    frame = events_frame(event_type=["page_view", "", None, " "])
    raises(
        mode,
        "events",
        frame,
        tmp_path,
        "column 'event_type' has 3 missing or empty values",
        "row 2 (lead_id='L1', event_type=",
        "every event needs a type",
    )


@pytest.mark.parametrize("mode", MODES)
def test_outcomes_of_unknown_leads(mode, leads, tmp_path):
    frame = outcomes_frame(lead_id=["L1", "L7", "L3"])
    raises(
        mode,
        "outcomes",
        frame,
        tmp_path,
        "column 'lead_id' has 1 outcomes of unknown leads",
        "row 2 (lead_id='L7')",
        leads=leads,
    )


@pytest.mark.parametrize("mode", MODES)
def test_closed_before_created(mode, leads, tmp_path):
    frame = outcomes_frame(closed_at=["2026-02-01", "2026-01-09T23:00:00Z", "2026-01-31"])
    raises(
        mode,
        "outcomes",
        frame,
        tmp_path,
        "column 'closed_at' has 2 outcomes closed before the lead was created",
        "row 2 (lead_id='L2', closed_at=2026-01-09T23:00:00+00:00); row 3 (lead_id='L3'",
        leads=leads,
    )


@pytest.mark.parametrize("loader", [load_leads, load_events, load_outcomes])
@pytest.mark.parametrize("name", ["leads.xlsx", "leads"])
def test_unknown_file_extension(loader, name, tmp_path):
    path = tmp_path / name
    path.write_text("lead_id,created_at\nL1,2026-01-01\n")
    suffix = path.suffix or "(none)"
    with pytest.raises(LeadDataError, match=pattern(str(path), f"unknown table format '{suffix}'", ".csv or .parquet")):
        loader(path)


@pytest.mark.parametrize("table", ["leads", "events", "outcomes", "flat"])
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_missing_file(table, suffix, tmp_path):
    path = tmp_path / f"absent.{suffix}"
    kwargs = {"label": "y"} if table == "flat" else {}
    with pytest.raises(LeadDataError, match=pattern(str(path), "file not found")):
        LOAD[table](path, **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_flat_label_missing_or_not_binary(mode, tmp_path):
    frame = pd.DataFrame({"lead_id": ["A", "B", "C"], "y": ["yes", None, "no"]})
    raises(
        mode, "flat", frame, tmp_path, "column 'y' has 1 missing labels", "row 2 (lead_id='B', y=<missing>)", label="y"
    )
    frame = pd.DataFrame({"lead_id": ["A", "B", "C"], "y": [0, 1, 2]})
    raises(
        mode,
        "flat",
        frame,
        tmp_path,
        "column 'y' has 1 values that are not a binary outcome",
        "row 3 (lead_id='C', y=2)",
        label="y",
    )


def test_flat_reserved_columns_raise():
    frame = pd.DataFrame({"id": ["A"], "converted": ["x"], "y": ["yes"]})
    with pytest.raises(LeadDataError, match="column 'converted' is reserved for the label"):
        validate_flat(frame, label="y", id_column="id")
    frame = pd.DataFrame({"id": ["A"], "lead_id": ["x"], "y": ["yes"]})
    with pytest.raises(LeadDataError, match="column 'lead_id' is reserved for the id"):
        validate_flat(frame, label="y", id_column="id")


def test_column_map_clash_raises():
    frame = pd.DataFrame({"lead_id": ["a"], "Prospect ID": ["b"], "created_at": ["2026-01-01"]})
    with pytest.raises(
        LeadDataError, match="leads.csv: column 'lead_id' is present and also mapped from 'Prospect ID'"
    ):
        validate_leads(frame, source="leads.csv", columns={"lead_id": "Prospect ID"})


# ---------------------------------------------------------------- happy path


@pytest.mark.parametrize("mode", MODES)
def test_leads_typed_after_loading(mode, tmp_path):
    frame = pd.DataFrame(
        {
            "lead_id": [1, 2, 3, 4],
            "created_at": ["2026-03-01 12:00:00", "2026-03-01T12:00:00Z", "2026-03-01T14:00:00+02:00", "2026-03-01"],
            "budget": [10.5, None, 3.0, 1.0],
        }
    )
    leads, _ = run(mode, "leads", frame, tmp_path)
    assert str(leads["created_at"].dtype) == UTC
    assert pd.api.types.is_string_dtype(leads["lead_id"])
    assert leads["lead_id"].tolist() == ["1", "2", "3", "4"]
    noon = pd.Timestamp("2026-03-01 12:00", tz="UTC")
    assert leads["created_at"].tolist() == [noon, noon, noon, pd.Timestamp("2026-03-01", tz="UTC")]
    assert leads["budget"].isna().sum() == 1


def test_mixed_offsets_become_one_utc_instant():
    frame = pd.DataFrame({"t": ["2026-03-01T10:00:00-05:00", "2026-03-01T16:00:00+01:00", "2026-03-01T15:00:00Z"]})
    parsed = parse_timestamps(frame, "t", "x.csv")
    assert str(parsed.dtype) == UTC
    assert parsed.nunique() == 1 and parsed.iloc[0] == pd.Timestamp("2026-03-01 15:00", tz="UTC")


@pytest.mark.parametrize("tz", [None, "Europe/Paris"])
def test_datetime_columns_in_parquet_become_utc(tz, tmp_path):
    stamps = pd.to_datetime(["2026-03-01 12:00", "2026-03-02 00:00"])
    stamps = stamps.tz_localize(tz) if tz else stamps
    path = tmp_path / "leads.parquet"
    pd.DataFrame({"lead_id": ["a", "b"], "created_at": stamps}).to_parquet(path)
    leads = load_leads(path)
    assert str(leads["created_at"].dtype) == UTC
    expected = pd.Timestamp("2026-03-01 12:00", tz=tz or "UTC").tz_convert("UTC")
    assert leads["created_at"].iloc[0] == expected


def test_integer_and_zero_padded_ids_from_csv(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("lead_id,created_at\n1,2026-01-01\n2,2026-01-02\n007,2026-01-03\n")
    assert load_leads(path)["lead_id"].tolist() == ["1", "2", "007"]
    floats = pd.DataFrame({"lead_id": [1.0, 2.0, 30.0], "created_at": "2026-01-01"})
    assert validate_leads(floats)["lead_id"].tolist() == ["1", "2", "30"]


@pytest.mark.parametrize("mode", MODES)
def test_events_typed_and_sorted(mode, leads, tmp_path):
    events, _ = run(mode, "events", events_frame(), tmp_path, leads=leads)
    assert events["lead_id"].tolist() == ["L1", "L1", "L2", "L3"]
    assert events["timestamp"].tolist() == [
        pd.Timestamp("2026-01-02", tz="UTC"),
        pd.Timestamp("2026-01-05 10:00", tz="UTC"),
        pd.Timestamp("2026-01-12", tz="UTC"),
        pd.Timestamp("2026-02-03", tz="UTC"),
    ]
    assert isinstance(events["event_type"].dtype, pd.CategoricalDtype)
    assert events["event_type"].tolist() == ["page_view", "email_click", "page_view", "form_submit"]
    assert events["page"].tolist()[0] == "home"
    assert str(events["timestamp"].dtype) == UTC


@pytest.mark.parametrize("mode", MODES)
def test_outcome_labels(mode, tmp_path):
    labels = ["won", "lost", "Yes", "no", "1", "0", "True", "FALSE", " won "]
    frame = pd.DataFrame(
        {"lead_id": [f"L{i}" for i in range(len(labels))], "outcome": labels, "closed_at": "2026-01-01"}
    )
    outcomes, _ = run(mode, "outcomes", frame, tmp_path)
    assert outcomes["outcome"].dtype == np.int8
    assert outcomes["outcome"].tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([1, 0, 1]),
        pd.Series([True, False, True]),
        pd.Series([1.0, 0.0, 1.0]),
        pd.Series([True, False, True], dtype="boolean"),
        pd.Series(["1", "0", "1"]),
    ],
)
def test_binary_label_dtypes(values):
    parsed = parse_binary_label(pd.DataFrame({"y": values}), "y", "f.csv")
    assert parsed.dtype == np.int8 and parsed.tolist() == [1, 0, 1]


@pytest.mark.parametrize("mode", MODES)
def test_column_mapping(mode, tmp_path):
    frame = pd.DataFrame(
        {"Prospect ID": ["p1", "p2"], "Signed up": ["2026-01-01", "2026-01-02"], "Country": ["FR", "DE"]}
    )
    leads, _ = run(mode, "leads", frame, tmp_path, columns={"lead_id": "Prospect ID", "created_at": "Signed up"})
    assert list(leads.columns) == ["lead_id", "created_at", "Country"]
    assert leads["lead_id"].tolist() == ["p1", "p2"]
    assert str(leads["created_at"].dtype) == UTC


def test_apply_column_map_ignores_absent_and_identity_names():
    frame = pd.DataFrame({"a": [1], "lead_id": ["x"]})
    mapped = apply_column_map(frame, {"lead_id": "lead_id", "page": "Page"})
    assert list(mapped.columns) == ["a", "lead_id"]
    assert apply_column_map(frame, None) is frame


@pytest.mark.parametrize("mode", MODES)
def test_flat_without_id_numbers_rows_zero_padded(mode, tmp_path):
    frame = pd.DataFrame({"age": range(12), "y": ["yes", "no", "no"] * 4})
    flat, _ = run(mode, "flat", frame, tmp_path, label="y")
    assert flat["lead_id"].tolist()[:3] == ["01", "02", "03"] and flat["lead_id"].iloc[-1] == "12"
    assert list(flat.columns) == ["lead_id", "age", "converted"]
    assert flat["converted"].dtype == np.int8 and int(flat["converted"].sum()) == 4


def test_flat_with_id_column_and_semicolons(tmp_path):
    path = tmp_path / "flat.csv"
    path.write_text('"Prospect ID";"visits";"Converted"\n"0042";3;1\n"0043";0;0\n')
    flat = load_flat(path, label="Converted", id_column="Prospect ID", sep=";")
    assert flat["lead_id"].tolist() == ["0042", "0043"]
    assert list(flat.columns) == ["lead_id", "visits", "converted"]
    assert flat["converted"].tolist() == [1, 0]


def test_validation_leaves_the_input_untouched(leads):
    frame = events_frame()
    before = frame.copy()
    validate_events(frame, leads=leads)
    pd.testing.assert_frame_equal(frame, before)


def test_required_columns_are_the_documented_ones():
    assert contract.LEADS_REQUIRED == ("lead_id", "created_at")
    assert contract.EVENTS_REQUIRED == ("lead_id", "timestamp", "event_type")
    assert contract.OUTCOMES_REQUIRED == ("lead_id", "outcome", "closed_at")
