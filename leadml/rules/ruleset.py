"""Points rules: the baseline that marketing teams use today, scored exactly and fast.

A :class:`RuleSet` is a validated rules file (see DESIGN.md, "Rules file"): rules on events
(``event``, ``where``, ``min_count``, ``within_days``, ``per_event`` + ``cap``, decay) and on
profile fields (``equals``, ``in``, ``gte``, ``lte``), plus tiers. It scores leads at one as_of,
at per-row snapshots (the evaluation compares rules and models on the same snapshots) or on a flat
table, and returns ``lead_id, as_of, points, tier, breakdown``, where ``breakdown`` is JSON text
listing every rule that fired and its points; the points add up to the total exactly.

The exact semantics (counting, decay, ``min_count`` with decay, flat tables) are documented in
:mod:`leadml.rules.evaluate`; parsing and error messages in :mod:`leadml.rules.schema`.

Example:
    >>> import pandas as pd
    >>> ruleset = RuleSet.from_dict({"rules": [
    ...     {"name": "Pricing twice", "event": "page_view", "where": {"page": "pricing"},
    ...      "min_count": 2, "points": 25},
    ...     {"name": "Decision maker", "field": "job_level", "in": ["director", "vp"], "points": 30}]})
    >>> leads = pd.DataFrame({"lead_id": ["a", "b"], "job_level": ["vp", "student"]})
    >>> events = pd.DataFrame({"lead_id": ["a", "a", "b"],
    ...     "timestamp": pd.to_datetime(["2026-01-02", "2026-01-03", "2026-01-02"], utc=True),
    ...     "event_type": "page_view", "page": "pricing"})
    >>> scores = ruleset.score(leads, events, "2026-02-01")
    >>> scores[["lead_id", "points", "tier"]].values.tolist()
    [['a', 55.0, 'MQL'], ['b', 0.0, 'unqualified']]
    >>> scores.loc[0, "breakdown"]
    '[{"rule": "Pricing twice", "points": 25}, {"rule": "Decision maker", "points": 30}]'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.features.snapshots import to_utc
from leadml.rules.evaluate import RulesWarning, evaluate_flat, evaluate_snapshots
from leadml.rules.output import scores_frame
from leadml.rules.schema import (
    DEFAULT_TIERS,
    Route,
    Rule,
    RulesConfig,
    Tier,
    parse_rules,
    read_rules_yaml,
)

POINTS_COLUMN = "rules__points"

__all__ = ["POINTS_COLUMN", "Rule", "RuleSet", "RulesWarning", "Tier"]


@dataclass(frozen=True)
class RuleSet:
    """A validated, immutable set of points rules with its tiers.

    Build it with :meth:`load` (a YAML file) or :meth:`from_dict`; score with :meth:`score`
    (one as_of), :meth:`score_snapshots` (per-row as_of) or :meth:`score_flat` (a flat table).
    """

    name: str
    rules: tuple[Rule, ...]
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    half_life_days: float | None = None
    description: str | None = None
    source: str = field(default="<rules>", compare=False)
    routes: tuple[Route, ...] = ()

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> RuleSet:
        """Read and validate a rules YAML file.

        Raises:
            ConfigError: the file is missing, not YAML, or breaks the rules schema; the message
                names the file, the rule (number and name) and the key.
        """
        source = str(path)
        return cls.from_dict(read_rules_yaml(source), source=source)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<rules>") -> RuleSet:
        """Validate a rules mapping (the content of a rules file); ``source`` names it in errors."""
        return cls._from_config(parse_rules(raw, source))

    @classmethod
    def _from_config(cls, config: RulesConfig) -> RuleSet:
        return cls(
            name=config.name,
            rules=config.rules,
            tiers=config.tiers,
            half_life_days=config.half_life_days,
            description=config.description,
            source=config.source,
            routes=config.routes,
        )

    @classmethod
    def coerce(cls, rules: RuleSet | str | os.PathLike | Mapping | None) -> RuleSet | None:
        """A RuleSet from a RuleSet, a path to a rules file, or a rules mapping (None stays None)."""
        if rules is None or isinstance(rules, RuleSet):
            return rules
        if isinstance(rules, str | os.PathLike):
            return cls.load(rules)
        if isinstance(rules, Mapping):
            return cls.from_dict(rules)
        raise TypeError(f"rules must be a RuleSet, a rules file path or a mapping, got {type(rules).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """The rules file content (``from_dict(to_dict())`` gives an equal RuleSet); for logging."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["rules"] = [rule.to_dict(self.half_life_days) for rule in self.rules]
        if self.half_life_days is not None:
            out["decay"] = {"half_life_days": self.half_life_days}
        out["tiers"] = [
            {"name": t.name} if t.min_points is None else {"name": t.name, "min": t.min_points} for t in self.tiers
        ]
        if self.routes:
            out["routes"] = [{"name": r.name, "min": r.min_points, **({"description": r.description} if r.description else {})}
                             for r in self.routes]  # fmt: skip
        return out

    # -- facts -----------------------------------------------------------------------------
    @property
    def rule_names(self) -> list[str]:
        return [rule.name for rule in self.rules]

    @property
    def rule_routes(self) -> list[str]:
        """The route each rule counts toward (:attr:`Rule.route_name`; :mod:`leadml.rules.routes`)."""
        return [rule.route_name for rule in self.rules]

    @property
    def event_types(self) -> list[str]:
        """The event types the rules read (to load only those events from a big file)."""
        steps = (step.event for r in self.rules for step in r.steps)
        return list(dict.fromkeys([*(r.event for r in self.rules if r.event is not None), *steps]))

    @property
    def event_attributes(self) -> list[str]:
        """The event columns the rules' ``where`` tests read (event rules and scenario steps)."""
        tests = [t for r in self.rules for t in (r.where if r.is_event else [t for s in r.steps for t in s.where])]
        return list(dict.fromkeys(attribute for attribute, _ in tests))

    @property
    def reads_every_attribute(self) -> bool:
        """True when a scenario step is written ``type[value]`` (the value is looked for in every column)."""
        return any(step.any_value is not None for r in self.rules for step in r.steps)

    @property
    def fields(self) -> list[str]:
        """The profile fields the rules read."""
        return list(dict.fromkeys(r.field for r in self.rules if r.field is not None))

    def tier_of(self, points: float) -> str:
        """The tier name of a points total (by the total alone: with routes, :meth:`score` also asks them)."""
        for tier in self.tiers:
            if tier.min_points is None or points >= tier.min_points:
                return tier.name
        return self.tiers[-1].name

    # -- scoring ---------------------------------------------------------------------------
    def score(
        self,
        leads: pd.DataFrame,
        events: pd.DataFrame | None,
        as_of: object,
        *,
        subscores: bool = False,
        warn: bool = True,
    ) -> pd.DataFrame:
        """Score the leads of ``leads`` that exist at one ``as_of`` (a date means 00:00 UTC).

        What was known at ``as_of`` only: events with ``timestamp < as_of`` count, and a lead
        created after ``as_of`` (``created_at > as_of``) is left out, as it is from the training
        snapshots and the scoring job, so that the rules never score a lead that did not exist yet.
        Leads without a ``created_at`` column are all scored. ``events`` may be None when the
        rules test profile fields only.

        With ``warn`` (the default), rules that cannot fire on these tables are told once, as a
        :class:`RulesWarning`: an event rule whose type no event has, or a rule set none of whose
        rules can fire. Pass ``warn=False`` when the tables are a slice of the data (one lead and
        its events), where a type absent from the slice says nothing about the rules.

        Returns:
            One row per lead created by ``as_of``, in the leads' order: ``lead_id``, ``as_of``,
            ``points`` (float, 2 decimals), ``tier`` (categorical, tiers best first) and
            ``breakdown`` (JSON text). With ``subscores=True`` also ``fit_points`` and
            ``engagement_points`` (by rule ``tag``).

        Raises:
            LeadDataError: a column a rule reads is missing, a numeric test meets text, lead ids
                repeat, ``created_at`` holds values that are not times, or event rules get no
                events table.
        """
        _require(leads, ("lead_id",), "leads")
        stamp = to_utc(as_of)
        if "created_at" in leads.columns:
            known = _created_by(leads, stamp)
            leads = leads if known.all() else leads.loc[known]
        keys = pd.DataFrame(
            {
                "lead_id": _text_ids(leads["lead_id"]),
                "as_of": pd.DatetimeIndex(np.full(len(leads), stamp.value, dtype="datetime64[ns]"), tz="UTC"),
            }
        )
        if not pd.Index(keys["lead_id"]).is_unique:
            dup = keys.loc[keys["lead_id"].duplicated(), "lead_id"].head(3).tolist()
            raise LeadDataError(f"<leads table>: column 'lead_id' has duplicated ids (e.g. {dup})")
        return self._score(keys, leads, events, subscores, warn, rows=np.arange(len(leads)))

    def score_snapshots(
        self,
        snapshots: pd.DataFrame,
        leads: pd.DataFrame | None,
        events: pd.DataFrame | None,
        *,
        subscores: bool = False,
        warn: bool = True,
    ) -> pd.DataFrame:
        """Score (lead_id, as_of) snapshots: one output row per snapshot, in the snapshots' order.

        A lead may have several snapshots; each sees only its own as_of's past. ``leads`` may be
        None when no rule tests a profile field, ``events`` None when no rule tests events.
        ``warn`` as in :meth:`score`: one call warns once, whatever the number of snapshots.
        """
        _require(snapshots, ("lead_id", "as_of"), "snapshots")
        keys = pd.DataFrame({"lead_id": _text_ids(snapshots["lead_id"]), "as_of": _utc(snapshots["as_of"])})
        if leads is not None:
            _require(leads, ("lead_id",), "leads")
        return self._score(keys, leads, events, subscores, warn)

    def _score(self, keys, leads, events, subscores: bool, warn: bool, rows: np.ndarray | None = None) -> pd.DataFrame:
        cents, fired, steps = evaluate_snapshots(self.rules, keys, leads, events, self.source, rows=rows, warn=warn)
        paths = {i: (steps[i], len(self.rules[i].steps)) for i in steps}
        return self._scaled(
            scores_frame(
                keys,
                self.rule_names,
                cents,
                fired,
                self.tiers,
                self._tags(subscores),
                paths=paths,
                rule_routes=self.rule_routes,
                routes=self.routes,
            )  # fmt: skip
        )

    def score_flat(self, flat: pd.DataFrame, *, subscores: bool = False) -> pd.DataFrame:
        """Score a flat table (one row per lead, behaviour aggregated into columns).

        Field rules test columns of the table; an event rule reads the numeric column named like
        its event (``event[value]`` with a one-value ``where``) and takes its value as the event
        count (missing = 0). ``within_days`` and decay need event times and raise here.

        Returns:
            ``lead_id`` (the table's, or the row number), ``points``, ``tier``, ``breakdown``.
        """
        if "lead_id" in flat.columns:
            keys = pd.DataFrame({"lead_id": flat["lead_id"].astype(str).to_numpy()})
        else:
            keys = pd.DataFrame({"lead_id": np.arange(len(flat)).astype(str)})
        cents, fired = evaluate_flat(self.rules, flat, self.source)
        return self._scaled(scores_frame(keys, self.rule_names, cents, fired, self.tiers, self._tags(subscores),
                                         rule_routes=self.rule_routes, routes=self.routes))  # fmt: skip

    def points(self, frame: pd.DataFrame) -> np.ndarray:
        """Points per row: the ``rules__points`` column when present, else :meth:`score_flat`."""
        if POINTS_COLUMN in frame.columns:
            return frame[POINTS_COLUMN].to_numpy(dtype=float)
        return self.score_flat(frame)["points"].to_numpy(dtype=float)

    def _tags(self, subscores: bool) -> list[str] | None:
        return [rule.tag for rule in self.rules] if subscores else None

    def _scaled(self, scores: pd.DataFrame) -> pd.DataFrame:
        """Add ``fit_score`` / ``engagement_score``: the tag's points in percent of :meth:`max_points`
        (0-100, rounded half up; negative totals give 0; missing when the tag has no maximum), and
        ``grid_tier`` (default bands, :class:`~leadml.core.config.GridConfig`)."""
        for tag in ("fit", "engagement"):
            if f"{tag}_points" not in scores.columns:
                continue
            most = self.max_points(tag)
            points = scores[f"{tag}_points"].to_numpy(dtype=float)
            if most is None or most <= 0:
                scores[f"{tag}_score"] = pd.array([pd.NA] * len(scores), dtype="Int16")
            else:
                percent = np.clip(np.floor(np.round(100.0 * points / most, 9) + 0.5), 0, 100)
                scores[f"{tag}_score"] = pd.array(percent.astype(np.int16), dtype="Int16")
        if "fit_score" in scores.columns and "engagement_score" in scores.columns:
            from leadml.rules.grid import grid_tiers

            scores["grid_tier"] = grid_tiers(scores["fit_score"].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
                                             scores["engagement_score"].astype("Float64").to_numpy(dtype=float, na_value=np.nan))  # fmt: skip
        return scores

    def max_points(self, tag: str) -> float | None:
        """The most points the rules of a tag can give one lead (the 0-100 scale of its sub-score).

        A once-firing rule gives at most its points, a per-event rule its ``cap``; field rules on
        one field that test disjoint values (``equals`` / ``in``) cannot fire together, so the
        largest of them counts. None when a positive per-event rule has no cap (no maximum).

        Example:
            >>> from leadml.rules.schema import Rule
            >>> rules = RuleSet("r", (Rule("VP", 25, "fit", field="level", equals="vp"),
            ...                       Rule("Director", 20, "fit", field="level", equals="director"),
            ...                       Rule("Form", 20, "engagement", event="form_submit")))
            >>> rules.max_points("fit"), rules.max_points("engagement")
            (25.0, 20.0)
        """
        total = 0.0
        exclusive: dict[str | None, list[tuple[set, float]]] = {}
        for rule in self.rules:
            if rule.tag != tag or rule.points <= 0:
                continue
            if rule.is_event and rule.per_event:
                if rule.cap is None:
                    return None
                total += rule.cap
            elif rule.is_scenario:
                total += rule.points + max(rule.points_per_step or 0.0, 0.0) * len(rule.steps)
            elif rule.is_field and rule.gte is None and rule.lte is None:
                values = {rule.equals} if rule.isin is None else set(rule.isin)
                exclusive.setdefault(rule.field, []).append((values, float(rule.points)))
            else:
                total += rule.points
        for tests in exclusive.values():
            tested_values = [v for tested, _ in tests for v in tested]
            points = [p for _, p in tests]
            total += max(points) if len(tested_values) == len(set(tested_values)) else sum(points)
        return total


