"""Implicit (behaviour) features: what each lead did before each snapshot's as_of.

A pure step: snapshots and events in, one feature row per snapshot out (same index and order),
with a :class:`FeatureInfo` for every column. All point-in-time logic sits in
:class:`~leadml.features.timeline.engine.EventTimeline`; this module only decides which queries to ask and
how to name the answers. The same code serves training and scoring: pass the training
``event_types`` at scoring time and the columns are exactly the training columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.features.behaviour.matrix import (  # noqa: F401  (parse_step, scenario_steps: re-exported)
    DTYPE,
    VELOCITY_DAYS,
    AttributeCounts,
    EventValues,
    FeatureMatrix,
    Scenarios,
    parse_step,
    scenario_steps,
)
from leadml.features.metadata import FeatureInfo
from leadml.features.timeline.engine import EventTimeline


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
    event_values: EventValues | None = None,
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
        event_values: numeric columns of event types, ``{"purchase": "amount"}``: adds
            ``purchase.amount__sum_<W>d`` (and ``__mean_``, ``__max_``) for every window and
            ``purchase.amount__days_since_last`` (events without a value are left out of all four).

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
        event_values=event_values,
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
    frame_of: Callable[[FeatureMatrix], pd.DataFrame] | None = None,
    **options,
) -> tuple[pd.DataFrame, list[FeatureInfo]]:
    """The behaviour features from a built timeline (shared by the frame and the Parquet paths).

    ``options`` are those of :class:`FeatureMatrix` (``event_types``, ``created_at``: each
    snapshot's lead creation time in int64 ns or None to leave ``lead__age_days`` out, windows,
    attribute counts, half-lives, scenarios, velocity). ``frame_of`` makes the frame returned from
    the filled matrix instead of :meth:`FeatureMatrix.frame` (a chunk puts its profile columns
    beside the matrix in one frame; the matrix is the frame's to keep).
    """
    features = FeatureMatrix(timeline, **options).fill_all()
    return features.frame(index) if frame_of is None else frame_of(features), features.infos


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
