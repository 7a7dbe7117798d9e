"""The simulator: deterministic, contract-valid, realistic, and with the promised true structure."""

from __future__ import annotations

import doctest
import re
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest

import leadml.data.simulate.world as simulate_module
from leadml.core.errors import ConfigError
from leadml.data.contract import validate_events, validate_leads, validate_outcomes
from leadml.data.simulate import TABLES, TRUE_DRIVERS, simulate, write_simulation

N_LEADS, SEED, CHUNK = 3000, 11, 1000
DAY = pd.Timedelta(days=1)

EVENT_TYPES = {
    "page_view", "email_open", "email_click", "form_submit", "download", "webinar_register",
    "webinar_attend", "chat_message", "trial_signup", "product_active_day", "community_join",
    "demo_request", "unsubscribe", "ad_click", "review_comment",
}  # fmt: skip
ATTRIBUTE_VALUES = {
    "page": {"blog", "pricing", "product", "docs", "cases", "careers", "delivery"},
    "campaign": {"welcome", "intro_lesson", "newsletter", "case_study", "final_offer", "trial_ad"},
    "form": {"contact", "newsletter", "purchase"},
    "asset": {"checklist", "whitepaper", "case_study"},
}
TITLE_PATTERNS = {
    "student": r"student|candidate|intern",
    "specialist": r"specialist|analyst|coordinator|engineer|representative",
    "manager": r"manager|team lead",
    "director": r"director|head of",
    "vp": r"\bvp\b|vice president|svp",
    "c_level": r"^c[a-z]o$|chief",
    "owner": r"owner|founder|partner",
}
DECISION_MAKERS = ["director", "vp", "c_level", "owner"]


@pytest.fixture(scope="module")
def sim():
    return simulate(N_LEADS, seed=SEED, chunk_size=CHUNK)


@pytest.fixture(scope="module")
def lifetimes(sim):
    """Events with the lead's age (days) at the event and the lead's interest trend."""
    events = sim.events.merge(sim.leads[["lead_id", "created_at"]], on="lead_id")
    events["age"] = (events["timestamp"] - events["created_at"]) / DAY
    return events.merge(sim.truth[["lead_id", "interest_trend"]], on="lead_id")


def _window_leads(lifetimes, days=14, **where):
    """Ids of leads with an event matching ``where`` in their first ``days`` days."""
    mask = lifetimes["age"] < days
    for column, value in where.items():
        mask &= lifetimes[column] == value
    return set(lifetimes.loc[mask, "lead_id"])


def test_same_seed_gives_identical_frames_and_another_seed_does_not():
    first, again = simulate(1200, seed=4, chunk_size=500), simulate(1200, seed=4, chunk_size=500)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(first, name), getattr(again, name))
    other = simulate(1200, seed=5, chunk_size=500)
    assert not first.leads["job_level"].equals(other.leads["job_level"])
    assert len(first.events) != len(other.events)
    assert first.data_end == other.data_end == pd.Timestamp("2026-07-01", tz="UTC")


def test_written_files_equal_the_in_memory_frames(sim, tmp_path):
    calls = []
    paths = write_simulation(tmp_path / "out", N_LEADS, SEED, chunk_size=CHUNK,
                             progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    assert calls == [(1000, 3000), (2000, 3000), (3000, 3000)]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"{table}.parquet" for table in TABLES)  # no temporary files left
    for name in TABLES:
        pd.testing.assert_frame_equal(pd.read_parquet(paths[name]), getattr(sim, name))


def test_a_failed_write_leaves_no_partial_file_and_keeps_the_old_ones(tmp_path):
    (tmp_path / "leads.parquet").write_text("previous good file")

    def fail_after_first_chunk(done, total):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_simulation(tmp_path, 2000, 1, chunk_size=1000, progress=fail_after_first_chunk)
    assert [p.name for p in tmp_path.iterdir()] == ["leads.parquet"]
    assert (tmp_path / "leads.parquet").read_text() == "previous good file"


