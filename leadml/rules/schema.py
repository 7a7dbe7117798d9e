"""The rules file as validated, frozen objects: rules, tiers and decay.

A rules file is YAML (see DESIGN.md, "Rules file"). Parsing is strict: an unknown key, a missing
``points``, a value of the wrong type or tiers out of order raise :class:`ConfigError` naming the
file, the rule (1-based number and name) and the key, with a "did you mean" for near-miss keys. The
scoring itself lives in :mod:`leadml.rules.evaluate`; :class:`leadml.rules.ruleset.RuleSet` ties
the two together.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from leadml.core.errors import ConfigError
from leadml.core.yaml_files import read_yaml_file

Tag = Literal["fit", "engagement"]

TOP_KEYS = ("name", "description", "rules", "decay", "tiers", "routes")
COMMON_KEYS = ("name", "description", "points", "tag", "route")
EVENT_KEYS = ("event", "where", "min_count", "within_days", "per_event", "cap", "decay")
FIELD_KEYS = ("field", "equals", "in", "gte", "lte")
SCENARIO_KEYS = ("steps", "max_days_between_steps", "within_days", "points_per_step")
STEP_KEYS = ("event", "where")
RULE_KEYS = COMMON_KEYS + EVENT_KEYS + FIELD_KEYS + ("scenario",)
DECAY_KEYS = ("half_life_days",)
TIER_KEYS = ("name", "min")
ROUTE_KEYS = ("name", "min", "description")
TAGS = ("fit", "engagement")


@dataclass(frozen=True)
class Tier:
    """A tier: leads with ``points >= min_points`` (the catch-all has ``min_points=None``)."""

    name: str
    min_points: float | None = None


DEFAULT_TIERS = (Tier("MQL", 50.0), Tier("nurture", 30.0), Tier("unqualified"))


@dataclass(frozen=True)
class Route:
    """A qualification route: the points of its rules reaching ``min_points`` qualify a lead as MQL
    on their own ("MQL by behaviour", "by profile", "by scenario")."""

    name: str
    min_points: float
    description: str | None = None


@dataclass(frozen=True)
class Step:
    """One step of a scenario: an event of type ``event`` matching ``where`` (``{page: blog}``), or,
    written ``type[value]``, matching ``value`` in any attribute (as ``features.scenarios`` reads it)."""

    event: str
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    any_value: str | None = None

    @property
    def label(self) -> str:
        """The step as written in a rules file: ``email_open``, ``page_view[blog]``, ``download{asset: case_study}``."""
        if self.any_value is not None:
            return f"{self.event}[{self.any_value}]"
        if not self.where:
            return self.event
        tests = ", ".join(f"{attr}: {values[0] if len(values) == 1 else list(values)}" for attr, values in self.where)
        return f"{self.event}{{{tests}}}"

    def to_raw(self) -> Any:
        if self.any_value is not None or not self.where:
            return self.label
        return {"event": self.event, "where": {a: v[0] if len(v) == 1 else list(v) for a, v in self.where}}


@dataclass(frozen=True)
class Rule:
    """One points rule: an event test or a profile-field test, and the points it gives.

    Event rules count the lead's events of type ``event`` whose attributes match ``where``, before
    as_of and (with ``within_days``) inside the window. A once-firing rule gives ``points`` when the
    count reaches ``min_count``; a ``per_event`` rule gives ``points`` for every counted event
    (when the count reaches ``min_count``), its total bounded by ``cap`` in absolute value. With a
    half-life, points decay with the age of the events (see :mod:`leadml.rules.evaluate`).
    Field rules fire when every given test (``equals``, ``in``, ``gte``, ``lte``) holds; a missing
    value never fires.
    """

    name: str
    points: float
    tag: Tag
    event: str | None = None
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    min_count: int = 1
    within_days: float | None = None
    per_event: bool = False
    cap: float | None = None
    half_life_days: float | None = None
    steps: tuple[Step, ...] = ()
    max_days_between_steps: float | None = None
    points_per_step: float | None = None
    field: str | None = None
    equals: Any = None
    isin: tuple[Any, ...] | None = None
    gte: float | None = None
    lte: float | None = None
    description: str | None = None
    route: str | None = None

    @property
    def is_event(self) -> bool:
        """True for a rule counting events (not a scenario), False for the others."""
        return self.event is not None

    @property
    def is_scenario(self) -> bool:
        """True for an ordered path of events (``scenario:``)."""
        return bool(self.steps)

    @property
    def is_field(self) -> bool:
        """True for a rule on a profile field."""
        return self.field is not None

    @property
    def route_name(self) -> str:
        """The route the rule's points count toward: its ``route``, else ``profile`` for a field
        rule, ``scenario`` for a scenario and ``behaviour`` for an event rule."""
        if self.route is not None:
            return self.route
        return "profile" if self.is_field else "scenario" if self.is_scenario else "behaviour"

    @property
    def where_dict(self) -> dict[str, list[Any]]:
        """The attribute filter as ``{attribute: [values]}``."""
        return {attr: list(values) for attr, values in self.where}

    def to_dict(self, default_half_life: float | None = None) -> dict[str, Any]:
        """The rule as a rules-file mapping (round-trips through :func:`parse_rules`)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.is_scenario:
            scenario: dict[str, Any] = {"steps": [step.to_raw() for step in self.steps]}
            for key in ("max_days_between_steps", "within_days", "points_per_step"):
                if getattr(self, key) is not None:
                    scenario[key] = getattr(self, key)
            out["scenario"] = scenario
        elif self.is_event:
            out["event"] = self.event
            if self.where:
                out["where"] = {a: v[0] if len(v) == 1 else list(v) for a, v in self.where}
            if self.min_count != 1:
                out["min_count"] = self.min_count
            if self.within_days is not None:
                out["within_days"] = self.within_days
            if self.per_event:
                out["per_event"] = True
            if self.cap is not None:
                out["cap"] = self.cap
            if self.half_life_days != default_half_life:
                out["decay"] = {"half_life_days": self.half_life_days} if self.half_life_days else False
        else:
            out["field"] = self.field
            for key, value in (("equals", self.equals), ("gte", self.gte), ("lte", self.lte)):
                if value is not None:
                    out[key] = value
            if self.isin is not None:
                out["in"] = list(self.isin)
        out["points"] = self.points
        if self.tag != ("fit" if self.is_field else "engagement"):
            out["tag"] = self.tag
        if self.route is not None:
            out["route"] = self.route
        return out


