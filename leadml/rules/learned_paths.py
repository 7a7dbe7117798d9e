"""Learned paths: the ordered pairs and triples of events whose completion lifts conversion most.

From labelled snapshots (``lead_id``, ``as_of``, ``converted``) and the events strictly before each
as_of, :func:`learn_paths` finds which snapshots had completed each candidate path in order (step 2
strictly after step 1, step 3 strictly after step 2; the same test the scenario rules score with,
:func:`~leadml.rules.timeline.path_walk`, without a gap limit or window), compares their conversion
with that of the other snapshots, and writes the paths that lift it most as scenario rules a
marketer can accept or drop.

The walk is vectorised over snapshots: per step, the earliest and the latest matching event before
as_of; a pair A -> B is done when the earliest A precedes the latest B; a triple A -> B -> C when
the first B after the earliest A precedes the latest C. Every pair of steps costs one comparison of
two columns, never a loop over leads.

Statistics weigh each lead once: a lead's k snapshots weigh 1/k each (with one snapshot per lead
the rates are plain counts). The lift is the conversion rate of the snapshots that completed the
path over that of the others; its 95 % interval is the Katz log interval of that rate ratio with
0.5 added to each cell of the 2x2 table (so it stays finite at zero counts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadml.features.metadata import FeatureInfo
from leadml.features.timeline.engine import EventTimeline
from leadml.rules.evaluate import step_mask
from leadml.rules.schema import Step

_EARLY = np.iinfo(np.int64).min  # "no latest event": below any time
_LATE = np.iinfo(np.int64).max  # "no earliest event": above any time
Z95 = 1.959963984540054
COLUMNS = (
    "path", "steps", "length", "snapshots", "leads", "conversion_with", "conversion_without",
    "lift", "lift_low", "lift_high", "log_odds_ratio",
)  # fmt: skip


@dataclass(frozen=True)
class LearnedPaths:
    """The paths chosen (one row each, best first, with ``points``) and their scenario rules.

    ``candidates`` holds every path evaluated (pairs and the triples tried), for a report.
    """

    chosen: pd.DataFrame
    rules: list[dict]
    candidates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(COLUMNS)))


def step_name(step: Step) -> str:
    """A short label for a step: ``download`` or ``page_view[pricing]`` (the attribute value only)."""
    if step.where:
        return f"{step.event}[{', '.join(str(v) for _, values in step.where for v in values)}]"
    return step.label


def candidate_steps(events: pd.DataFrame, infos: Sequence[FeatureInfo] = ()) -> list[Step]:
    """The steps a path may use: every event type, and each attribute value the features count.

    ``infos`` with an ``attribute`` (``page_view[pricing]__count_30d``: page = pricing) add the step
    ``{event: page_view, where: {page: pricing}}``; sorted by name, so the search is deterministic.
    """
    steps = {Step(event=str(t)) for t in pd.unique(events["event_type"].dropna().astype(str))}
    for info in infos:
        if info.group == "behaviour" and info.attribute is not None and info.source != "events":
            steps.add(Step(event=info.source, where=((info.attribute[0], (info.attribute[1],)),)))
    return sorted(steps, key=step_name)


def _related(a: Step, b: Step) -> bool:
    """True when one step is the other or the plain type of the other (no path between them)."""
    return a == b or (a.event == b.event and (not a.where or not b.where))


def _first_last(timeline: EventTimeline, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per snapshot, the time of the earliest and of the latest masked event before as_of."""
    prefix = np.zeros(timeline.n_events + 1, dtype=np.int64)
    np.cumsum(mask, out=prefix[1:])
    positions = np.flatnonzero(mask)
    lo, hi = prefix[timeline.lead_start], prefix[timeline.stop]
    found = hi > lo
    if not len(positions):
        return np.full(len(lo), _LATE), np.full(len(lo), _EARLY)
    first = np.where(found, timeline.times[positions[np.where(found, lo, 0)]], _LATE)
    last = np.where(found, timeline.times[positions[np.where(found, hi - 1, 0)]], _EARLY)
    return first, last


def _stats(done: np.ndarray, weight: np.ndarray, won: np.ndarray, latest: np.ndarray) -> dict[str, np.ndarray]:
    """Support, rates, lift and its interval of each column of ``done`` (snapshots x paths)."""
    n1 = weight @ done
    a = (weight * won) @ done
    n0, c = weight.sum() - n1, (weight * won).sum() - a
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p0 = a / n1, c / n0
        lift = p1 / p0
    a5, c5, b5, d5 = a + 0.5, c + 0.5, n1 - a + 0.5, n0 - c + 0.5
    log_rr = np.log(a5 / (n1 + 1)) - np.log(c5 / (n0 + 1))
    se = np.sqrt(np.maximum(1 / a5 - 1 / (n1 + 1) + 1 / c5 - 1 / (n0 + 1), 0.0))
    return {
        "snapshots": done.sum(axis=0), "leads": done[latest].sum(axis=0),
        "conversion_with": p1, "conversion_without": p0, "lift": lift,
        "lift_low": np.exp(log_rr - Z95 * se), "lift_high": np.exp(log_rr + Z95 * se),
        "log_odds_ratio": np.log(a5 * d5 / (b5 * c5)),
    }  # fmt: skip


