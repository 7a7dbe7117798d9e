"""The leakage guard: before training, flag features that look like they know the outcome.

A column filled in by sales after the deal (a status tag, a quality grade, a call's duration) makes
metrics look wonderful and the model useless. Three signs, each measured on the training rows only:

- **single-feature ROC-AUC** at or above ``leakage.max_auc`` (default 0.95): the feature alone
  nearly decides the label. Categories are target-encoded out of fold (5 folds), so a feature with
  hundreds of levels does not look good by memorising them.
- **near-certain share** at or above ``leakage.max_certain_share`` (default 0.12): the share of
  rows in levels (or, for numbers, in 20 quantile bins) of at least 1 % of the rows whose odds of
  converting (shrunk toward the overall rate by a prior worth two leads of the rarer class, so a
  small level without conversions is not certain by chance) are 20 times above or below the
  overall odds. "Closed by Horizzon" (99 % won), a
  quality grade "Worst" (2 %) and the shortest calls (0 %) are such levels.
- **missingness decides**: never missing for positives and always missing for negatives (or the
  reverse): a field only filled in once a lead converted.

A sign accuses only with enough support (``leakage.min_class_support``, default 30): the training
rows must hold that many positives and that many negatives (on fewer, a column that happens to
separate 3 conversions from the rest looks like a leak), and the near-certain levels count only
when those pointing to conversion hold that many positives, those pointing away that many
negatives. A column that crosses a limit without the support is not accused;
:func:`check_leakage` logs how many columns it could not judge, and why.

``train`` stops and names the features unless the config excludes them (``profile.exclude``) or
allows them (``leakage.allow``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadml.core.errors import LeadmlError

MIN_LEVEL_SHARE = 0.01
ODDS_FACTOR = 20.0
N_BINS = 20
N_FOLDS = 5
PRIOR_LEADS = 10.0
SHOWN_NAMES = 10

log = logging.getLogger("leadml.modeling.leakage")


class LeakageError(LeadmlError):
    """Training stopped: features look like they were recorded after the outcome."""


@dataclass(frozen=True)
class LeakageFinding:
    """Why one feature is suspected."""

    feature: str
    auc: float
    certain_share: float
    missing_decides: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class LeakageReport:
    """What the guard found, and which columns it could not judge for lack of support."""

    findings: list[LeakageFinding]
    unjudged: tuple[str, ...]
    positives: int
    negatives: int
    min_class_support: int

    @property
    def enough_rows(self) -> bool:
        """Whether the rows hold ``min_class_support`` leads of each class (else no column is judged)."""
        return min(self.positives, self.negatives) >= self.min_class_support

    @property
    def note(self) -> str:
        """One line for the log: how many columns went unjudged and why ("" when all were judged)."""
        if not self.unjudged:
            return ""
        n = len(self.unjudged)
        names = ", ".join(self.unjudged[:SHOWN_NAMES]) + (", ..." if n > SHOWN_NAMES else "")
        if self.enough_rows:
            why = f"the rows that decide them hold fewer than {self.min_class_support} leads of a class"
        else:
            why = (
                f"the training rows hold {self.positives} positives and {self.negatives} negatives; "
                f"judging needs leakage.min_class_support ({self.min_class_support}) of each"
            )
        return f"leakage guard: could not judge {n} column{'s' if n != 1 else ''} for lack of support ({why}): {names}"


def _codes(values: pd.Series) -> np.ndarray:
    """Integer level codes: categories as they are, many-valued numbers as quantile bins, NaN its own level."""
    if pd.api.types.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
        numbers = values.to_numpy(dtype=float)
        finite = np.isfinite(numbers)
        if len(np.unique(numbers[finite])) > N_BINS:
            ranks = pd.Series(numbers).rank(method="first").to_numpy()
            bins = np.floor((ranks - 1) / max(finite.sum(), 1) * N_BINS)
            codes = np.where(finite, bins, -1)
        else:
            codes = np.where(finite, numbers, np.nan)
        return pd.factorize(pd.Series(codes), use_na_sentinel=False)[0]
    text = values.astype(object).where(values.notna(), "\x00missing")
    return pd.factorize(text.astype(str))[0]


def _certain_sides(codes: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per level: its size, its positives, and whether it is near-certain toward conversion (high)
    or away from it (low): sizeable, with shrunk odds ODDS_FACTOR above or below the overall odds."""
    n = len(y)
    size = np.bincount(codes)
    positives = np.bincount(codes, weights=y, minlength=len(size))
    base = y.mean()
    # shrink each level toward the base rate by a prior worth 2 leads of the rarer class (at least
    # 10 leads), so that a small level with no conversions is not "certain" by chance
    prior = max(PRIOR_LEADS, 2.0 / min(base, 1 - base))
    rate = (positives + prior * base) / (size + prior)
    log_ratio = np.log(rate / (1 - rate)) - np.log(base / (1 - base))
    sizeable = size >= MIN_LEVEL_SHARE * n
    high = sizeable & (log_ratio >= np.log(ODDS_FACTOR))
    low = sizeable & (log_ratio <= -np.log(ODDS_FACTOR))
    return size, positives, high, low


