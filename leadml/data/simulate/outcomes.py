"""Simulated truth and outcomes: the known drivers of conversion, the deals and the funnel.

Part of the simulator (see :mod:`leadml.data.simulate.world`). The log-odds of a win is a sum of driver
contributions read from what an exporter can see at decision time: the exported profile and the
events of the lead's first ``decision_days`` days (recent ones weigh more), plus a modest noise.
So a model scoring leads at that age can, in principle, recover the Bayes-optimal ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadml.data.simulate.events import Events, K
from leadml.data.simulate.profile import DECISION_CODES, MANAGER, STUDENT, Profiles

RECENT_DAYS = 7.0  # events in the last week before the decision count fully ...
EARLY_WEIGHT = 0.5  # ... earlier ones count half
NOISE_SD = 0.2
STAGES = ("mql", "sql", "opportunity", "won")
MIN_CLOSE_DAYS = 7.0  # a deal closes between decision_days + 7 ...
CLOSE_SPAN_DAYS = 89.0  # ... and decision_days + 96 days after creation
NEVER_CLOSE = 0.04  # share of lost leads that are never closed in the CRM

# Effects by category code, in the order of the vocabularies; the last entry is for a missing value.
_SIZE_EFFECT = np.array([-0.6, 0.0, 0.0, 0.4, 0.4, 0.0, 0.0])
_INDUSTRY_EFFECT = np.array([0.45, 0.2, 0.0, 0.0, 0.0, -0.55, 0.0, 0.0, 0.0, 0.0, -0.45, 0.0, 0.0])
_SOURCE_EFFECT = np.array([0.0, 0.0, -0.35, 0.35, 0.0, 0.25, 0.25, 0.0])


def _window(
    events: Events, n: int, decision_days: float, kinds: list[str] | None = None, minutes: bool = False
) -> np.ndarray:
    """Recency-weighted count per lead of events (of ``kinds``) in ``[0, decision_days)``, or of
    their minutes of product use."""
    mask = events.t < decision_days
    if kinds is not None:
        mask &= np.isin(events.kind, [K[k] for k in kinds])
    weight = np.where(events.t[mask] >= decision_days - RECENT_DAYS, 1.0, EARLY_WEIGHT)
    if minutes:
        weight = weight * np.nan_to_num(events.values()[mask])
    return np.bincount(events.lead[mask], weights=weight, minlength=n)


def driver_contributions(
    profiles: Profiles, events: Events, decision_days: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Each driver's contribution to the log-odds of a win, per lead (the intercept excluded)."""
    n = len(profiles)
    level = profiles.job_level  # the exported level: a hidden level reads as neutral
    student = level == STUDENT
    boss = np.isin(level, DECISION_CODES)
    free = profiles.free_email

    def seen(*kinds: str) -> np.ndarray:
        return _window(events, n, decision_days, list(kinds))

    pricing = seen("page_view[pricing]")
    budget = profiles.budget
    stated = ~np.isnan(budget)
    budget_effect = 0.2 + 0.45 * np.clip(np.log10(np.where(stated, budget, 1.0) / 20_000), -1, 1)
    return {
        "student": np.where(student, -2.8, 0.0),
        "decision_maker": np.where(boss, 0.7, np.where(level == MANAGER, 0.25, 0.0)),
        "pricing_visits": np.log1p(pricing) * np.where(boss, 2.0, np.where(student, 0.1, 0.65)),
        "demo_request": 1.4 * -np.expm1(-1.5 * seen("demo_request")),
        "trial_activity": (
            0.55 * (seen("trial_signup") > 0)
            + 0.6 * np.log1p(_window(events, n, decision_days, ["product_active_day"], True) / 30)
        ),
        "careers_visits": np.where(seen("page_view[careers]") > 0, -1.8, 0.0),
        "unsubscribe": np.where(seen("unsubscribe") > 0, -1.1, 0.0),
        "engagement": 0.53 * np.log1p(_window(events, n, decision_days)) * np.where(free, 0.5, 1.0),
        "webinar": np.where(seen("webinar_attend") > 0, 0.5, 0.0),
        "company_size": _SIZE_EFFECT[profiles.company_size],
        "industry": _INDUSTRY_EFFECT[profiles.industry],
        "source": _SOURCE_EFFECT[profiles.source],
        "email_domain": np.where(free, -0.3, 0.3),
        "budget": np.where(stated, budget_effect, 0.0),
        "noise": NOISE_SD * rng.standard_normal(n),
    }


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, with log-odds clipped so probabilities stay strictly inside (0, 1)."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))


