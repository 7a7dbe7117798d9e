"""Load a pipeline's data as the config names it: the simulator, three tables, or a flat table."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from leadml.core.config import DataConfig
from leadml.data import contract

# what the data contract's warnings count (LeadDataWarning.kind)
COUNTED_KINDS = ("open_deals", "early_outcomes", "orphan_events", "early_events")
# the validated tables of the last simulator config loaded, with its warnings: see load_pipeline_data
_SIMULATED: dict[str, tuple[PipelineData, list[contract.LeadDataWarning]]] = {}


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
    counts: tuple[tuple[str, int], ...] = ()  # (LeadDataWarning.kind, count) of each problem that counts rows

    @property
    def is_flat(self) -> bool:
        return self.flat is not None

    def counted(self) -> dict[str, int]:
        """The rows the loaders left out or flagged, by kind (the counts of the contract's warnings).

        ``open_deals`` (outcomes not decided, left out), ``early_outcomes`` (closed before their lead
        was created, dropped), ``orphan_events`` (events of unknown leads, dropped) and
        ``early_events`` (events before their lead's creation, kept); 0 when none.
        """
        counts = dict.fromkeys(COUNTED_KINDS, 0)
        for kind, count in self.counts:
            if kind in counts:
                counts[kind] += count
        return counts

    def copied(self) -> PipelineData:
        """The same data with copies of its tables (deep: the copy and the original share no arrays)."""
        tables = {name: getattr(self, name) for name in ("leads", "events", "outcomes", "flat")}
        return replace(self, **{name: table.copy() for name, table in tables.items() if table is not None})

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


def load_pipeline_data(
    data: DataConfig, *, need_outcomes: bool = True, event_columns: Sequence[str] | None = None
) -> PipelineData:
    """Read and validate the data a pipeline config names; warnings are kept in ``problems``.

    ``event_columns`` names the events' attribute columns the caller needs (None: all); a Parquet
    events table is then read without the others.

    The simulator's validated tables are kept for the process (the last simulator config only) and
    every call gets its own copies: a process that scores several days of one simulated pipeline
    (``leadml demo``: eight scoring runs and the sales report) simulates and validates it once.
    """
    key = data.simulator.model_dump_json() if data.source == "simulator" else None
    if key is not None and key in _SIMULATED:
        loaded, found = _SIMULATED[key]
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", contract.LeadDataWarning)
            loaded = _load(data, need_outcomes, event_columns)
        found = [w.message for w in caught if isinstance(w.message, contract.LeadDataWarning)]
        if key is not None:
            _SIMULATED.clear()  # one simulation kept: a process that simulates many holds one at a time
            _SIMULATED[key] = (loaded, found)
    if key is not None:
        loaded = loaded.copied()  # the caller's own frames: nothing it does reaches the kept ones
    for warning in found:
        warnings.warn(warning, stacklevel=2)
    problems = tuple(str(w) for w in found)
    counts = tuple((w.kind, w.count) for w in found if w.kind)
    return PipelineData(**{**loaded.__dict__, "problems": problems, "counts": counts})


def _load(data: DataConfig, need_outcomes: bool, event_columns: Sequence[str] | None = None) -> PipelineData:
    if data.source == "simulator":
        from leadml.data.simulate.world import simulate

        sim = data.simulator
        simulated = simulate(sim.leads, sim.seed, base_rate=sim.base_rate, months=sim.months)
        return PipelineData.from_simulation(simulated)
    if data.source == "tables":
        return _load_tables(data, need_outcomes, event_columns)
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
    reading = {"separator": data.csv_separator, "encoding": data.encoding}
    flat = contract.load_flat(data.flat, label=data.label, id_column=data.id_column, **reading)
    return PipelineData(flat=flat)


def _load_tables(data: DataConfig, need_outcomes: bool, event_columns: Sequence[str] | None = None) -> PipelineData:
    """The three tables as the config reads them; without an events table, an empty one."""
    leads_table, events_table, outcomes_table = data.table("leads"), data.table("events"), data.table("outcomes")
    assert leads_table is not None  # DataConfig's validator requires it
    leads = contract.load_leads(leads_table.path, columns=leads_table.columns, **leads_table.reading())
    if events_table is not None:
        events = contract.load_events(events_table.path, leads=leads, on_orphans=data.on_orphans,
                                      columns=events_table.columns, keep=event_columns,
                                      **events_table.reading())  # fmt: skip
    else:
        events = no_events()
    outcomes = None
    if outcomes_table is not None:
        outcomes = contract.load_outcomes(
            outcomes_table.path,
            leads=leads,
            columns=outcomes_table.columns,
            won=outcomes_table.won,
            lost=outcomes_table.lost,
            open=outcomes_table.open,
            on_early_outcomes=data.on_early_outcomes,
            **outcomes_table.reading(),
        )
    elif need_outcomes:
        from leadml.core.errors import ConfigError

        raise ConfigError("data.outcomes is needed to train (the closed deals); add its path")
    return PipelineData(leads=leads, events=events, outcomes=outcomes)


def no_events() -> pd.DataFrame:
    """An events table without rows, typed as the data contract types a loaded one.

    A pipeline without an events table trains and scores on profile features: every behaviour
    feature then reads "nothing happened".
    """
    return pd.DataFrame(
        {
            "lead_id": pd.Series([], dtype=object),
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            "event_type": pd.Categorical([]),
        }
    )