def _frame(paths: Sequence[tuple[int, ...]], steps: Sequence[Step], stats: dict[str, np.ndarray]) -> pd.DataFrame:
    names = [[step_name(steps[i]) for i in path] for path in paths]
    frame = pd.DataFrame({
        "path": [" -> ".join(n) for n in names], "steps": [tuple(path) for path in paths],
        "length": [len(path) for path in paths], **stats,
    })  # fmt: skip
    return frame.astype({"snapshots": np.int64, "leads": np.int64})


def _adjusted_log_odds(done: np.ndarray, won: np.ndarray, weight: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The log odds each path adds on top of ``base`` (the other rules' log odds) and of the other
    paths: weighted Newton on ``logit = base + a + done @ b`` with a free intercept ``a`` and a weak
    ridge (1 lead's worth) on ``b`` so that a path every completer of which converted stays finite."""
    x = np.column_stack([np.ones(len(done)), done.astype(float)])
    ridge = np.diag([0.0] + [1.0] * done.shape[1])
    beta = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-(base + x @ beta)))
        grad = x.T @ (weight * (won - p)) - ridge @ beta
        hess = (x * (weight * p * (1 - p))[:, None]).T @ x + ridge + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.abs(step).max() < 1e-9:
            break
    return beta[1:]


def learn_paths(
    snapshots: pd.DataFrame,
    events: pd.DataFrame,
    *,
    steps: Sequence[Step] | None = None,
    min_leads: int = 30,
    max_paths: int = 5,
    extend: int = 10,
    max_overlap: float = 0.5,
    points_to_double_odds: float = 20.0,
    base_log_odds: np.ndarray | None = None,
) -> LearnedPaths:
    """Find the ordered pairs and triples of steps whose completion lifts conversion most.

    ``snapshots`` needs ``lead_id``, ``as_of`` and ``converted`` (rows without a label are left
    out); only events with ``timestamp < as_of`` count. Steps (default: every event type) seen by
    fewer than ``min_leads`` leads are dropped; every ordered pair of the rest is tried, then each
    of the ``extend`` best pairs is extended by a third step. A path is kept when at least
    ``min_leads`` leads completed it, the lower bound of its lift is above 1 and, for a triple,
    the third step lifts conversion among the leads that did its first two (lower bound above 1
    too). Going down the paths by lower bound of lift (ties by name), a path is skipped when more
    than ``max_overlap`` of the snapshots completing it or a path already chosen complete both
    (weighted Jaccard: the same leads under another name); the first ``max_paths`` are chosen.

    Points are on the scorecard's scale (``points_to_double_odds`` points double the odds): the log
    odds ratio of completing the path, or, given ``base_log_odds`` (per snapshot, the log odds the
    other rules already give), what the path adds on top of them and of the other chosen paths (one
    logistic fit); a path adding no points is kept in ``chosen`` with 0 points but not written.
    """
    labelled = snapshots.loc[snapshots["converted"].notna().to_numpy()]
    keep = snapshots["converted"].notna().to_numpy()
    base = None if base_log_odds is None else np.asarray(base_log_odds, dtype=float)[keep]
    empty = LearnedPaths(chosen=pd.DataFrame(columns=[*COLUMNS, "points"]), rules=[])
    if not len(labelled) or events is None or not len(events):
        return empty
    timeline = EventTimeline.build(events, labelled[["lead_id", "as_of"]].reset_index(drop=True))
    won = labelled["converted"].to_numpy(dtype=float)
    codes = timeline.snapshot_codes.astype(np.int64)  # every snapshot's lead has a code (the timeline's leads)
    weight = 1.0 / np.bincount(codes, minlength=timeline.n_leads)[codes]
    order = np.lexsort((timeline.as_of, codes))  # each lead's latest snapshot last
    latest = order[np.r_[codes[order][1:] != codes[order][:-1], True]]
    steps = list(steps) if steps is not None else candidate_steps(events)
    first_last = [_first_last(timeline, step_mask(step, timeline)) for step in steps]
    seen = [int((last[latest] != _EARLY).sum()) for _, last in first_last]
    steps = [step for step, n in zip(steps, seen, strict=True) if n >= min_leads]
    first_last = [fl for fl, n in zip(first_last, seen, strict=True) if n >= min_leads]
    if len(steps) < 2:
        return empty
    first = np.column_stack([pair[0] for pair in first_last])
    last = np.column_stack([pair[1] for pair in first_last])
    frames = []  # one block of paths at a time: memory stays at snapshots x steps
    for i in range(len(steps)):
        ends = [j for j in range(len(steps)) if not _related(steps[i], steps[j])]
        if ends:
            stats = _stats(first[:, [i]] < last[:, ends], weight, won, latest)
            frames.append(_frame([(i, j) for j in ends], steps, stats))
    if not frames:
        return empty
    table = pd.concat(frames, ignore_index=True)
    table = table.loc[table["snapshots"] > 0].sort_values(["lift_low", "path"], ascending=[False, True], kind="stable")
    frames = [table]
    for i, j in table.loc[table["leads"] >= min_leads, "steps"].head(extend):
        middle = _middle(timeline, first, steps, i, j)
        ends = [k for k in range(len(steps)) if not _related(steps[j], steps[k]) and k != i]
        if not ends:
            continue
        done = middle[:, None] < last[:, ends]
        more = _frame([(i, j, k) for k in ends], steps, _stats(done, weight, won, latest))
        pair = np.flatnonzero(middle != _LATE)  # a lead that did the pair did it at its latest snapshot too
        inside = np.searchsorted(pair, latest[middle[latest] != _LATE])
        adds = _stats(done[pair], weight[pair], won[pair], inside)["lift_low"] > 1  # over the pair alone
        frames.append(more.loc[adds & (more["snapshots"] > 0).to_numpy()])
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(["lift_low", "path"], ascending=[False, True], kind="stable").reset_index(drop=True)
    picked: list[int] = []
    done = np.zeros((len(won), 0), dtype=bool)
    for index, path in table.loc[(table["leads"] >= min_leads) & (table["lift_low"] > 1), "steps"].items():
        if len(picked) == max_paths:
            break
        column = _done(timeline, first, last, steps, path)
        shared = (weight @ (column[:, None] & done)) / (weight @ (column[:, None] | done))
        if not (shared > max_overlap).any():
            picked.append(index)
            done = np.column_stack([done, column])
    chosen = table.loc[picked].copy()
    if base is None:
        effects = chosen["log_odds_ratio"].to_numpy()
    else:  # fitted together, then again without the paths adding no points, until all add some
        scale, keep = points_to_double_odds / math.log(2), np.arange(len(picked))
        effects = np.zeros(len(picked))
        while len(keep):
            effects = np.zeros(len(picked))
            effects[keep] = _adjusted_log_odds(done[:, keep], won, weight, base)
            adds = np.round(effects[keep] * scale) > 0
            if adds.all():
                break
            keep = keep[adds]
    chosen["points"] = np.maximum(np.round(effects * points_to_double_odds / math.log(2)), 0).astype(int)
    rules = [
        _rule(row, [steps[i] for i in row.steps], row.points, adjusted=base is not None)
        for row in chosen.itertuples(index=False)
        if row.points > 0
    ]
    for frame in (chosen, table):  # step indices -> the steps' names
        frame["steps"] = [tuple(step_name(steps[i]) for i in path) for path in frame["steps"]]
    return LearnedPaths(chosen=chosen.reset_index(drop=True), rules=rules, candidates=table)


def _done(
    timeline: EventTimeline, first: np.ndarray, last: np.ndarray, steps: Sequence[Step], path: tuple[int, ...]
) -> np.ndarray:
    """Per snapshot, whether the path (a pair or a triple of step indices) was completed before as_of."""
    start = first[:, path[0]] if len(path) == 2 else _middle(timeline, first, steps, path[0], path[1])
    return start < last[:, path[-1]]


def _middle(timeline: EventTimeline, first: np.ndarray, steps: Sequence[Step], i: int, j: int) -> np.ndarray:
    """Per snapshot, the time of the first step ``j`` strictly after the earliest step ``i`` (before
    as_of; "late" where there is none): the best place to start a third step from."""
    start = first[:, i]
    after = timeline.first_after(step_mask(steps[j], timeline), np.where(start == _LATE, _EARLY, start))
    return np.where((after == _EARLY) | (start == _LATE), _LATE, after)


def _rule(row, path: list[Step], points: int, *, adjusted: bool) -> dict:
    """A scenario rule for ``parse_rule``: the path, its points and the evidence in the description."""
    basis = "log odds it adds to the points rules" if adjusted else "log odds ratio"
    return {
        "name": f"Path: {row.path}",
        "description": (
            f"Learned from closed deals: {row.leads} leads ({row.snapshots} snapshots) did these steps in order; "
            f"conversion {row.conversion_with:.1%} vs {row.conversion_without:.1%} without, lift {row.lift:.2f} "
            f"(95 % interval {row.lift_low:.2f} to {row.lift_high:.2f}); points from the {basis}."
        ),
        "scenario": {"steps": [step.to_raw() for step in path]},
        "points": points,
    }


def learn_paths_for_trainset(
    trainset, base_log_odds: np.ndarray | None = None, points_to_double_odds: float = 20.0, **options
) -> LearnedPaths:
    """:func:`learn_paths` on a training set's train and validation snapshots and its events.

    Steps are the event types and the attribute values the pipeline's features count.
    ``base_log_odds`` is aligned with ``trainset.part("train", "validation")``.
    """
    rows = trainset.part("train", "validation")
    events = trainset.data.events
    if events is None or not len(events):
        return learn_paths(rows, events, base_log_odds=base_log_odds, **options)
    steps = candidate_steps(events, trainset.feature_info)
    return learn_paths(
        rows[["lead_id", "as_of", "converted"]], events, steps=steps, base_log_odds=base_log_odds,
        points_to_double_odds=points_to_double_odds, **options,
    )  # fmt: skip
