"""Simulated lead profiles: when leads appear, who they are and where they work.

Part of the simulator (see :mod:`leadml.data.simulate.world`). Everything here is vectorised numpy over
one chunk of leads; categorical fields are returned as integer codes into the vocabularies below
(``-1`` = missing), so the frames are built once, at the end, with fixed categories.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

JOB_LEVELS = ("student", "specialist", "manager", "director", "vp", "c_level", "owner")
DECISION_MAKERS = ("director", "vp", "c_level", "owner")
STUDENT = JOB_LEVELS.index("student")
MANAGER = JOB_LEVELS.index("manager")
DECISION_CODES = np.array([JOB_LEVELS.index(level) for level in DECISION_MAKERS])
LEVEL_WEIGHTS = np.array([0.08, 0.30, 0.25, 0.13, 0.07, 0.06, 0.11])

INDUSTRIES = (
    "software", "financial_services", "retail", "manufacturing", "healthcare", "education",
    "professional_services", "media", "logistics", "telecom", "public_sector", "energy",
)  # fmt: skip
INDUSTRY_WEIGHTS = np.array([18, 11, 10, 10, 8, 7, 10, 6, 6, 5, 5, 4], dtype=float)
EDUCATION = INDUSTRIES.index("education")

COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1001-5000", "5000+")
# P(size band | job level): owners run small firms, vice presidents sit in large ones.
SIZE_BY_LEVEL = np.array([
    [30, 20, 20, 15, 10, 5],   # student (mostly hidden anyway)
    [8, 18, 26, 24, 14, 10],   # specialist
    [6, 16, 26, 26, 15, 11],   # manager
    [6, 16, 25, 26, 16, 11],   # director
    [3, 10, 22, 30, 20, 15],   # vp
    [22, 30, 24, 14, 6, 4],    # c_level
    [60, 28, 9, 2, 1, 0],      # owner
], dtype=float)  # fmt: skip

COUNTRIES = (
    "United States", "United Kingdom", "Germany", "France", "Netherlands", "Canada", "India",
    "Australia", "Spain", "Italy", "Sweden", "Switzerland", "Poland", "Brazil", "Ireland",
    "Belgium", "Denmark", "Singapore", "Austria", "Norway",
)  # fmt: skip
COUNTRY_WEIGHTS = 1.0 / np.arange(1, len(COUNTRIES) + 1) ** 1.1  # a long tail

SOURCES = ("organic", "paid_search", "social", "referral", "email", "event", "partner")
SOURCE_BY_LEVEL = np.array([
    [35, 10, 35, 8, 7, 4, 1],    # student
    [30, 22, 16, 10, 12, 6, 4],  # specialist
    [27, 22, 12, 12, 12, 9, 6],  # manager
    [22, 18, 9, 17, 11, 13, 10], # director
    [20, 15, 8, 20, 10, 15, 12], # vp
    [20, 14, 8, 22, 9, 15, 12],  # c_level
    [28, 24, 14, 14, 8, 6, 6],   # owner
], dtype=float)  # fmt: skip

FREE_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com", "proton.me",
                "gmx.de", "web.de")  # fmt: skip
FREE_DOMAIN_WEIGHTS = np.array([52, 16, 9, 8, 6, 3, 3, 3], dtype=float)
DOMAIN_KINDS = ("corporate", "free")
FREE_BY_LEVEL = np.array([0.90, 0.30, 0.20, 0.14, 0.10, 0.12, 0.42])

FUNCTIONS = ("Marketing", "Sales", "Operations", "Finance", "Product", "Engineering", "IT", "HR")
TITLE_TEMPLATES = {
    "student": ("MSc student", "MBA student", "BSc student", "PhD candidate", "Student",
                "Marketing intern", "Working student"),
    "specialist": ("{f} Specialist", "{f} Analyst", "{f} Coordinator", "Senior {f} Specialist",
                   "Software Engineer", "Data Analyst", "Sales Representative"),
    "manager": ("{f} Manager", "Senior {f} Manager", "{f} Team Lead"),
    "director": ("Director of {f}", "{f} Director", "Head of {f}", "Senior Director, {f}"),
    "vp": ("VP {f}", "Vice President of {f}", "SVP {f}", "VP of {f}"),
    "c_level": ("CEO", "CFO", "CMO", "CTO", "COO", "CIO", "Chief Revenue Officer",
                "Chief Executive Officer", "Chief Marketing Officer"),
    "owner": ("Owner", "Founder", "CEO & Founder", "Co-founder", "Managing Partner",
              "Owner & Managing Director"),
}  # fmt: skip

# Missing-value rates of the exported profile (share of leads with the field empty).
MISSING = {"job_level": 0.05, "job_title": 0.03, "industry": 0.10, "company_size": 0.12,
           "country": 0.03, "source": 0.02}  # fmt: skip
BUDGET_STATED = np.array([0.04, 0.25, 0.35, 0.50, 0.55, 0.55, 0.45])
BUDGET_MEDIAN = np.array([3_000, 9_000, 22_000, 50_000, 100_000, 180_000, 20_000], dtype=float)


def title_vocabulary() -> dict[str, tuple[str, ...]]:
    """Every job title the simulator writes, per job level (templates expanded over functions)."""
    vocab = {}
    for level, templates in TITLE_TEMPLATES.items():
        titles = [t.format(f=f) for t in templates for f in (FUNCTIONS if "{f}" in t else ("",))]
        vocab[level] = tuple(dict.fromkeys(titles))
    return vocab


@lru_cache(maxsize=1)
def _titles() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vocab = title_vocabulary()
    flat = np.array([t for level in JOB_LEVELS for t in vocab[level]], dtype=object)
    sizes = np.array([len(vocab[level]) for level in JOB_LEVELS])
    return flat, np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes


@lru_cache(maxsize=1)
def company_pool() -> pd.DataFrame:
    """A fixed pool of fictitious companies: domain, size band, industry and country.

    Leads of one company share its domain, industry and size, as in a real CRM. The pool is the
    same for every seed (its own fixed generator), sorted by size band.
    """
    rng = np.random.default_rng(20250101)
    stems = (
        "acme",
        "north",
        "blue",
        "bright",
        "cedar",
        "delta",
        "ember",
        "falcon",
        "granite",
        "harbor",
        "iron",
        "juniper",
        "kite",
        "lumen",
        "maple",
        "nova",
        "orbit",
        "pine",
        "quartz",
        "river",
        "summit",
        "tidal",
        "umbra",
        "vertex",
        "willow",
        "zenith",
        "atlas",
        "beacon",
        "cobalt",
        "drift",
        "echo",
        "fjord",
        "globe",
        "helix",
        "indigo",
        "jade",
    )
    tails = (
        "labs",
        "soft",
        "works",
        "group",
        "systems",
        "data",
        "logic",
        "cloud",
        "tech",
        "ware",
        "media",
        "retail",
        "health",
        "finance",
        "energy",
        "logistics",
    )
    tlds = ("com", "io", "co", "net", "de", "co.uk", "fr", "nl", "ai", "eu")  # fmt: skip
    names = np.array([f"{s}{t}.{d}" for d in tlds for s in stems for t in tails], dtype=object)
    names = names[rng.permutation(len(names))]
    size = rng.choice(len(COMPANY_SIZES), len(names), p=[0.2, 0.25, 0.22, 0.17, 0.1, 0.06])
    order = np.argsort(size, kind="stable")
    return pd.DataFrame({
        "domain": names[order],
        "size": size[order],
        "industry": rng.choice(len(INDUSTRIES), len(names), p=_norm(INDUSTRY_WEIGHTS)),
        "country": rng.choice(len(COUNTRIES), len(names), p=_norm(COUNTRY_WEIGHTS)),
    })  # fmt: skip


@lru_cache(maxsize=4)
def _hourly_density(start: pd.Timestamp, end: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Hour starts (ns) of the period and the cumulative share of leads created by their end."""
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    weekday = np.where(hours.day_of_week >= 5, 0.3, 1.0)
    hour = hours.hour.to_numpy()
    daytime = 0.15 + np.exp(-0.5 * ((hour - 13.0) / 3.5) ** 2)
    month = hours.month.to_numpy()
    season = np.where(month == 8, 0.75, 1.0) * np.where((month == 12) & (hours.day > 20), 0.5, 1.0)
    trend = 1.0 + 0.6 * np.linspace(0.0, 1.0, len(hours))
    cdf = np.cumsum(weekday * daytime * season * trend)
    return hours.asi8.copy(), cdf / cdf[-1]


