"""The hand-off over nightly runs: one deadline per MQL spell, overdue leads, breaches counted once, stuck."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.explain.trends import stuck_mqls
from leadml.jobs.handoff import (
    acceptance,
    current_handoff,
    handoff_arrays,
    handoff_state,
    previous_spells_in,
    run_counts,
    sla_weeks,
    spell_rows,
    utc_array,
)
from leadml.jobs.history import load_history, record_scores

HOUR = pd.Timedelta(hours=1)
DAYS = pd.date_range("2026-06-01", periods=6, freq="D", tz="UTC")  # a Monday to a Saturday


def day(n: int) -> pd.Timestamp:
    """Run ``n`` (1 to 6) of the week."""
    return DAYS[n - 1]


# which runs each lead is an MQL in (A never touched, B accepted, C leaves and comes back, E engages,
# F closed lost after run 2, D never an MQL)
MQL_RUNS = {"A": range(1, 7), "B": range(1, 7), "C": (1, 2, 4, 5, 6), "D": (), "E": range(1, 7), "F": (1, 2)}
OUTCOMES = pd.DataFrame({
    "lead_id": ["B", "F"], "outcome": [-1, 0], "closed_at": [pd.NaT, day(2) + 18 * HOUR],
    "sql_at": [day(2) + 12 * HOUR, pd.NaT],
})  # fmt: skip


def nightly_history(store) -> pd.DataFrame:
    """Six nightly runs as the scoring job makes them: each reads the spells left open before it."""
    known = acceptance(OUTCOMES)
    for n in range(1, 7):
        as_of = day(n)
        leads = [lead for lead in MQL_RUNS if lead != "F" or n <= 2]  # F is closed after run 2
        is_mql = [n in MQL_RUNS[lead] for lead in leads]
        due = [as_of + 48 * HOUR if mql else pd.NaT for mql in is_mql]  # the MQL tier: 48 h; nurture: none
        sql_at = known["sql_at"].where(known["sql_at"] < as_of).dropna()  # what the job knows at as_of
        state = handoff_state(leads, is_mql, due, as_of, spells=previous_spells_in(store, as_of), accepted=sql_at)
        engagement = [40 + (4 * n if lead == "E" else 0) for lead in leads]
        record_scores(pd.DataFrame({
            "lead_id": leads, "as_of": as_of, "score": [70 if m else 20 for m in is_mql],
            "tier": ["MQL" if m else "nurture" for m in is_mql], "is_mql": is_mql,
            "engagement_score": pd.array(engagement, dtype="Int16"), **state,
        }), store)  # fmt: skip
    return load_history(store)


@pytest.fixture
def history(tmp_path) -> pd.DataFrame:
    return nightly_history(tmp_path / "history")


def lead(history: pd.DataFrame, lead_id: str) -> pd.DataFrame:
    return history[history["lead_id"] == lead_id].reset_index(drop=True)


def test_an_mql_nobody_touches_keeps_its_deadline_is_overdue_after_it_and_is_one_breach(history):
    a = lead(history, "A")
    assert (a["mql_since"] == day(1)).all()
    assert (a["due_at"] == day(1) + 48 * HOUR).all()  # fixed, not as_of + 48 h every night
    # overdue when as_of > due_at: run 3 is exactly at the deadline, runs 4-6 are past it
    assert a["overdue"].tolist() == [False, False, False, True, True, True]
    rows = spell_rows(history)
    assert rows.loc[rows["lead_id"] == "A", "breach"].sum() == 1
    assert rows.loc[rows["breach"], "as_of"].tolist() == [day(4), day(4)]  # A and E, once each


def test_a_lead_accepted_before_its_deadline_is_never_overdue(history):
    b = lead(history, "B")
    assert not b["overdue"].any()
    assert (b["due_at"] == day(3)).all()
    assert not spell_rows(history, acceptance(OUTCOMES)).query("lead_id == 'B'")["overdue"].any()


def test_a_lead_that_leaves_the_mqls_and_comes_back_starts_a_new_spell(history):
    c = lead(history, "C")
    assert c["mql_since"].tolist() == [day(1), day(1), pd.NaT, day(4), day(4), day(4)]
    assert c["due_at"].tolist()[3:] == [day(6)] * 3
    assert pd.isna(c["due_at"].iloc[2]) and not c["overdue"].any()  # run 6 is at the new deadline, not past it
    assert spell_rows(history).query("lead_id == 'C'")["spell"].tolist() == [1, 1, 0, 2, 2, 2]


def test_run_counts_and_the_weekly_table_have_exact_counts(history):
    counts = run_counts(history, acceptance(OUTCOMES)).set_index("as_of")
    assert counts["new"].tolist() == [5, 0, 0, 1, 0, 0]  # A B C E F, then C again
    assert counts["open"].tolist() == [5, 5, 3, 4, 4, 4]
    assert counts["overdue"].tolist() == [0, 0, 0, 2, 2, 2]
    assert counts["breaches"].tolist() == [0, 0, 0, 2, 0, 0]
    assert counts["accepted"].tolist() == [0, 0, 1, 0, 0, 0]  # B's sql_at (run 2 + 12 h) is seen by run 3
    assert counts["rejected"].tolist() == [0, 0, 1, 0, 0, 0]  # F closed lost without SQL
    assert counts.loc[day(3), "median_hours"] == 36
    weeks = sla_weeks(history, acceptance(OUTCOMES))
    assert weeks.to_dict("records") == [{
        "week": day(1), "runs": 6, "new": 6, "accepted": 1, "rejected": 1, "overdue": 2, "breaches": 2,
        "median_hours": 36.0,
    }]  # fmt: skip
    assert sla_weeks(history, as_of=day(3))[["breaches", "overdue"]].values.tolist() == [[0, 0]]


def test_an_older_history_without_mql_since_gets_the_same_deadlines(history):
    old = history.drop(columns=["mql_since", "overdue"])
    old["due_at"] = old["as_of"] + 48 * HOUR  # as leadml wrote it before: reset every run
    old.loc[~old["is_mql"], "due_at"] = pd.NaT
    rows = spell_rows(old, acceptance(OUTCOMES))
    assert rows["due_at"].tolist() == spell_rows(history)["due_at"].tolist()
    assert rows["breach"].sum() == 2


def test_the_current_mqls_show_since_when_they_wait_and_which_are_overdue(history):
    now = current_handoff(history, accepted=acceptance(OUTCOMES))
    assert now["lead_id"].tolist() == ["A", "E", "B", "C"]
    assert now["overdue"].tolist() == [True, True, False, False]
    assert now["mql_since"].tolist() == [day(1), day(1), day(1), day(4)]


def test_stuck_is_waiting_without_acceptance_and_without_new_engagement(history):
    accepted = acceptance(OUTCOMES)["sql_at"]
    stuck = stuck_mqls(history, days=3, points=2, accepted=accepted)
    assert stuck["lead_id"].tolist() == ["A"]  # B accepted, E engaged (+20), C back only 2 days ago
    assert stuck["days_waiting"].tolist() == [5.0] and stuck["measure"].tolist() == ["engagement_score"]
    assert stuck["overdue"].tolist() == [True]
    assert stuck_mqls(history, days=3, points=2)["lead_id"].tolist() == ["A", "B"]  # not knowing B's sql_at
    assert stuck_mqls(history, days=3, points=20, accepted=accepted)["lead_id"].tolist() == ["A", "E"]
    assert stuck_mqls(history, days=5, points=2, accepted=accepted).empty  # 5 days is not more than 5
    assert stuck_mqls(history, day(3), days=1, points=2, accepted=accepted)["lead_id"].tolist() == ["A"]


# -- done when: ten nightly runs of the demo simulator ------------------------------------------
NIGHTS = pd.date_range("2026-03-02", periods=10, freq="D", tz="UTC")
TIERS = [{"name": "MQL", "min": "mql", "action": "Call", "within_hours": 48},
         {"name": "nurture", "min": 0.05, "action": "Send the case-study e-mail series", "within_hours": 168},
         {"name": "unqualified", "action": "Keep in the newsletter"}]  # fmt: skip


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    """A LightGBM model on 3,000 simulated leads, scoring the open leads every night for ten nights."""
    from leadml.core.config import parse_pipeline
    from leadml.jobs.score import ScoreOptions, score_batch
    from leadml.jobs.train import run_training
    from leadml.modeling.registry import scoring_model

    folder = tmp_path_factory.mktemp("nightly")
    config = parse_pipeline({
        "name": "nightly", "data": {"simulator": {"leads": 3000, "seed": 5}},
        "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 40}},
        "mql": {"tiers": TIERS}, "history": {"path": str(folder / "history")},
    })  # fmt: skip
    run = run_training(config, log=False, n_boot=10)
    model = scoring_model(run.result, run.trainset, config.mql.tiers)
    for night in NIGHTS:
        score_batch(config, night, folder / f"scores-{night:%m%d}.parquet", ScoreOptions(reasons=False, drift=False,
                    progress=False), model_uri=model)  # fmt: skip
    return config, folder


def test_an_mql_sales_never_touches_becomes_overdue_after_its_sla_and_is_one_breach(nightly, tmp_path, capsys):
    import yaml

    from leadml.cli.app import main
    from leadml.data.simulate import simulate

    config, folder = nightly
    history = load_history(folder / "history")
    assert history["as_of"].drop_duplicates().tolist() == list(NIGHTS)
    outcomes = acceptance(simulate(3000, seed=5).outcomes, NIGHTS[-1])
    untouched = history.groupby("lead_id")["is_mql"].agg(["all", "size"])
    untouched = untouched[untouched["all"] & (untouched["size"] == len(NIGHTS))].index
    untouched = [i for i in untouched if pd.isna(outcomes["sql_at"].get(i, pd.NaT))]
    assert untouched, "no lead was an MQL all ten nights without sales accepting it"
    one = lead(history, untouched[0])
    assert (one["mql_since"] == NIGHTS[0]).all() and (one["due_at"] == NIGHTS[0] + 48 * HOUR).all()
    assert one["overdue"].tolist() == [False] * 3 + [True] * 7  # night 3 is at the deadline, night 4 past it
    rows = spell_rows(history, outcomes)
    assert rows.loc[rows["lead_id"] == untouched[0], "breach"].tolist() == [False] * 3 + [True] + [False] * 6
    spells_overdue = rows[rows["overdue"]].drop_duplicates(["lead_id", "spell"])
    assert rows["breach"].sum() == len(spells_overdue) >= len(untouched)  # once per spell
    scores = pd.read_parquet(folder / f"scores-{NIGHTS[-1]:%m%d}.parquet")  # the scores file says so too
    assert bool(scores.set_index("lead_id").loc[untouched[0], "overdue"])

    path = tmp_path / "nightly.yaml"
    path.write_text(yaml.safe_dump(config.resolved_dict()))
    capsys.readouterr()
    assert main(["sla", str(path), "--store", str(folder / "history")]) == 0
    printed = capsys.readouterr().out
    weeks = sla_weeks(history, outcomes)
    assert weeks["breaches"].sum() == rows["breach"].sum()
    assert "breaches" in printed and f"{weeks['breaches'].iloc[0]:,}" in printed
    assert main(["sla", str(path), "--store", str(folder / "history"), "--as-of", "2026-03-04"]) == 0
    assert "MQLs waiting now" in capsys.readouterr().out
    assert main(["history", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "hand-off per run" in printed and untouched[0] in printed or "overdue" in printed
    assert main(["sla", str(path), "--store", str(tmp_path / "none")]) == 1
    assert "no score history" in capsys.readouterr().err
    assert main(["sla"]) == 2


def test_the_funnel_as_of_a_day_lists_the_stuck_mqls_of_the_history(nightly, tmp_path, capsys):
    import yaml

    from leadml.cli.app import main

    config, folder = nightly
    path = tmp_path / "nightly.yaml"
    path.write_text(yaml.safe_dump(config.resolved_dict()))
    out = tmp_path / "funnel.html"
    code = main(["funnel", str(path), "--out", str(out), "--as-of", "2026-03-11", "--stuck-days", "5"])
    assert code == 0, capsys.readouterr().err
    from leadml.data.simulate import simulate

    accepted = acceptance(simulate(3000, seed=5).outcomes, "2026-03-11")["sql_at"]
    history = load_history(folder / "history")
    expected = stuck_mqls(history, "2026-03-11", days=5, points=config.history.stuck_points, accepted=accepted)
    assert len(expected) < len(stuck_mqls(history, "2026-03-11", days=5, points=config.history.stuck_points))
    page = out.read_text()
    assert "(score history)" in page and f"for more than 5 days ({len(expected)})" in page
    assert all(lead_id in page for lead_id in expected["lead_id"])
    assert main(["funnel", str(path), "--out", str(out), "--as-of", "not a day"]) == 1


def test_the_weekly_table_shows_the_planned_capacity_beside_the_new_mqls(nightly):
    from leadml.jobs.handoff import sla_report

    config, folder = nightly
    planned = config.with_overrides({"mql.policy": "capacity", "mql.capacity_per_week": 30})
    weeks = sla_report(planned, folder / "history").weeks
    assert list(weeks.columns[:4]) == ["week", "runs", "new", "planned"]
    assert (weeks["planned"] == 30).all()
    assert "planned" not in sla_report(config, folder / "history").weeks.columns  # the f1 policy plans no count


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
def test_utc_array_is_the_array_pandas_makes_and_keeps_its_own_values(unit):
    """``utc_array`` builds the UTC array without pandas' conversion of a sequence: the same array
    (dtype, nanoseconds, NaT) as ``pd.array`` for any input, never sharing the caller's values."""
    rng = np.random.default_rng(4)
    values = rng.integers(-(10**9), 10**9, 40).astype(f"datetime64[{unit}]")
    values[::7] = np.datetime64("NaT")
    inputs = [values, values[::3], values[:1], values[:0], list(values[:5]), np.full(3, np.datetime64("NaT", "ns"))]
    for given in inputs:
        made = utc_array(given)
        expected = pd.array(np.asarray(given, dtype="datetime64[ns]"), dtype=pd.DatetimeTZDtype("ns", "UTC"))
        pd.testing.assert_extension_array_equal(made, expected)
        assert np.array_equal(made.asi8, expected.asi8)
        if isinstance(given, np.ndarray) and len(given):
            assert not np.shares_memory(made.asi8, given)
    frame = pd.DataFrame({"due_at": utc_array(values)})  # a frame's column, as the decision columns make it
    assert str(frame["due_at"].dtype) == "datetime64[ns, UTC]"


