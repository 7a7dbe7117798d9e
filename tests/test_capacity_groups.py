"""`mql.capacity_by`: one capacity (and one threshold) per team or owner.

Hand-made leads check the flags exactly: each lead is judged by its group's threshold, a lead without
a group by the ``default`` group's, a group training never saw by the global threshold. A simulator
run checks the point: over replayed nightly scoring runs, each group starts about its own capacity
of new MQLs a week.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import MQLConfig, parse_pipeline
from leadml.core.errors import ConfigError, LeadDataError
from leadml.data.mql_columns import GROUP_COLUMN, lead_mql_columns, mql_columns_of
from leadml.modeling.group_policy import MQLRule, fit_group_thresholds, group_capacities
from leadml.modeling.policy import NightlyScores, apply_policy


def test_each_lead_is_judged_by_its_groups_threshold():
    rule = MQLRule(threshold=0.5, group_column="owner", thresholds_by_group={"ann": 0.3, "bob": 0.7, "default": 0.4})
    leads = pd.DataFrame({"lead_id": list("abcdefg"), "owner": ["ann", "ann", "bob", "bob", None, " ", "cid"]})
    p = np.array([0.31, 0.29, 0.69, 0.71, 0.45, 0.39, 0.55])
    threshold, expected, filled = rule.thresholds(p, lead_mql_columns(leads, "owner", None))
    # ann 0.3, bob 0.7, missing and blank: default 0.4, cid (unseen): the global 0.5
    assert threshold.tolist() == [0.3, 0.3, 0.7, 0.7, 0.4, 0.4, 0.5]
    assert expected is None and filled == 0
    flags = apply_policy(p, threshold, MQLConfig().tiers)["is_mql"].tolist()
    assert flags == [True, False, False, True, True, False, True]
    assert sum(flags) == 4


def test_a_min_mql_tier_holds_each_leads_own_mqls():
    from leadml.core.config import TierConfig

    tiers = [TierConfig(name="MQL", min="mql"), TierConfig(name="nurture", min=0.2), TierConfig(name="cold")]
    scores = apply_policy(np.array([0.35, 0.35, 0.1]), np.array([0.3, 0.4, 0.05]), tiers)
    assert list(scores["tier"]) == ["MQL", "nurture", "MQL"]
    assert scores["is_mql"].tolist() == [True, False, True]


def nights(p_by_night: dict[str, list[float]], start: str = "2026-03-02") -> NightlyScores:
    """Nightly scores of leads that exist before the period (none is new), one list of p per lead."""
    rows = [(lead, pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=i), p)
            for lead, ps in p_by_night.items() for i, p in enumerate(ps)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["lead_id", "as_of", "p"])
    return NightlyScores(p=frame["p"].to_numpy(), lead_id=frame["lead_id"].to_numpy(dtype=object),
                         as_of=frame["as_of"], created_at=pd.Series(pd.Timestamp("2026-01-01", tz="UTC"),
                                                                    index=frame.index))  # fmt: skip


def test_group_thresholds_hold_each_groups_spells():
    # 7 nights = 1 week; every lead starts below and rises once to its peak on night 2
    peaks = {"a1": 0.9, "a2": 0.8, "a3": 0.7, "b1": 0.6, "b2": 0.5, "b3": 0.4}
    replay = nights({lead: [0.05, peak, peak, peak, peak, peak, peak] for lead, peak in peaks.items()})
    groups = np.array([lead[0] for lead in replay.lead_id], dtype=object)
    fitted = fit_group_thresholds(replay, groups, {"a": 2, "b": 1})
    assert fitted.by_group == {"a": 0.8, "b": 0.6}  # a: a1 and a2 start spells, b: b1 only
    assert fitted.new_per_week == {"a": 2.0, "b": 1.0}
    assert fitted.threshold == 0.7  # all leads for the sum of the capacities (3 spells): a1, a2, a3


def test_capacities_of_the_groups_found():
    by = {"capacity_by": "owner", "policy": "capacity"}
    assert group_capacities(MQLConfig(**by, capacity_per_week=10), ["b", "a"]) == {"a": 10, "b": 10}
    mapping = MQLConfig(**by, capacity_per_week={"a": 30, "default": 5})
    assert group_capacities(mapping, ["a", "b", "c"]) == {"a": 30, "b": 5, "c": 5}
    with pytest.raises(
        ConfigError, match=r"'tema_a' is not a group .*groups found: team_a, team_b.*did you mean 'team_a'"
    ):
        group_capacities(MQLConfig(**by, capacity_per_week={"tema_a": 3, "team_b": 2}), ["team_a", "team_b"])
    with pytest.raises(ConfigError, match=r"no capacity for the group\(s\) team_c .*add a 'default' key"):
        group_capacities(MQLConfig(**by, capacity_per_week={"team_a": 3, "team_b": 2}), ["team_a", "team_b", "team_c"])


@pytest.mark.parametrize(
    ("mql", "message"),
    [
        ({"policy": "capacity", "capacity_per_week": {"a": 3}}, r"give mql\.capacity_by"),
        ({"policy": "f1", "capacity_by": "owner"}, r"capacity_by needs mql\.capacity_per_week"),
        ({"policy": "capacity", "capacity_per_week": {"a": 0}, "capacity_by": "owner"}, "positive integer"),
        ({"policy": "capacity", "capacity_per_week": {}, "capacity_by": "owner"}, "is empty"),
        ({"policy": "capacity", "capacity_per_week": 3, "capacity_by_": "owner"}, "did you mean capacity_by"),
    ],
)
def test_config_refuses_bad_group_settings(mql, message):
    with pytest.raises(ConfigError, match=message):
        parse_pipeline({"name": "p", "mql": mql})


def test_a_missing_group_column_names_the_key():
    leads = pd.DataFrame({"lead_id": ["a"], "team": ["x"]})
    with pytest.raises(
        LeadDataError, match=r"mql\.capacity_by names the column 'owner'.*columns present: lead_id, team"
    ):
        mql_columns_of(leads, ["a"], "owner", None)
    groups = mql_columns_of(leads, ["a", "zz"], "team", None)[GROUP_COLUMN]
    assert groups.iloc[0] == "x" and groups.isna().iloc[1]  # a lead the table lacks: no group


CAPACITY = {"corporate": 15, "free": 5}
NIGHTS = pd.date_range("2026-06-01", "2026-06-15", freq="D", tz="UTC")


def new_mqls_a_week(runs: list[pd.DataFrame], group: pd.Series) -> dict[str, float]:
    """Per group, MQLs of each night that were not MQL the night before, a week."""
    started: dict[str, int] = {}
    for before, after in zip(runs[:-1], runs[1:], strict=True):
        was = before.set_index("lead_id")["is_mql"].reindex(after["lead_id"]).fillna(False).to_numpy(dtype=bool)
        new = after.loc[after["is_mql"].to_numpy(dtype=bool) & ~was, "lead_id"]
        for name, count in group.reindex(new).value_counts().items():
            started[str(name)] = started.get(str(name), 0) + int(count)
    weeks = (len(runs) - 1) / 7
    return {name: count / weeks for name, count in sorted(started.items())}


@pytest.mark.slow
def test_two_groups_start_about_their_own_capacity_a_week(tmp_path):
    from leadml.data.sources import load_pipeline_data
    from leadml.jobs.score import score_batch
    from leadml.jobs.train import run_training
    from leadml.modeling.registry import scoring_model

    config = parse_pipeline({
        "name": "groups", "data": {"simulator": {"leads": 8000, "seed": 7, "base_rate": 0.08}},
        "snapshots": {"every_days": 30, "horizon_days": 100},
        "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 80}},
        "mql": {"policy": "capacity", "capacity_by": "email_domain_kind", "capacity_per_week": CAPACITY},
        "history": {"enabled": False},
    })  # fmt: skip
    run = run_training(config, log=False, n_boot=10)
    found = run.result.thresholds[run.result.chosen]
    assert found.by_group is not None and set(found.by_group) == set(CAPACITY)
    assert found.new_per_week_by_group is not None
    for group, capacity in CAPACITY.items():  # in the replay of the validation period: at most, and close
        assert 0.7 * capacity <= found.new_per_week_by_group[group] <= capacity, found.new_per_week_by_group

    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    assert scoring.thresholds_by_group == found.by_group
    runs = []
    for night in NIGHTS:
        out = tmp_path / f"scores-{night:%m%d}.parquet"
        score_batch(config, night, out, model_uri=scoring, reasons=False, drift=False, progress=False)
        runs.append(pd.read_parquet(out, columns=["lead_id", "is_mql", "probability"]))
    leads = load_pipeline_data(config.data).leads
    group = leads.set_index("lead_id")["email_domain_kind"].astype(str)
    measured = new_mqls_a_week(runs, group)
    # each night's flags are its group's threshold exactly
    last = runs[-1].assign(group=group.reindex(runs[-1]["lead_id"]).to_numpy())
    expected = last["probability"].to_numpy() >= last["group"].map(found.by_group).to_numpy(dtype=float)
    assert (last["is_mql"].to_numpy() == expected).all()
    print("replayed validation period, new MQLs a week by group:", found.new_per_week_by_group, found.by_group)
    print("scored fortnight, new MQLs a week by group (capacity corporate 15, free 5):", measured)
    pyfunc_flags_as_the_job(config, scoring, out, NIGHTS[-1])
    # every MQL is explained, those of the group with the lower threshold too (reasons for the MQLs only)
    explained = tmp_path / "explained.parquet"
    score_batch(config, NIGHTS[-1], explained, model_uri=scoring, reasons="mql", drift=False, progress=False)
    got = pd.read_parquet(explained, columns=["lead_id", "is_mql", "probability", "reason_1"])
    low = min(found.by_group.values())
    assert (got["probability"][got["is_mql"]] < max(found.by_group.values())).any()  # MQLs below the higher bar
    assert got.loc[got["is_mql"], "reason_1"].notna().all()
    assert got.loc[~got["is_mql"], "reason_1"].isna().all() and (got["probability"] >= low).sum() > got["is_mql"].sum()
    for name, capacity in CAPACITY.items():  # a later fortnight than the one replayed: the band is wider
        assert 0.5 * capacity <= measured.get(name, 0.0) <= 1.5 * capacity, measured


def pyfunc_flags_as_the_job(config, scoring, out, night) -> None:
    """The pyfunc's two inputs give the job's flags: lead rows (each row's own group) and a feature
    frame carrying the group under ``mql__group``."""
    from leadml.data.sources import load_pipeline_data
    from leadml.modeling.lead_rows import build_lead_rows
    from leadml.modeling.registry import LeadmlPyfunc

    job = pd.read_parquet(out).head(400)
    data = load_pipeline_data(config.data, need_outcomes=False)
    mine = data.leads["lead_id"].isin(job["lead_id"])
    rows = build_lead_rows(data.leads[mine], data.events[data.events["lead_id"].isin(job["lead_id"])])
    got = LeadmlPyfunc(scoring).predict(None, rows, {"input": "leads", "as_of": str(night)})
    assert got["is_mql"].tolist() == job.set_index("lead_id").loc[got["lead_id"], "is_mql"].tolist()
    snapshots = job[["lead_id", "as_of"]]
    features = scoring.builder.transform(snapshots, data.leads[mine], data.events)[scoring.feature_names]
    group = data.leads.set_index("lead_id")["email_domain_kind"].astype(str).reindex(job["lead_id"]).to_numpy()
    scored = LeadmlPyfunc(scoring).predict(None, features.assign(mql__group=group))
    assert scored["is_mql"].tolist() == job["is_mql"].tolist()
    plain = LeadmlPyfunc(scoring).predict(None, features)  # no group given: the global threshold for all
    assert (plain["is_mql"] == (plain["probability"] >= scoring.mql_rule.threshold)).all()


def test_the_sla_tables_plan_is_the_sum_over_the_groups():
    from leadml.jobs.handoff import planned_per_week

    def plan(capacity) -> int:
        return planned_per_week(parse_pipeline({
            "name": "plan", "data": {"simulator": {"leads": 300, "seed": 1}},
            "mql": {"policy": "capacity", "capacity_by": "email_domain_kind", "capacity_per_week": capacity},
        }))  # fmt: skip

    assert plan({"corporate": 15, "free": 5}) == 20  # listed groups only: no data read
    assert plan(7) == 14  # the same for each of the 2 groups (corporate, free)
    assert plan({"corporate": 15, "default": 4}) == 19  # free takes the default
    assert planned_per_week(parse_pipeline({"name": "p", "mql": {"policy": "capacity", "capacity_per_week": 9}})) == 9
