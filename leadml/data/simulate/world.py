"""Seeded synthetic leads with known drivers: leadml's built-in data.

:func:`simulate` returns, and :func:`write_simulation` streams to Parquet, what a CRM plus a
web-analytics tool would export: ``leads`` (profiles), ``events`` (page views, e-mails, forms,
webinars, trial usage, ...), ``outcomes`` (closed deals with their funnel stages), and a ``truth``
table no real export has: each lead's true win probability ``p_win``, the contribution of every
driver to its log-odds and its latent interest. :data:`TRUE_DRIVERS` lists the drivers by importance
with the leadml feature names that carry them, so tests can check what a model learned.

The true log-odds read only what is observable ``decision_days`` after a lead's creation (its
exported profile and its events until then, recent ones weighing more) plus a modest noise, and
every deal closes between ``decision_days + 7`` and ``decision_days + 96`` days: a model scoring
leads at that age with a 120-day horizon can come close to the Bayes-optimal ranking.

Leads are generated in chunks, each from its own child of ``np.random.SeedSequence(seed)``, so the
in-memory and the on-disk results are identical, and a million leads stream to disk in bounded
memory. The intercept that gives the requested base rate is solved once (bisection) on a fixed
calibration sample, so every seed shares the same true model.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.errors import ConfigError
from leadml.data.io import atomic_output
from leadml.data.simulate.events import (
    ATTRIBUTES,
    EVENT_TYPES,
    KIND_ATTRIBUTE,
    KIND_NAMES,
    KIND_TYPE,
    TRENDS,
    Events,
    Latent,
    make_events,
    make_latent,
    sort_events,
)
from leadml.data.simulate.outcomes import (
    STAGES,
    Deals,
    closing_burst,
    driver_contributions,
    make_deals,
    sigmoid,
    solve_intercept,
)
from leadml.data.simulate.profile import (
    COMPANY_SIZES,
    COUNTRIES,
    DOMAIN_KINDS,
    INDUSTRIES,
    JOB_LEVELS,
    SOURCES,
    Profiles,
    creation_times,
    make_profiles,
)

__all__ = ["TRUE_DRIVERS", "DRIVER_FAMILIES", "TABLES", "Simulation", "simulate", "write_simulation"]

CHUNK_SIZE = 50_000
CALIBRATION_SEED = 20_250_101
CALIBRATION_LEADS = 100_000
TABLES = ("leads", "events", "outcomes", "truth")
_DAY_NS = 86_400 * 1_000_000_000
_NAT = np.iinfo(np.int64).min


def _carriers(name: str) -> tuple[str, ...]:
    """Count features of an event type or ``type[value]`` (plus recency, which types have)."""
    counts = tuple(f"{name}__count_{w}d" for w in (7, 30, 90))
    return counts if "[" in name else counts + (f"{name}__days_since_last",)


# The true drivers, most important first by the mean absolute deviation of their log-odds
# contribution from its average over the leads (the measure global SHAP importance uses, so a model's
# mean |SHAP| ranking can be compared with it), each with the leadml features that carry it. The
# noise driver is left out: nothing carries it.
TRUE_DRIVERS: dict[str, tuple[str, ...]] = {
    "student": ("job_level",),
    "decision_maker": ("job_level",),
    "engagement": (
        "events__count_7d",
        "events__count_30d",
        "events__count_90d",
        "events__active_days_7d",
        "events__active_days_30d",
        "events__active_days_90d",
        "events__decayed_30d",
        "events__velocity_7d",
    ),  # fmt: skip
    "pricing_visits": _carriers("page_view[pricing]"),
    "email_domain": ("email_domain_kind", "email_domain"),
    "trial_activity": _carriers("trial_signup")
    + _carriers("product_active_day")
    + tuple(f"product_active_day.minutes__{stat}_{w}d" for stat in ("sum", "mean", "max") for w in (7, 30, 90))
    + ("product_active_day.minutes__days_since_last",),
    "company_size": ("company_size",),
    "source": ("source",),
    "industry": ("industry",),
    "budget": ("budget",),
    "careers_visits": _carriers("page_view[careers]"),
    "demo_request": _carriers("demo_request"),
    "unsubscribe": _carriers("unsubscribe"),
    "webinar": _carriers("webinar_attend"),
}

# The feature family of each driver, to sum a model's SHAP values over when its importance is
# compared with the truth (tests/explain/test_drivers.py). As TRUE_DRIVERS, except engagement:
# it is the log of *all* recent events, so the counts and recency of every event type (and
# attribute value) that no other driver reads (e-mail opens, downloads, form fills, all page
# views, ...) measure it as well as the totals do, and a model is free to learn it from them.
_READ_BY_OTHERS = {feature for name, family in TRUE_DRIVERS.items() if name != "engagement" for feature in family}
DRIVER_FAMILIES: dict[str, tuple[str, ...]] = {
    **TRUE_DRIVERS,
    "engagement": TRUE_DRIVERS["engagement"] + tuple(dict.fromkeys(
        feature for kind in EVENT_TYPES + KIND_NAMES if not _READ_BY_OTHERS & set(_carriers(kind))
        for feature in _carriers(kind)
    )),
}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Simulation:
    """The four simulated tables, the end of the data (exclusive) and the true model's intercept."""

    leads: pd.DataFrame
    events: pd.DataFrame
    outcomes: pd.DataFrame
    truth: pd.DataFrame
    data_end: pd.Timestamp
    intercept: float


