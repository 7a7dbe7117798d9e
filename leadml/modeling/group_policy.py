"""MQL rules with a threshold per lead: a capacity per team or owner, and the value policy.

Two settings of ``mql`` make the threshold differ from lead to lead:

- ``capacity_by: owner`` (a column of the leads table) with ``capacity_per_week`` a number (the same
  for every group) or a mapping ``{team_a: 30, team_b: 20}``, whose ``default`` key covers groups not
  listed. Training replays the validation period's nightly runs once and, per group, picks the
  threshold at which that group's leads start at most its capacity of MQL spells a week
  (:func:`~leadml.modeling.policy.spell_threshold` on the group's nights). A lead without a group
  value is in the group ``default``. The packed model keeps ``thresholds_by_group`` and one global
  threshold, found the same way on all leads for the sum of the groups' capacities, for a group
  training never saw (a new team is judged by it until the next training).
- ``policy: value`` with ``value_column`` (expected deal value) and ``touch_cost``: a lead is an MQL
  when ``p x value - touch_cost >= 0``, i.e. ``p >= touch_cost / value`` (a value of 0 never
  qualifies while touching costs something). A missing value is the median of the training leads'
  values (each scoring run counts these in its notes). With ``capacity_per_week`` as well, the
  capacity caps the rule: a lead is an MQL when ``p >= max(touch_cost / value, t)``, where ``t`` is
  the capacity threshold found on the nightly runs of the leads whose expected value is positive
  (per group with ``capacity_by``). The scores gain ``expected_value`` (``p x value - touch_cost``).

:class:`MQLRule` is what a packed model carries; :meth:`MQLRule.thresholds` gives each lead's
threshold from the reserved columns of :mod:`leadml.data.mql_columns`. Everything is vectorised and
deterministic: groups are sorted, ties go as in the one-threshold policy.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from leadml.core.config import MQLConfig
from leadml.core.errors import ConfigError
from leadml.data.mql_columns import DEFAULT_GROUP, GROUP_COLUMN, VALUE_COLUMN
from leadml.modeling.policy import NOBODY, NightlyScores, Threshold, find_threshold, spell_threshold


@dataclass(frozen=True)
class MQLRule:
    """A threshold per lead: by group (``thresholds_by_group``) and by value (``touch_cost / value``).

    Attributes:
        threshold: the capacity threshold of a lead whose group training never saw (0.0: no capacity).
        group_column, value_column: the leads columns read (None: not used).
        thresholds_by_group: the threshold of each group seen in training (``default``: leads without a
            group value, when there were any or the mapping had the key).
        touch_cost: the cost of one touch (value policy).
        value_median: the training leads' median value, for a lead without one.
    """

    threshold: float = 0.0
    group_column: str | None = None
    value_column: str | None = None
    thresholds_by_group: dict[str, float] = field(default_factory=dict)
    touch_cost: float = 0.0
    value_median: float | None = None

    @property
    def by_value(self) -> bool:
        return self.value_column is not None

    def group_thresholds(self, groups: pd.Series | np.ndarray | None, n: int) -> np.ndarray:
        """The capacity threshold of each lead: its group's, the ``default`` group's when it has no group,
        :attr:`threshold` when its group is unseen (or no group is read)."""
        if groups is None or self.group_column is None:
            return np.full(n, self.threshold)
        text = pd.Series(np.asarray(groups, dtype=object))
        known = pd.Index(list(self.thresholds_by_group), dtype=object)
        values = np.append(np.array(list(self.thresholds_by_group.values()), dtype=float), self.threshold)
        codes = known.get_indexer(text.where(text.notna(), DEFAULT_GROUP))
        return values[np.where(codes < 0, len(known), codes)]

    def values(self, values: pd.Series | np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
        """Each lead's value (a missing one is :attr:`value_median`) and how many were missing."""
        raw = np.full(n, np.nan) if values is None else np.asarray(values, dtype=float)
        missing = np.isnan(raw)
        fill = self.value_median if self.value_median is not None else 0.0
        return np.where(missing, fill, raw), int(missing.sum())

    def floor(self, values: np.ndarray) -> np.ndarray:
        """``touch_cost / value`` per lead: the lowest probability whose expected value is not negative
        (0 when touching is free; :data:`NOBODY` for a value of 0 at a cost)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            floor = np.where(values > 0, self.touch_cost / np.where(values > 0, values, 1.0), NOBODY)
        return np.where(self.touch_cost <= 0, 0.0, floor)

    def thresholds(self, p: np.ndarray, columns: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Each lead's threshold, its expected value (None without the value policy) and the count of
        missing values filled with the median. ``columns`` holds ``mql__group`` / ``mql__value``
        (:func:`~leadml.data.mql_columns.lead_mql_columns`), aligned with ``p``; None: all missing."""
        n = len(p)
        groups = columns[GROUP_COLUMN] if columns is not None and GROUP_COLUMN in columns else None
        threshold = self.group_thresholds(groups, n)
        if not self.by_value:
            return threshold, None, 0
        raw = columns[VALUE_COLUMN] if columns is not None and VALUE_COLUMN in columns else None
        values, missing = self.values(raw, n)
        expected = np.asarray(p, dtype=float) * values - self.touch_cost
        return np.maximum(threshold, self.floor(values)), expected, missing


