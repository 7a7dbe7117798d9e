"""Numeric event values (``features.event_values``): windowed sum, mean and max, days since the last
valued event; exact on hand-made events, equal on every path, point in time on the simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import parse_pipeline
from leadml.core.errors import ConfigError, LeadDataError
from leadml.data.sources import PipelineData
from leadml.explain.sentences import render
from leadml.features.behaviour.features import behaviour_features
from leadml.features.behaviour.parquet import behaviour_features_from_parquet
from leadml.features.behaviour.partitioned import behaviour_features_partitioned
from leadml.features.build import build_trainset

NAN = np.nan
VALUES = {"purchase": "amount"}


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def hand_made() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lead A snapshotted twice, B once, C (no purchase) once; D has events and no snapshot."""
    rows = [
        ("A", "2026-01-01 00:00", "purchase", 400.0),  # 59 days before A@03-01: only in the 90-day window
        ("A", "2026-01-30 00:00", "purchase", 120.0),  # exactly 30 days before A@03-01: inside the window
        ("A", "2026-02-10 12:00", "page_view", 999.0),  # a value on another type: never read
        ("A", "2026-02-20 00:00", "purchase", NAN),  # a purchase without an amount: counted, not valued
        ("A", "2026-02-25 00:00", "purchase", 30.0),  # 4 days before A@03-01
        ("A", "2026-03-01 00:00", "purchase", 5000.0),  # exactly at A@03-01: the future for it
        ("A", "2026-03-10 00:00", "purchase", 60.0),  # between A's snapshots
        ("B", "2026-02-27 06:00", "purchase", -20.0),  # a refund is a value too
        ("B", "2026-02-28 18:00", "purchase", 50.0),
        ("C", "2026-02-15 00:00", "page_view", 7.0),
        ("D", "2026-02-15 00:00", "purchase", 70.0),
    ]
    events = pd.DataFrame(rows, columns=["lead_id", "timestamp", "event_type", "amount"])
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    snapshots = pd.DataFrame(
        {
            "lead_id": ["A", "B", "C", "A"],
            "as_of": [utc("2026-03-01"), utc("2026-03-01"), utc("2026-03-01"), utc("2026-03-15")],
        }  # fmt: skip
    )
    return snapshots, events


# Rows in snapshot order: A@03-01, B@03-01, C@03-01, A@03-15 (counted by hand).
EXPECTED = {
    "purchase.amount__sum_7d": [30, 30, 0, 60],
    "purchase.amount__mean_7d": [30, 15, NAN, 60],
    "purchase.amount__max_7d": [30, 50, NAN, 60],
    "purchase.amount__sum_30d": [150, 30, 0, 5090],
    "purchase.amount__mean_30d": [75, 15, NAN, 5090 / 3],
    "purchase.amount__max_30d": [120, 50, NAN, 5000],
    "purchase.amount__sum_90d": [550, 30, 0, 5610],
    "purchase.amount__mean_90d": [550 / 3, 15, NAN, 5610 / 5],
    "purchase.amount__max_90d": [400, 50, NAN, 5000],
    "purchase.amount__days_since_last": [4.0, 0.25, NAN, 5.0],
}


def _values(features: pd.DataFrame) -> pd.DataFrame:
    return features[[c for c in features.columns if c.startswith("purchase.amount__")]]


def test_hand_made_values_every_window():
    snapshots, events = hand_made()
    features, infos = behaviour_features(snapshots, events, event_values=VALUES)
    values = _values(features)
    assert list(values.columns) == list(EXPECTED)
    for name, expected in EXPECTED.items():
        np.testing.assert_allclose(values[name].to_numpy(), expected, rtol=1e-6, err_msg=name)
    # the purchase without an amount still counts as a purchase
    assert features["purchase__count_30d"].tolist() == [3, 2, 0, 4]
    by_name = {info.name: info for info in infos}
    assert by_name["purchase.amount__sum_30d"].window_days == 30
    assert by_name["purchase.amount__sum_30d"].source == "purchase"


def test_one_snapshot_per_lead_gives_the_same_values():
    snapshots, events = hand_made()
    single = snapshots.iloc[:3]
    values = _values(behaviour_features(single, events, event_values=VALUES)[0])
    for name, expected in EXPECTED.items():
        np.testing.assert_allclose(values[name].to_numpy(), expected[:3], rtol=1e-6, err_msg=name)