def test_frames_pass_the_data_contract_unchanged(sim):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no LeadDataWarning: no orphans, no early events
        leads = validate_leads(sim.leads)
        events = validate_events(sim.events, leads=leads)
        validate_outcomes(sim.outcomes, leads=leads)
    pd.testing.assert_frame_equal(leads, sim.leads)
    pd.testing.assert_frame_equal(events, sim.events)  # already typed and sorted
    assert sim.leads["lead_id"].dtype == "str"
    assert str(sim.events["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(sim.events["event_type"].dtype, pd.CategoricalDtype)
    assert set(sim.outcomes["outcome"]) == {"won", "lost"}


def test_lead_ids_are_crm_like_and_grow_with_creation_time(sim):
    ids = sim.leads["lead_id"]
    assert ids.iloc[0] == "L0000001" and ids.iloc[-1] == f"L{N_LEADS:07d}"
    assert ids.str.fullmatch(r"L\d{7}").all() and ids.is_unique
    assert sim.leads["created_at"].is_monotonic_increasing


def test_events_lie_between_creation_and_data_end(sim, lifetimes):
    assert (lifetimes["age"] >= 0).all()
    assert (sim.events["timestamp"] < sim.data_end).all()
    assert (sim.events["timestamp"] == sim.events["timestamp"].dt.floor("s")).all()
    assert 15 < len(sim.events) / N_LEADS < 25  # ~20 events per lead


def test_outcomes_close_after_the_decision_window_and_before_data_end(sim):
    outcomes = sim.outcomes.merge(sim.leads[["lead_id", "created_at"]], on="lead_id")
    days = (outcomes["closed_at"] - outcomes["created_at"]) / DAY
    assert days.between(21, 110).all()
    assert (outcomes["closed_at"] < sim.data_end).all()
    stamps = outcomes[["created_at", "mql_at", "sql_at", "opportunity_at", "closed_at"]]
    for earlier, later in zip(stamps.columns[:-1], stamps.columns[1:], strict=True):
        both = stamps[earlier].notna() & stamps[later].notna()
        assert (stamps.loc[both, earlier] < stamps.loc[both, later]).all()
    reached = outcomes[["mql_at", "sql_at", "opportunity_at"]].notna().sum(axis=1)
    stage_rank = outcomes["stage"].map({"mql": 1, "sql": 2, "opportunity": 3, "won": 3})
    assert (reached == stage_rank.astype(float).fillna(0)).all()
    assert (outcomes["stage"].eq("won") == outcomes["outcome"].eq("won")).all()


def test_recent_leads_are_open_and_a_few_old_ones_never_close(sim):
    closed = sim.leads["lead_id"].isin(sim.outcomes["lead_id"])
    age = (sim.data_end - sim.leads["created_at"]) / DAY
    assert not closed[age < 21].any()
    old = age > 120
    never = (~closed[old]).mean()
    assert 0.005 < never < 0.08


@pytest.mark.parametrize("base_rate", [0.08, 0.2])
def test_base_rate_is_hit(base_rate):
    sim = simulate(N_LEADS, seed=2, base_rate=base_rate)
    assert abs(sim.truth["p_win"].mean() - base_rate) < 0.01
    assert abs(sim.outcomes["outcome"].eq("won").mean() - base_rate) < 0.03


def test_truth_probabilities_are_the_sum_of_the_drivers(sim):
    p_win = sim.truth["p_win"]
    assert ((p_win > 0) & (p_win < 1)).all()
    drivers = sim.truth.filter(like="driver__")
    logit = np.log(p_win / (1 - p_win))
    np.testing.assert_allclose(logit, sim.intercept + drivers.sum(axis=1), atol=1e-6)
    assert set(sim.truth["interest_trend"].unique()) == {"warming", "cooling", "steady"}


def test_true_drivers_are_ordered_by_their_spread_and_named_as_features():
    truth = simulate(20_000, seed=3).truth
    drivers = [truth[f"driver__{name}"] for name in TRUE_DRIVERS]
    spread = [(d - d.mean()).abs().mean() for d in drivers]  # mean |deviation|, as mean |SHAP| measures
    assert all(b <= a + 0.015 for a, b in zip(spread, spread[1:], strict=False)), spread
    assert "noise" not in TRUE_DRIVERS
    counts = r"[a-z_]+(\[[a-z_]+\])?__count_(7|30|90)d"
    other = r"[a-z_]+__days_since_last|events__(active_days_\d+d|decayed_\d+d|velocity_7d)"
    values = r"[a-z_]+\.[a-z_]+__((sum|mean|max)_(7|30|90)d|days_since_last)"  # features.event_values
    pattern = re.compile(rf"{counts}|{other}|{values}|[a-z_]+")
    for features in TRUE_DRIVERS.values():
        assert features and all(pattern.fullmatch(f) for f in features)


def test_every_event_type_and_attribute_value_occurs(sim):
    assert set(sim.events["event_type"].unique()) == EVENT_TYPES
    for column, values in ATTRIBUTE_VALUES.items():
        assert set(sim.events[column].dropna().unique()) == values
    email = sim.events["event_type"].isin(["email_open", "email_click", "ad_click"])
    assert sim.events.loc[email, "campaign"].notna().all()
    assert sim.events.loc[~email, "campaign"].isna().all()
    assert sim.events.loc[sim.events["event_type"] == "page_view", "page"].notna().all()


def test_job_titles_are_consistent_with_the_job_level(sim):
    leads = sim.leads.dropna(subset=["job_title", "job_level"])
    for level, pattern in TITLE_PATTERNS.items():
        titles = leads.loc[leads["job_level"] == level, "job_title"]
        assert titles.nunique() >= 4, level
        assert titles.str.contains(pattern, flags=re.IGNORECASE).all(), (level, titles.unique()[:5])


def test_profiles_look_like_a_crm_export(sim):
    leads = sim.leads
    missing = leads.isna().mean()
    assert 0.01 < missing["job_level"] < 0.1 and 0.05 < missing["industry"] < 0.4
    assert 0.4 < missing["budget"] < 0.9 and missing["lead_id"] == missing["email_domain"] == 0
    free = leads["email_domain"].isin(["gmail.com", "outlook.com", "yahoo.com", "hotmail.com",
                                       "icloud.com", "proton.me", "gmx.de", "web.de"])  # fmt: skip
    assert (free == leads["email_domain_kind"].eq("free")).all()
    assert leads["industry"].nunique() == 12 and leads["country"].nunique() >= 18
    sizes = {"1-10", "11-50", "51-200", "201-1000", "1001-5000", "5000+"}
    assert set(leads["company_size"].dropna()) == sizes
    weekend = leads["created_at"].dt.day_of_week >= 5
    assert weekend.mean() < 0.2  # uniform days would give 2/7
    assert leads["created_at"].min() < pd.Timestamp("2025-01-15", tz="UTC")
    assert leads["created_at"].max() > sim.data_end - 14 * DAY
    students = leads["job_level"] == "student"
    assert leads.loc[students, "email_domain_kind"].eq("free").mean() > 0.7


def test_win_probability_depends_non_linearly_on_fit_and_engagement(sim, lifetimes):
    truth = sim.truth.merge(sim.leads[["lead_id", "job_level"]], on="lead_id").set_index("lead_id")
    p_win, level = truth["p_win"], truth["job_level"]
    boss = level.isin(DECISION_MAKERS)
    assert p_win[level == "student"].mean() < 0.1 * p_win[boss].mean()
    careers = p_win.index.isin(list(_window_leads(lifetimes, page="careers")))
    assert p_win[careers].mean() < 0.5 * p_win[~careers].mean()
    unsubscribed = p_win.index.isin(list(_window_leads(lifetimes, event_type="unsubscribe")))
    assert p_win[unsubscribed].mean() < p_win[~unsubscribed].mean()
    demo = p_win.index.isin(list(_window_leads(lifetimes, event_type="demo_request")))
    assert p_win[demo].mean() > 1.5 * p_win[~demo].mean()
    logit = np.log(p_win / (1 - p_win))
    pricing = p_win.index.isin(list(_window_leads(lifetimes, page="pricing")))
    lift_boss = logit[boss & pricing].mean() - logit[boss & ~pricing].mean()
    others = level.isin(["specialist", "manager"])
    lift_others = logit[others & pricing].mean() - logit[others & ~pricing].mean()
    assert lift_boss > lift_others + 0.3  # pricing visits matter more for decision makers


def test_drivers_read_only_events_observable_in_the_decision_window(sim, lifetimes):
    created = sim.leads.set_index("lead_id")["created_at"]
    complete = created.index[created <= sim.data_end - 14 * DAY]  # their 14 days are all exported
    truth = sim.truth.set_index("lead_id").loc[complete]
    careers = truth.index.isin(list(_window_leads(lifetimes, page="careers")))
    np.testing.assert_array_equal(truth["driver__careers_visits"] < 0, careers)
    demo = truth.index.isin(list(_window_leads(lifetimes, event_type="demo_request")))
    np.testing.assert_array_equal(truth["driver__demo_request"] > 0, demo)
    ever = _window_leads(lifetimes, days=10_000, event_type="demo_request")
    late_demo = truth.index.isin(list(ever))
    assert (late_demo & ~demo).any()  # demos after day 14 exist and do not move p_win


def test_won_leads_get_busy_before_closing(sim, lifetimes):
    closing = sim.outcomes.set_index("lead_id")["closed_at"]
    events = lifetimes.join(closing, on="lead_id", how="inner")
    to_close = events["closed_at"] - events["timestamp"]
    before = (to_close > pd.Timedelta(0)) & (to_close <= 12 * DAY)
    per_lead = before.groupby(events["lead_id"]).sum().reindex(closing.index, fill_value=0)
    won = sim.outcomes.set_index("lead_id")["outcome"].eq("won")
    assert per_lead[won].mean() > 2 * per_lead[~won].mean()


def test_warming_leads_have_more_events_late_than_early(sim, lifetimes):
    seen_28_days = lifetimes["created_at"] <= sim.data_end - 28 * DAY
    counts = lifetimes[seen_28_days].groupby("interest_trend", observed=True)["age"]
    early = counts.apply(lambda age: (age < 14).sum())
    late = counts.apply(lambda age: ((age >= 14) & (age < 28)).sum())
    assert late["warming"] > 1.5 * early["warming"]
    assert late["cooling"] < 0.5 * early["cooling"]


def test_decision_days_moves_the_window_and_the_closing_dates():
    sim = simulate(800, seed=9, decision_days=7)
    outcomes = sim.outcomes.merge(sim.leads[["lead_id", "created_at"]], on="lead_id")
    days = (outcomes["closed_at"] - outcomes["created_at"]) / DAY
    assert days.between(14, 103).all() and days.min() < 21


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_leads": 0}, "n_leads must be an integer >= 1"),
     ({"base_rate": 1.5}, "base_rate must be a number between"),
     ({"seed": -1}, "seed must be an integer >= 0"),
     ({"start": "not a date"}, "start 'not a date' is not a date")],
)  # fmt: skip
def test_bad_arguments_raise_a_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        simulate(**kwargs)


def test_docstring_examples_run(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples write into mkdtemp()
    assert doctest.testmod(simulate_module).failed == 0
