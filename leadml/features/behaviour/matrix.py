"""The behaviour feature matrix of a timeline, filled in snapshot order so that writers can stream it.

:class:`FeatureMatrix` names every column up front, computes the parts that need all snapshots at
once (attribute counts, scenarios, lead age, decay when a lead has several snapshots), then runs
the one pass of :func:`~leadml.features.timeline.kernel.standard_blocks` block by block. After
each block it reports how many leading snapshots are complete, so the Parquet path can encode
finished rows on a second thread while the next block is computed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from leadml.core.errors import ConfigError, LeadDataError
from leadml.features import behaviour_text as text
from leadml.features.metadata import FeatureInfo
from leadml.features.timeline.engine import DAY_NS, EventTimeline, window_ns
from leadml.features.timeline.kernel import NONE, standard_blocks

AttributeCounts = Mapping[str, Mapping[str, Sequence[str] | str]]
Scenarios = Mapping[str, Sequence[str]]
_STEP = re.compile(r"^\s*([^\[\]]+?)\s*(?:\[\s*([^\[\]]*?)\s*\])?\s*$")
VELOCITY_DAYS = 7
DTYPE = np.float32  # every behaviour feature: counts are exact, days keep ~1 second of precision
_NO_TIME = np.iinfo(np.int64).min


class FeatureMatrix:
    """Behaviour features of a timeline's snapshots: ``matrix[i]`` holds column ``infos[i]``.

    Construction checks the options and names the columns; :meth:`fill` computes the values and
    yields the number of leading snapshots whose row is final (ending with all of them);
    :meth:`frame` returns the filled features as a DataFrame (float32, one column per info).
    Options are those of :func:`~leadml.features.behaviour.features.behaviour_features`; ``created_at``
    is each snapshot's lead creation time in int64 ns (int64 min where unknown), or None to
    leave ``lead__age_days`` out.
    """

    def __init__(
        self,
        timeline: EventTimeline,
        *,
        event_types: Sequence[str],
        created_at: np.ndarray | None = None,
        windows: Sequence[float] = (7, 30, 90),
        attribute_counts: AttributeCounts | None = None,
        decay_half_lives: Sequence[float] = (30,),
        scenarios: Scenarios | None = None,
        velocity: bool = True,
    ):
        self.timeline = timeline
        self.windows = positive(windows, "features.windows")
        self.half_lives = positive(decay_half_lives, "features.decay_half_lives")
        self.steps = {name: [parse_step(step, name) for step in path] for name, path in (scenarios or {}).items()}
        self.types = list(dict.fromkeys(map(str, event_types)))
        self.attribute_counts = {
            event_type: {
                column: list(dict.fromkeys(map(str, [values] if isinstance(values, str) else values)))
                for column, values in by_column.items()
            }
            for event_type, by_column in (attribute_counts or {}).items()
        }
        self.created_at = created_at
        self.velocity = velocity
        self.infos = self._name_columns()
        self.matrix = np.empty((len(self.infos), timeline.n_snapshots), dtype=DTYPE)

    def _name_columns(self) -> list[FeatureInfo]:
        infos = []
        for event_type in self.types:
            infos.extend(text.type_count_info(event_type, days) for days in self.windows)
            infos.append(text.days_since_info(event_type))
        for event_type, by_column in self.attribute_counts.items():
            for column, values in by_column.items():
                for value in values:
                    infos.extend(text.attribute_count_info(event_type, column, value, d) for d in self.windows)
        infos.extend(text.events_count_info(days) for days in self.windows)
        infos.extend(text.active_days_info(days) for days in self.windows)
        infos.extend(text.decayed_info(half_life) for half_life in self.half_lives)
        infos.extend([text.velocity_info()] if self.velocity else [])
        infos.extend(text.scenario_info(name, len(path)) for name, path in self.steps.items())
        infos.extend([text.lead_age_info()] if self.created_at is not None else [])
        return infos

    @property
    def names(self) -> list[str]:
        return [info.name for info in self.infos]

    def fill(self) -> Iterator[int]:
        """Compute every value; yield the count of leading snapshots whose row is final."""
        timeline, types, windows = self.timeline, self.types, self.windows
        n_wide, n_windows = len(windows) + 1, len(windows)
        if timeline.n_events:
            type_codes, type_lookup = timeline.coded("event_type", types)
        else:
            type_codes, type_lookup = np.zeros(0, np.int8), np.full(1, -1, np.int8)
        row = len(types) * n_wide
        for event_type, by_column in self.attribute_counts.items():
            if event_type in types:
                of_type = type_lookup[type_codes] == types.index(event_type)
            else:
                of_type = timeline.event_mask(event_type)
            for column, values in by_column.items():
                codes = np.where(of_type, _attribute_codes(timeline, column, values, event_type), -1)
                counts, _ = timeline.count_by(codes, len(values), windows)
                for j in range(len(values)):
                    for days in windows:
                        self.matrix[row] = counts[days][:, j]
                        row += 1
        totals = row
        decay_row = totals + 2 * n_windows
        single = timeline.one_snapshot_per_lead() is not None
        if not single:  # several snapshots per lead: decay by the running sums of the timeline
            for h, half_life in enumerate(self.half_lives):
                self.matrix[decay_row + h] = timeline.decayed_sum(None, half_life)
        row = decay_row + len(self.half_lives) + int(self.velocity)
        for path in self.steps.values():
            self.matrix[row] = scenario_steps(timeline, path)
            row += 1
        if self.created_at is not None:
            known = self.created_at != _NO_TIME
            age = (timeline.as_of - np.where(known, self.created_at, 0)) / DAY_NS
            self.matrix[row] = np.where(known, age, np.nan)
        # counts per type and window, days since last, totals, active days, velocity, decay: one pass
        blocks = standard_blocks(
            timeline,
            type_codes,
            type_lookup,
            len(types),
            [window_ns(days) for days in windows],
            window_ns(VELOCITY_DAYS) if self.velocity else None,
            [window_ns(h) for h in self.half_lives] if single else [],
        )
        matrix = self.matrix
        by_type = matrix[: len(types) * n_wide].reshape(len(types), n_wide, timeline.n_snapshots)  # a view
        for block in blocks:
            rows, age = block.rows, block.type_age
            for k, counts in enumerate(block.type_counts):
                by_type[:, k, rows] = counts
            by_type[:, n_windows, rows] = np.where(age != NONE, age / DAY_NS, np.nan)
            matrix[totals : totals + n_windows, rows] = block.counts
            matrix[totals + n_windows : decay_row, rows] = block.active_days
            if block.decayed is not None:
                matrix[decay_row : decay_row + len(self.half_lives), rows] = block.decayed
            if block.velocity is not None:
                matrix[decay_row + len(self.half_lives), rows] = block.velocity
            if isinstance(rows, slice) and rows.stop < timeline.n_snapshots:
                yield rows.stop
        yield timeline.n_snapshots

    def fill_all(self) -> FeatureMatrix:
        """Compute every value at once (the in-memory paths, which need no rows before the end)."""
        for _ in self.fill():
            continue
        return self

    def frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        """The features (after :meth:`fill`), one row per snapshot, sharing the matrix's memory."""
        return pd.DataFrame(
            self.matrix.T,
            columns=self.names,
            index=index if index is not None else pd.RangeIndex(self.timeline.n_snapshots),
            copy=False,
        )


