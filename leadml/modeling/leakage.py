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

``train`` stops and names the features unless the config excludes them (``profile.exclude``) or
allows them (``leakage.allow``).
"""

from __future__ import annotations

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


def certain_share(codes: np.ndarray, y: np.ndarray) -> float:
    """Share of rows in sizeable levels whose odds differ from the overall odds by ODDS_FACTOR or more."""
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
    certain = sizeable & (np.abs(log_ratio) >= np.log(ODDS_FACTOR))
    return float(size[certain].sum() / n)


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


def find_leakage(
    features: pd.DataFrame,
    labels: pd.Series | np.ndarray,
    *,
    max_auc: float = 0.95,
    max_certain_share: float = 0.12,
    seed: int = 0,
) -> list[LeakageFinding]:
    """The suspected features among ``features`` (training rows only), strongest first."""
    y = np.asarray(labels, dtype=float)
    findings: list[LeakageFinding] = []
    if len(np.unique(y)) < 2:
        return findings
    for column in features.columns:
        values = features[column]
        codes = _codes(values)
        auc = single_feature_auc(values, codes, y, seed)
        share = certain_share(codes, y)
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
    return sorted(findings, key=lambda f: -f.certain_share - f.auc)


def check_leakage(trainset, config) -> list[LeakageFinding]:
    """Raise :class:`LeakageError` naming suspected features not allowed by ``config.leakage.allow``.

    Returns the allowed findings (for logging) when nothing blocks training.
    """
    rows = trainset.part("train", "validation")
    sources = {info.name: info.source for info in trainset.feature_info}
    findings = find_leakage(
        rows[trainset.feature_names],
        rows["converted"],
        max_auc=config.leakage.max_auc,
        max_certain_share=config.leakage.max_certain_share,
        seed=config.models.seed,
    )
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