def group_capacities(mql: MQLConfig, groups: Sequence[str]) -> dict[str, int]:
    """The weekly capacity of each group found in the data (sorted).

    Raises:
        ConfigError: a key of the mapping names no group of the data (a misspelling: the message
            names it, the groups found and the closest one), or a group found is not listed and the
            mapping has no ``default`` key.
    """
    found = sorted(set(groups))
    capacity = mql.capacity_per_week
    if capacity is None:
        raise ConfigError("mql.capacity_by needs mql.capacity_per_week")
    if not isinstance(capacity, Mapping):
        return {group: int(capacity) for group in found}
    shown = ", ".join(found[:20]) + (f" ... ({len(found)} groups)" if len(found) > 20 else "")
    for key in capacity:
        if key != DEFAULT_GROUP and key not in found:
            close = difflib.get_close_matches(key, found, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"mql.capacity_per_week: {key!r} is not a group of the leads column "
                              f"{mql.capacity_by!r} (groups found: {shown}){hint}")  # fmt: skip
    unlisted = [g for g in found if g not in capacity]
    if unlisted and DEFAULT_GROUP not in capacity:
        raise ConfigError(f"mql.capacity_per_week lists no capacity for the group(s) {', '.join(unlisted[:10])} of "
                          f"the leads column {mql.capacity_by!r} (groups found: {shown}); list them or add a "
                          f"'{DEFAULT_GROUP}' key")  # fmt: skip
    return {group: int(capacity.get(group, capacity.get(DEFAULT_GROUP, 0))) for group in found}


@dataclass(frozen=True)
class GroupThresholds:
    """The thresholds of a capacity by group, and the new MQLs a week each starts in the replay."""

    threshold: float
    by_group: dict[str, float]
    new_per_week: dict[str, float]
    capacities: dict[str, int]
    notes: list[str]


def fit_group_thresholds(nightly: NightlyScores, groups: np.ndarray, capacities: Mapping[str, int]) -> GroupThresholds:
    """Per group, the lowest threshold at which the group's leads start at most its capacity of MQL
    spells a week over the replayed nights; the global one holds the sum of the capacities over all leads.

    ``groups`` is aligned with ``nightly`` (None or NaN: the ``default`` group). A group with no
    night in the replay keeps the global threshold (a note says so).
    """
    text = pd.Series(np.asarray(groups, dtype=object))
    text = text.where(text.notna(), DEFAULT_GROUP).to_numpy(dtype=object)
    weeks = nightly.weeks
    total = float(sum(capacities.values()))
    overall = spell_threshold(nightly, total * weeks)
    overall = max(overall, 0.0) if overall != NOBODY else NOBODY
    by_group: dict[str, float] = {}
    started: dict[str, float] = {}
    notes: list[str] = []
    for group in sorted(capacities):  # a few groups: one vectorised search each
        rows = text == group
        if not rows.any():
            notes.append(f"group {group!r} has no open lead in the replayed nights: it keeps the global threshold")
            continue
        part = nightly.subset(rows)
        found = spell_threshold(part, capacities[group] * weeks)
        found = max(found, 0.0) if found != NOBODY else NOBODY
        by_group[group] = float(found)
        started[group] = float(part.spells(np.array([found]))[0]) / weeks if found != NOBODY else 0.0
    return GroupThresholds(float(overall), by_group, started, dict(capacities), notes)