def _require(frame: pd.DataFrame, columns: tuple[str, ...], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LeadDataError(
            f"<{table} table>: missing column(s) {', '.join(map(repr, missing))} "
            f"(columns present: {', '.join(map(str, list(frame.columns)[:12]))})"
        )


def _created_by(leads: pd.DataFrame, stamp: pd.Timestamp) -> np.ndarray:
    """Which leads exist at ``stamp`` (``created_at <= stamp``, the rule of the training snapshots,
    :func:`~leadml.features.snapshots.as_of_fixed`); text and naive times are read as the data
    contract reads them (ISO 8601, UTC)."""
    created = leads["created_at"]
    if not isinstance(created.dtype, pd.DatetimeTZDtype):
        from leadml.data.timestamps import parse_timestamps

        created = parse_timestamps(leads, "created_at", "<leads table>")
    return (created <= stamp).to_numpy()


def _text_ids(ids: pd.Series) -> pd.Series:
    """Lead ids as text, keeping pandas' string storage (no copy when they already are text)."""
    values = (
        ids
        if pd.api.types.is_string_dtype(ids.dtype) and not isinstance(ids.dtype, pd.CategoricalDtype)
        else ids.astype(str)
    )
    return values.reset_index(drop=True)


def _utc(values: pd.Series) -> pd.Series:
    """as_of values as ``datetime64[ns, UTC]`` (naive values and dates are taken as UTC)."""
    stamps = (
        pd.to_datetime(values, utc=True, format="ISO8601")
        if not pd.api.types.is_datetime64_any_dtype(values)
        else values
    )
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")
    stamps = stamps.dt.tz_convert("UTC").dt.as_unit("ns")
    if stamps.isna().any():
        bad = np.flatnonzero(stamps.isna().to_numpy())[:3] + 1
        raise LeadDataError(f"<snapshots table>: column 'as_of' has missing values (rows {', '.join(map(str, bad))})")
    return stamps.reset_index(drop=True)