def test_a_list_of_columns_and_a_type_without_events():
    snapshots, events = hand_made()
    events["units"] = np.where(events["event_type"] == "purchase", 1.0, NAN)
    features, _ = behaviour_features(
        snapshots, events, windows=(30,), event_values={"purchase": ["amount", "units"], "order": "amount"}
    )
    assert features["purchase.units__sum_30d"].tolist() == [3, 2, 0, 4]  # A's amount-less purchase has a unit
    assert features["order.amount__sum_30d"].tolist() == [0, 0, 0, 0]
    assert features["order.amount__max_30d"].isna().all()


def test_parquet_and_partitioned_paths_equal_the_frame_path(tmp_path):
    snapshots, events = hand_made()
    snapshots.to_parquet(tmp_path / "snapshots.parquet", index=False)
    events.to_parquet(tmp_path / "events.parquet", index=False)
    frame = _values(behaviour_features(snapshots, events, event_values=VALUES)[0])
    behaviour_features_from_parquet(
        tmp_path / "snapshots.parquet", tmp_path / "events.parquet", tmp_path / "out.parquet", event_values=VALUES
    )
    streamed = _values(pd.read_parquet(tmp_path / "out.parquet"))
    pd.testing.assert_frame_equal(streamed, frame)
    behaviour_features_partitioned(
        tmp_path / "snapshots.parquet", tmp_path / "events.parquet", tmp_path / "parts.parquet",
        n_partitions=3, event_values=VALUES,
    )  # fmt: skip
    parts = pd.read_parquet(tmp_path / "parts.parquet")
    parts = parts.set_index(["lead_id", "as_of"]).loc[list(zip(snapshots["lead_id"], snapshots["as_of"], strict=True))]
    pd.testing.assert_frame_equal(_values(parts.reset_index(drop=True)), frame)


def test_a_parquet_file_without_the_value_column_is_named(tmp_path):
    snapshots, events = hand_made()
    snapshots.to_parquet(tmp_path / "snapshots.parquet", index=False)
    events.drop(columns="amount").to_parquet(tmp_path / "events.parquet", index=False)
    with pytest.raises(LeadDataError, match=r"events\.parquet: no column 'amount' for features\.event_values"):
        behaviour_features_from_parquet(
            tmp_path / "snapshots.parquet", tmp_path / "events.parquet", tmp_path / "out.parquet", event_values=VALUES
        )


def test_numbers_written_as_text_are_read_and_bad_text_is_shown():
    snapshots, events = hand_made()
    as_text = events.assign(amount=[f"{v:g}" if v == v else "" for v in events["amount"]])
    as_text.loc[as_text["event_type"] == "page_view", "amount"] = "n/a"  # another type's text is never read
    frame = _values(behaviour_features(snapshots, events, event_values=VALUES)[0])
    pd.testing.assert_frame_equal(_values(behaviour_features(snapshots, as_text, event_values=VALUES)[0]), frame)
    as_category = as_text.assign(amount=as_text["amount"].astype("category"))
    pd.testing.assert_frame_equal(_values(behaviour_features(snapshots, as_category, event_values=VALUES)[0]), frame)
    bad = as_text.copy()
    bad.loc[1, "amount"] = "1,200"
    bad.loc[4, "amount"] = "30 EUR"
    for table in (bad, bad.assign(amount=bad["amount"].astype("category"))):
        with pytest.raises(LeadDataError) as caught:
            behaviour_features(snapshots, table, event_values=VALUES)
        message = str(caught.value)
        assert "column 'amount' of the 'purchase' events holds 2 value(s)" in message
        assert "'1,200' at 2026-01-30 00:00" in message and "'30 EUR' at 2026-02-25 00:00" in message
    infinite = events.assign(amount=events["amount"].where(events.index != 1, np.inf))
    with pytest.raises(LeadDataError, match=r"'inf' at 2026-01-30"):
        behaviour_features(snapshots, infinite, event_values=VALUES)
    with pytest.raises(LeadDataError, match=r"no column 'price' for the event values of 'purchase'"):
        behaviour_features(snapshots, events, event_values={"purchase": "price"})