@dataclass(frozen=True)
class RulesConfig:
    """A parsed rules file: its name, rules, tiers (best first), default half-life and routes."""

    name: str
    rules: tuple[Rule, ...]
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    half_life_days: float | None = None
    description: str | None = None
    source: str = "<rules>"
    routes: tuple[Route, ...] = ()


# ---------------------------------------------------------------------------------------------
# helpers that raise with the location


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _check_keys(mapping: Mapping, known: tuple[str, ...], where: str, what: str) -> None:
    """Raise on the first key not in ``known``, suggesting the closest known key."""
    for key in mapping:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known keys: {', '.join(known)})"
            raise _fail(where, f"'{key}' is not a known key of {what}{hint}")


def _number(value: Any, where: str, key: str, *, positive: bool = False) -> float:
    """Return ``value`` as a finite float, or raise naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, f"'{key}' must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise _fail(where, f"'{key}' must be a finite number, got {value!r}")
    if positive and number <= 0:
        raise _fail(where, f"'{key}' must be greater than 0, got {value!r}")
    return number


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"'{key}' must be a non-empty text, got {value!r}")
    return value.strip()


def _scalar(value: Any, where: str, key: str) -> Any:
    """A value to compare with: text, number or boolean (never null, list or mapping)."""
    if value is None or isinstance(value, list | dict | tuple | set):
        raise _fail(where, f"'{key}' must be a single text or number, got {value!r}")
    return value


def _scalars(value: Any, where: str, key: str) -> tuple[Any, ...]:
    """A value or a non-empty list of values."""
    values = value if isinstance(value, list | tuple) else [value]
    if not values:
        raise _fail(where, f"'{key}' must not be an empty list")
    return tuple(_scalar(v, where, key) for v in values)


def parse_decay(value: Any, where: str) -> float | None:
    """``{half_life_days: H}`` -> H; ``None`` or ``false`` -> no decay."""
    if value is None or value is False:
        return None
    if not isinstance(value, Mapping):
        raise _fail(where, f"'decay' must be a mapping like {{half_life_days: 30}} or false, got {value!r}")
    _check_keys(value, DECAY_KEYS, f"{where}: decay", "decay")
    if "half_life_days" not in value:
        raise _fail(where, "'decay' needs 'half_life_days'")
    return _number(value["half_life_days"], f"{where}: decay", "half_life_days", positive=True)


# ---------------------------------------------------------------------------------------------
# rules


def _rule_where(index: int, raw: Mapping, source: str) -> str:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    label = f" '{name}'" if isinstance(name, str) and name.strip() else ""
    return f"{source}: rule #{index + 1}{label}"


def _parse_event_part(raw: Mapping, where: str, default_half_life: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"event": _text(raw["event"], where, "event")}
    for key in FIELD_KEYS[1:]:
        if key in raw:
            raise _fail(where, f"'{key}' is a key of field rules, not of event rules")
    where_raw = raw.get("where", {}) or {}
    if not isinstance(where_raw, Mapping):
        raise _fail(where, f"'where' must be a mapping like {{page: pricing}}, got {where_raw!r}")
    out["where"] = tuple(
        (_text(attr, where, "where"), _scalars(v, where, f"where.{attr}")) for attr, v in where_raw.items()
    )
    min_count = raw.get("min_count", 1)
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise _fail(where, f"'min_count' must be a whole number >= 1, got {min_count!r}")
    out["min_count"] = min_count
    if raw.get("within_days") is not None:
        out["within_days"] = _number(raw["within_days"], where, "within_days", positive=True)
    per_event = raw.get("per_event", False)
    if not isinstance(per_event, bool):
        raise _fail(where, f"'per_event' must be true or false, got {per_event!r}")
    out["per_event"] = per_event
    if raw.get("cap") is not None:
        if not per_event:
            raise _fail(where, "'cap' only applies with 'per_event: true'")
        out["cap"] = _number(raw["cap"], where, "cap", positive=True)
    out["half_life_days"] = parse_decay(raw["decay"], where) if "decay" in raw else default_half_life
    return out


def _parse_step(raw: Any, where: str) -> Step:
    """``email_open``, ``page_view[blog]`` or ``{event: download, where: {asset: case_study}}``."""
    if isinstance(raw, str):
        text = raw.strip()
        if "[" in text:
            if not text.endswith("]") or text.count("[") != 1 or not text.split("[")[0].strip():
                raise _fail(where, f"step {raw!r} is not 'event_type' or 'event_type[value]'")
            event, value = text[:-1].split("[")
            return Step(event=_text(event, where, "steps"), any_value=_text(value, where, "steps"))
        return Step(event=_text(text, where, "steps"))
    if not isinstance(raw, Mapping):
        raise _fail(where, f"a step is an event type or a mapping like {{event: page_view, where: {{page: blog}}}}, "
                           f"got {raw!r}")  # fmt: skip
    _check_keys(raw, STEP_KEYS, where, "a scenario step")
    if "event" not in raw:
        raise _fail(where, "a scenario step needs 'event'")
    where_raw = raw.get("where", {}) or {}
    if not isinstance(where_raw, Mapping):
        raise _fail(where, f"a step's 'where' must be a mapping like {{page: blog}}, got {where_raw!r}")
    tests = tuple((_text(attr, where, "where"), _scalars(v, where, f"where.{attr}")) for attr, v in where_raw.items())
    return Step(event=_text(raw["event"], where, "event"), where=tests)


def _parse_scenario_part(raw: Mapping, where: str) -> dict[str, Any]:
    for key in (*EVENT_KEYS, *FIELD_KEYS):
        if key in raw:
            raise _fail(
                where, f"'{key}' belongs to event or field rules; a scenario keeps its settings under 'scenario'"
            )
    scenario = raw["scenario"]
    if not isinstance(scenario, Mapping):
        raise _fail(where, f"'scenario' must be a mapping with 'steps', got {scenario!r}")
    _check_keys(scenario, SCENARIO_KEYS, f"{where}: scenario", "a scenario")
    steps = scenario.get("steps")
    if not isinstance(steps, list) or len(steps) < 2:
        raise _fail(where, "a scenario needs 'steps': a list of at least two events, in order")
    out: dict[str, Any] = {"steps": tuple(_parse_step(step, f"{where}: step {i + 1}") for i, step in enumerate(steps))}
    for key in ("max_days_between_steps", "within_days"):
        if scenario.get(key) is not None:
            out[key] = _number(scenario[key], where, key, positive=True)
    if scenario.get("points_per_step") is not None:
        out["points_per_step"] = _number(scenario["points_per_step"], where, "points_per_step")
    return out


def _parse_field_part(raw: Mapping, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"field": _text(raw["field"], where, "field")}
    for key in EVENT_KEYS[1:]:
        if key in raw:
            raise _fail(where, f"'{key}' is a key of event rules, not of field rules")
    tests = [k for k in FIELD_KEYS[1:] if k in raw]
    if not tests:
        raise _fail(where, "a field rule needs a test: 'equals', 'in', 'gte' or 'lte'")
    if "equals" in raw:
        out["equals"] = _scalar(raw["equals"], where, "equals")
    if "in" in raw:
        if not isinstance(raw["in"], list | tuple):
            raise _fail(where, f"'in' must be a list of values, got {raw['in']!r}")
        out["isin"] = _scalars(raw["in"], where, "in")
    for key in ("gte", "lte"):
        if key in raw:
            out[key] = _number(raw[key], where, key)
    if "gte" in out and "lte" in out and out["gte"] > out["lte"]:
        raise _fail(where, f"'gte' ({out['gte']:g}) is above 'lte' ({out['lte']:g}): it can never fire")
    return out


def parse_rule(raw: Any, index: int, source: str, default_half_life: float | None = None) -> Rule:
    """Validate one rule mapping (``index`` is 0-based; messages count from 1)."""
    where = _rule_where(index, raw, source)
    if not isinstance(raw, Mapping):
        raise _fail(where, f"a rule must be a mapping with 'name' and 'points', got {raw!r}")
    _check_keys(raw, RULE_KEYS, where, "a rule")
    if "name" not in raw:
        raise _fail(where, "'name' is missing; every rule needs a name for the breakdown")
    name = _text(raw["name"], where, "name")
    kinds = [key for key in ("event", "field", "scenario") if key in raw]
    if len(kinds) > 1:
        raise _fail(where, f"has both '{kinds[0]}' and '{kinds[1]}'; a rule tests one of event, field or scenario")
    if not kinds:
        raise _fail(where, "needs 'event' (a behaviour rule), 'field' (a profile rule) or 'scenario' (an ordered path)")
    if "points" not in raw:
        raise _fail(where, "'points' is missing")
    points = _number(raw["points"], where, "points")
    if kinds[0] == "event":
        part = _parse_event_part(raw, where, default_half_life)
    elif kinds[0] == "field":
        part = _parse_field_part(raw, where)
    else:
        part = _parse_scenario_part(raw, where)
    tag = raw.get("tag", "fit" if kinds[0] == "field" else "engagement")
    if tag not in TAGS:
        raise _fail(where, f"'tag' must be one of {', '.join(TAGS)}, got {tag!r}")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise _fail(where, f"'description' must be text, got {description!r}")
    route = _text(raw["route"], where, "route") if raw.get("route") is not None else None
    return Rule(name=name, points=points, tag=tag, description=description, route=route, **part)


# ---------------------------------------------------------------------------------------------
# tiers and the whole file


def parse_tiers(raw: Any, source: str) -> tuple[Tier, ...]:
    """Validate tiers: best first, strictly decreasing ``min``, a final catch-all without ``min``."""
    if raw is None:
        return DEFAULT_TIERS
    if not isinstance(raw, list) or not raw:
        raise _fail(source, "'tiers' must be a non-empty list of {name, min}")
    tiers: list[Tier] = []
    for i, item in enumerate(raw):
        where = f"{source}: tier #{i + 1}"
        if not isinstance(item, Mapping):
            raise _fail(where, f"a tier must be a mapping like {{name: MQL, min: 50}}, got {item!r}")
        if isinstance(item.get("name"), str):
            where += f" '{item['name']}'"
        _check_keys(item, TIER_KEYS, where, "a tier")
        name = _text(item.get("name"), where, "name")
        last = i == len(raw) - 1
        if item.get("min") is None:
            if not last:
                raise _fail(where, "'min' is missing; only the last tier is the catch-all without 'min'")
            tiers.append(Tier(name))
            continue
        if last:
            raise _fail(where, "the last tier is the catch-all: drop its 'min' or add a tier below it")
        minimum = _number(item["min"], where, "min")
        # only the last tier is the catch-all, so every tier before this one has a 'min'
        previous = tiers[-1].min_points if tiers else None
        if previous is not None and minimum >= previous:
            raise _fail(
                where,
                f"'min' ({minimum:g}) must be below the previous tier's ({previous:g}); "
                "list tiers from the highest threshold down",
            )
        tiers.append(Tier(name, minimum))
    names = [t.name for t in tiers]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _fail(source, f"tiers: duplicate tier name(s) {', '.join(repr(n) for n in dup)}")
    return tuple(tiers)


def parse_routes(raw: Any, rules: tuple[Rule, ...], tiers: tuple[Tier, ...], source: str) -> tuple[Route, ...]:
    """Validate ``routes``: a list of ``{name, min}``, names unique; every rule's ``route`` must name
    one of them, and the rule set needs an MQL tier (one with ``min``) for the routes to qualify into."""
    if raw is None:
        for i, rule in enumerate(rules):
            if rule.route is not None:
                raise _fail(f"{source}: rule #{i + 1} '{rule.name}'",
                            f"'route: {rule.route}' needs a 'routes:' list in the file naming that route")  # fmt: skip
        return ()
    if not isinstance(raw, list) or not raw:
        raise _fail(source, "'routes' must be a non-empty list of {name, min}, like [{name: behaviour, min: 50}]")
    routes: list[Route] = []
    for i, item in enumerate(raw):
        where = f"{source}: route #{i + 1}"
        if not isinstance(item, Mapping):
            raise _fail(where, f"a route must be a mapping like {{name: behaviour, min: 50}}, got {item!r}")
        if isinstance(item.get("name"), str):
            where += f" '{item['name']}'"
        _check_keys(item, ROUTE_KEYS, where, "a route")
        if item.get("min") is None:
            raise _fail(where, "'min' is missing: the points of the route's rules that qualify a lead")
        description = item.get("description")
        if description is not None and not isinstance(description, str):
            raise _fail(where, f"'description' must be text, got {description!r}")
        routes.append(Route(_text(item.get("name"), where, "name"), _number(item["min"], where, "min"), description))
    names = [route.name for route in routes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _fail(source, f"routes: duplicate route name(s) {', '.join(repr(n) for n in dup)}")
    for i, rule in enumerate(rules):
        if rule.route is not None and rule.route not in names:
            close = difflib.get_close_matches(rule.route, names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f" (the routes: {', '.join(names)})"
            raise _fail(
                f"{source}: rule #{i + 1} '{rule.name}'", f"'route: {rule.route}' is not a route of the file{hint}"
            )
    mql = next((i for i, tier in enumerate(tiers) if tier.name.lower() == "mql"), 0)
    if tiers[mql].min_points is None:
        raise _fail(source, "routes qualify leads into the MQL tier (named MQL, else the first): "
                            "it must not be the catch-all; add a tier below it")  # fmt: skip
    return tuple(routes)


def parse_rules(raw: Any, source: str = "<rules>") -> RulesConfig:
    """Validate a whole rules mapping (as read from YAML) into a :class:`RulesConfig`."""
    if not isinstance(raw, Mapping):
        raise _fail(source, f"a rules file must be a mapping with 'rules:', got {type(raw).__name__}")
    _check_keys(raw, TOP_KEYS, source, "a rules file")
    half_life = parse_decay(raw.get("decay"), source)
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise _fail(source, "'rules' must be a non-empty list of rules")
    rules = tuple(parse_rule(r, i, source, half_life) for i, r in enumerate(rules_raw))
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if rule.name in seen:
            raise _fail(
                f"{source}: rule #{i + 1} '{rule.name}'",
                f"'name' repeats rule #{seen[rule.name] + 1}; names must be unique (they key the breakdown)",
            )
        seen[rule.name] = i
    name = raw.get("name", "rules")
    name = _text(name, source, "name")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise _fail(source, f"'description' must be text, got {description!r}")
    tiers = parse_tiers(raw.get("tiers"), source)
    return RulesConfig(
        name=name,
        rules=rules,
        tiers=tiers,
        half_life_days=half_life,
        description=description,
        source=source,
        routes=parse_routes(raw.get("routes"), rules, tiers, source),
    )


def read_rules_yaml(path: str) -> Any:
    """Read a rules file: a missing, oversized (over 1 MB, refused unread) or invalid one is a :class:`ConfigError`."""
    return read_yaml_file(path, "rules file")