def certain_share(codes: np.ndarray, y: np.ndarray, min_class_support: int = 1) -> float:
    """Share of rows in sizeable levels whose odds differ from the overall odds by ODDS_FACTOR or more.

    The levels pointing to conversion count only when they hold ``min_class_support`` positives
    together, those pointing away only when they hold that many negatives: a share resting on a
    handful of leads decides nothing.
    """
    size, positives, high, low = _certain_sides(codes, y)
    supported = np.zeros_like(high)
    if positives[high].sum() >= min_class_support:
        supported |= high
    if (size - positives)[low].sum() >= min_class_support:
        supported |= low
    return float(size[supported].sum() / len(y))


def single_feature_auc(values: pd.Series, codes: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """ROC-AUC of one feature alone (either direction); categories target-encoded out of fold."""
    if pd.api.types.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
        numbers = values.to_numpy(dtype=float)
        filled = np.where(np.isfinite(numbers), numbers, np.nanmin(numbers) - 1 if np.isfinite(numbers).any() else 0)
        auc = roc_auc_score(y, filled)
        return float(max(auc, 1 - auc))
    folds = np.random.default_rng(seed).integers(0, N_FOLDS, len(y))
    encoded = np.empty(len(y))
    n_levels = codes.max() + 1
    prior, strength = y.mean(), 10.0
    for fold in range(N_FOLDS):
        held = folds == fold
        size = np.bincount(codes[~held], minlength=n_levels)
        positives = np.bincount(codes[~held], weights=y[~held], minlength=n_levels)
        encoded[held] = ((positives + strength * prior) / (size + strength))[codes[held]]
    auc = roc_auc_score(y, encoded)
    return float(max(auc, 1 - auc))


def missing_decides(values: pd.Series, y: np.ndarray) -> bool:
    """True when missingness alone separates the classes (and both classes occur)."""
    missing = values.isna().to_numpy()
    positive = y == 1
    if missing.all() or not missing.any() or positive.all() or not positive.any():
        return False
    return bool((~missing[positive]).all() and missing[~positive].all()) or bool(
        missing[positive].all() and (~missing[~positive]).all()
    )


def judge_leakage(
    features: pd.DataFrame,
    labels: pd.Series | np.ndarray,
    *,
    max_auc: float = 0.95,
    max_certain_share: float = 0.12,
    min_class_support: int = 30,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> LeakageReport:
    """The suspected features among ``features`` (training rows only), strongest first, and the
    columns that crossed a limit without the support to be accused.

    ``rows`` (a boolean mask over ``features``) judges only those rows, one column taken at a time:
    the same report as ``features[rows]`` without a copy of every column at once. When the rows
    hold fewer than ``min_class_support`` positives or negatives, no column is judged.
    """
    y = np.asarray(labels, dtype=float)
    positives = int((y == 1).sum())
    negatives = len(y) - positives
    if min(positives, negatives) < max(min_class_support, 1):
        return LeakageReport([], tuple(map(str, features.columns)), positives, negatives, min_class_support)
    findings: list[LeakageFinding] = []
    unjudged: list[str] = []
    for column in features.columns:
        values = features[column] if rows is None else features[column][rows]
        codes = _codes(values)
        auc = single_feature_auc(values, codes, y, seed)
        share = certain_share(codes, y, min_class_support)
        decides = missing_decides(values, y)
        reasons = []
        if auc >= max_auc:
            reasons.append(f"ROC-AUC {auc:.3f} on its own (limit {max_auc})")
        if share >= max_certain_share:
            reasons.append(
                f"{share:.0%} of rows in levels that nearly decide the label (limit {max_certain_share:.0%})"
            )
        if decides:
            reasons.append("missing exactly when the lead did not convert (or the reverse)")
        if reasons:
            findings.append(LeakageFinding(column, auc, share, decides, tuple(reasons)))
        elif certain_share(codes, y) >= max_certain_share:
            unjudged.append(str(column))
    findings.sort(key=lambda f: -f.certain_share - f.auc)
    return LeakageReport(findings, tuple(unjudged), positives, negatives, min_class_support)


def find_leakage(
    features: pd.DataFrame,
    labels: pd.Series | np.ndarray,
    *,
    max_auc: float = 0.95,
    max_certain_share: float = 0.12,
    min_class_support: int = 30,
    seed: int = 0,
) -> list[LeakageFinding]:
    """The suspected features among ``features`` (training rows only), strongest first.

    A column is accused only with ``min_class_support`` leads of each class behind the sign; see
    :func:`judge_leakage` for the columns left unjudged.
    """
    return judge_leakage(
        features,
        labels,
        max_auc=max_auc,
        max_certain_share=max_certain_share,
        min_class_support=min_class_support,
        seed=seed,
    ).findings


POINT_IN_TIME_SOURCES = ("created_at",)  # features made from these are known at as_of by construction


def check_leakage(trainset, config) -> list[LeakageFinding]:
    """Raise :class:`LeakageError` naming suspected features not allowed by ``config.leakage.allow``.

    Returns the allowed findings (for logging) when nothing blocks training. Columns it could not
    judge for lack of support (``config.leakage.min_class_support``) are not accused; a warning
    says how many. The lead's age at the snapshot (from ``created_at`` and ``as_of``, both known
    at as_of) is not judged: it cannot leak, and with snapshots over the whole life of a lead the
    oldest ages rightly say "this lead will not convert now".
    """
    frame = getattr(trainset, "frame", None)  # the rows are judged in place, a column at a time
    rows = None if frame is None else frame["split"].isin(["train", "validation"]).to_numpy()
    if frame is None:  # a training set that only gives its parts
        frame = trainset.part("train", "validation")
    sources = {info.name: info.source for info in trainset.feature_info}
    judged = [name for name in trainset.feature_names if sources.get(name) not in POINT_IN_TIME_SOURCES]
    labels = frame["converted"].to_numpy()
    report = judge_leakage(
        frame[judged],
        labels if rows is None else labels[rows],
        rows=rows,
        max_auc=config.leakage.max_auc,
        max_certain_share=config.leakage.max_certain_share,
        min_class_support=config.leakage.min_class_support,
        seed=config.models.seed,
    )
    if report.unjudged:
        log.warning("%s: %s", config.name, report.note)
    findings = report.findings
    allowed = set(config.leakage.allow)
    blocking = [f for f in findings if f.feature not in allowed and sources.get(f.feature) not in allowed]
    if blocking:
        details = "; ".join(f"{f.feature!r}: {', '.join(f.reasons)}" for f in blocking)
        names = ", ".join(sorted({sources.get(f.feature, f.feature) for f in blocking}))
        raise LeakageError(
            f"{config.name}: suspected leakage, training stopped: {details}. If these columns are known "
            f"before the outcome, allow them (leakage.allow: [{names}]); otherwise exclude them "
            f"(profile.exclude: [{names}])"
        )
    return findings
