"""The MQL policy: which leads go to sales, their tier and their score 0-100.

The threshold is a calibrated probability, found on the validation snapshots in one of four ways
(``mql.policy``), never a constant chosen before the model is seen:

- ``f1`` (the default): among the distinct probabilities, the threshold ``t`` whose MQLs
  (``p >= t``) have the best F1 against the labels, ``F1 = 2 TP / (MQLs + conversions)``: the
  balance of precision and recall. On a tie the higher threshold wins (the same F1 with fewer
  MQLs). Without any conversion F1 is 0 everywhere, so the highest probability is kept.
- ``capacity``: sales can take ``capacity_per_week`` *new* MQLs a week. With the nightly runs
  replayed over the validation period (:class:`NightlyScores`: every open lead scored every night,
  as ``leadml score`` does), the threshold is the lowest probability ``t`` such that it and every
  higher one start at most ``capacity_per_week * weeks`` MQL spells there: a lead starts a spell on
  a night its probability reaches ``t`` after a night below it, or on its first night when it is
  new (created inside the period). A lead already above ``t`` when the period began was handed
  over before and starts nothing. Without the replay, the snapshots span
  ``weeks = (last as_of - first as_of + 1 day) / 7 days`` and the threshold is the lowest ``t`` with at
  most ``capacity_per_week * weeks`` snapshots at or above it (the 0.1 rule: snapshots, not leads).
  Flat data has no time: the batch is taken to be ``batch_weeks`` weeks of leads (default one), so
  the top ``capacity_per_week * batch_weeks`` rows of the batch are MQL; the resulting share of the
  batch is reported, and new leads are judged by the probability threshold, not by the share.
- ``precision``: the lowest threshold at which the precision of ``p >= t`` reaches
  ``target_precision`` (the most conversions at that precision).
- ``probability``: a fixed probability.
- ``value``, and ``capacity`` by a leads column (``capacity_by``): a threshold per lead, see
  :mod:`leadml.modeling.group_policy` (``value`` without a capacity gives the threshold 0 here and
  each snapshot's own ``floor``, ``touch_cost / value``, decides).

A threshold that makes no MQL of the snapshots it was found on sends nobody to sales: a fixed
probability above all of them, or a capacity smaller than one lead over their span. (When more
snapshots tie at the highest probability than a capacity holds, as a calibration step can make
them, the tied group is taken and the note says by how much it exceeds the capacity.) :attr:`Threshold.advice` then says why and what to
change; training refuses such a threshold for the model it keeps (``ModelError``).

A lead is an MQL when ``probability >= threshold``. Tiers come from ``MQLConfig.tiers``: the first
tier (by descending ``min``) whose ``min`` the probability reaches; a tier without ``min`` is the
catch-all. The score is the probability in percent, rounded half up to an integer (``0.125`` -> 13;
``100 p`` is first rounded to 9 decimals so that float noise such as ``14.499999999999998`` for
``0.145`` does not turn a half into a round-down).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from leadml.core.config import MQLConfig, TierConfig
from leadml.core.errors import ConfigError

WEEK = pd.Timedelta(days=7)
DAY = pd.Timedelta(days=1)
NOBODY = float(np.nextafter(1.0, 2.0))  # a threshold no probability reaches


@dataclass(frozen=True)
class Threshold:
    """An MQL threshold and how it was found.

    Attributes:
        threshold: the probability from which a lead is an MQL (:data:`NOBODY` when none can be).
        policy: ``f1``, ``capacity``, ``precision`` or ``probability``.
        mql_count: snapshots at or above the threshold in the data it was found on.
        share: ``mql_count`` over all snapshots.
        weeks: the span of the data in weeks (None when the data had no time).
        per_week: ``mql_count / weeks`` (None without time).
        new_per_week: MQL spells started a week in the replayed nightly runs (``capacity`` with a
            replay; else None).
        precision: the precision at the threshold when labels were given (None without MQLs).
        recall: the share of the conversions at or above the threshold (None without labels or conversions).
        f1: the F1 at the threshold when labels were given (None when there are neither MQLs nor conversions).
        note: what was done, in a sentence.
        advice: when ``mql_count`` is 0, why no snapshot reaches the threshold and what to change; else empty.
    """

    threshold: float
    policy: str
    mql_count: int
    share: float
    weeks: float | None = None
    per_week: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    note: str = ""
    advice: str = ""
    new_per_week: float | None = None
    by_group: dict[str, float] | None = None  # capacity_by: each group's threshold (leadml.modeling.group_policy)
    new_per_week_by_group: dict[str, float] | None = None  # and the new MQLs a week it starts in the replay


def span_weeks(as_of: pd.Series) -> float:
    """``(last as_of - first as_of + 1 day) / 7 days``: the weeks a set of snapshots covers."""
    as_of = pd.Series(as_of).dropna()
    if as_of.empty:
        raise ValueError("span_weeks: no as_of values")
    return float((as_of.max() - as_of.min() + DAY) / WEEK)


def top_k_threshold(p: np.ndarray, k: int) -> float:
    """The lowest threshold ``t`` (a value of ``p``) with at most ``k`` values ``>= t``.

    Example:
        >>> top_k_threshold(np.array([0.9, 0.5, 0.5, 0.2]), 2)
        0.9
        >>> top_k_threshold(np.array([0.9, 0.5, 0.5, 0.2]), 3)
        0.5
    """
    p = np.asarray(p, dtype=float)
    if k <= 0 or len(p) == 0:
        return NOBODY
    values, counts = np.unique(p, return_counts=True)  # ascending
    at_or_above = np.cumsum(counts[::-1])[::-1]  # snapshots with p >= each value
    ok = np.flatnonzero(at_or_above <= k)
    return float(values[ok[0]]) if len(ok) else NOBODY


@dataclass(frozen=True)
class NightlyScores:
    """Probabilities of the open leads, night by night, over a period (the replayed scoring runs).

    ``p``, ``lead_id``, ``as_of`` and ``created_at`` are aligned; ``fraction`` is the share of the
    leads replayed (counts of spells scale by ``1 / fraction``). ``period`` (first night in ns, weeks)
    keeps the whole replay's period for a part of its leads (:meth:`subset`: one group).
    """

    p: np.ndarray
    lead_id: np.ndarray
    as_of: pd.Series
    created_at: pd.Series
    fraction: float = 1.0
    period: tuple[int, float] | None = None

    @property
    def weeks(self) -> float:
        return self.period[1] if self.period is not None else span_weeks(self.as_of)

    def subset(self, rows: np.ndarray) -> NightlyScores:
        """The nights of some rows (a boolean mask), over the same period as the whole replay."""
        start = int(pd.to_datetime(self.as_of, utc=True).dt.as_unit("ns").array.asi8.min()) if len(self.p) else 0
        period = self.period if self.period is not None else (start, self.weeks)
        return NightlyScores(p=np.asarray(self.p)[rows], lead_id=np.asarray(self.lead_id)[rows],
                             as_of=self.as_of[rows].reset_index(drop=True),
                             created_at=self.created_at[rows].reset_index(drop=True),
                             fraction=self.fraction, period=period)  # fmt: skip

    def floored(self, floor: np.ndarray) -> NightlyScores:
        """The nights with each probability below its row's ``floor`` set to -1: no threshold in [0, 1]
        makes those rows MQL, so the spells counted are those of ``p >= max(threshold, floor)``."""
        p = np.where(np.asarray(self.p, dtype=float) >= floor, self.p, -1.0)
        return NightlyScores(p=p, lead_id=self.lead_id, as_of=self.as_of, created_at=self.created_at,
                             fraction=self.fraction, period=self.period)  # fmt: skip

    @cached_property
    def _sorted_sides(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted probabilities of the spell starts' two kinds: new leads' first nights, and the night
        pairs (after, and the lower of before and after), so that each count is a binary search."""
        as_of = pd.to_datetime(self.as_of, utc=True).dt.as_unit("ns").array.asi8
        created = pd.to_datetime(self.created_at, utc=True).dt.as_unit("ns").array.asi8
        order = np.lexsort((as_of, self.lead_id))
        lead, p = self.lead_id[order], np.asarray(self.p, dtype=float)[order]
        first = np.ones(len(lead), dtype=bool)
        first[1:] = lead[1:] != lead[:-1]
        start = self.period[0] if self.period is not None else as_of.min() if len(as_of) else 0
        born = first & (created[order] >= start - DAY.value)
        after, before = p[~first], np.roll(p, 1)[~first]
        return np.sort(p[born]), np.sort(after), np.sort(np.minimum(before, after))

    def spells(self, thresholds: np.ndarray) -> np.ndarray:
        """MQL spells started over the period at each threshold, scaled to all leads.

        A spell starts on a night the lead reaches the threshold after a night below it, or on the
        first night of a lead created inside the period; each night pair counts for the thresholds
        in ``(p before, p after]``.
        """
        t = np.asarray(thresholds, dtype=float)

        def at_least(ordered: np.ndarray) -> np.ndarray:
            return len(ordered) - np.searchsorted(ordered, t, side="left")

        born, after, lower = self._sorted_sides
        return (at_least(born) + at_least(after) - at_least(lower)) / self.fraction