@dataclass(frozen=True)
class _Plan:
    n_leads: int
    seed: int
    base_rate: float
    start: pd.Timestamp
    data_end: pd.Timestamp
    decision_days: int
    chunk_size: int


def _plan(
    n_leads: int, seed: int, base_rate: float, start: object, months: int, decision_days: int,
    chunk_size: int,
) -> _Plan:  # fmt: skip
    """Check the arguments (``ConfigError`` naming the argument) and fix the time span."""
    checks = [
        ("n_leads", n_leads, isinstance(n_leads, (int, np.integer)) and n_leads >= 1,
         "an integer >= 1"),
        ("seed", seed, isinstance(seed, (int, np.integer)) and seed >= 0, "an integer >= 0"),
        ("base_rate", base_rate, isinstance(base_rate, (int, float)) and 0.001 <= base_rate <= 0.95,
         "a number between 0.001 and 0.95"),
        ("months", months, isinstance(months, (int, np.integer)) and months >= 1, "an integer >= 1"),
        ("decision_days", decision_days, isinstance(decision_days, (int, np.integer))
         and 1 <= decision_days <= 365, "an integer between 1 and 365"),
        ("chunk_size", chunk_size, isinstance(chunk_size, (int, np.integer)) and chunk_size >= 1,
         "an integer >= 1"),
    ]  # fmt: skip
    for name, value, ok, expected in checks:
        if not ok or isinstance(value, bool):
            raise ConfigError(f"simulate: {name} must be {expected} (got {value!r})")
    try:
        begin = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"simulate: start {start!r} is not a date; use e.g. 2025-01-01") from exc
    if pd.isna(begin):
        raise ConfigError(f"simulate: start {start!r} is not a date; use e.g. 2025-01-01")
    begin = begin.tz_localize("UTC") if begin.tzinfo is None else begin.tz_convert("UTC")
    return _Plan(int(n_leads), int(seed), float(base_rate), begin.as_unit("ns"),
                 (begin + pd.DateOffset(months=int(months))).as_unit("ns"), int(decision_days),
                 int(chunk_size))  # fmt: skip


@lru_cache(maxsize=8)
def _calibration_logits(decision_days: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence(CALIBRATION_SEED))
    profiles = make_profiles(CALIBRATION_LEADS, rng)
    latent = make_latent(profiles, rng)
    events = make_events(latent, np.full(CALIBRATION_LEADS, float(decision_days)), rng)
    contributions = driver_contributions(profiles, events, decision_days, rng)
    return np.sum(list(contributions.values()), axis=0)


@lru_cache(maxsize=32)
def calibrated_intercept(base_rate: float, decision_days: int) -> float:
    """The intercept that makes the mean true probability equal ``base_rate``.

    Solved by bisection on a fixed calibration sample of leads (only their first
    ``decision_days`` days are needed), so it depends on neither the seed nor the number of leads.
    """
    return solve_intercept(_calibration_logits(decision_days), base_rate)


def _categorical(codes: np.ndarray, categories: tuple[str, ...]) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int8), categories=list(categories))


def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")


def _offset_ns(created: np.ndarray, days: np.ndarray) -> np.ndarray:
    """``created`` plus ``days`` (floored to whole seconds); NaN days give NaT."""
    seconds = np.floor(np.nan_to_num(days, nan=0.0) * 86_400).astype(np.int64)
    return np.where(np.isnan(days), _NAT, created + seconds * 1_000_000_000)


