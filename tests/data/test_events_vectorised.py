"""validate_events checks and types once per distinct value: the same table and messages as row by row.

The reference below is the row-by-row version the contract had before (strip every row's type, map
every row's lead, sort by the id strings); the vectorised one must give the identical frame, order,
dtypes, warnings and errors on edge cases (orphans, early events, ties, unused categories, text,
categorical and mixed object types).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from leadml.core.errors import LeadDataError
from leadml.data import contract
from leadml.data.columns import example_rows, is_blank, parse_lead_ids
from leadml.data.timestamps import parse_timestamps


def reference_validate_events(events: pd.DataFrame, leads: pd.DataFrame | None, on_orphans: str) -> pd.DataFrame:
    """The former row-by-row validate_events (no column map, no timestamp format)."""
    src = "events.csv"
    events = events.copy()
    events["lead_id"] = parse_lead_ids(events, src)
    events["timestamp"] = parse_timestamps(events, "timestamp", src)
    blank = is_blank(events["event_type"])
    if blank.any():
        raise LeadDataError(
            f"{src}: column 'event_type' has {int(blank.sum())} missing or empty values "
            f"(first rows: {example_rows(events, blank, 'event_type')}); every event needs a type"
        )
    events["event_type"] = events["event_type"].astype(str).str.strip().astype("category")
    if leads is not None:
        created = leads["created_at"].set_axis(pd.Index(leads["lead_id"].astype(str), name="lead_id"))
        known = events["lead_id"].isin(created.index).to_numpy()
        early = (events["timestamp"] < events["lead_id"].map(created)).to_numpy()
        if not known.all():
            n_orphans = int((~known).sum())
            if on_orphans == "error":
                raise LeadDataError(
                    f"{src}: column 'lead_id' has {n_orphans} events of unknown leads "
                    f"(first rows: {example_rows(events, ~known, 'lead_id')}); fix the export or drop "
                    "them with on_orphans='drop' (CLI: --drop-orphans)"
                )
            warnings.warn(
                contract.LeadDataWarning(
                    f"{src}: dropped {n_orphans} events of unknown leads (column 'lead_id'; first rows: "
                    f"{example_rows(events, ~known, 'lead_id')})",
                    "orphan_events",
                    n_orphans,
                ),
                stacklevel=2,
            )
        if early.any():
            warnings.warn(
                contract.LeadDataWarning(
                    f"{src}: column 'timestamp' has {int(early.sum())} events before their lead's "
                    f"created_at (first rows: {example_rows(events, early, 'timestamp')}); they are kept",
                    "early_events",
                    int(early.sum()),
                ),
                stacklevel=2,
            )
        events = events.loc[known].reset_index(drop=True)
    return events.sort_values(["lead_id", "timestamp"], kind="stable").reset_index(drop=True)


def _run(function, *args) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", contract.LeadDataWarning)
        try:
            result: object = function(*args)
        except LeadDataError as exc:
            result = f"error: {exc}"
    return result, [str(w.message) for w in caught if issubclass(w.category, contract.LeadDataWarning)]


def _leads() -> pd.DataFrame:
    return contract.validate_leads(
        pd.DataFrame(
            {
                "lead_id": ["L1", "L2", "L10", "é3", "L4"],
                "created_at": ["2026-01-05", "2026-01-01", "2026-01-02", "2026-01-03T12:00Z", "2026-02-01"],
            }
        )
    )


def _events(kind: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    ids = rng.choice(["L1", "L2", "L10", "é3", "L4", " L2 ", "ghost", "L9"], n)
    days = rng.integers(0, 40, n)  # many ties: the same lead at the same instant
    times = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(days, unit="D")
    types = rng.choice(["page_view", " page_view", "email_open ", "form", "Form"], n)
    frame = pd.DataFrame({"lead_id": ids, "timestamp": times, "event_type": types, "row": np.arange(n)})
    if kind == "category":
        frame["event_type"] = pd.Categorical(types, categories=[*sorted(set(types)), "unused"])
    elif kind == "object":
        frame["event_type"] = pd.Series(types, dtype=object)
    elif kind == "mixed":
        frame["event_type"] = pd.Series([1, 1.0, "1", " 2"] * (n // 4), dtype=object)
    elif kind == "text_times":
        frame["timestamp"] = times.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return frame


@pytest.mark.parametrize("kind", ["str", "category", "object", "mixed", "text_times"])
@pytest.mark.parametrize("on_orphans", ["drop", "error"])
@pytest.mark.parametrize("block", [7, 1 << 20])
def test_vectorised_events_equal_the_row_by_row_reference(kind: str, on_orphans: str, block: int, monkeypatch) -> None:
    monkeypatch.setattr(contract, "_BLOCK", block)  # checks made block by block give the same answers
    events, leads = _events(kind), _leads()
    expected, expected_warnings = _run(reference_validate_events, events, leads, on_orphans)
    got, got_warnings = _run(contract.validate_events, events, "events.csv", leads, on_orphans)
    assert got_warnings == expected_warnings
    if isinstance(expected, str):
        assert got == expected
        return
    assert isinstance(got, pd.DataFrame)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got["event_type"].cat.categories) == list(expected["event_type"].cat.categories)


@pytest.mark.parametrize("block", [5, 1 << 20])
def test_events_without_leads_and_known_leads_only_equal_the_reference(block: int, monkeypatch) -> None:
    monkeypatch.setattr(contract, "_BLOCK", block)
    events = _events("str", seed=3)
    events = events.loc[~events["lead_id"].isin([" L2 ", "ghost", "L9"])].reset_index(drop=True)
    ordered = contract.validate_events(events, "events.csv")  # already in order: kept as it is
    for frame in (events, ordered):
        pd.testing.assert_frame_equal(
            contract.validate_events(frame, "events.csv"), reference_validate_events(frame, None, "error")
        )
    for leads in (None, _leads()):
        expected, expected_warnings = _run(reference_validate_events, events, leads, "error")
        got, got_warnings = _run(contract.validate_events, events, "events.csv", leads, "error")
        assert got_warnings == expected_warnings
        pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("blank", [None, "", "  ", np.nan])
@pytest.mark.parametrize("kind", ["str", "category", "object"])
def test_blank_event_types_raise_the_same_message(blank: object, kind: str) -> None:
    events = _events("str").head(6)
    types = events["event_type"].astype(object).tolist()
    types[2] = types[4] = blank
    if kind == "category":
        events["event_type"] = pd.Categorical(types)
    elif kind == "object":
        events["event_type"] = pd.Series(types, dtype=object)
    else:
        events["event_type"] = pd.Series(types, dtype="str")
    expected, _ = _run(reference_validate_events, events, None, "error")
    got, _ = _run(contract.validate_events, events, "events.csv", None, "error")
    assert isinstance(expected, str) and "missing or empty values" in expected
    assert got == expected
