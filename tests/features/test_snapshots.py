"""Snapshots and labels: policies, closing, censoring, and the time split's gap."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadml.core.errors import LeadDataError
from leadml.features.snapshots import build_snapshots, stratified_split, time_split, to_utc

T = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731


def _leads():
    return pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "created_at": pd.to_datetime(["2026-01-01", "2026-01-10", "2026-02-01", "2026-05-20"], utc=True),
        }
    )


def _outcomes():
    return pd.DataFrame(
        {
            "lead_id": ["a", "b", "c"],
            "outcome": np.array([1, 0, 1], dtype="int8"),
            # a wins 40 days in; b is lost on day 5 (before its day-7 snapshot); c wins 200 days in
            "closed_at": pd.to_datetime(["2026-02-10", "2026-01-15", "2026-08-20"], utc=True),
        }
    )


def test_days_after_creation_labels_closing_and_censoring():
    snapshots = build_snapshots(
        _leads(),
        _outcomes(),
        policy="days_after_creation",
        days_after_creation=7,
        horizon_days=90,
        data_end=T("2026-07-01"),
    )
    # b closed before its snapshot: not snapshotted; d's horizon ends after data_end: censored
    assert snapshots["lead_id"].tolist() == ["a", "c", "d"]
    assert snapshots["as_of"].tolist() == [T("2026-01-08"), T("2026-02-08"), T("2026-05-27")]
    labels = snapshots["converted"].tolist()
    assert labels[:2] == [1.0, 0.0]  # c won after its 90-day horizon: a negative at that snapshot
    assert np.isnan(labels[2])


def test_every_days_stops_when_the_lead_closes():
    snapshots = build_snapshots(
        _leads(), _outcomes(), policy="every_days", every_days=10, horizon_days=30, data_end=T("2026-04-01")
    )
    a = snapshots.loc[snapshots["lead_id"] == "a"]
    # a: created 01-01, closed (won) 02-10: snapshots on 01-11, 01-21, 01-31, 02-10 (closing instant is the future)
    assert a["as_of"].tolist() == [T("2026-01-11"), T("2026-01-21"), T("2026-01-31"), T("2026-02-10")]
    assert a["converted"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert snapshots.loc[snapshots["lead_id"] == "b"].empty  # closed on day 5
    assert (snapshots["as_of"] <= T("2026-04-01")).all()


def test_fixed_as_of_keeps_leads_created_by_then_and_open():
    snapshots = build_snapshots(
        _leads(), _outcomes(), policy="fixed", as_of="2026-02-01", horizon_days=30, data_end=T("2026-12-31")
    )
    # b closed before 02-01; a still open (wins 02-10, inside the horizon); c created exactly at
    # as_of is included; d not yet created
    assert snapshots["lead_id"].tolist() == ["a", "c"]
    assert snapshots["converted"].tolist() == [1.0, 0.0]


def test_stage_label_uses_the_stage_time():
    outcomes = _outcomes().assign(sql_at=pd.to_datetime(["2026-01-20", None, None], utc=True))
    snapshots = build_snapshots(
        _leads(),
        outcomes,
        policy="days_after_creation",
        days_after_creation=7,
        horizon_days=30,
        data_end=T("2026-12-31"),
        stage="sql",
    )
    assert snapshots.set_index("lead_id")["converted"].to_dict() == {"a": 1.0, "c": 0.0, "d": 0.0}


def test_to_utc_date_means_midnight():
    assert to_utc("2026-03-01") == T("2026-03-01 00:00")
    assert to_utc(pd.Timestamp("2026-03-01 02:00", tz="Europe/Berlin")) == T("2026-03-01 01:00")


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("07/01/2025", "2025-01-07 (day first) or 2025-07-01 (month first)"),
        ("1/2/2026 10:00", "2026-02-01 (day first) or 2026-01-02 (month first)"),
        (" 25.12.2025", "2025-12-25 (day first)"),
    ],
)
def test_to_utc_refuses_day_month_spellings(value, iso):
    message = f"as_of {value!r} does not say whether the day or the month comes first; use ISO 8601: {iso}"
    with pytest.raises(LeadDataError, match=f"^{re.escape(message)}$"):
        to_utc(value)
    assert to_utc("2025-01-07") == T("2025-01-07") and to_utc("2025-01-07 14:22") == T("2025-01-07 14:22")


@settings(max_examples=60, deadline=None)
@given(
    days=st.lists(st.integers(0, 400), min_size=5, max_size=60),
    labels=st.lists(st.sampled_from([0.0, 1.0, np.nan]), min_size=60, max_size=60),
    gap=st.integers(0, 120),
    test_fraction=st.floats(0.1, 0.5),
)
def test_no_test_snapshot_is_within_the_gap_of_a_training_one(days, labels, gap, test_fraction):
    snapshots = pd.DataFrame(
        {"as_of": T("2026-01-01") + pd.to_timedelta(days, unit="D"), "converted": labels[: len(days)]}
    )
    split = time_split(snapshots, test_fraction=test_fraction, gap_days=gap)
    assert set(split) <= {"train", "validation", "test", "gap", "censored"}
    assert (split[snapshots["converted"].isna()] == "censored").all()
    fitted = snapshots.loc[split.isin(["train", "validation"]), "as_of"]
    tested = snapshots.loc[split == "test", "as_of"]
    if len(fitted) and len(tested):
        assert tested.min() - fitted.max() >= pd.Timedelta(days=gap)
    train = snapshots.loc[split == "train", "as_of"]
    valid = snapshots.loc[split == "validation", "as_of"]
    if len(train) and len(valid):
        assert train.max() <= valid.min()


def test_stratified_split_is_seeded_and_stratified():
    labels = pd.Series([1.0] * 100 + [0.0] * 400)
    first = stratified_split(labels, seed=3)
    assert first.equals(stratified_split(labels, seed=3))
    assert not first.equals(stratified_split(labels, seed=4))
    test = labels[first == "test"]
    assert len(test) == 100 and test.sum() == 20


def test_labels_when_no_deal_was_won_yet():
    lost = _outcomes().assign(outcome=np.zeros(3, dtype="int8"))
    snapshots = build_snapshots(
        _leads(), lost, policy="fixed", as_of="2026-02-01", horizon_days=30, data_end=T("2026-12-31")
    )
    assert snapshots["lead_id"].tolist() == ["a", "c"]
    assert snapshots["converted"].tolist() == [0.0, 0.0]
    assert str(snapshots["as_of"].dtype) == "datetime64[ns, UTC]"
