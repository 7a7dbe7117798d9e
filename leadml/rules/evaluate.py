"""Evaluating rules: per snapshot and per rule, did it fire and how many points (in cents) it gave.

Event rules run on :class:`leadml.features.timeline.engine.EventTimeline`, the single place that decides
which events a snapshot can see (``timestamp < as_of``; a window of W days is
``as_of - W days <= timestamp < as_of``). For each event rule the qualifying events are those of
its ``event`` type matching ``where``, before as_of and inside ``within_days`` when set; ``n`` is
their number.

* once-firing rule: fires when ``n >= min_count`` and gives ``points``;
* ``per_event`` rule: fires when ``n >= min_count`` and gives ``points * n``, bounded by ``cap``
  in absolute value (``sign(points) * min(|points| * n, cap)``);

With a half-life H (``decay: {half_life_days: H}``, top level or per rule) an event of age a days
(a = as_of - timestamp) is worth ``0.5 ** (a / H)`` of a fresh one, so an event exactly H days old
gives half:

* ``per_event`` rule: ``points * sum(0.5 ** (a_i / H))`` over the qualifying events, then ``cap``;
* once-firing rule: ``points * 0.5 ** (a_k / H)`` where ``a_k`` is the age of the ``min_count``-th
  most recent qualifying event. With ``min_count: 1`` that is the most recent one. In general it is
  the age of the evidence that makes the rule true: "visited pricing twice" is only as fresh as the
  second-newest visit, and the rule would stop firing with ``within_days`` shorter than ``a_k``.
  The decay therefore never lets a single fresh event revive a rule that needs several.
  ``min_count`` is always checked on the plain count, never on decayed weights. A decayed rule
  whose points round to 0.00 counts as not fired (it is left out of the breakdown).

Field rules fire when every given test holds on the lead's profile value; a missing value (or a
lead without a profile row) never fires, and fields do not decay.

Scenario rules follow an ordered path of steps (``scenario: {steps: [...]}``): the steps the lead
completed in order before as_of (each strictly after the previous one, at most
``max_days_between_steps`` after it, all inside ``within_days``; see
:func:`~leadml.rules.timeline.path_progress`). The rule gives ``points`` when every step is done,
plus ``points_per_step`` for each step done when set; the breakdown says how many steps of how
many ("steps", "of").

Flat tables (one row per lead, behaviour already aggregated) have no times: an ``event`` rule
reads the numeric column named like the event (``event[value]`` for a ``where`` with one
attribute value, the feature naming of DESIGN.md) and takes its value as the count ``n``; a
missing value counts 0. ``within_days`` and decay need event times and raise on a flat table.

Rules that cannot fire on the tables they score are told, once per call, as a
:class:`RulesWarning`: an event rule whose type no event has (with the types present and a
"did you mean"), and, stronger, a rule set none of whose rules can fire (no event matches any
event rule's selection, no scored lead passes any field rule), most often a rules file written for
other data.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from leadml.core.errors import ConfigError, LeadDataError
from leadml.data.contract import LeadDataWarning
from leadml.features.timeline.engine import EventTimeline, window_ns
from leadml.rules.output import to_cents
from leadml.rules.schema import Rule, Step
from leadml.rules.timeline import SelectedEvents, path_progress


class RulesWarning(LeadDataWarning):
    """Rules that cannot fire on the data they score; the scores are made all the same.

    Kinds: ``absent_event_type`` (an event rule counts a type no event has, or a scenario step is of
    one; ``count`` 1), ``absent_event_column`` (a scenario step tests a column the events lack) and
    ``rules_cannot_fire`` (no rule of the set can fire; ``count`` the rules).
    """


def _label(rule: Rule, index: int) -> str:
    return f"rule #{index + 1} '{rule.name}'"


def _examples(values: pd.Series, bad: np.ndarray, n: int = 3) -> str:
    rows = np.flatnonzero(bad)[:n]
    return ", ".join(f"row {r + 1} ({values.iloc[r]!r})" for r in rows)


# ---------------------------------------------------------------------------------------------
# field rules


def _matches(values: pd.Series, wanted: Sequence[object]) -> np.ndarray:
    """Values equal to any of ``wanted``: numerically for numbers, else as text; missing never match."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        hit = _matches(pd.Series(cats), wanted)
        codes = values.cat.codes.to_numpy()
        return hit[codes] & (codes >= 0) if len(cats) else np.zeros(len(values), bool)
    numeric_wanted = all(isinstance(v, int | float) and not isinstance(v, bool) for v in wanted)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) and numeric_wanted:
        return values.isin(list(wanted)).to_numpy(dtype=bool, na_value=False)
    text = [str(v).lower() if isinstance(v, bool) else str(v) for v in wanted]
    present = values.notna().to_numpy()
    as_text = values.astype(str)
    if pd.api.types.is_bool_dtype(dtype):
        as_text = as_text.str.lower()
    return as_text.isin(text).to_numpy(dtype=bool, na_value=False) & present