def training_value_median(values: pd.Series | np.ndarray) -> float | None:
    """The median of the training leads' values (None when none has one)."""
    numbers = np.asarray(values, dtype=float)
    numbers = numbers[~np.isnan(numbers)]
    return float(np.median(numbers)) if len(numbers) else None


def rule_threshold(
    mql: MQLConfig,
    p: np.ndarray,
    columns: pd.DataFrame,
    *,
    as_of: pd.Series | None = None,
    y: np.ndarray | None = None,
    nightly: NightlyScores | None = None,
    nightly_columns: pd.DataFrame | None = None,
    groups: Sequence[str] = (),
    value_median: float | None = None,
) -> tuple[Threshold, MQLRule]:
    """The threshold of a per-lead MQL rule on the validation snapshots (``p``, their ``columns``), and
    the rule a packed model carries.

    ``nightly`` and ``nightly_columns`` (aligned) are the replayed nights; ``groups`` the groups of the
    leads table (``default`` among them when a lead has no value), checked against the mapping of
    capacities. The :class:`Threshold`'s ``threshold`` is the global one (value policy: that of a lead
    of median value, the number a report shows); its counts, precision and recall use each snapshot's
    own threshold.

    Raises:
        ConfigError: ``capacity_by`` without nightly runs to count spells in (flat data), or a mapping
            of capacities that does not fit the groups found (:func:`group_capacities`).
    """
    p = np.asarray(p, dtype=float)
    rule = MQLRule(group_column=mql.capacity_by, value_column=mql.value_column,
                   touch_cost=float(mql.touch_cost or 0.0), value_median=value_median)  # fmt: skip
    floor = None
    if rule.by_value:
        floor = rule.floor(rule.values(columns.get(VALUE_COLUMN), len(p))[0])
        if nightly is not None and nightly_columns is not None:
            nightly = nightly.floored(rule.floor(rule.values(nightly_columns.get(VALUE_COLUMN), len(nightly.p))[0]))
    if mql.capacity_by is None:
        found = find_threshold(p, mql, as_of=as_of, y=y, nightly=nightly, floor=floor)
        rule = replace(rule, threshold=max(found.threshold, 0.0))
        typical = rule.floor(np.array([value_median if value_median is not None else 0.0]))[0]
        return replace(found, threshold=float(max(found.threshold, typical))), rule
    if nightly is None or nightly_columns is None or not len(nightly.p):
        raise ConfigError("mql.capacity_by counts the new MQLs of each group in the nightly runs replayed over the "
                          "validation period, which this data has none of (flat data, or no labelled validation "
                          "snapshots); leave capacity_by out")  # fmt: skip
    capacities = group_capacities(mql, groups)
    fitted = fit_group_thresholds(nightly, nightly_columns[GROUP_COLUMN].to_numpy(dtype=object), capacities)
    rule = replace(rule, threshold=fitted.threshold, thresholds_by_group=fitted.by_group)
    own, _, _ = rule.thresholds(p, columns)
    uncapped = MQLConfig(policy="value", value_column="-", touch_cost=0.0)  # threshold 0: each row's own decides
    found = find_threshold(p, uncapped, as_of=as_of, y=y, floor=own)
    shown = ", ".join(f"{g} {fitted.new_per_week.get(g, 0.0):.1f}/{fitted.capacities[g]}" for g in sorted(capacities))
    note = (f"{mql.policy} by {mql.capacity_by}: new MQLs a week / capacity in nightly runs replayed over "
            f"{nightly.weeks:.1f} weeks of the validation period: {shown}")  # fmt: skip
    advice = ("no validation snapshot reaches its group's threshold; raise mql.capacity_per_week"
              if len(p) and not found.mql_count else "")  # fmt: skip
    typical = rule.floor(np.array([value_median if value_median is not None else 0.0]))[0] if rule.by_value else 0.0
    return replace(
        found, threshold=float(max(fitted.threshold, typical)), policy=mql.policy, note="; ".join([note, *fitted.notes]),
        advice=advice, new_per_week=float(sum(fitted.new_per_week.values())), by_group=dict(fitted.by_group),
        new_per_week_by_group=dict(fitted.new_per_week),
    ), rule  # fmt: skip
