"""`mql.policy: value`: a lead is an MQL when p x its expected deal value - the cost of a touch >= 0.

Hand-made leads check the flags and the expected values exactly (a missing value takes the training
median); bad values are refused with the file, the column and example rows; a simulator run (the
simulator's ``budget`` is the deal value) checks the scoring job end to end, and the capacity cap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import MQLConfig, parse_pipeline
from leadml.core.errors import ConfigError, LeadDataError
from leadml.data.mql_columns import lead_mql_columns
from leadml.modeling.group_policy import MQLRule, rule_threshold, training_value_median
from leadml.modeling.policy import NOBODY, apply_policy


def test_value_rule_flags_and_expected_values():
    leads = pd.DataFrame({"lead_id": list("abcde"), "deal": [1000, 200, 0, None, 500]})
    rule = MQLRule(value_column="deal", touch_cost=100.0, value_median=training_value_median([300.0, 400, 500]))
    p = np.array([0.11, 0.4, 0.9, 0.3, 0.19])
    threshold, expected, filled = rule.thresholds(p, lead_mql_columns(leads, None, "deal"))
    assert rule.value_median == 400.0 and filled == 1  # d has no value: the median, 400
    assert threshold.tolist() == [0.1, 0.5, NOBODY, 0.25, 0.2]  # touch_cost / value; a value of 0 never pays
    assert np.allclose(expected, [10.0, -20.0, -100.0, 20.0, -5.0])  # p x value - 100
    flags = apply_policy(p, threshold, MQLConfig().tiers)["is_mql"].tolist()
    assert flags == [True, False, False, True, False]
    assert flags == (expected >= 0).tolist()


def test_value_capped_by_a_capacity_takes_the_higher_threshold():
    rule = MQLRule(threshold=0.3, value_column="deal", touch_cost=10.0, value_median=100.0)
    columns = pd.DataFrame({"mql__value": [1000.0, 1000.0, 20.0]})
    threshold, _, _ = rule.thresholds(np.array([0.25, 0.35, 0.45]), columns)
    assert threshold.tolist() == [0.3, 0.3, 0.5]  # max(capacity 0.3, 10 / value)


def test_free_touches_make_every_lead_worth_it():
    rule = MQLRule(value_column="deal", touch_cost=0.0, value_median=None)
    threshold, expected, filled = rule.thresholds(np.array([0.0, 0.2]), pd.DataFrame({"mql__value": [0.0, np.nan]}))
    assert threshold.tolist() == [0.0, 0.0] and expected.tolist() == [0.0, 0.0] and filled == 1


def test_validation_threshold_is_the_one_of_a_lead_of_median_value():
    mql = MQLConfig(policy="value", value_column="deal", touch_cost=50.0)
    columns = pd.DataFrame({"mql__value": [100.0, 1000.0, 100.0, np.nan]})
    found, rule = rule_threshold(mql, np.array([0.6, 0.06, 0.4, 0.3]), columns, y=np.array([1, 1, 0, 0]),
                                 value_median=200.0)  # fmt: skip
    assert found.mql_count == 3  # 0.6 >= 0.5, 0.06 >= 0.05, 0.3 >= 50 / 200; not 0.4 < 0.5
    assert found.threshold == 0.25 and rule.threshold == 0.0  # 50 / 200 shown; no capacity in the rule
    assert found.precision == pytest.approx(2 / 3) and found.recall == 1.0


@pytest.mark.parametrize(
    ("mql", "message"),
    [
        ({"policy": "value", "value_column": "deal"}, r"needs mql\.value_column .* and mql\.touch_cost"),
        ({"policy": "value", "touch_cost": 5}, r"needs mql\.value_column"),
        ({"policy": "f1", "value_column": "deal"}, r"belong to mql\.policy: value"),
        ({"policy": "value", "value_column": "deal", "touch_cost": -1}, r"touch_cost"),
    ],
)
def test_config_refuses_bad_value_settings(mql, message):
    with pytest.raises(ConfigError, match=message):
        parse_pipeline({"name": "p", "mql": mql})


def test_bad_values_are_refused_with_the_column_and_example_rows():
    leads = pd.DataFrame({"lead_id": ["a", "b", "c", "d"], "deal": ["100", "lots", "n/a?", None]})
    with pytest.raises(LeadDataError, match=r"crm\.csv: column 'deal' .* is not a number in 2 row\(s\), e\.g\. lead b: "
                       r"'lots', lead c: 'n/a\?'"):  # fmt: skip
        lead_mql_columns(leads, None, "deal", "crm.csv")
    negative = pd.DataFrame({"lead_id": ["a", "b"], "deal": [10.0, -5.0]})
    with pytest.raises(LeadDataError, match=r"column 'deal' .* is negative in 1 row\(s\), e\.g\. lead b: -5\.0"):
        lead_mql_columns(negative, None, "deal", "crm.csv")
    with pytest.raises(LeadDataError, match=r"mql\.value_column names the column 'value'"):
        lead_mql_columns(negative, None, "value", "crm.csv")
    assert lead_mql_columns(leads.iloc[[0, 3]], None, "deal")["mql__value"].tolist()[0] == 100.0


def simulator(mql: dict) -> object:
    return parse_pipeline({
        "name": "value", "data": {"simulator": {"leads": 6000, "seed": 7, "base_rate": 0.08}},
        "snapshots": {"every_days": 30, "horizon_days": 100},
        "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 60}},
        "mql": mql, "history": {"enabled": False},
    })  # fmt: skip


@pytest.mark.slow
def test_value_policy_on_the_simulator(tmp_path):
    from leadml.data.sources import load_pipeline_data
    from leadml.jobs.score import score_batch
    from leadml.jobs.train import run_training
    from leadml.modeling.registry import scoring_model

    config = simulator({"policy": "value", "value_column": "budget", "touch_cost": 2000})
    run = run_training(config, log=False, n_boot=10)
    rule = run.result.mql_rule
    assert rule is not None and rule.value_column == "budget" and rule.touch_cost == 2000.0
    leads = load_pipeline_data(config.data).leads
    assert rule.value_median is not None and leads["budget"].min() <= rule.value_median <= leads["budget"].max()
    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    out = tmp_path / "scores.parquet"
    summary = score_batch(config, "2026-06-15", out, model_uri=scoring, reasons=False, drift=False, progress=False)
    scores = pd.read_parquet(out)
    assert list(scores.columns[scores.columns.get_loc("is_mql") : scores.columns.get_loc("is_mql") + 2]) == [
        "is_mql", "expected_value"]  # fmt: skip
    value = leads.set_index("lead_id")["budget"].reindex(scores["lead_id"]).to_numpy(dtype=float)
    filled = np.where(np.isnan(value), rule.value_median, value)
    assert np.allclose(scores["expected_value"], scores["probability"] * filled - 2000.0)
    # the flag is the rule exactly: p >= touch_cost / value
    assert (scores["is_mql"].to_numpy() == (scores["probability"].to_numpy() >= 2000.0 / filled)).all()
    assert 0 < scores["is_mql"].sum() < len(scores)
    missing = int(np.isnan(value).sum())
    assert any(f"{missing:,} leads have no budget" in note for note in summary.notes), summary.notes

    capped = simulator({"policy": "value", "value_column": "budget", "touch_cost": 2000, "capacity_per_week": 5})
    run = run_training(capped, log=False, n_boot=10)
    found = run.result.thresholds[run.result.chosen]
    assert found.new_per_week is not None and found.new_per_week <= 5
    scoring = scoring_model(run.result, run.trainset, capped.mql.tiers)
    score_batch(capped, "2026-06-15", out, model_uri=scoring, reasons=False, drift=False, progress=False)
    fewer = pd.read_parquet(out)
    print(f"value: {scores['is_mql'].sum()} of {len(scores)} MQL; capped at 5 a week: {fewer['is_mql'].sum()} "
          f"(replay {found.new_per_week:.1f} new a week)")  # fmt: skip
    assert fewer["is_mql"].sum() < scores["is_mql"].sum()
    assert (fewer.loc[fewer["is_mql"], "expected_value"] >= 0).all()  # the cap only removes MQLs


def test_spark_refuses_a_threshold_per_lead(tmp_path):
    from leadml.jobs.spark import refuse_mql_rule

    with pytest.raises(ConfigError, match=r"mql\.policy: value gives each lead its own MQL threshold.*--engine pandas"):
        refuse_mql_rule(simulator({"policy": "value", "value_column": "budget", "touch_cost": 1}))
    by_owner = parse_pipeline(
        {"name": "o", "mql": {"policy": "capacity", "capacity_by": "owner", "capacity_per_week": 3}}
    )
    with pytest.raises(ConfigError, match=r"mql\.capacity_by gives each lead"):
        refuse_mql_rule(by_owner)
