"""A simulated pipeline is simulated and validated once per process; every caller gets its own frames."""

from __future__ import annotations

import pandas as pd
import pytest

from leadml.core.data_config import DataConfig
from leadml.data import sources
from leadml.data.simulate import world


@pytest.fixture
def simulations(monkeypatch) -> list[int]:
    """The simulator's calls (their lead counts), with nothing kept from an earlier test."""
    calls: list[int] = []
    simulate = world.simulate

    def counted(n_leads, *args, **kwargs):
        calls.append(n_leads)
        return simulate(n_leads, *args, **kwargs)

    monkeypatch.setattr(world, "simulate", counted)
    monkeypatch.setattr(sources, "_SIMULATED", {})
    return calls


def test_the_same_simulator_config_is_simulated_once_and_equal(simulations):
    config = DataConfig(source="simulator", simulator={"leads": 300, "seed": 3})
    first = sources.load_pipeline_data(config)
    second = sources.load_pipeline_data(config)
    assert simulations == [300]
    for name in ("leads", "events", "outcomes"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    assert first.data_end == second.data_end and first.problems == second.problems


def test_no_caller_changes_what_the_next_one_gets(simulations):
    config = DataConfig(source="simulator", simulator={"leads": 300, "seed": 3})
    first = sources.load_pipeline_data(config)
    kept = first.events.copy()
    assert first.events is not sources.load_pipeline_data(config).events
    first.events.loc[:, "event_type"] = first.events["event_type"].iloc[0]  # in place, column by column
    first.events.loc[first.events.index[:10], "lead_id"] = "changed"
    first.leads["lead_id"] = "changed"
    again = sources.load_pipeline_data(config)
    pd.testing.assert_frame_equal(again.events, kept)
    assert not again.leads["lead_id"].eq("changed").any()


def test_another_config_is_simulated_anew_and_only_the_last_is_kept(simulations):
    small = DataConfig(source="simulator", simulator={"leads": 300, "seed": 3})
    other_seed = DataConfig(source="simulator", simulator={"leads": 300, "seed": 4})
    first = sources.load_pipeline_data(small)
    second = sources.load_pipeline_data(other_seed)
    sources.load_pipeline_data(small)
    assert simulations == [300, 300, 300]  # seed 4 replaced seed 3: one simulation held at a time
    assert len(sources._SIMULATED) == 1
    assert not first.leads.equals(second.leads)
