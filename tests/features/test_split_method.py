"""Issue 22 item 4: ``split.method`` is honoured for every source (hand-made leads, exact counts)."""

from __future__ import annotations

import pandas as pd
import pytest

from leadml.core.config import parse_pipeline
from leadml.core.errors import ConfigError
from leadml.data import contract
from leadml.data.sources import PipelineData
from leadml.features.build import build_trainset, make_snapshots, split_method

START = pd.Timestamp("2025-01-01", tz="UTC")
WON = [0, 3, 6, 9, 12]  # five of twenty leads win 40 days after they came in


@pytest.fixture(scope="module")
def tables() -> PipelineData:
    ids = [f"L{i:02d}" for i in range(20)]
    leads = pd.DataFrame({"lead_id": ids, "created_at": [START + pd.Timedelta(days=3 * i) for i in range(20)],
                          "source": ["web", "event"] * 10})  # fmt: skip
    outcomes = pd.DataFrame({"lead_id": [ids[i] for i in WON], "outcome": "won",
                             "closed_at": [START + pd.Timedelta(days=3 * i + 40) for i in WON]})  # fmt: skip
    leads = contract.validate_leads(leads, source="leads")
    outcomes = contract.validate_outcomes(outcomes, source="outcomes", leads=leads)
    return PipelineData(leads=leads, outcomes=outcomes, data_end=pd.Timestamp("2025-12-31", tz="UTC"))


def _config(**split):
    return parse_pipeline({"name": "t", "snapshots": {"every_days": 30, "max_per_lead": 3, "horizon_days": 60},
                           "split": {"test_fraction": 0.2, "validation_fraction": 0.25, **split}})  # fmt: skip


def test_stratified_on_tables_splits_the_leads_and_each_lead_stays_in_one_part(tables):
    snapshots = make_snapshots(_config(method="stratified"), tables)
    labelled = snapshots.loc[snapshots["split"] != "censored"]
    per_lead = labelled.groupby("lead_id")["split"].nunique()
    assert per_lead.max() == 1 and len(per_lead) == 20  # no lead straddles train / validation / test
    parts = labelled.groupby("split").agg(leads=("lead_id", "nunique"), rows=("lead_id", "size"))
    # 20 leads: 4 (20 %) test, 4 (25 % of the other 16) validation, 12 train; one winner of five in test
    assert parts["leads"].to_dict() == {"test": 4, "train": 12, "validation": 4}
    assert parts["rows"].to_dict() == {"test": 7, "train": 22, "validation": 8}
    winners = labelled.loc[labelled["converted"] == 1].groupby("split")["lead_id"].nunique().to_dict()
    assert winners == {"test": 1, "train": 3, "validation": 1}
    assert (snapshots["split"] == "censored").sum() == 15 and snapshots.loc[
        snapshots["split"] == "censored", "converted"].isna().all()  # fmt: skip
    again = make_snapshots(_config(method="stratified"), tables)
    assert again["split"].tolist() == snapshots["split"].tolist()  # seeded
    other = make_snapshots(_config(method="stratified", seed=3), tables)
    assert other["split"].tolist() != snapshots["split"].tolist()


def test_the_time_split_stays_the_default_of_tables(tables):
    default = make_snapshots(_config(), tables)
    by_time = make_snapshots(_config(method="time"), tables)
    assert default["split"].tolist() == by_time["split"].tolist()
    assert split_method(_config(), tables) == "time"
    test = by_time.loc[by_time["split"] == "test", "as_of"]
    train = by_time.loc[by_time["split"] == "train", "as_of"]
    assert train.max() < test.min()  # later snapshots test, unlike the stratified split


def test_stratified_tables_train_end_to_end_with_lead_weights(tables):
    trainset = build_trainset(_config(method="stratified"), tables)
    frame = trainset.frame
    assert frame.groupby("split")["weight"].mean().drop("censored").round(12).eq(1.0).all()
    assert (frame["split"] == "train").sum() == 22


def test_time_on_flat_data_is_a_config_error_naming_the_key(tmp_path):
    raw = {"name": "flat", "data": {"flat": "leads.csv", "label": "converted"}, "split": {"method": "time"}}
    with pytest.raises(ConfigError, match=r"^<pipeline>: split.method: 'time' needs snapshots in time, and flat data"):
        parse_pipeline(raw)
    flat = pd.DataFrame({"lead_id": [f"L{i}" for i in range(40)], "country": ["FR", "DE"] * 20,
                         "converted": [1.0, 0.0, 0.0, 0.0] * 10})  # fmt: skip
    config = parse_pipeline({"name": "given", "split": {"method": "time"}})  # flat data handed in directly
    with pytest.raises(ConfigError, match=r"^given: split.method: 'time' needs snapshots in time.*write stratified"):
        build_trainset(config, PipelineData(flat=flat))
    counts = build_trainset(parse_pipeline({"name": "given"}), PipelineData(flat=flat)).frame["split"].value_counts()
    assert counts.to_dict() == {"train": 25, "test": 8, "validation": 7}  # flat data: stratified, as before
