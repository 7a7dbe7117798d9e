"""Where leads drop off a scenario: per step, how many leads reached it, how long it took, what converted.

The funnel page shows one table per scenario rule of the pipeline's rules file, as known at one
as_of (:func:`path_report`): every lead created by then walks the path through its events before
as_of (the same walk the rule scores with, :func:`~leadml.rules.timeline.path_walk`); the days
between two steps are those of the earliest path; conversion is read by the last step reached.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadml.features.timeline.engine import DAY_NS, EventTimeline
from leadml.rules.evaluate import step_mask
from leadml.rules.schema import Rule
from leadml.rules.timeline import path_walk

_NONE = np.iinfo(np.int64).min
COLUMNS = ("step", "reached", "of_previous", "median_days", "stopped_here", "converted", "conversion")


def path_report(
    rule: Rule, leads: pd.DataFrame, events: pd.DataFrame, as_of: pd.Timestamp, won: pd.Series | None = None
) -> pd.DataFrame:
    """One row per step of a scenario rule (and a first row for leads that took no step).

    Columns: ``step`` (its label, ``none`` for the first row), ``reached`` (leads that got at least
    this far), ``of_previous`` (their share of the step before), ``median_days`` (from the step
    before, on each lead's earliest path), ``stopped_here`` (leads whose last step this is),
    ``converted`` and ``conversion`` (those of them with ``won`` true; empty without ``won``, a
    boolean per lead_id).
    """
    if not rule.is_scenario:
        raise ValueError(f"rule {rule.name!r} is not a scenario rule")
    created = pd.to_datetime(leads["created_at"], utc=True) if "created_at" in leads else None
    known = leads if created is None else leads.loc[(created <= as_of).to_numpy()]
    ids = known["lead_id"].astype(str).reset_index(drop=True)
    snapshots = pd.DataFrame({"lead_id": ids, "as_of": pd.Series(as_of, index=ids.index)})
    timeline = EventTimeline.build(events, snapshots)
    masks = [step_mask(step, timeline) for step in rule.steps]
    done, first = path_walk(timeline, masks, rule.max_days_between_steps, rule.within_days, first_times=True)
    assert first is not None  # asked for
    converted = won.reindex(ids).fillna(False).to_numpy(dtype=bool) if won is not None else None
    rows = []
    for k in range(len(rule.steps) + 1):
        reached = int((done >= k).sum())
        previous = int((done >= k - 1).sum()) if k else reached
        days = np.nan
        if k >= 2:
            both = (first[:, k - 1] != _NONE) & (first[:, k - 2] != _NONE)
            if both.any():
                days = float(np.median((first[both, k - 1] - first[both, k - 2]) / DAY_NS))
        stopped = done == k
        won_here = int(converted[stopped].sum()) if converted is not None else None
        rows.append({
            "step": rule.steps[k - 1].label if k else "none", "reached": reached,
            "of_previous": reached / previous if k and previous else np.nan, "median_days": days,
            "stopped_here": int(stopped.sum()), "converted": won_here,
            "conversion": won_here / int(stopped.sum()) if won_here is not None and stopped.any() else np.nan,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))