def test_config_takes_one_column_or_a_list_and_refuses_key_columns():
    config = parse_pipeline({"name": "v", "features": {"event_values": {"purchase": "amount", "order": ["a", "b"]}}})
    assert config.features.event_values == {"purchase": ["amount"], "order": ["a", "b"]}
    with pytest.raises(ConfigError, match="event_values.*'timestamp' is a key column"):
        parse_pipeline({"name": "v", "features": {"event_values": {"purchase": "timestamp"}}})


@pytest.mark.parametrize(
    ("name", "value", "raises", "sentence"),
    [
        ("purchase.amount__sum_30d", "1,250", True, "Amount spent on purchases in the last 30 days: 1,250 in total"),
        ("purchase.amount__sum_30d", "0", False, "No purchase in the last 30 days"),
        ("purchase.amount__mean_7d", "42.5", True,
         "Amount spent on purchases in the last 7 days: 42.5 on average per purchase"),
        ("purchase.amount__mean_7d", None, False, "No purchase in the last 7 days"),
        ("purchase.amount__max_90d", "400", True, "Amount spent on purchases in the last 90 days: 400 at most in one purchase"),
        ("purchase.amount__days_since_last", "4.2", True, "Made a purchase 4 days ago"),
        ("purchase.amount__days_since_last", "40", False, "No purchase for 40 days"),
        ("purchase.amount__days_since_last", None, False, "Never made a purchase"),
        ("product_active_day.minutes__sum_30d", "95", True, "Minutes in the product in the last 30 days: 95 in total"),
        ("product_active_day.minutes__days_since_last", "2", True, "Used the product 2 days ago"),
        ("signup.seats__max_30d", "12", True, "Seats of 'signup' events in the last 30 days: 12 at most in one "
                                              "'signup' event with a seats"),
        ("signup.seats__sum_30d", "0", False, "No 'signup' event with a seats in the last 30 days"),
    ],
)  # fmt: skip
def test_each_value_template_reads_as_a_sentence(name, value, raises, sentence):
    event_type, column = name.split("__")[0].split(".")
    snapshots, events = hand_made()
    events = events.assign(event_type=event_type, **{column: events["amount"]})
    _, infos = behaviour_features(snapshots, events, windows=(7, 30, 90), event_values={event_type: column})
    info = next(info for info in infos if info.name == name)
    assert render(info, value, raises=raises) == sentence


def test_simulated_minutes_are_point_in_time_and_equal_a_brute_force_sum(small_sim):
    """Every training snapshot's sums and maxima equal a plain pandas filter of the events before its as_of."""
    config = parse_pipeline({
        "name": "values", "snapshots": {"every_days": 30, "horizon_days": 100},
        "features": {"windows": [30, 90], "event_values": {"product_active_day": "minutes"}},
    })  # fmt: skip
    trainset = build_trainset(config, PipelineData.from_simulation(small_sim))
    frame = trainset.frame
    assert {"product_active_day.minutes__sum_90d", "product_active_day.minutes__days_since_last"} <= set(frame)
    used = small_sim.events.loc[
        small_sim.events["event_type"] == "product_active_day", ["lead_id", "timestamp", "minutes"]
    ]
    joined = frame[["lead_id", "as_of"]].reset_index().merge(used, on="lead_id", how="left")
    for days in (30, 90):
        inside = (joined["timestamp"] < joined["as_of"]) & (
            joined["timestamp"] >= joined["as_of"] - pd.Timedelta(days=days)
        )
        picked = joined.loc[inside].groupby("index")["minutes"]
        sums = picked.sum().reindex(frame.index, fill_value=0.0)
        maxima = picked.max().reindex(frame.index)
        np.testing.assert_allclose(frame[f"product_active_day.minutes__sum_{days}d"], sums, rtol=1e-6)
        np.testing.assert_allclose(frame[f"product_active_day.minutes__max_{days}d"], maxima, rtol=1e-6)
    valued = int((frame["product_active_day.minutes__sum_90d"] > 0).sum())
    assert valued > 200, valued  # the simulator's product users: the check above is not vacuous