def spell_threshold(nightly: NightlyScores, k: float) -> float:
    """The lowest threshold such that it and every higher one start at most ``k`` spells (:data:`NOBODY`: none).

    Lowering a threshold can start fewer spells (a lead above it all along starts none), so the
    scan goes down from the top and stops before the first threshold over ``k``.
    """
    if k <= 0 or len(nightly.p) == 0:
        return NOBODY
    candidates = np.unique(np.asarray(nightly.p, dtype=float))
    over = np.flatnonzero(nightly.spells(candidates) > k)
    first_ok = over[-1] + 1 if len(over) else 0
    return float(candidates[first_ok]) if first_ok < len(candidates) else NOBODY


def _from_the_top(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each distinct value of ``p`` (descending), the rows with ``p >=`` it and the conversions among them."""
    values = np.unique(p)[::-1]
    order = np.argsort(-p, kind="stable")
    ends = np.searchsorted(-p[order], -values, side="right")
    hits = np.cumsum(y[order])[ends - 1]
    return values, ends, hits


def precision_threshold(p: np.ndarray, y: np.ndarray, target: float) -> tuple[float, bool]:
    """The lowest threshold whose precision reaches ``target``; else the one of best precision.

    Returns the threshold and whether the target was reached.
    """
    values, ends, hits = _from_the_top(np.asarray(p, dtype=float), np.asarray(y, dtype=float))
    precision = hits / ends
    ok = np.flatnonzero(precision >= target)
    if len(ok):
        return float(values[ok[-1]]), True
    return float(values[int(np.argmax(precision))]), False


def f1_threshold(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The threshold (a value of ``p``) whose ``p >= t`` has the best F1 against ``y``, and that F1.

    F1 is ``2 TP / (MQLs + conversions)``; on a tie the higher threshold wins (fewer MQLs for the
    same F1). Empty ``p`` gives :data:`NOBODY` and F1 0.

    Example:
        >>> t, f1 = f1_threshold(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 0, 1]))
        >>> t, round(f1, 3)  # 0.9 and 0.6 both give F1 2/3: the higher one
        (0.9, 0.667)
    """
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    if len(p) == 0:
        return NOBODY, 0.0
    values, ends, hits = _from_the_top(p, y)
    f1 = 2 * hits / (ends + y.sum())  # ends >= 1, so never 0 / 0
    best = int(np.argmax(f1))  # the first maximum: values are descending
    return float(values[best]), float(f1[best])


def _significant_down(x: float, digits: int = 3) -> float:
    """``x`` cut (not rounded) to ``digits`` significant digits: a value never above ``x``."""
    if x <= 0 or not math.isfinite(x):
        return x
    scale = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return math.floor(x / scale) * scale


def _no_mql_advice(p: np.ndarray, mql: MQLConfig, threshold: float, span: float | None) -> str:
    """Why no value of ``p`` reaches ``threshold`` under ``mql``, and what to change."""
    top = float(p.max())
    held = int((p == top).sum())
    if mql.policy == "probability":
        return (
            f"mql.policy probability puts the threshold at {threshold:g}, above the highest probability "
            f"{top:.4g}; lower mql.probability to {_significant_down(top):g} or less, or use mql.policy: f1 "
            "(or capacity)"
        )
    if mql.policy == "value":
        return (
            f"mql.policy value makes an MQL of a lead whose p x {mql.value_column} reaches mql.touch_cost "
            f"({mql.touch_cost:g}), and no snapshot's does (the highest probability is {top:.4g}); lower "
            "mql.touch_cost, or check the values"
        )
    if mql.policy == "capacity" and span is not None:
        assert mql.weekly_capacity is not None  # MQLConfig requires it for this policy
        capacity = mql.weekly_capacity
        allowed = int(np.floor(capacity * span + 1e-9))
        needed = math.ceil(held / span - 1e-9)
        if held == len(p) > 1 and allowed >= 1:  # more room than one, yet nothing to choose between
            return (
                f"mql.policy capacity allows {allowed} MQLs ({capacity} a week over {span:.2f} weeks, "
                f"rounded down) but all {held} snapshots share the probability {top:.4g}: the model tells none of "
                "them apart (did it learn from too few conversions?)"
            )
        why = (
            f"{held} snapshots share the highest probability {top:.4g}"
            if held > 1
            else f"the highest probability is {top:.4g}"
        )
        return (
            f"mql.policy capacity allows {allowed} MQLs ({capacity} a week over {span:.2f} weeks, "
            f"rounded down) and {why}, so no threshold is reachable; raise mql.capacity_per_week to at least "
            f"{needed}, or use mql.policy: f1"
        )
    return f"mql.policy {mql.policy} gives the threshold {threshold:g}, above the highest probability {top:.4g}"


def _policy_threshold(
    p: np.ndarray, mql: MQLConfig, y: np.ndarray | None, span: float, timed: bool, nightly: NightlyScores | None = None
) -> tuple[float, str]:
    """The threshold of ``mql.policy`` on ``p`` and a sentence on how it was found."""
    n = len(p)
    if mql.policy == "f1":
        if y is None:
            raise ValueError("the f1 policy needs labels")
        threshold, best = f1_threshold(p, y)
        if np.asarray(y, dtype=float).sum() == 0:
            return threshold, "f1: no conversion among the labels (F1 is 0 everywhere); the highest probability kept"
        return threshold, f"f1: the best F1 ({best:.3f}) of {len(np.unique(p))} distinct probabilities"
    if mql.policy == "value" and not mql.capped:
        return 0.0, f"value: an MQL when p x {mql.value_column} - {mql.touch_cost:g} >= 0 (a threshold per lead)"
    if mql.capped and nightly is not None and len(nightly.p):
        assert mql.weekly_capacity is not None  # MQLConfig requires it for this policy
        weeks, capacity = nightly.weeks, mql.weekly_capacity
        threshold = spell_threshold(nightly, capacity * weeks)
        if threshold != NOBODY:
            threshold = max(threshold, 0.0)  # below every probability: -1 marks the rows the value rule leaves out
            started = float(nightly.spells(np.array([threshold]))[0]) / weeks
            return threshold, (f"{mql.policy}: {started:.1f} new MQLs a week (at most {capacity}) in "
                               f"nightly runs replayed over {weeks:.1f} weeks of the validation period")  # fmt: skip
    if mql.capped:
        assert mql.weekly_capacity is not None  # MQLConfig requires it for this policy
        k = int(np.floor(mql.weekly_capacity * span + 1e-9))
        how = (
            f"{mql.weekly_capacity} a week over {span:.2f} weeks"
            if timed
            else f"{mql.weekly_capacity} a week, the batch taken as {span:g} week(s) of leads"
        )
        threshold = top_k_threshold(p, k)
        if threshold == NOBODY and k > 0 and n and np.max(p) > np.min(p):  # all equal: nothing told apart
            # more snapshots tie at the top probability than the capacity holds (an isotonic step):
            # send the tied group rather than nobody, and say by how much it exceeds the capacity
            top = float(np.max(p))
            tied = int(np.sum(p >= top))
            return top, (f"capacity: {tied} of {n} snapshots share the highest probability {top:.4g}, more than "
                         f"the {k} allowed ({how}); all of them are MQL (capacity exceeded by {tied - k})")  # fmt: skip
        return threshold, f"capacity: at most {k} of {n} snapshots ({how})"
    if mql.policy == "precision":
        if y is None:
            raise ValueError("the precision policy needs labels")
        assert mql.target_precision is not None  # MQLConfig requires it for this policy
        threshold, reached = precision_threshold(p, y, mql.target_precision)
        if reached:
            return threshold, f"precision: lowest threshold with precision >= {mql.target_precision:g}"
        return threshold, f"precision: target {mql.target_precision:g} not reached; threshold of the best precision"
    if mql.policy == "probability":
        assert mql.probability is not None  # MQLConfig requires it for this policy
        return float(mql.probability), f"probability: fixed at {mql.probability:g}"
    raise ConfigError(f"mql.policy: unknown policy {mql.policy!r}")  # pragma: no cover - the config checks it


def find_threshold(
    p: np.ndarray,
    mql: MQLConfig,
    *,
    as_of: pd.Series | None = None,
    y: np.ndarray | None = None,
    batch_weeks: float = 1.0,
    nightly: NightlyScores | None = None,
    floor: np.ndarray | None = None,
) -> Threshold:
    """The MQL threshold of a policy, found on calibrated probabilities (the validation snapshots).

    Parameters:
        p: calibrated probabilities.
        mql: the policy (``f1`` / ``capacity`` / ``precision`` / ``probability``) and its value.
        as_of: the snapshots' as_of, for ``capacity``; None or all NaT for flat data (``batch_weeks``).
        y: labels, needed for ``f1`` and ``precision`` (and used to report precision, recall and F1).
        nightly: the replayed nightly runs of the same model over the period, for ``capacity`` in
            new MQLs a week (without it, ``capacity`` caps snapshots).
        floor: each snapshot's own lowest threshold (``value``: ``touch_cost / value``); a snapshot is
            an MQL when ``p >= max(threshold, floor)`` (a capacity counts only those; ``nightly`` is
            then floored by the caller, :meth:`NightlyScores.floored`).

    Returns:
        The :class:`Threshold`; when no snapshot reaches it, ``mql_count`` is 0 and ``advice`` says
        what to change (the caller decides whether that is an error).

    Example:
        >>> from leadml.core.config import MQLConfig
        >>> import pandas as pd
        >>> days = pd.Series(pd.date_range("2026-01-01", periods=14, freq="D", tz="UTC"))
        >>> p = np.linspace(0.01, 0.14, 14)
        >>> find_threshold(p, MQLConfig(policy="capacity", capacity_per_week=2), as_of=days).mql_count
        4
        >>> find_threshold(p, MQLConfig(), y=(p > 0.1).astype(int)).threshold  # f1, the default
        0.11
    """
    p = np.asarray(p, dtype=float)
    n = len(p)
    has_time = as_of is not None and bool(pd.Series(as_of).notna().any())
    weeks = span_weeks(as_of) if has_time else None
    span = weeks if weeks is not None else batch_weeks
    floor = np.zeros(n) if floor is None else np.asarray(floor, dtype=float)
    eligible = np.where(p >= floor, p, -1.0)  # -1: below the row's own floor, never an MQL
    threshold, note = _policy_threshold(eligible, mql, y, span, timed=weeks is not None, nightly=nightly)
    chosen = p >= np.maximum(threshold, floor)
    count = int(chosen.sum())
    precision = recall = f1 = None
    if y is not None:
        labels = np.asarray(y, dtype=float)
        hits, positives = float(labels[chosen].sum()), float(labels.sum())
        precision = hits / count if count else None
        recall = hits / positives if positives else None
        f1 = 2 * hits / (count + positives) if count + positives else None
    new_per_week = None
    if nightly is not None and len(nightly.p) and mql.capped and threshold != NOBODY:
        new_per_week = float(nightly.spells(np.array([threshold]))[0]) / nightly.weeks
    return Threshold(
        threshold=threshold,
        policy=mql.policy,
        new_per_week=new_per_week,
        mql_count=count,
        share=count / n if n else float("nan"),
        weeks=weeks,
        per_week=count / weeks if weeks else None,
        precision=precision,
        recall=recall,
        f1=f1,
        note=note,
        advice=_no_mql_advice(p, mql, threshold, span) if n and not count else "",
    )


def _tier_min(tier: TierConfig, threshold: float | None) -> float | None:
    """A tier's lower bound as a probability (``mql`` is the MQL threshold)."""
    if tier.min == "mql":
        if threshold is None:
            raise ConfigError(
                f"mql.tiers: tier {tier.name!r} starts at the MQL threshold ('mql'), "
                "which is only known for a trained model"
            )
        return float(threshold)
    return tier.min


def ordered_tiers(tiers: Sequence[TierConfig], threshold: float | None = None) -> list[TierConfig]:
    """Tiers by descending ``min``; a tier with ``min: mql`` comes first (it holds exactly the MQLs,
    whatever the other bounds), the catch-all (no ``min``) last."""
    catch_all = [t for t in tiers if t.min is None]
    if len(catch_all) > 1:
        raise ConfigError(
            f"mql.tiers: only one tier may leave out 'min' (the catch-all); these do: {[t.name for t in catch_all]}"
        )
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ConfigError(f"mql.tiers: tier names must be unique, got {names}")
    mql = [t for t in tiers if t.min == "mql"]

    def descending(tier: TierConfig) -> float:
        bound = _tier_min(tier, threshold)
        assert bound is not None  # the catch-all is not ranked
        return -bound

    ranked = sorted((t for t in tiers if t.min not in (None, "mql")), key=descending)
    if mql and threshold is None:
        _tier_min(mql[0], threshold)  # raises: the threshold is needed
    return mql + ranked + catch_all


def assign_tiers(
    p: np.ndarray, tiers: Sequence[TierConfig], threshold: float | np.ndarray | None = None
) -> pd.Categorical:
    """The tier of each probability: the first (highest ``min``) tier it reaches.

    ``threshold`` may be one per row (an MQL rule by group or by value): a ``min: mql`` tier then
    holds each row at or above its own threshold.

    A tier with ``min: mql`` holds exactly the MQLs (probability at or above ``threshold``); the other
    tiers share the rest. Without a catch-all, probabilities below the lowest ``min`` get the lowest tier.

    Example:
        >>> from leadml.core.config import MQLConfig
        >>> list(assign_tiers(np.array([0.6, 0.25, 0.1, 0.02]), MQLConfig().tiers))
        ['A', 'B', 'C', 'D']
        >>> tiers = [TierConfig(name="MQL", min="mql"), TierConfig(name="nurture", min=0.1),
        ...          TierConfig(name="unqualified")]
        >>> list(assign_tiers(np.array([0.4, 0.3, 0.05]), tiers, threshold=0.35))
        ['MQL', 'nurture', 'unqualified']
        >>> list(assign_tiers(np.array([0.4, 0.08, 0.05]), tiers, threshold=0.07))
        ['MQL', 'MQL', 'unqualified']
    """
    per_row = threshold is not None and np.ndim(threshold) > 0
    ranked = ordered_tiers(tiers, 0.0 if per_row else threshold)  # type: ignore[arg-type]
    if not ranked:
        raise ConfigError("mql.tiers: at least one tier is needed")
    p = np.asarray(p, dtype=float)
    mins = np.empty((len(p), len(ranked)))
    for j, tier in enumerate(ranked):  # a few tiers: one vectorised column each
        if per_row and tier.min == "mql":
            mins[:, j] = np.asarray(threshold, dtype=float)
        else:
            mins[:, j] = _tier_min(tier, threshold) if tier.min is not None else -np.inf  # type: ignore[arg-type]
    reached = p[:, None] >= mins
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), len(ranked) - 1)
    return pd.Categorical.from_codes(first, dtype=_tiers_dtype(tuple(t.name for t in ranked)))


