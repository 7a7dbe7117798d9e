"""Load a pipeline's data as the config names it: the simulator, three tables, or a flat table."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pandas as pd

from leadml.core.config import DataConfig
from leadml.data import contract


@dataclass(frozen=True)
class PipelineData:
    """The validated inputs of a pipeline.

    Three-table data has ``leads``, ``events`` and (for training) ``outcomes``; flat data has ``flat``
    (one row per lead with ``converted``) and the names of its leaky columns.
    """

    leads: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    outcomes: pd.DataFrame | None = None
    flat: pd.DataFrame | None = None
    data_end: pd.Timestamp | None = None
    leaky: tuple[str, ...] = ()
    borderline: tuple[str, ...] = ()
    id_columns: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_flat(self) -> bool:
        return self.flat is not None

    @classmethod
    def from_simulation(cls, simulation) -> PipelineData:
        """The simulator's four tables as validated pipeline data (typed exactly as loaded files)."""
        leads = contract.validate_leads(simulation.leads, source="simulator leads")
        return cls(
            leads=leads,
            events=contract.validate_events(simulation.events, source="simulator events", leads=leads),
            outcomes=contract.validate_outcomes(simulation.outcomes, source="simulator outcomes", leads=leads),
            data_end=simulation.data_end,
        )


def load_pipeline_data(data: DataConfig, *, need_outcomes: bool = True) -> PipelineData:
    """Read and validate the data a pipeline config names; warnings are kept in ``problems``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", contract.LeadDataWarning)
        loaded = _load(data, need_outcomes)
    problems = tuple(str(w.message) for w in caught if issubclass(w.category, contract.LeadDataWarning))
    for message in problems:
        warnings.warn(message, contract.LeadDataWarning, stacklevel=2)
    return PipelineData(**{**loaded.__dict__, "problems": problems})


def _load(data: DataConfig, need_outcomes: bool) -> PipelineData:
    if data.source == "simulator":
        from leadml.data.simulate.world import simulate

        sim = data.simulator
        simulated = simulate(sim.leads, sim.seed, base_rate=sim.base_rate, months=sim.months)
        return PipelineData.from_simulation(simulated)
    if data.source == "tables":
        assert data.leads is not None and data.events is not None  # DataConfig's validator requires them
        leads = contract.load_leads(data.leads, columns=data.columns)
        events = contract.load_events(data.events, leads=leads, on_orphans=data.on_orphans, columns=data.columns)
        outcomes = None
        if data.outcomes is not None:
            outcomes = contract.load_outcomes(data.outcomes, leads=leads, columns=data.columns)
        elif need_outcomes:
            from leadml.core.errors import ConfigError

            raise ConfigError("data.outcomes is needed to train (the closed deals); add its path")
        return PipelineData(leads=leads, events=events, outcomes=outcomes)
    if data.source == "public":
        import os

        from leadml.data.datasets import load_public

        datasets_dir = os.environ.get("LEADML_DATASETS") or data.datasets_dir
        assert data.public is not None  # DataConfig's validator requires it
        flat, dataset = load_public(data.public, datasets_dir)
        return PipelineData(
            flat=flat,
            leaky=tuple(dataset.leaky),
            borderline=tuple(dataset.borderline),
            id_columns=tuple(dataset.id_columns),
        )
    assert data.flat is not None and data.label is not None  # DataConfig's validator requires them
    read_options = {"sep": data.csv_separator} if data.csv_separator else {}
    flat = contract.load_flat(data.flat, label=data.label, id_column=data.id_column, **read_options)
    return PipelineData(flat=flat)