def _lead_ids(first: int, size: int, n_total: int) -> pd.api.extensions.ExtensionArray:
    """``L0000001``-style ids (1-based, zero-padded to at least 7 digits) of one chunk."""
    width = max(7, len(str(n_total)))
    numbers = np.arange(first + 1, first + size + 1).astype(str)
    return pd.array(np.char.add("L", np.char.zfill(numbers, width)), dtype="str")


def _leads_frame(lead_id, created: np.ndarray, profiles: Profiles) -> pd.DataFrame:
    return pd.DataFrame({
        "lead_id": lead_id,
        "created_at": _utc(created),
        "job_title": pd.array(profiles.job_title, dtype="str"),
        "job_level": _categorical(profiles.job_level, JOB_LEVELS),
        "industry": _categorical(profiles.industry, INDUSTRIES),
        "company_size": _categorical(profiles.company_size, COMPANY_SIZES),
        "country": _categorical(profiles.country, COUNTRIES),
        "source": _categorical(profiles.source, SOURCES),
        "email_domain": pd.array(profiles.email_domain, dtype="str"),
        "email_domain_kind": _categorical(profiles.free_email.astype(np.int8), DOMAIN_KINDS),
        "budget": profiles.budget,
    })  # fmt: skip


def _events_frame(lead_id, created: np.ndarray, events: Events, end_ns: int) -> pd.DataFrame:
    """The exported events: those before the data end, sorted by lead and time."""
    events = sort_events(events)
    stamp = _offset_ns(created[events.lead], events.t)
    kept = np.flatnonzero(stamp < end_ns)
    kind = events.kind[kept]
    return pd.DataFrame({
        "lead_id": lead_id.take(events.lead[kept]),
        "timestamp": _utc(stamp[kept]),
        "event_type": _categorical(KIND_TYPE[kind], EVENT_TYPES),
        **{column: _categorical(KIND_ATTRIBUTE[column][kind], values)
           for column, values in ATTRIBUTES.items()},
        "minutes": events.values()[kept],
    })  # fmt: skip


def _outcomes_frame(lead_id, created: np.ndarray, deals: Deals, end_ns: int) -> pd.DataFrame:
    """Closed deals only: leads still open at the data end (or never closed) have no row."""
    closed_ns = _offset_ns(created, deals.close_day)
    closed = np.flatnonzero(deals.closes & (closed_ns < end_ns))
    return pd.DataFrame({
        "lead_id": lead_id[closed],
        "outcome": pd.array(np.where(deals.won[closed], "won", "lost"), dtype="str"),
        "closed_at": _utc(closed_ns[closed]),
        "stage": _categorical(deals.stage[closed], STAGES),
        **{f"{stage}_at": _utc(_offset_ns(created[closed], deals.stage_days[closed, k]))
           for k, stage in enumerate(STAGES[:3])},
    })  # fmt: skip


def _truth_frame(lead_id, p_win: np.ndarray, contributions: dict, latent: Latent) -> pd.DataFrame:
    return pd.DataFrame({
        "lead_id": lead_id,
        "p_win": p_win,
        **{f"driver__{name}": values for name, values in contributions.items()},
        "interest_start": latent.interest_start,
        "interest_end": latent.interest_end,
        "interest_trend": _categorical(latent.trend, TRENDS),
        "job_seeker": latent.job_seeker,
    })  # fmt: skip


def _chunk(
    plan: _Plan, first: int, size: int, seed: np.random.SeedSequence, intercept: float
) -> dict[str, pd.DataFrame]:
    """Simulate leads ``first .. first + size - 1``; return the four frames of the chunk."""
    rng = np.random.default_rng(seed)
    end_ns, d = plan.data_end.value, plan.decision_days
    created = creation_times(first, size, plan.n_leads, plan.start, plan.data_end, rng)
    profiles = make_profiles(size, rng)
    latent = make_latent(profiles, rng)
    # Events run to the data end, and at least through the decision window, so the truth of the
    # newest leads reads the same window as everyone's; what lies past the data end is cut below.
    events = make_events(latent, np.maximum((end_ns - created) / _DAY_NS, float(d)), rng)
    contributions = driver_contributions(profiles, events, d, rng)
    p_win = sigmoid(intercept + np.sum(list(contributions.values()), axis=0))
    deals = make_deals(p_win, profiles, d, rng)
    events = Events.concat([events, closing_burst(deals, d, rng)])
    lead_id = _lead_ids(first, size, plan.n_leads)
    return {
        "leads": _leads_frame(lead_id, created, profiles),
        "events": _events_frame(lead_id, created, events, end_ns),
        "outcomes": _outcomes_frame(lead_id, created, deals, end_ns),
        "truth": _truth_frame(lead_id, p_win, contributions, latent),
    }