def creation_times(
    first: int, size: int, n_total: int, start: pd.Timestamp, end: pd.Timestamp,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """``created_at`` (int64 ns since the epoch, whole seconds) of leads ``first .. first+size-1``.

    Leads are stratified over the whole period by their global index, so ids grow with creation
    time as in a CRM; the density has business hours, fewer leads on weekends, a summer and year-end
    dip, and a growing trend.
    """
    hours, cdf = _hourly_density(start, end)
    quantile = (first + np.arange(size) + rng.random(size)) / n_total
    bin_ = np.minimum(np.searchsorted(cdf, quantile, side="right"), len(hours) - 1)
    lower = np.where(bin_ > 0, cdf[np.maximum(bin_ - 1, 0)], 0.0)
    within = np.clip((quantile - lower) / (cdf[bin_] - lower), 0.0, 1.0 - 1e-9)
    return hours[bin_] + np.floor(within * 3600).astype(np.int64) * 1_000_000_000


@dataclass
class Profiles:
    """Profile codes of one chunk; ``level`` is the true job level, ``job_level`` the exported one."""

    level: np.ndarray
    job_level: np.ndarray
    job_title: np.ndarray
    industry: np.ndarray
    company_size: np.ndarray
    country: np.ndarray
    source: np.ndarray
    email_domain: np.ndarray
    free_email: np.ndarray
    budget: np.ndarray

    def __len__(self) -> int:
        return len(self.level)


def _pick(rng: np.random.Generator, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Draw one category per row from ``weights[rows]`` (a row-stochastic table), vectorised."""
    cum = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    return (rng.random(len(rows))[:, None] > cum[rows]).sum(axis=1).clip(0, weights.shape[1] - 1)


def _norm(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def _hide(rng: np.random.Generator, codes: np.ndarray, rate: float | np.ndarray) -> np.ndarray:
    return np.where(rng.random(len(codes)) < rate, -1, codes)


def make_profiles(size: int, rng: np.random.Generator) -> Profiles:
    """Draw the profiles of ``size`` leads: level, title, company (domain, size, industry), ..."""
    level = rng.choice(len(JOB_LEVELS), size, p=_norm(LEVEL_WEIGHTS))
    flat, offset, count = _titles()
    title = flat[offset[level] + np.floor(rng.random(size) * count[level]).astype(int)]
    messy = rng.random(size) < 0.05  # free text: some people type their title in lower case
    title[messy] = np.char.lower(title[messy].astype(str)).astype(object)

    pool = company_pool()
    band = _pick(rng, level, SIZE_BY_LEVEL)
    band_start = np.searchsorted(pool["size"].to_numpy(), np.arange(len(COMPANY_SIZES)))
    band_count = np.diff(np.append(band_start, len(pool)))
    company = band_start[band] + np.floor(rng.random(size) ** 2.5 * band_count[band]).astype(int)
    free = rng.random(size) < FREE_BY_LEVEL[level]
    free_domain = rng.choice(len(FREE_DOMAINS), size, p=_norm(FREE_DOMAIN_WEIGHTS))
    domain = np.where(free, np.array(FREE_DOMAINS, dtype=object)[free_domain],
                      pool["domain"].to_numpy()[company])  # fmt: skip

    student = level == STUDENT
    industry = np.where(student & (rng.random(size) < 0.5), EDUCATION,
                        pool["industry"].to_numpy()[company])  # fmt: skip
    country = np.where(free & (rng.random(size) < 0.7),
                       rng.choice(len(COUNTRIES), size, p=_norm(COUNTRY_WEIGHTS)),
                       pool["country"].to_numpy()[company])  # fmt: skip
    stated = rng.random(size) < BUDGET_STATED[level]
    budget = np.round(BUDGET_MEDIAN[band] * np.exp(0.8 * rng.standard_normal(size)), -2)
    return Profiles(
        level=level,
        job_level=_hide(rng, level, MISSING["job_level"]),
        # numpy's stubs do not take None as an array-like (at run time: an object scalar)
        job_title=np.where(rng.random(size) < MISSING["job_title"], None, title),  # type: ignore[arg-type]
        industry=_hide(rng, industry, MISSING["industry"] + 0.15 * free + 0.4 * student),
        company_size=_hide(rng, band, MISSING["company_size"] + 0.2 * free + 0.6 * student),
        country=_hide(rng, country, MISSING["country"]),
        source=_hide(rng, _pick(rng, level, SOURCE_BY_LEVEL), MISSING["source"]),
        email_domain=domain,
        free_email=free,
        budget=np.where(stated, np.maximum(budget, 500.0), np.nan),
    )