def solve_intercept(logits: np.ndarray, base_rate: float) -> float:
    """The intercept whose mean probability over ``logits`` is ``base_rate`` (bisection)."""
    low, high = -40.0, 40.0
    for _ in range(50):
        mid = 0.5 * (low + high)
        if sigmoid(mid + logits).mean() < base_rate:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


@dataclass
class Deals:
    """Outcome and funnel of each lead of a chunk, in days since creation (NaN when not reached)."""

    won: np.ndarray
    closes: np.ndarray  # False for leads that are never closed in the CRM
    close_day: np.ndarray
    stage: np.ndarray  # highest stage reached: -1 none, else a code into STAGES
    stage_days: np.ndarray  # (n, 3): mql, sql, opportunity


def make_deals(p_win: np.ndarray, profiles: Profiles, decision_days: float, rng: np.random.Generator) -> Deals:
    """Draw outcomes from ``p_win``, close dates after the decision day and the funnel stages."""
    n = len(p_win)
    won = rng.random(n) < p_win
    span = np.where(won, rng.beta(2.0, 2.6, n), rng.beta(1.4, 2.2, n))
    span = np.where(profiles.company_size >= 3, span**0.75, span)  # large companies buy slower
    close_day = decision_days + MIN_CLOSE_DAYS + CLOSE_SPAN_DAYS * span
    closes = won | (rng.random(n) >= NEVER_CLOSE)
    step = np.clip(np.column_stack([0.2 + 4 * p_win, 0.25 + 3 * p_win, 0.3 + 3 * p_win]), 0, 0.92)
    reached = np.cumprod(rng.random((n, 3)) < step, axis=1).astype(bool)
    reached[won] = True
    stage = np.where(won, 3, reached.sum(axis=1) - 1)
    fractions = np.sort(rng.uniform(0.05, 0.95, (n, 3)), axis=1)
    stage_days = np.where(reached, fractions * close_day[:, None], np.nan)
    return Deals(won=won, closes=closes, close_day=close_day, stage=stage, stage_days=stage_days)


_BURST = np.array([K["page_view[pricing]"]] * 6 + [K["chat_message"]] * 4 + [K["demo_request"]] * 2
                  + [K["page_view[product]"]] * 3 + [K["page_view[cases]"], K["page_view[delivery]"],
                  K["page_view[delivery]"], K["form_submit[contact]"]], dtype=np.int16)  # fmt: skip


def closing_burst(deals: Deals, decision_days: float, rng: np.random.Generator) -> Events:
    """Won leads get busy in the last days before the deal: pricing, chat, demos, the purchase form.

    The burst never starts before ``decision_days``, so it cannot leak into the decision window.
    """
    winners = np.flatnonzero(deals.won)
    lead = np.repeat(winners, 2 + rng.poisson(3.0, len(winners)))
    close = deals.close_day[lead]
    low = np.maximum(decision_days, close - 12.0)
    kind = _BURST[rng.integers(0, len(_BURST), len(lead))]
    burst = Events(lead, low + rng.random(len(lead)) * (close - low), kind)
    buyers = winners[rng.random(len(winners)) < 0.8]
    purchase = Events(buyers, deals.close_day[buyers] - rng.uniform(0.0, 0.5, len(buyers)),
                      np.full(len(buyers), K["form_submit[purchase]"], np.int16))  # fmt: skip
    return Events.concat([burst, purchase])