def _chunks(plan: _Plan) -> Iterator[tuple[int, dict[str, pd.DataFrame]]]:
    """Yield ``(leads done so far, frames)`` chunk by chunk."""
    intercept = calibrated_intercept(plan.base_rate, plan.decision_days)
    starts = range(0, plan.n_leads, plan.chunk_size)
    seeds = np.random.SeedSequence(plan.seed).spawn(len(starts))
    for first, seed in zip(starts, seeds, strict=True):
        size = min(plan.chunk_size, plan.n_leads - first)
        yield first + size, _chunk(plan, first, size, seed, intercept)


def simulate(
    n_leads: int = 5000,
    seed: int = 0,
    *,
    base_rate: float = 0.08,
    start: str | pd.Timestamp = "2025-01-01",
    months: int = 18,
    decision_days: int = 14,
    chunk_size: int = CHUNK_SIZE,
) -> Simulation:
    """Simulate ``n_leads`` leads with their events, closed deals and true win probabilities.

    Parameters:
        n_leads: number of leads, created over ``months`` months from ``start``.
        seed: the same seed gives identical frames.
        base_rate: the mean true win probability (the intercept is solved to hit it).
        start: first day of the data (UTC); the data ends ``months`` later (exclusive).
        decision_days: the truth reads the first ``decision_days`` days of each lead.
        chunk_size: leads per chunk (each chunk has its own child seed; the data depend on it).

    Returns:
        A :class:`Simulation` with ``leads``, ``events``, ``outcomes`` and ``truth`` frames that pass
        the data contract, and ``data_end``.

    Raises:
        ConfigError: an argument is out of range.

    Example:
        >>> sim = simulate(300, seed=1)
        >>> len(sim.leads), sim.leads["lead_id"].iloc[0], str(sim.data_end.date())
        (300, 'L0000001', '2026-07-01')
        >>> bool(sim.truth["p_win"].between(0, 1, inclusive="neither").all())
        True
    """
    plan = _plan(n_leads, seed, base_rate, start, months, decision_days, chunk_size)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for _, frames in _chunks(plan):
        for name in TABLES:
            parts[name].append(frames[name])
    tables = {name: pd.concat(parts[name], ignore_index=True) for name in TABLES}
    return Simulation(**tables, data_end=plan.data_end,
                      intercept=calibrated_intercept(plan.base_rate, plan.decision_days))  # fmt: skip


def write_simulation(
    out_dir: str | os.PathLike,
    n_leads: int = 5000,
    seed: int = 0,
    *,
    base_rate: float = 0.08,
    start: str | pd.Timestamp = "2025-01-01",
    months: int = 18,
    decision_days: int = 14,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Path]:
    """Stream a simulation into ``out_dir`` as ``leads``/``events``/``outcomes``/``truth.parquet``.

    The data equal those of :func:`simulate` with the same arguments. Chunks are written as they
    are made (memory stays bounded for millions of leads); each file is a temporary file in
    ``out_dir`` renamed into place at the end, so a failure leaves no partial file behind.
    ``progress(leads_done, n_leads)`` is called after every chunk.

    Returns:
        The path of each table, by name.

    Example:
        >>> import tempfile
        >>> paths = write_simulation(tempfile.mkdtemp(), 200, seed=3)
        >>> sorted(p.name for p in paths.values())
        ['events.parquet', 'leads.parquet', 'outcomes.parquet', 'truth.parquet']
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    plan = _plan(n_leads, seed, base_rate, start, months, decision_days, chunk_size)
    folder = Path(out_dir)
    paths = {name: folder / f"{name}.parquet" for name in TABLES}
    with contextlib.ExitStack() as stack:
        temps = {name: stack.enter_context(atomic_output(path)) for name, path in paths.items()}
        writers: dict[str, pq.ParquetWriter] = {}
        for done, frames in _chunks(plan):
            for name in TABLES:
                with warnings.catch_warnings():  # pyarrow reads Series.values of tz columns
                    warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
                    table = pa.Table.from_pandas(frames[name], preserve_index=False)
                if name not in writers:
                    writers[name] = stack.enter_context(pq.ParquetWriter(temps[name], table.schema))
                writers[name].write_table(table)
            if progress is not None:
                progress(done, plan.n_leads)
    return paths
