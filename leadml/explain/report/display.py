"""What the sales report shows a manager beside each lead: a 0-100 score, names, links and colours.

- :func:`points_0_100` and :func:`percentile_0_100`: the 0-100 display score. A calibrated
  probability is honest but small (a median lead at 3 %, MQLs from 13 %), and a manager used to
  points reads 19 as cold; ``points`` puts the MQL threshold at 50 instead, linear in the
  probability below it and above it, so 50 means "just an MQL" and 100 certainty.
- :func:`mql_threshold`: the threshold the points are anchored at, and where it comes from.
- :func:`lead_columns`: the leads-table columns shown beside each lead (``report.display_columns``).
- :func:`crm_link`, :func:`reason_effects`, :func:`tier_colours`: a link per lead, the reasons with
  their effect in percentage points, tier colours from the best tier (green) to the lowest (grey).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError

__all__ = [
    "crm_link",
    "display_scores",
    "lead_columns",
    "mql_threshold",
    "percentile_0_100",
    "points_0_100",
    "reason_effects",
    "tier_colours",
]

TIER_COLOURS = ("#1a7f37", "#4d9a3a", "#b7791f", "#8a94a6")  # best tier green ... lowest grey
LOWEST_TIER_COLOUR = TIER_COLOURS[-1]


def points_0_100(probability: np.ndarray | Sequence[float], threshold: float) -> np.ndarray:
    """Probabilities as 0-100 points with the MQL ``threshold`` at 50 (floats; the report shows their floor).

    Linear on each side: ``0..threshold`` maps to ``0..50`` and ``threshold..1`` to ``50..100``, so
    the order of the leads is kept, a lead just below the threshold floors to 49 and an MQL is 50
    or more.

    Example:
        >>> points_0_100([0.0, 0.065, 0.13, 0.565, 1.0], threshold=0.13).round(6).tolist()
        [0.0, 25.0, 50.0, 75.0, 100.0]
    """
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"the MQL threshold must lie strictly between 0 and 1, got {threshold!r}")
    p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    below = 50.0 * p / threshold
    above = 50.0 + 50.0 * (p - threshold) / (1.0 - threshold)
    return np.where(p < threshold, below, above)


def percentile_0_100(probability: np.ndarray | Sequence[float]) -> np.ndarray:
    """Each lead's rank among the leads of the run: the percentage of them scored at or below it.

    Example:
        >>> percentile_0_100([0.1, 0.4, 0.2, 0.4]).tolist()
        [25.0, 100.0, 50.0, 100.0]
    """
    p = pd.Series(np.asarray(probability, dtype=float))
    return (100.0 * p.rank(method="max", pct=True)).to_numpy(dtype=float)


def display_scores(probability: np.ndarray | Sequence[float], how: str, threshold: float | None) -> np.ndarray:
    """The whole 0-100 display score of each lead: ``points`` (needs ``threshold``) or ``percentile``.

    Without a threshold, ``points`` falls back to the probability x 100 (the report says so).
    """
    p = np.asarray(probability, dtype=float)
    if how == "percentile":  # k / n x 100 may land a hair below a whole number
        return np.floor(percentile_0_100(p) + 1e-9).astype(int)
    shown = points_0_100(p, threshold) if threshold is not None else 100.0 * np.clip(p, 0.0, 1.0)
    return np.floor(shown).astype(int)  # floored: a lead below the threshold never shows 50


def mql_threshold(
    probability: np.ndarray | Sequence[float], is_mql: np.ndarray | Sequence[bool] | None, model: float | None = None
) -> tuple[float | None, str]:
    """The MQL threshold to anchor the points at, and a few words on where it comes from.

    The scores' own MQL flags are the truth of what sales received: the model's threshold is used
    when it agrees with them (every MQL at or above it, every other lead below); else the lowest
    probability of an MQL (exact up to the gap between the last MQL and the best other lead).
    Without MQL flags or MQLs, the model's threshold, else None.

    Example:
        >>> mql_threshold([0.5, 0.2, 0.1], [True, True, False], model=0.15)
        (0.15, "the model's")
        >>> mql_threshold([0.5, 0.2, 0.1], [True, True, False], model=0.3)
        (0.2, 'the lowest probability of an MQL in these scores')
    """
    p = np.asarray(probability, dtype=float)
    if is_mql is None:
        return (model, "the model's") if model is not None and 0 < model < 1 else (None, "")
    flags = np.asarray(is_mql, dtype=bool)
    if model is not None and 0 < model < 1 and (p[flags] >= model).all() and (p[~flags] < model).all():
        return float(model), "the model's"
    mql = p[flags & np.isfinite(p)]
    if len(mql) and 0 < mql.min() < 1:
        return float(mql.min()), "the lowest probability of an MQL in these scores"
    return (model, "the model's") if model is not None and 0 < model < 1 else (None, "")


def lead_columns(leads: pd.DataFrame, names: Sequence[str], *, source: str = "leads") -> pd.DataFrame:
    """The ``names`` columns of ``leads`` by ``lead_id`` (as text): what the report shows beside each lead.

    Raises:
        LeadDataError: a named column is not in the leads table (naming it and the columns present).
    """
    for name in names:
        if name not in leads.columns:
            present = ", ".join(map(str, leads.columns))
            raise LeadDataError(f"report.display_columns: column {name!r} is not in the {source} table "
                                f"(columns present: {present})")  # fmt: skip
    shown = leads[["lead_id", *dict.fromkeys(names)]].drop_duplicates("lead_id")
    return shown.assign(lead_id=shown["lead_id"].astype(str)).set_index("lead_id")


def crm_link(url: str | None, lead_id: str) -> str:
    """The lead's CRM address: ``url`` with ``{lead_id}`` replaced by the URL-escaped id ("" without a url).

    Example:
        >>> crm_link("https://crm.example.com/leads/{lead_id}", "L 1/2")
        'https://crm.example.com/leads/L%201%2F2'
    """
    return url.replace("{lead_id}", quote(str(lead_id), safe="")) if url else ""


def _effect(points: float) -> str:
    return f"{points:+.0f} pts" if abs(points) >= 0.5 else f"{points:+.1f} pts"


def reason_effects(reasons_json: object, n_raises: int, n_lowers: int) -> tuple[list[str], list[str]]:
    """The effect ("+8 pts") of each shown reason, from the scores' ``reasons`` JSON (model reasons).

    The JSON lists the raising reasons first, then the lowering ones, in the order of the reason
    columns; each entry's ``points`` is its effect on the probability in percentage points. Rules
    reasons (entries without ``contribution``) already say their points: their effects are "".
    """
    blank = ([""] * n_raises, [""] * n_lowers)
    if not isinstance(reasons_json, str) or not reasons_json.startswith("["):
        return blank
    try:
        entries = json.loads(reasons_json)
    except ValueError:
        return blank
    if not all(isinstance(e, dict) and "contribution" in e and "points" in e for e in entries):
        return blank
    raises = [_effect(float(e["points"])) for e in entries if float(e["contribution"]) > 0]
    lowers = [_effect(float(e["points"])) for e in entries if float(e["contribution"]) <= 0]
    return (raises + [""] * n_raises)[:n_raises], (lowers + [""] * n_lowers)[:n_lowers]


def tier_colours(tiers: pd.Series, key: pd.Series) -> dict[str, str]:
    """A colour per tier, from the best tier (highest mean ``key``, green) to the lowest (grey).

    Example:
        >>> tier_colours(pd.Series(["MQL", "cold", "warm"]), pd.Series([0.5, 0.01, 0.1]))
        {'MQL': '#1a7f37', 'warm': '#4d9a3a', 'cold': '#8a94a6'}
    """
    named = tiers.notna() & (tiers.astype(str) != "")
    means = key[named].astype(float).groupby(tiers[named].astype(str)).mean().sort_values(ascending=False)
    names = list(means.index)
    colours = {}
    for i, name in enumerate(names):
        if i == len(names) - 1 and len(names) > 1:
            colours[name] = LOWEST_TIER_COLOUR
        else:
            colours[name] = TIER_COLOURS[min(i, len(TIER_COLOURS) - 2)]
    return colours
