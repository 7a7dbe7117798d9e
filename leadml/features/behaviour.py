"""Implicit (behaviour) features: what each lead did before each snapshot's as_of.

A pure step: snapshots and events in, one feature row per snapshot out (same index and order),
with a :class:`FeatureInfo` for every column. All point-in-time logic sits in
:class:`~leadml.features.timeline.EventTimeline`; this module only decides which queries to ask and
how to name the answers. The same code serves training and scoring: pass the training
``event_types`` at scoring time and the columns are exactly the training columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from leadml.errors import ConfigError, LeadDataError
from leadml.features import behaviour_text as text
from leadml.features.metadata import FeatureInfo
from leadml.features.timeline import DAY_NS, EventTimeline

AttributeCounts = Mapping[str, Mapping[str, Sequence[str] | str]]
Scenarios = Mapping[str, Sequence[str]]
_STEP = re.compile(r"^\s*([^\[\]]+?)\s*(?:\[\s*([^\[\]]*?)\s*\])?\s*$")
VELOCITY_DAYS = 7
DTYPE = np.float32  # every behaviour feature: counts are exact, days keep ~1 second of precision


def behaviour_features(
    snapshots: pd.DataFrame,
    events: pd.DataFrame,
    leads: pd.DataFrame | None = None,
    *,
    windows: Sequence[float] = (7, 30, 90),
    event_types: Sequence[str] | None = None,
    attribute_counts: AttributeCounts | None = None,
    decay_half_lives: Sequence[float] = (30,),
    scenarios: Scenarios | None = None,
    velocity: bool = True,
) -> tuple[pd.DataFrame, list[FeatureInfo]]:
    """Behaviour features of every snapshot, using only events strictly before its as_of.

    Parameters:
        snapshots: ``lead_id``, ``as_of`` (several snapshots per lead allowed; order kept).
        events: ``lead_id``, ``timestamp``, ``event_type`` and attribute columns (``page``, ...).
        leads: with ``created_at``, for ``lead__age_days`` (left out when neither ``leads`` nor
            ``snapshots`` has ``created_at``).
        windows: look-back windows in days for the counts and active days.
        event_types: the types that get columns; None means every type present in ``events``,
            sorted. Pass the training list when scoring: absent types give zeros.
        attribute_counts: ``{"page_view": {"page": ["pricing", "careers"]}}`` adds
            ``page_view[pricing]__count_<W>d`` for every window.
        decay_half_lives: half-lives in days of ``events__decayed_<H>d``.
        scenarios: ordered paths, ``{"content_path": ["email_open", "page_view[blog]"]}``; a step
            ``type[value]`` matches events of that type with any attribute equal to value.
        velocity: add ``events__velocity_7d`` (last 7 days minus the 7 days before).

    Returns:
        The features (float32, index of ``snapshots``) and one :class:`FeatureInfo` per column.

    Raises:
        LeadDataError: a required column is missing or a timestamp is missing.
        ConfigError: a window or half-life is not positive, or a scenario step is malformed.

    Example:
        >>> snapshots = pd.DataFrame({"lead_id": ["a"], "as_of": pd.to_datetime(["2026-02-01"], utc=True)})
        >>> events = pd.DataFrame({"lead_id": ["a", "a"], "event_type": ["page_view", "page_view"],
        ...     "page": ["pricing", "blog"],
        ...     "timestamp": pd.to_datetime(["2026-01-20", "2026-02-01"], utc=True)})
        >>> features, infos = behaviour_features(snapshots, events, windows=(30,),
        ...     attribute_counts={"page_view": {"page": ["pricing"]}})
        >>> features[["page_view__count_30d", "page_view[pricing]__count_30d"]].iloc[0].tolist()
        [1.0, 1.0]
        >>> infos[2].sentence(1.0)
        'Viewed the pricing page 1 times in the last 30 days'
    """
    missing = [c for c in ("lead_id", "timestamp", "event_type") if c not in events.columns]
    if missing:
        raise LeadDataError(
            f"<events table>: missing column(s) {', '.join(map(repr, missing))} for behaviour features "
            f"(columns present: {', '.join(map(str, events.columns[:12]))})"
        )
    types = list(event_types) if event_types is not None else present_event_types(events["event_type"])
    timeline = EventTimeline.build(events, snapshots)
    created = _created_ns(snapshots, leads)
    return timeline_features(
        timeline,
        index=snapshots.index,
        event_types=types,
        created_at=created,
        windows=windows,
        attribute_counts=attribute_counts,
        decay_half_lives=decay_half_lives,
        scenarios=scenarios,
        velocity=velocity,
    )


def present_event_types(event_type: pd.Series) -> list[str]:
    """The event types that occur at least once, sorted (unused categories are not types)."""
    if isinstance(event_type.dtype, pd.CategoricalDtype):
        codes = event_type.array.codes
        used = np.bincount(codes[codes >= 0], minlength=len(event_type.cat.categories)) > 0
        return sorted(map(str, event_type.cat.categories[used]))
    return sorted(map(str, pd.unique(event_type.dropna().astype(str))))


def timeline_features(
    timeline: EventTimeline,
    *,
    index: pd.Index | None = None,
    event_types: Sequence[str],
    created_at: np.ndarray | None = None,
    windows: Sequence[float] = (7, 30, 90),
    attribute_counts: AttributeCounts | None = None,
    decay_half_lives: Sequence[float] = (30,),
    scenarios: Scenarios | None = None,
    velocity: bool = True,
) -> tuple[pd.DataFrame, list[FeatureInfo]]:
    """The behaviour features from a built timeline (shared by the frame and the Parquet paths).

    ``created_at`` is each snapshot's lead creation time in int64 ns (``np.iinfo(np.int64).min``
    where unknown), or None to leave ``lead__age_days`` out.
    """
    windows = _positive(windows, "features.windows")
    half_lives = _positive(decay_half_lives, "features.decay_half_lives")
    steps = {name: [parse_step(step, name) for step in path] for name, path in (scenarios or {}).items()}
    types = list(dict.fromkeys(map(str, event_types)))
    attribute_counts = {
        event_type: {
            column: list(dict.fromkeys(map(str, [values] if isinstance(values, str) else values)))
            for column, values in by_column.items()
        }
        for event_type, by_column in (attribute_counts or {}).items()
    }
    n_attribute = sum(len(values) for by_column in attribute_counts.values() for values in by_column.values())
    n_columns = (
        len(types) * (len(windows) + 1)
        + n_attribute * len(windows)
        + 2 * len(windows)
        + len(half_lives)
        + int(velocity)
        + len(steps)
        + int(created_at is not None)
    )
    matrix = np.empty((n_columns, timeline.n_snapshots), dtype=DTYPE)  # one column per row, filled in place
    infos: list[FeatureInfo] = []

    def add(info: FeatureInfo, values: np.ndarray) -> None:
        matrix[len(infos)] = values
        infos.append(info)

    type_codes = timeline.codes_of("event_type", types) if timeline.n_events else np.zeros(0, np.int64)
    counts, last = timeline.count_by(type_codes, len(types), windows, last=True)
    for j, event_type in enumerate(types):
        for days in windows:
            add(text.type_count_info(event_type, days), counts[days][:, j])
        found = last[:, j] != np.iinfo(np.int64).min
        add(text.days_since_info(event_type), np.where(found, (timeline.as_of - last[:, j]) / DAY_NS, np.nan))
    del counts, last
    for event_type, by_column in attribute_counts.items():
        if event_type in types:
            of_type = type_codes == types.index(event_type)
        else:
            of_type = timeline.event_mask(event_type)
        for column, values in by_column.items():
            codes = np.where(of_type, _attribute_codes(timeline, column, values, event_type), -1)
            counts, _ = timeline.count_by(codes, len(values), windows)
            for j, value in enumerate(values):
                for days in windows:
                    add(text.attribute_count_info(event_type, column, value, days), counts[days][:, j])
    for days in windows:
        add(text.events_count_info(days), timeline.count(None, days))
    for days in windows:
        add(text.active_days_info(days), timeline.active_days(None, days))
    for half_life in half_lives:
        add(text.decayed_info(half_life), timeline.decayed_sum(None, half_life))
    if velocity:
        recent = timeline.count(None, VELOCITY_DAYS)
        add(text.velocity_info(), 2 * recent - timeline.count(None, 2 * VELOCITY_DAYS))
    for name, path in steps.items():
        add(text.scenario_info(name, len(path)), scenario_steps(timeline, path))
    if created_at is not None:
        known = created_at != np.iinfo(np.int64).min
        age = (timeline.as_of - np.where(known, created_at, 0)) / DAY_NS
        add(text.lead_age_info(), np.where(known, age, np.nan))
    assert len(infos) == n_columns, (len(infos), n_columns)
    frame = pd.DataFrame(
        matrix.T,
        columns=[info.name for info in infos],
        index=index if index is not None else pd.RangeIndex(timeline.n_snapshots),
        copy=False,
    )
    return frame, infos


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
        alive &= when != np.iinfo(np.int64).min
        done += alive
        previous = when
    return done


def _attribute_codes(timeline: EventTimeline, column: str, values: list[str], event_type: str) -> np.ndarray:
    if column in timeline.column_names:
        return timeline.codes_of(column, values)
    if timeline.n_events == 0:
        return np.zeros(0, dtype=np.int64)
    raise LeadDataError(
        f"<events table>: no column {column!r} for the attribute count {event_type}[{values[0]}] "
        f"(columns present: {', '.join(timeline.column_names)}); add it or fix features.attribute_counts"
    )


def _positive(values: Sequence[float], key: str) -> list[float]:
    values = list(dict.fromkeys(values))
    bad = [v for v in values if not (isinstance(v, (int, float, np.number)) and v > 0)]
    if bad:
        raise ConfigError(f"{key}: every value must be a positive number of days, got {bad[0]!r}")
    return values


def _created_ns(snapshots: pd.DataFrame, leads: pd.DataFrame | None) -> np.ndarray | None:
    """Each snapshot's lead creation time (int64 ns; int64 min where unknown), or None."""
    if "created_at" in snapshots.columns:
        created = snapshots["created_at"].reset_index(drop=True)
    elif leads is not None and {"lead_id", "created_at"} <= set(leads.columns):
        by_lead = pd.Series(leads["created_at"].array, index=leads["lead_id"].astype(str).to_numpy())
        created = by_lead.reindex(snapshots["lead_id"].astype(str).to_numpy()).reset_index(drop=True)
    else:
        return None
    created = pd.to_datetime(created, utc=True)
    return created.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