def _numeric(values: pd.Series, rule: Rule, index: int, source: str) -> np.ndarray:
    """The column as floats (NaN where missing); text that is not a number raises naming rows."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(float).to_numpy()
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & values.notna()).to_numpy()
    if bad.any():
        raise LeadDataError(
            f"{source}: {_label(rule, index)} compares column '{rule.field}' with numbers, but "
            f"{int(bad.sum())} values are not numbers (first rows: {_examples(values, bad)})"
        )
    return numbers.to_numpy(dtype=float, na_value=np.nan)


def field_fired(rule: Rule, index: int, values: pd.Series, source: str) -> np.ndarray:
    """Per row of ``values`` (the rule's field), whether every test of the rule holds."""
    fired = np.array(values.notna().to_numpy(), dtype=bool)
    if rule.equals is not None:
        fired &= _matches(values, [rule.equals])
    if rule.isin is not None:
        fired &= _matches(values, rule.isin)
    if rule.gte is not None or rule.lte is not None:
        numbers = _numeric(values, rule, index, source)
        with np.errstate(invalid="ignore"):
            if rule.gte is not None:
                fired &= numbers >= rule.gte
            if rule.lte is not None:
                fired &= numbers <= rule.lte
    return fired


def _field_column(frame: pd.DataFrame, rule: Rule, index: int, source: str, table: str) -> pd.Series:
    if rule.field not in frame.columns:
        have = ", ".join(map(str, list(frame.columns)[:15]))
        raise LeadDataError(
            f"{source}: {_label(rule, index)} tests field '{rule.field}', which the {table} table "
            f"lacks (columns present: {have})"
        )
    return frame[rule.field]


# ---------------------------------------------------------------------------------------------
# event rules on the timeline


def _finish(rule: Rule, count: np.ndarray, weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Fired and points of an event rule from its count and (decayed or plain) amount."""
    fired = count >= rule.min_count
    if weight is not None:  # decayed: the decayed sum (per_event) or the k-th latest event's weight
        amount = weight
    elif rule.per_event:
        amount = count.astype(float)
    else:
        amount = np.ones(len(count))
    points = rule.points * amount
    if rule.cap is not None:
        points = np.clip(points, -rule.cap, rule.cap)
    return fired, np.where(fired, points, 0.0)


def event_points(rule: Rule, selected: SelectedEvents) -> tuple[np.ndarray, np.ndarray]:
    """Fired (bool) and points (float) of one event rule per snapshot, from its selected events."""
    window = rule.within_days
    half_life = rule.half_life_days
    count = selected.count(window)
    if half_life is None:
        return _finish(rule, count, None)
    if rule.per_event:
        return _finish(rule, count, selected.decayed_sum(half_life, window))
    count, age_ns = selected.kth_latest_age_ns(rule.min_count, window)
    return _finish(rule, count, np.exp2(-age_ns / float(window_ns(half_life))))


def step_mask(step: Step, timeline: EventTimeline) -> np.ndarray:
    """The events matching one scenario step (``type[value]``: the value in any attribute); a step
    testing a column the events lack matches nothing (:func:`_warn_missing_step_columns` says so)."""
    if any(attr not in timeline.column_names for attr, _ in step.where):
        return np.zeros(timeline.n_events, dtype=bool)
    mask = timeline.event_mask(step.event, {attr: list(values) for attr, values in step.where})
    if step.any_value is not None:
        hit = np.zeros(timeline.n_events, dtype=bool)
        for name in timeline.column_names:
            if name != "event_type":
                hit |= timeline.value_mask(name, step.any_value)
        mask &= hit
    return mask


def scenario_steps(rule: Rule, timeline: EventTimeline) -> tuple[np.ndarray, bool]:
    """Per snapshot, the steps of a scenario rule done in order; and whether any event matches step 1."""
    masks = [step_mask(step, timeline) for step in rule.steps]
    done = path_progress(timeline, masks, rule.max_days_between_steps, rule.within_days)
    return done, bool(masks[0].any())


def scenario_points(rule: Rule, done: np.ndarray) -> np.ndarray:
    """``points`` for a completed path, plus ``points_per_step`` for each step done."""
    points = np.where(done >= len(rule.steps), rule.points, 0.0)
    if rule.points_per_step is not None:
        points = points + rule.points_per_step * done
    return points


def _warn_missing_step_columns(
    rules: Sequence[Rule], indices: Sequence[int], events: pd.DataFrame, source: str
) -> None:
    """A scenario step testing a column the events lack matches nothing: the path stops before it.

    A path is written for one data shape (a shipped rules file meets many), so this is a
    :class:`RulesWarning`, where an event rule's missing column is an error.
    """
    have = set(events.columns)
    for i in indices:
        for k, step in enumerate(rules[i].steps):
            missing = [attr for attr, _ in step.where if attr not in have]
            if missing:
                message = (f"{source}: {_label(rules[i], i)}: step {k + 1} ({step.label}) tests event column "
                           f"{missing[0]!r}, which the events table lacks, so the path never gets past step {k} "
                           f"(columns present: {', '.join(map(str, list(events.columns)[:15]))})")  # fmt: skip
                warnings.warn(RulesWarning(message, "absent_event_column", 1), stacklevel=5)
                break


def _check_event_columns(rules: Sequence[Rule], indices: Sequence[int], events: pd.DataFrame, source: str) -> None:
    """Every column the event rules read (``event_type`` and the ``where`` attributes) must exist."""
    have = set(events.columns)
    for i in indices:
        for column in ("event_type", *(attr for attr, _ in rules[i].where)):
            if column not in have:
                raise LeadDataError(
                    f"{source}: {_label(rules[i], i)} reads event column '{column}', which the events "
                    f"table lacks (columns present: {', '.join(map(str, list(events.columns)[:15]))})"
                )


# ---------------------------------------------------------------------------------------------
# whole rule sets


def lead_rows(snapshots: pd.DataFrame, leads: pd.DataFrame) -> np.ndarray:
    """Each snapshot's row in ``leads``; snapshots of unknown leads and duplicated lead ids raise."""
    index = pd.Index(leads["lead_id"].astype(str))
    if not index.is_unique:
        dup = index[index.duplicated()][:3].tolist()
        raise LeadDataError(f"<leads table>: column 'lead_id' has duplicated ids (e.g. {dup})")
    wanted = snapshots["lead_id"].astype(str)
    rows = index.get_indexer(wanted)
    unknown = rows < 0
    if unknown.any():
        raise LeadDataError(
            f"<snapshots table>: column 'lead_id' has {int(unknown.sum())} snapshots of leads missing "
            f"from the leads table (first rows: {_examples(wanted, unknown)})"
        )
    return rows


def evaluate_snapshots(
    rules: Sequence[Rule],
    snapshots: pd.DataFrame,
    leads: pd.DataFrame | None,
    events: pd.DataFrame | None,
    source: str,
    rows: np.ndarray | None = None,
    *,
    warn: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Points (cents, int64) and fired (bool), each of shape (snapshots, rules), in snapshot order,
    and per scenario rule (by index) the steps each snapshot completed.

    ``rows`` gives each snapshot's row in ``leads`` when the caller knows it (None: looked up).
    With ``warn``, rules that cannot fire on these tables are told (:func:`warn_unreachable`).
    """
    n = len(snapshots)
    cents = np.zeros((n, len(rules)), dtype=np.int64)
    fired = np.zeros((n, len(rules)), dtype=bool)
    reach = np.zeros(len(rules), dtype=bool)  # per rule: some scored lead passes it, or some event matches it
    field_rules = [i for i, r in enumerate(rules) if r.is_field]
    event_rules = [i for i, r in enumerate(rules) if r.is_event]
    scenario_rules = [i for i, r in enumerate(rules) if r.is_scenario]
    if field_rules:
        if leads is None:
            raise LeadDataError(f"{source}: the rules test profile fields, but no leads table was given")
        rows = lead_rows(snapshots, leads) if rows is None else rows
        for i in field_rules:
            hit = field_fired(rules[i], i, _field_column(leads, rules[i], i, source, "leads"), source)[rows]
            fired[:, i] = hit
            reach[i] = hit.any()
            cents[:, i] = np.where(hit, to_cents(np.array([rules[i].points]))[0], 0)
    steps: dict[int, np.ndarray] = {}
    if event_rules or scenario_rules:
        if events is None:
            names = ", ".join(f"'{rules[i].name}'" for i in (event_rules + scenario_rules)[:3])
            raise LeadDataError(f"{source}: rules on events ({names}) need an events table")
        _check_event_columns(rules, event_rules, events, source)
        if warn:
            _warn_missing_step_columns(rules, scenario_rules, events, source)
        timeline = EventTimeline.build(events, snapshots)
        for i in scenario_rules:
            done, first_step = scenario_steps(rules[i], timeline)
            reach[i] = first_step
            points = scenario_points(rules[i], done)
            cents[:, i] = to_cents(points)
            fired[:, i] = cents[:, i] != 0
            steps[i] = done
        groups: dict[tuple, list[int]] = {}
        for i in event_rules:  # rules selecting the same events share one selection
            groups.setdefault((rules[i].event, rules[i].where), []).append(i)
        for members in groups.values():
            first = rules[members[0]]
            mask = timeline.event_mask(first.event, first.where_dict)
            reach[members] = mask.any()
            selected = SelectedEvents(timeline, mask)
            for i in members:
                hit, points = event_points(rules[i], selected)
                cents[:, i] = to_cents(points)
                if rules[i].half_life_days is not None:  # decayed to 0.00: no longer worth listing
                    hit &= cents[:, i] != 0
                fired[:, i] = hit
            del selected, mask  # one selection's prefix counts at a time
    if warn:
        warn_unreachable(rules, reach if n else None, events, source)
    return cents, fired, steps


def event_types_present(events: pd.DataFrame) -> list[str]:
    """The event types the events table holds, sorted (unused categories left out)."""
    kinds = events["event_type"]
    if isinstance(kinds.dtype, pd.CategoricalDtype):
        codes = kinds.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(kinds.cat.categories)) > 0
        return sorted(map(str, kinds.cat.categories[used]))
    return sorted(map(str, pd.unique(kinds.dropna())))


def _listed(present: Sequence[str], most: int = 12) -> str:
    shown = ", ".join(present[:most]) or "none"
    return shown + (f", ... ({len(present)} in all)" if len(present) > most else "")


def _close_to(event: str, present: Sequence[str]) -> str | None:
    """The present type closest to ``event`` (case aside, as difflib sees it), or None."""
    lowered = {kind.lower(): kind for kind in present}
    found = difflib.get_close_matches(event.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


def _unreachable_reason(rule: Rule, index: int, present: Sequence[str]) -> str:
    """Why one rule cannot fire, in words."""
    label = _label(rule, index)
    if rule.is_field:
        return f"{label} tests field {rule.field!r}, which no scored lead passes"
    if rule.is_scenario:
        return f"{label}: no event matches its first step ({rule.steps[0].label})"
    if rule.event not in present:
        close = _close_to(str(rule.event), present)
        suggestion = f" (did you mean {close!r}?)" if close else ""
        return f"{label} counts event type {rule.event!r}, which no event has{suggestion}"
    tests = " and ".join(f"{attr}={values[0]!r}" if len(values) == 1 else f"{attr} in {list(values)!r}"
                         for attr, values in rule.where)  # fmt: skip
    return f"{label} matches no event of the scored leads (type {rule.event!r}{' where ' + tests if tests else ''})"


def warn_unreachable(rules: Sequence[Rule], reach: np.ndarray | None, events: pd.DataFrame | None, source: str) -> None:
    """Warn about rules that cannot fire: one :class:`RulesWarning` per event rule whose type no event
    has, or, when no rule at all can fire, one stronger warning that lists why for each rule.

    ``reach`` says per rule whether some scored lead passes it (field rules) or some event matches
    its selection (event rules); None when nothing was scored (only the event types are checked).
    Called once per scoring call, whatever the number of snapshots.
    """
    event_rules = [i for i, rule in enumerate(rules) if rule.is_event]
    present = event_types_present(events) if events is not None and any(not r.is_field for r in rules) else []
    if reach is not None and len(rules) and not reach.any():
        reasons = [_unreachable_reason(rule, i, present) for i, rule in enumerate(rules)]
        shown = "; ".join(reasons[:8]) + (f"; ... ({len(reasons) - 8} more)" if len(reasons) > 8 else "")
        types = f"; event types present: {_listed(present)}" if any(not r.is_field for r in rules) else ""
        head = (
            f"none of the {len(rules)} rules in {source} can" if len(rules) > 1 else f"the one rule in {source} cannot"
        )
        message = f"{head} fire on this data: {shown}{types}"
        warnings.warn(RulesWarning(message, "rules_cannot_fire", len(rules)), stacklevel=5)
        return
    known = set(present)
    for i in event_rules:
        event = str(rules[i].event)
        if event not in known:
            close = _close_to(event, present)
            message = (
                f"{source}: {_label(rules[i], i)} counts event type {event!r}, which no event has, so it "
                f"never fires{f'; did you mean {close!r}?' if close else ''} (event types present: {_listed(present)})"
            )
            warnings.warn(RulesWarning(message, "absent_event_type", 1), stacklevel=5)
    for i, rule in enumerate(rules):
        absent = [(k, step) for k, step in enumerate(rule.steps) if step.event not in known]
        if absent:
            k, step = absent[0]
            close = _close_to(step.event, present)
            message = (
                f"{source}: {_label(rule, i)}: step {k + 1} ({step.label}) is of event type {step.event!r}, which no "
                f"event has, so the path never gets past step {k}{f'; did you mean {close!r}?' if close else ''} "
                f"(event types present: {_listed(present)})"
            )
            warnings.warn(RulesWarning(message, "absent_event_type", 1), stacklevel=5)


def flat_column_name(rule: Rule) -> str:
    """The flat-table column an event rule reads: ``event`` or ``event[value]``."""
    assert rule.event is not None, f"rule {rule.name!r} is not an event rule"
    if not rule.where:
        return rule.event
    attr, values = rule.where[0]
    return f"{rule.event}[{values[0]}]"


def evaluate_flat(rules: Sequence[Rule], flat: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Points (cents) and fired per row of a flat table; event rules read count columns."""
    cents = np.zeros((len(flat), len(rules)), dtype=np.int64)
    fired = np.zeros((len(flat), len(rules)), dtype=bool)
    for i, rule in enumerate(rules):
        if rule.is_scenario:
            raise ConfigError(
                f"{source}: {_label(rule, i)}: a scenario needs event times, but a flat table holds counts only; "
                "drop the scenario rule to score flat tables"
            )
        if not rule.is_event:
            hit = field_fired(rule, i, _field_column(flat, rule, i, source, "flat"), source)
            fired[:, i] = hit
            cents[:, i] = np.where(hit, to_cents(np.array([rule.points]))[0], 0)
            continue
        for key, value in (("within_days", rule.within_days), ("decay", rule.half_life_days)):
            if value is not None:
                raise ConfigError(
                    f"{source}: {_label(rule, i)}: '{key}' needs event times, but a flat table holds "
                    "counts only; drop it (and a top-level decay) to score flat tables"
                )
        if len(rule.where) > 1 or (rule.where and len(rule.where[0][1]) > 1):
            raise ConfigError(
                f"{source}: {_label(rule, i)}: 'where' with several attributes or values has no flat "
                "column; use one value (the column is named event[value])"
            )
        column = flat_column_name(rule)
        fake = Rule(name=rule.name, points=rule.points, tag=rule.tag, field=column, gte=0.0)
        values = _field_column(flat, fake, i, source, "flat")
        count = np.nan_to_num(_numeric(values, fake, i, source), nan=0.0)
        hit, points = _finish(rule, count, None)
        fired[:, i] = hit
        cents[:, i] = to_cents(points)
    return cents, fired