def test_a_run_without_spells_or_acceptance_hands_off_as_one_with_them_all_empty():
    """Without earlier spells or acceptance (a served lead, a first run) the hand-off takes a shortcut:
    it equals the general path given spells and acceptance that say nothing (all NaT), to the bit."""
    rng = np.random.default_rng(6)
    as_of = pd.Timestamp("2026-06-03 10:30", tz="UTC")
    n = 200
    ids = [f"lead{i}" for i in range(n)]
    due = (as_of + pd.to_timedelta(rng.integers(-48, 48, n), unit="h")).to_numpy(dtype="datetime64[ns]")
    due[::9] = np.datetime64("NaT")
    is_mql = rng.random(n) < 0.6
    nothing = pd.Series(pd.NaT, index=ids, dtype="datetime64[ns, UTC]")
    for rows in [slice(None), *[slice(i, i + 1) for i in range(0, n, 7)], slice(3, 11), slice(0, 0)]:
        short = handoff_arrays(ids[rows], is_mql[rows], due[rows], as_of)
        general = handoff_arrays(ids[rows], is_mql[rows], due[rows], as_of, spells=nothing, accepted=nothing)
        for ours, theirs in zip(short, general, strict=True):
            assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes()
    assert short[2].dtype == bool and handoff_arrays(ids, is_mql, due, as_of)[2].any()