_DTYPES: dict[tuple[str, ...], pd.CategoricalDtype] = {}  # tier names -> their dtype, see _tiers_dtype


def _tiers_dtype(names: tuple[str, ...]) -> pd.CategoricalDtype:
    """The (unordered) categorical dtype of some tier names, made once: making it checks the names,
    which costs more than the rest of :func:`assign_tiers` for one lead. A model has one tier list."""
    dtype = _DTYPES.get(names)
    if dtype is None:
        if len(_DTYPES) >= 64:  # tier lists come from configs: a few in a process, unless made in a loop
            _DTYPES.clear()
        dtype = _DTYPES[names] = pd.CategoricalDtype(list(names))
    return dtype


def score_0_100(p: np.ndarray) -> np.ndarray:
    """The probability in percent, rounded half up to an integer (int16, 0-100).

    Example:
        >>> score_0_100(np.array([0.0, 0.004, 0.005, 0.125, 0.145, 0.999, 1.0])).tolist()
        [0, 0, 1, 13, 15, 100, 100]
    """
    percent = np.round(np.asarray(p, dtype=float) * 100, 9)
    return np.clip(np.floor(percent + 0.5), 0, 100).astype(np.int16)


def apply_policy(p: np.ndarray, threshold: float | np.ndarray, tiers: Sequence[TierConfig]) -> pd.DataFrame:
    """``probability``, ``score``, ``tier`` and ``is_mql`` for calibrated probabilities.

    ``threshold`` is one number, or one per row (an MQL rule by group or by value,
    :meth:`leadml.modeling.group_policy.MQLRule.thresholds`)."""
    p = np.asarray(p, dtype=float)
    return pd.DataFrame(
        {
            "probability": p,
            "score": score_0_100(p),
            "tier": assign_tiers(p, tiers, threshold),
            "is_mql": p >= threshold,
        }
    )
