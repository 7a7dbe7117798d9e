"""Simulated behaviour: a latent interest per lead drives a stream of web, e-mail and product events.

Part of the simulator (see :mod:`leadml.data.simulate.world`). Each lead mixes four behaviour
components (browsing, buying, job seeking, studying) and has an interest that warms up, cools down
or stays steady over its first weeks, then fades slowly. Events are an inhomogeneous Poisson process
with that intensity, sampled exactly and vectorised (piecewise-exponential inverse CDF). Times are
float days since the lead's creation; kinds are codes into :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from leadml.data.simulate.profile import STUDENT, Profiles

EVENT_TYPES = tuple(sorted((  # sorted: the categories the data contract gives ``event_type``
    "page_view", "email_open", "email_click", "form_submit", "download", "webinar_register",
    "webinar_attend", "chat_message", "trial_signup", "product_active_day", "community_join",
    "demo_request", "unsubscribe", "ad_click", "review_comment",
)))  # fmt: skip
PAGES = ("blog", "pricing", "product", "docs", "cases", "careers", "delivery")
EMAIL_CAMPAIGNS = ("welcome", "intro_lesson", "newsletter", "case_study", "final_offer")
CAMPAIGNS = EMAIL_CAMPAIGNS + ("trial_ad",)
FORMS = ("contact", "newsletter", "purchase")
ASSETS = ("checklist", "whitepaper", "case_study")
ATTRIBUTES = {"page": PAGES, "asset": ASSETS, "campaign": CAMPAIGNS, "form": FORMS}

KINDS: tuple[tuple[str, str | None, str | None], ...] = tuple(
    [("page_view", "page", p) for p in PAGES]
    + [("email_open", "campaign", c) for c in EMAIL_CAMPAIGNS]
    + [("email_click", "campaign", c) for c in EMAIL_CAMPAIGNS]
    + [("form_submit", "form", f) for f in FORMS]
    + [("download", "asset", a) for a in ASSETS]
    + [(e, None, None) for e in ("webinar_register", "webinar_attend", "chat_message",
                                 "trial_signup", "product_active_day", "community_join",
                                 "demo_request", "unsubscribe")]
    + [("ad_click", "campaign", "trial_ad"), ("review_comment", None, None)]
)  # fmt: skip
KIND_NAMES = tuple(t if v is None else f"{t}[{v}]" for t, _, v in KINDS)
K = {name: code for code, name in enumerate(KIND_NAMES)}
KIND_TYPE = np.array([EVENT_TYPES.index(t) for t, _, _ in KINDS], dtype=np.int8)
KIND_ATTRIBUTE = {
    column: np.array([values.index(v) if c == column else -1 for _, c, v in KINDS], dtype=np.int8)
    for column, values in ATTRIBUTES.items()
}
EMAIL_OPEN = K["email_open[welcome]"]  # sampled as a generic open, re-labelled by send time
EMAIL_KINDS = np.array([K[f"email_{a}[{c}]"] for a in ("open", "click") for c in EMAIL_CAMPAIGNS])
ONCE_KINDS = np.array([K["trial_signup"], K["community_join"], K["unsubscribe"]])

COMPONENTS = ("browse", "buyer", "job_seeker", "student")
_MIX = {  # relative weights of event kinds in each behaviour component
    "browse": {"page_view[blog]": 24, "page_view[product]": 10, "page_view[docs]": 8,
               "page_view[cases]": 6, "page_view[pricing]": 2.5, "page_view[careers]": 0.4,
               "page_view[delivery]": 1, "email_open[welcome]": 26, "form_submit[newsletter]": 3,
               "form_submit[contact]": 0.5, "download[checklist]": 3, "download[whitepaper]": 3,
               "download[case_study]": 2, "webinar_register": 2.5, "chat_message": 1,
               "trial_signup": 0.6, "community_join": 1, "demo_request": 0.25, "unsubscribe": 1.6,
               "ad_click[trial_ad]": 3, "review_comment": 0.5},
    "buyer": {"page_view[blog]": 6, "page_view[product]": 14, "page_view[docs]": 6,
              "page_view[cases]": 8, "page_view[pricing]": 16, "page_view[careers]": 0.2,
              "page_view[delivery]": 4, "email_open[welcome]": 18, "form_submit[contact]": 3,
              "form_submit[newsletter]": 0.5, "form_submit[purchase]": 0.2,
              "download[checklist]": 1.5, "download[whitepaper]": 2, "download[case_study]": 3, "webinar_register": 2.5,
              "chat_message": 4, "trial_signup": 2.5, "community_join": 0.5, "demo_request": 3,
              "unsubscribe": 0.6, "ad_click[trial_ad]": 3, "review_comment": 0.5},
    "job_seeker": {"page_view[careers]": 30, "page_view[blog]": 12, "page_view[cases]": 8,
                   "page_view[product]": 6, "page_view[docs]": 3, "page_view[pricing]": 0.8,
                   "page_view[delivery]": 3, "email_open[welcome]": 12, "community_join": 2,
                   "form_submit[newsletter]": 2, "chat_message": 2, "unsubscribe": 2},
    "student": {"page_view[blog]": 25, "page_view[docs]": 18, "page_view[product]": 5,
                "page_view[pricing]": 1.5, "page_view[careers]": 4, "email_open[welcome]": 18,
                "community_join": 3, "download[checklist]": 5, "download[whitepaper]": 5,
                "form_submit[newsletter]": 3, "webinar_register": 3, "review_comment": 2,
                "unsubscribe": 1.5, "ad_click[trial_ad]": 2, "trial_signup": 1},
}  # fmt: skip
_FIRST_TOUCH = {  # the conversion that created the lead (a form, a download, a sign-up)
    "browse": {"form_submit[newsletter]": 35, "download[checklist]": 12, "download[whitepaper]": 12,
               "download[case_study]": 8, "webinar_register": 15, "community_join": 6,
               "trial_signup": 5, "form_submit[contact]": 7},
    "buyer": {"form_submit[contact]": 35, "demo_request": 12, "trial_signup": 20,
              "download[case_study]": 10, "download[whitepaper]": 6, "webinar_register": 10,
              "form_submit[newsletter]": 7},
    "job_seeker": {"form_submit[newsletter]": 50, "download[checklist]": 30, "community_join": 20},
    "student": {"download[checklist]": 20, "download[whitepaper]": 20, "form_submit[newsletter]": 30,
                "community_join": 20, "webinar_register": 10},
}  # fmt: skip
BUYER_SHARE = np.array([0.04, 0.22, 0.38, 0.50, 0.55, 0.55, 0.45])  # by true job level
JOB_SEEKER_RATE = np.array([0.20, 0.08, 0.03, 0.01, 0.01, 0.005, 0.005])
TRENDS = ("warming", "cooling", "steady")
RAMP_DAYS = 21.0  # the interest moves from its start to its end value over the first three weeks,
ACTIVITY = 0.25  # ... (events per day at interest 1) then fades away slowly (fade_days)


def _cumulative(table: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    probs = np.zeros((len(COMPONENTS), len(KINDS)))
    for row, component in enumerate(COMPONENTS):
        for name, weight in table[component].items():
            probs[row, K[name]] = weight
    return np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)


MIX_CUM = _cumulative(_MIX)
FIRST_TOUCH_CUM = _cumulative(_FIRST_TOUCH)


@dataclass
class Latent:
    """Hidden state of each lead: its behaviour mix and its interest over time."""

    mix: np.ndarray  # (n, 4) weights over COMPONENTS
    buyer: np.ndarray
    job_seeker: np.ndarray
    interest_start: np.ndarray
    interest_end: np.ndarray
    trend: np.ndarray  # codes into TRENDS
    fade_days: np.ndarray


@dataclass
class Events:
    """Events of one chunk: local lead index, days since creation, kind code and the minutes of
    product use (a day of product use has them; NaN for every other event; None: all NaN)."""

    lead: np.ndarray
    t: np.ndarray
    kind: np.ndarray
    minutes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.lead)

    def values(self) -> np.ndarray:
        """The minutes of each event (NaN: not a day of product use)."""
        return np.full(len(self), np.nan) if self.minutes is None else self.minutes

    def take(self, index: np.ndarray) -> Events:
        minutes = None if self.minutes is None else self.minutes[index]
        return Events(self.lead[index], self.t[index], self.kind[index], minutes)

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        fields = ("lead", "t", "kind")
        minutes = None
        if any(part.minutes is not None for part in parts):
            minutes = np.concatenate([part.values() for part in parts])
        lead, t, kind = (np.concatenate([getattr(part, f) for part in parts]) for f in fields)
        return Events(lead, t, kind, minutes)


def make_latent(profiles: Profiles, rng: np.random.Generator) -> Latent:
    """Draw each lead's behaviour mix (from its true job level) and its interest trajectory."""
    n = len(profiles)
    level = profiles.level
    seeker = rng.random(n) < JOB_SEEKER_RATE[level]
    buyer = np.clip(BUYER_SHARE[level] * rng.gamma(4.0, 0.25, n), 0.0, 0.9)
    student = level == STUDENT
    mix = np.zeros((n, len(COMPONENTS)))
    mix[:, 1] = np.where(seeker, 0.0, buyer)
    mix[:, 3] = np.where(student & ~seeker, 0.6, 0.0)
    mix[:, 2] = np.where(seeker, 0.65, 0.0)
    mix[:, 0] = 1.0 - mix[:, 1:].sum(axis=1)
    trend = rng.choice(len(TRENDS), n, p=[0.3, 0.4, 0.3])
    factor = np.select(
        [trend == 0, trend == 1], [rng.uniform(3.0, 6.0, n), rng.uniform(0.1, 0.35, n)],
        rng.uniform(0.8, 1.25, n),
    )  # fmt: skip
    start = rng.gamma(2.0, 0.5, n)
    return Latent(
        mix=mix, buyer=np.where(seeker, 0.0, buyer), job_seeker=seeker, interest_start=start,
        interest_end=start * factor, trend=trend, fade_days=rng.uniform(15.0, 60.0, n),
    )  # fmt: skip


