"""Qualification routes: by which route a lead became an MQL (behaviour, profile, scenario, ...).

Marketing teams agree with sales on several ways to qualify: much engagement (*behaviour*), a
profile that fits the target (*profile*), or the whole agreed path of content (*scenario*). A
rules file says so with ``routes:`` (a name and a ``min`` each); every rule counts toward one
route (its ``route``, else ``profile`` for a field rule, ``scenario`` for a scenario, ``behaviour``
for an event rule). Then:

- a lead **qualifies by a route** when the points of that route's rules reach its ``min``;
- a qualified lead is in the MQL tier (the tier named MQL, else the first), or above it when its
  total reaches a better tier; a lead no route qualifies stays below the MQL tier, whatever its
  total: with routes, the routes decide who is an MQL;
- ``mql_route`` names the routes that qualified it, joined by ``+`` in the file's order
  (``behaviour+scenario``).

Without ``routes:``, the total decides the tiers as before and ``mql_route`` of an MQL is the
route whose rules gave it the most points (ties: the route first met in the rules' order).
Everything is computed on whole cents, like the totals (:mod:`leadml.rules.output`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from leadml.rules.schema import Route, Tier

__all__ = ["largest_route", "mql_tier_index", "route_names", "route_tiers"]


def mql_tier_index(tiers: Sequence[Tier]) -> int:
    """The position of the MQL tier: the tier named MQL (any case), else the first."""
    return next((i for i, tier in enumerate(tiers) if tier.name.lower() == "mql"), 0)


def route_names(rule_routes: Sequence[str], routes: Sequence[Route]) -> list[str]:
    """The routes the scores speak of: the file's ``routes`` in order, else the rules' own
    (``behaviour``, ``profile``, ``scenario``, as first met in the rules)."""
    if routes:
        return [route.name for route in routes]
    return list(dict.fromkeys(rule_routes))


def route_tiers(
    cents: np.ndarray,
    rule_routes: Sequence[str],
    routes: Sequence[Route],
    tier_codes: np.ndarray,
    tiers: Sequence[Tier],
) -> tuple[np.ndarray, np.ndarray]:
    """The tier codes under the routes and each lead's ``mql_route`` (None below the MQL tier).

    Parameters:
        cents: (leads, rules) points in whole cents, 0 where a rule did not fire.
        rule_routes: the route of each rule (``Rule.route_name``).
        routes: the file's routes (empty: the total decides, the largest route is named).
        tier_codes: each lead's tier by its total (0 = best).
        tiers: the tiers, best first.

    Example:
        >>> cents = np.array([[6000, 0], [0, 3000], [2500, 2500]])
        >>> codes, named = route_tiers(cents, ["behaviour", "scenario"],
        ...     [Route("behaviour", 50.0), Route("scenario", 30.0)], np.array([0, 1, 0]),
        ...     [Tier("MQL", 50.0), Tier("nurture", 30.0), Tier("rest")])
        >>> codes.tolist(), named.tolist()
        ([0, 0, 1], ['behaviour', 'scenario', None])
    """
    n = cents.shape[0]
    names = route_names(rule_routes, routes)
    per_route = _route_cents(cents, rule_routes, names)
    mql = mql_tier_index(tiers)
    codes = np.asarray(tier_codes, dtype=np.int64).copy()
    named = np.full(n, None, dtype=object)
    if routes:
        mins = np.asarray([round(route.min_points * 100) for route in routes], dtype=np.int64)
        qualified = per_route >= mins[None, :]
        any_route = qualified.any(axis=1)
        codes = np.where(any_route, np.minimum(codes, mql), np.maximum(codes, mql + 1))
        labels = _joined_labels(qualified, names)
        named[any_route] = labels[any_route]
        return codes, named
    at_mql = codes <= mql
    named[at_mql] = _largest(per_route, names)[at_mql]
    return codes, named


def largest_route(cents: np.ndarray, rule_routes: Sequence[str]) -> np.ndarray:
    """Per lead, the route whose rules gave it the most points (None for a lead without points):
    what a rules model names for an MQL its routes did not qualify (see :mod:`leadml.jobs.decisions`)."""
    names = route_names(rule_routes, ())
    per_route = _route_cents(cents, rule_routes, names)
    named = _largest(per_route, names)
    named[per_route.sum(axis=1) <= 0] = None
    return named


def _route_cents(cents: np.ndarray, rule_routes: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """(leads, routes) points in cents of each route's rules (a rule of no listed route counts nowhere)."""
    per_route = np.zeros((cents.shape[0], len(names)), dtype=np.int64)
    for j, route in enumerate(rule_routes):
        if route in names:
            per_route[:, names.index(route)] += cents[:, j]
    return per_route


def _largest(per_route: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The name of each row's largest route (the first of equal sums); None without routes."""
    if not len(names):
        return np.full(per_route.shape[0], None, dtype=object)
    return np.asarray(names, dtype=object)[np.argmax(per_route, axis=1)]


def _joined_labels(qualified: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``a+b`` per row for the True columns of ``qualified``, without a Python loop per row:
    each distinct pattern of routes is spelt once."""
    weights = (1 << np.arange(qualified.shape[1], dtype=np.int64))[None, :]
    keys = (qualified.astype(np.int64) * weights).sum(axis=1)
    distinct, codes = np.unique(keys, return_inverse=True)
    spelt = np.asarray(
        ["+".join(name for k, name in enumerate(names) if int(key) >> k & 1) or None for key in distinct.tolist()],
        dtype=object,
    )
    return spelt[codes]