def parse_step(step: str, scenario: str) -> tuple[str, str | None]:
    """``"page_view[blog]"`` -> ``("page_view", "blog")``; ``"email_open"`` -> ``("email_open", None)``."""
    match = _STEP.match(str(step))
    if not match or not match.group(1).strip():
        raise ConfigError(
            f"features.scenarios.{scenario}: step {step!r} is not 'event_type' or 'event_type[value]'"
        )
    value = match.group(2)
    return match.group(1), (value if value else None)


def scenario_steps(timeline: EventTimeline, path: Sequence[tuple[str, str | None]]) -> np.ndarray:
    """Per snapshot, how many steps of ``path`` the lead completed in order before as_of.

    Greedy: each step takes the earliest matching event strictly after the previous step's, which
    is the longest in-order prefix any choice of events could give.
    """
    done = np.zeros(timeline.n_snapshots, dtype=np.int64)
    alive = np.ones(timeline.n_snapshots, dtype=bool)
    previous = None
    for event_type, value in path:
        mask = timeline.event_mask(event_type)
        if value is not None:
            names = [c for c in timeline.column_names if c != "event_type"]
            hit = np.zeros(timeline.n_events, dtype=bool)
            for name in names:
                hit |= timeline.value_mask(name, value)
            mask &= hit
        when = timeline.first_after(mask, previous)
        alive &= when != _NO_TIME
        done += alive
        previous = when
    return done


def positive(values: Sequence[float], key: str) -> list[float]:
    """``values`` without repeats, each checked to be a positive number of days."""
    values = list(dict.fromkeys(values))
    bad = [v for v in values if not (isinstance(v, (int, float, np.number)) and v > 0)]
    if bad:
        raise ConfigError(f"{key}: every value must be a positive number of days, got {bad[0]!r}")
    return values


def _attribute_codes(timeline: EventTimeline, column: str, values: list[str], event_type: str) -> np.ndarray:
    if column in timeline.column_names:
        return timeline.codes_of(column, values)
    if timeline.n_events == 0:
        return np.zeros(0, dtype=np.int64)
    raise LeadDataError(
        f"<events table>: no column {column!r} for the attribute count {event_type}[{values[0]}] "
        f"(columns present: {', '.join(timeline.column_names)}); add it or fix features.attribute_counts"
    )