def _mass(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Integral of ``a * exp(b * s)`` for ``s`` in ``[0, x]``."""
    flat = np.abs(b) < 1e-9
    return np.where(flat, a * x, a * np.expm1(b * x) / np.where(flat, 1.0, b))


def _invert(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The ``s`` at which the integral of ``a * exp(b * s)`` reaches ``m`` (inverts :func:`_mass`)."""
    flat = np.abs(b) < 1e-9
    safe_b = np.where(flat, 1.0, b)
    return np.where(flat, m / a, np.log1p(np.maximum(m * safe_b / a, -1 + 1e-12)) / safe_b)


def _sample_kinds(rng: np.random.Generator, mix: np.ndarray, lead: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """One kind per event: a component from its lead's ``mix``, then a kind from that component."""
    component = (rng.random(len(lead))[:, None] > np.cumsum(mix, axis=1)[lead]).sum(axis=1)
    component = np.minimum(component, len(COMPONENTS) - 1)
    u = rng.random(len(lead))
    kind = np.empty(len(lead), dtype=np.int16)
    for c in range(len(COMPONENTS)):
        rows = component == c
        kind[rows] = np.minimum(np.searchsorted(cum[c], u[rows], side="right"), len(KINDS) - 1)
    return kind


def _label_campaigns(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Which e-mail a lead opened, from the send calendar (days since creation)."""
    u = rng.random(len(t))
    campaign = np.select(
        [t < 2, t < 14, t < 45, t < 90],
        [np.zeros(len(t), int), np.where(u < 0.65, 1, 2), np.select([u < 0.4, u < 0.85], [3, 2], 4),
         np.where(u < 0.8, 2, 4)],
        2,
    )  # fmt: skip
    return EMAIL_OPEN + campaign


def primary_events(latent: Latent, horizon: np.ndarray, rng: np.random.Generator) -> Events:
    """The first touch at creation plus the interest-driven events in ``[0, horizon)`` days."""
    n = len(horizon)
    s0, s1, fade = latent.interest_start, latent.interest_end, latent.fade_days
    x1, x2 = np.minimum(RAMP_DAYS, horizon), np.maximum(horizon - RAMP_DAYS, 0.0)
    a1, b1 = ACTIVITY * s0, np.log(s1 / s0) / RAMP_DAYS
    a2, b2 = ACTIVITY * s1, -1.0 / fade
    m1, m2 = _mass(a1, b1, x1), _mass(a2, b2, x2)
    lead = np.repeat(np.arange(n), rng.poisson(m1 + m2))
    u = rng.random(len(lead)) * (m1 + m2)[lead]
    first = u < m1[lead]
    t = np.empty(len(lead))
    t[first] = np.minimum(_invert(a1[lead[first]], b1[lead[first]], u[first]), x1[lead[first]])
    rest = ~first
    t[rest] = RAMP_DAYS + np.minimum(_invert(a2[lead[rest]], b2[lead[rest]], u[rest] - m1[lead[rest]]), x2[lead[rest]])
    kind = _sample_kinds(rng, latent.mix, lead, MIX_CUM)
    opens = kind == EMAIL_OPEN
    kind[opens] = _label_campaigns(rng, t[opens])
    touched = rng.uniform(0.0, 120.0, n) / 86400.0
    everyone = np.arange(n)
    touch = Events(everyone, touched, _sample_kinds(rng, latent.mix, everyone, FIRST_TOUCH_CUM))
    opened = np.flatnonzero(rng.random(n) < 0.25 + 0.25 * np.minimum(s0, 1.0))
    welcome = Events(opened, touched[opened] + rng.exponential(0.3, len(opened)),
                     np.full(len(opened), K["email_open[welcome]"], np.int16))  # fmt: skip
    return Events.concat([touch, welcome, Events(lead, t, kind)])


def sort_events(events: Events) -> Events:
    """Order by lead, then time (to the millisecond; a stable sort of one int64 key)."""
    ms = np.floor(events.t * 86_400_000).astype(np.int64)
    span = int(ms.max()) + 1 if len(ms) else 1
    return events.take(np.argsort(events.lead.astype(np.int64) * span + ms, kind="stable"))


def _once_and_unsubscribe(events: Events, n: int, rng: np.random.Generator) -> Events:
    """Keep only the first sign-up, community join and unsubscribe of each lead.

    After its unsubscribe a lead gets no more e-mails or ads and cools down: most of its other
    later events are thinned away.
    """
    events = sort_events(events)
    once = np.flatnonzero(np.isin(events.kind, ONCE_KINDS))
    keys = events.lead[once].astype(np.int64) * len(KINDS) + events.kind[once]
    _, first = np.unique(keys, return_index=True)
    keep = np.ones(len(events), bool)
    keep[once] = False
    keep[once[first]] = True
    unsubscribed = np.full(n, np.inf)
    is_unsub = keep & (events.kind == K["unsubscribe"])
    unsubscribed[events.lead[is_unsub]] = events.t[is_unsub]
    after = events.t > unsubscribed[events.lead]
    silenced = np.isin(events.kind, EMAIL_KINDS) | (events.kind == K["ad_click[trial_ad]"])
    keep &= ~(after & (silenced | (rng.random(len(events)) > 0.35)))
    return events.take(np.flatnonzero(keep))


def _derived(events: Events, latent: Latent, rng: np.random.Generator) -> Events:
    """Add the events that follow others.

    Clicks follow opens (same campaign, minutes later), attendance follows registration (the
    webinar is 1-14 days later), product use follows a trial sign-up (one event per active day).
    """
    opens = np.flatnonzero(np.isin(events.kind, EMAIL_KINDS[:5]))
    clicked = opens[rng.random(len(opens)) < 0.18 + 0.3 * latent.buyer[events.lead[opens]]]
    clicks = Events(events.lead[clicked], events.t[clicked] + rng.exponential(0.01, len(clicked)),
                    (events.kind[clicked] + len(EMAIL_CAMPAIGNS)).astype(np.int16))  # fmt: skip
    registered = np.flatnonzero(events.kind == K["webinar_register"])
    attended = registered[rng.random(len(registered)) < 0.45]
    webinar_day = events.t[attended] + rng.uniform(1.0, 14.0, len(attended))
    attends = Events(events.lead[attended], webinar_day,
                     np.full(len(attended), K["webinar_attend"], np.int16))  # fmt: skip
    trials = np.flatnonzero(events.kind == K["trial_signup"])
    days_used = rng.poisson(1.0 + 7.0 * latent.buyer[events.lead[trials]] * np.minimum(
        latent.interest_end[events.lead[trials]], 2.0))  # fmt: skip
    trial = np.repeat(trials, days_used)
    offset = rng.integers(0, 30, len(trial))
    _, distinct = np.unique(events.lead[trial].astype(np.int64) * 32 + offset, return_index=True)
    trial, offset = trial[distinct], offset[distinct]
    usage = Events(events.lead[trial], events.t[trial] + offset + rng.uniform(0.02, 0.98, len(trial)),
                   np.full(len(trial), K["product_active_day"], np.int16),
                   usage_minutes(latent.buyer[events.lead[trial]], rng.spawn(1)[0]))  # fmt: skip
    return Events.concat([events, clicks, attends, usage])


def usage_minutes(buyer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Whole minutes of product use on each active day: buyers go deeper (median 8 to 48 minutes).

    Drawn from a child of the chunk's generator, so the other draws of the chunk stay as they were.
    """
    return np.maximum(np.round(rng.lognormal(np.log(8.0 + 45.0 * buyer), 0.6)), 1.0)


def make_events(latent: Latent, horizon: np.ndarray, rng: np.random.Generator) -> Events:
    """All pre-outcome events of a chunk over ``[0, horizon)`` days since creation (unsorted)."""
    events = primary_events(latent, horizon, rng)
    events = _once_and_unsubscribe(events, len(horizon), rng)
    return _derived(events, latent, rng)
