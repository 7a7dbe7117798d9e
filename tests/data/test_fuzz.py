"""Fuzzing the data contract: malformed tables either load correctly or raise LeadDataError.

Hypothesis builds leads / events / outcomes tables with wrong types, NaN and empty ids, duplicate ids,
timestamps in mixed time zones or not dates at all, huge numbers, unicode and rows out of order. The
contract must never raise anything else, and what it accepts must satisfy its promises.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadml.core.errors import LeadDataError
from leadml.data.contract import (
    LeadDataWarning,
    load_events,
    load_leads,
    load_outcomes,
    validate_events,
    validate_leads,
    validate_outcomes,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.one_of(
    st.text(min_size=0, max_size=6),
    st.integers(-5, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.sampled_from(["L1", "L2", "L3", " L1 ", "ü", "🙂", "007"]),
)
stamps = st.one_of(
    st.sampled_from(
        [
            "2026-01-01",
            "2026-01-01T10:00:00Z",
            "2026-01-01T10:00:00+05:30",
            "2026-03-29T02:30:00-08:00",
            "03/01/2026",
            "not a date",
            "",
            "9999-12-31",
            "1600-01-01",
            "2026-13-45",
            "now",
        ]
    ),
    st.datetimes(
        min_value=pd.Timestamp("1990-01-01").to_pydatetime(), max_value=pd.Timestamp("2100-01-01").to_pydatetime()
    ).map(str),
    st.integers(-(10**18), 10**18),
    st.floats(allow_nan=True),
    st.none(),
)
labels = st.one_of(
    st.sampled_from(["won", "lost", "WON", " yes ", "no", 1, 0, True, False, "maybe", "", None, 2, 0.5]),
    st.text(max_size=4),
)


def _column(strategy, n):
    return st.lists(strategy, min_size=n, max_size=n)


@st.composite
def leads_tables(draw):
    n = draw(st.integers(0, 8))
    frame = pd.DataFrame({"lead_id": draw(_column(ids, n)), "created_at": draw(_column(stamps, n))})
    if draw(st.booleans()):
        frame["industry"] = draw(_column(st.one_of(st.text(max_size=5), st.none(), st.floats()), n))
    if draw(st.booleans()) and n:
        frame = frame.drop(columns=[draw(st.sampled_from(["lead_id", "created_at"]))])
    return frame


def _check_leads(leads: pd.DataFrame) -> None:
    assert leads["lead_id"].map(type).eq(str).all()
    assert leads["lead_id"].is_unique and (leads["lead_id"].str.len() > 0).all()
    assert str(leads["created_at"].dtype) == "datetime64[ns, UTC]" and leads["created_at"].notna().all()


def _fuzz_call(call):
    """Run a contract call: a LeadDataError is a correct answer; anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeadDataWarning)
        try:
            return call()
        except LeadDataError as exc:
            assert str(exc).strip(), "an error must say something"
            return None


@FUZZ
@given(leads=leads_tables())
def test_leads_load_correctly_or_raise_lead_data_error(leads):
    result = _fuzz_call(lambda: validate_leads(leads, source="leads.csv"))
    if result is not None:
        _check_leads(result)
        assert len(result) == len(leads)


@FUZZ
@given(leads=leads_tables(), data=st.data())
def test_events_load_correctly_or_raise(leads, data):
    n = data.draw(st.integers(0, 10))
    events = pd.DataFrame(
        {
            "lead_id": data.draw(_column(ids, n)),
            "timestamp": data.draw(_column(stamps, n)),
            "event_type": data.draw(
                _column(
                    st.one_of(
                        st.sampled_from(["page_view", "form_submit", ""]), st.text(max_size=3), st.none(), st.integers()
                    ),
                    n,
                )
            ),
        }
    )
    checked = _fuzz_call(lambda: validate_leads(leads, source="leads.csv"))
    policy = data.draw(st.sampled_from(["error", "drop"]))
    result = _fuzz_call(lambda: validate_events(events, source="events.csv", leads=checked, on_orphans=policy))
    if result is not None:
        assert str(result["event_type"].dtype) == "category"
        assert str(result["timestamp"].dtype) == "datetime64[ns, UTC]"
        ordered = result.sort_values(["lead_id", "timestamp"], kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(result, ordered)
        if checked is not None:
            assert result["lead_id"].isin(checked["lead_id"]).all()
            assert len(result) <= len(events)
        else:
            assert len(result) == len(events)


@FUZZ
@given(data=st.data())
def test_outcomes_load_correctly_or_raise(data):
    n = data.draw(st.integers(0, 8))
    outcomes = pd.DataFrame(
        {
            "lead_id": data.draw(_column(ids, n)),
            "outcome": data.draw(_column(labels, n)),
            "closed_at": data.draw(_column(stamps, n)),
        }
    )
    result = _fuzz_call(lambda: validate_outcomes(outcomes, source="outcomes.csv"))
    if result is not None:
        assert set(result["outcome"].unique()) <= {0, 1} and str(result["outcome"].dtype) == "int8"
        assert result["lead_id"].is_unique


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(leads=leads_tables(), fmt=st.sampled_from(["csv", "parquet"]))
def test_files_load_correctly_or_raise(tmp_path, leads, fmt):
    path = tmp_path / f"leads.{fmt}"
    try:
        if fmt == "csv":
            leads.to_csv(path, index=False)
        else:
            leads.astype(object).astype(str).where(leads.notna(), None).to_parquet(path)
    except Exception:  # the frame itself cannot be written (e.g. mixed types for Arrow): not the contract's case
        return
    result = _fuzz_call(lambda: load_leads(path))
    if result is not None:
        _check_leads(result)


@pytest.mark.parametrize("loader", [load_leads, load_events, load_outcomes])
def test_garbage_bytes_are_a_lead_data_error(tmp_path, loader):
    path = tmp_path / "table.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(LeadDataError, match="cannot be read as parquet"):
        loader(path)
