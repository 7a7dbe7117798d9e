"""From per-rule points to the scores frame: exact totals, tiers and the breakdown JSON.

Points are kept as whole cents (int64) from the moment a rule's points are known: every rule's
points are rounded to 2 decimals once, the total is the integer sum of those cents, and the
breakdown shows the same rounded values. So the breakdown adds up to the total exactly (in decimal
arithmetic) and the tier is decided on the same number the user sees.

The breakdown of 1,000,000 leads is built column-wise with Arrow string kernels: per rule, the
distinct point values it gave become dictionary entries ``{"rule": ..., "points": ...}``, and
the fired entries of a row are joined; no Python code runs per lead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from leadml.rules.schema import Route, Tier

# above this spread of cent values, distinct values are found by sorting instead of a lookup table
_DENSE_RANGE = 4_000_000


def to_cents(points: np.ndarray) -> np.ndarray:
    """Points (float) as whole cents, rounding half to even; NaN is 0."""
    return np.rint(np.nan_to_num(np.asarray(points, dtype=float) * 100.0)).astype(np.int64)


def cents_to_points(cents: np.ndarray) -> np.ndarray:
    """Whole cents back to points: the double nearest the 2-decimal value."""
    return np.asarray(cents, dtype=np.int64) / 100.0


def assign_tiers(total_cents: np.ndarray, tiers: Sequence[Tier]) -> pd.Categorical:
    """The tier of each total: the first tier (best first) whose ``min`` the points reach."""
    mins = [round(t.min_points * 100) for t in tiers if t.min_points is not None]
    ascending = np.asarray(mins[::-1], dtype=np.int64)
    reached = np.searchsorted(ascending, total_cents, side="right")
    codes = (len(mins) - reached).astype(np.int64)
    return pd.Categorical.from_codes(codes, categories=[t.name for t in tiers])


def _codes_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (sorted) and each value's index into them, in O(n) when the range is small."""
    low, high = int(values.min()), int(values.max())
    if high - low <= _DENSE_RANGE:
        present = np.zeros(high - low + 1, dtype=bool)
        present[values - low] = True
        distinct = np.flatnonzero(present)
        lookup = np.cumsum(present) - 1
        return distinct + low, lookup[values - low]
    distinct, codes = np.unique(values, return_inverse=True)
    return distinct, codes


def _rule_fragments(name: str, cents: np.ndarray, fired: np.ndarray, path: tuple[np.ndarray, int] | None = None):
    """An Arrow string array: ``, {"rule": name, "points": p}`` where the rule fired, "" elsewhere.

    ``path`` (a scenario rule's steps done per row, and its number of steps) adds ``"steps": k, "of": n``.
    """
    import pyarrow as pa

    indices = np.zeros(len(cents), dtype=np.int32)
    head = ', {"rule": ' + json.dumps(name, ensure_ascii=False) + ', "points": '
    if path is None:
        distinct, codes = _codes_of(cents[fired])
        entries = [head + _number_text(c) + "}" for c in distinct.tolist()] + [""]
    else:
        done, of = path
        pairs = cents[fired].astype(np.int64) * (of + 1) + done[fired].astype(np.int64)  # (points, steps) as one key
        distinct, codes = _codes_of(pairs)
        entries = [f'{head}{_number_text(int(key // (of + 1)))}, "steps": {int(key % (of + 1))}, "of": {of}}}'
                   for key in distinct.tolist()] + [""]  # fmt: skip
    indices[fired] = codes
    indices[~fired] = len(entries) - 1
    encoded = pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(entries, type=pa.string()))
    return encoded.cast(pa.string())


def _number_text(cents: int) -> str:
    """Whole cents as a JSON number: ``2441 -> 24.41``, ``1000 -> 10``, ``-5 -> -0.05``."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}" if frac == 0 else f"{sign}{whole}.{frac:02d}".rstrip("0")


def build_breakdown(
    names: Sequence[str], cents: np.ndarray, fired: np.ndarray, paths: dict[int, tuple[np.ndarray, int]] | None = None
) -> pd.Series:
    """JSON text per row: the list of ``{"rule", "points"}`` of every rule that fired, in rule order.

    Parameters:
        names: rule names (columns of ``cents`` and ``fired``).
        cents: (rows, rules) int64 points in cents.
        fired: (rows, rules) bool, True where the rule fired (a fired rule may give 0 points when
            its decayed value rounds away; it is still listed).
        paths: per scenario rule (column index), its steps done per row and its number of steps.
    """
    import pyarrow.compute as pc

    n_rows = cents.shape[0]
    paths = paths or {}
    parts = [_rule_fragments(name, cents[:, j], fired[:, j], paths.get(j))
             for j, name in enumerate(names) if fired[:, j].any()]  # fmt: skip
    if not parts:
        return pd.Series(np.full(n_rows, "[]", dtype=object), dtype="str")
    # every fragment starts with ", ": join them, then drop the first separator (no nulls anywhere:
    # null_handling="skip" would drop whole rows in pyarrow 25)
    inner = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")
    inner = pc.utf8_slice_codeunits(inner, start=2)
    text = pc.binary_join_element_wise("[", inner, "]", "")
    if len(text) != n_rows:
        raise RuntimeError(f"breakdown has {len(text)} rows, expected {n_rows}")
    return pd.Series(text.to_pandas(), dtype="str")


def scores_frame(
    keys: pd.DataFrame,
    names: Sequence[str],
    cents: np.ndarray,
    fired: np.ndarray,
    tiers: Sequence[Tier],
    tags: Sequence[str] | None = None,
    paths: dict[int, tuple[np.ndarray, int]] | None = None,
    rule_routes: Sequence[str] | None = None,
    routes: Sequence[Route] = (),
) -> pd.DataFrame:
    """Assemble ``keys`` (lead_id[, as_of]) with points, tier and breakdown (and sub-scores if tagged).

    With ``tags`` given (one per rule), adds ``fit_points`` and ``engagement_points``: the sums of
    the rules of each tag (they add up to ``points``) and ``top_route`` (the route that gave the
    most points). With ``rule_routes`` (the route of each rule), adds ``mql_route`` and lets
    ``routes`` decide the MQL tier (:mod:`leadml.rules.routes`).
    """
    from leadml.rules.routes import largest_route, route_tiers

    cents = np.where(fired, cents, 0)
    total = cents.sum(axis=1, dtype=np.int64) if cents.shape[1] else np.zeros(len(keys), np.int64)
    scores = keys.reset_index(drop=True).copy()
    scores["points"] = cents_to_points(total)
    tier = assign_tiers(total, tiers)
    mql_route = None
    if rule_routes is not None:
        codes, mql_route = route_tiers(cents, rule_routes, routes, tier.codes, tiers)
        tier = pd.Categorical.from_codes(codes, categories=tier.categories)
    scores["tier"] = tier
    if mql_route is not None:
        scores["mql_route"] = pd.Series(mql_route, dtype=object)
    scores["breakdown"] = build_breakdown(names, cents, fired, paths)
    if tags is not None:
        tag_of_rule = np.asarray(tags)
        for tag in ("fit", "engagement"):
            scores[f"{tag}_points"] = cents_to_points(cents[:, tag_of_rule == tag].sum(axis=1, dtype=np.int64))
        if rule_routes is not None:
            scores["top_route"] = pd.Series(largest_route(cents, rule_routes), dtype=object)
    return scores
