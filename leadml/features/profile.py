"""Explicit (profile) features: cleaned categoricals, numerics with missing flags, derived fields.

Profile fields come from forms and enrichment, so they are messy: "Select" for a skipped drop-down,
stray spaces and case, hundreds of rare levels. :class:`ProfileEncoder` learns the levels on the
training snapshots (scikit-learn contract) and maps anything unseen to ``other``, so the same
columns and categories come out at training and at scoring time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from leadml.features.metadata import FeatureGroup, FeatureInfo

MISSING = "missing"
OTHER = "other"
DEFAULT_MISSING_TOKENS = ("", "select", "unknown", "n/a", "na", "none", "null", "-", "?", "nan")

FREE_EMAIL_DOMAINS = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "msn.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "proton.me",
        "protonmail.com",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
        "zoho.com",
    ]
)

# Ordered: the first pattern that matches a title gives the level (owners before "manager" etc.).
JOB_LEVEL_PATTERNS: tuple[tuple[str, str], ...] = (
    ("student", r"\b(?:student|intern|phd candidate|undergrad\w*|msc|bsc|trainee)\b"),
    ("owner", r"\b(?:owner|founder|co-founder|cofounder|proprietor)\b"),
    ("c_level", r"\b(?:ceo|cto|cfo|coo|cmo|cio|cro|chief|president)\b"),
    ("vp", r"\b(?:vp|vice president|svp|evp)\b"),
    ("director", r"\b(?:director|head of|head)\b"),
    ("manager", r"\b(?:manager|lead|supervisor|team lead)\b"),
    (
        "specialist",
        r"\b(?:specialist|analyst|engineer|developer|associate|coordinator|consultant|executive|assistant|designer|representative)\b",
    ),
)


def derive_job_level(titles: pd.Series) -> pd.Series:
    """Map free-text job titles to a job level (student ... owner); unknown titles become NaN.

    Example:
        >>> derive_job_level(pd.Series(["VP Sales", "MSc student", "Head of Marketing", "?"])).tolist()
        ['vp', 'student', 'director', nan]
    """
    text = titles.astype(object).where(titles.notna(), "").astype(str).str.lower()
    level = pd.Series(np.nan, index=titles.index, dtype=object)
    for name, pattern in reversed(JOB_LEVEL_PATTERNS):
        level[text.str.contains(pattern, regex=True)] = name
    return level


def derive_email_kind(emails_or_domains: pd.Series) -> pd.Series:
    """``free`` for webmail domains, ``corporate`` otherwise, NaN when there is no domain.

    Example:
        >>> derive_email_kind(pd.Series(["ann@gmail.com", "acme.io", None])).tolist()
        ['free', 'corporate', nan]
    """
    text = emails_or_domains.astype(object).where(emails_or_domains.notna(), "").astype(str)
    domain = text.str.strip().str.lower().str.rsplit("@", n=1).str[-1]
    kind = pd.Series(np.where(domain.isin(FREE_EMAIL_DOMAINS), "free", "corporate"), index=text.index, dtype=object)
    kind[domain.str.len().fillna(0).to_numpy() == 0] = np.nan
    return kind


_WHITESPACE = re.compile(r"\s+")


def clean_categorical(values: pd.Series, missing_tokens: Sequence[str] = DEFAULT_MISSING_TOKENS) -> pd.Series:
    """Trim, lower-case and fold placeholders (``Select``, empty, ``unknown``) into the ``missing`` level.

    Each distinct spelling is cleaned once (a column of a million rows has a few hundred), then
    mapped back by its code: the same text as cleaning every row, at a fraction of the cost.
    """
    present = values.notna().to_numpy()
    out = np.full(len(values), MISSING, dtype=object)
    if present.any():
        kept = values.to_numpy(dtype=object)[present]
        codes, spellings = pd.factorize(kept)
        if not all(isinstance(spelling, str) for spelling in spellings):
            # 1, 1.0 and True are one key to a hash table: tell them apart by their text
            codes, spellings = pd.factorize(pd.Series(kept, dtype=object).astype(str).to_numpy(dtype=object))
        tokens = {t.lower() for t in missing_tokens}
        tidy = [_WHITESPACE.sub(" ", str(spelling)).strip().lower() for spelling in spellings]
        out[present] = np.array([MISSING if text in tokens else text for text in tidy], dtype=object)[codes]
    return pd.Series(out, index=values.index, dtype=object)


def add_derived_fields(
    leads: pd.DataFrame, job_title_column: str | None = "job_title", email_column: str | None = "email_domain"
) -> pd.DataFrame:
    """Add ``job_level`` from the title where it is missing, and ``email_domain_kind`` from an e-mail/domain."""
    leads = leads.copy()
    if job_title_column and job_title_column in leads.columns:
        derived = derive_job_level(leads[job_title_column])
        if "job_level" in leads.columns:
            leads["job_level"] = leads["job_level"].astype(object).where(leads["job_level"].notna(), derived)
        else:
            leads["job_level"] = derived
    if email_column and email_column in leads.columns:
        derived = derive_email_kind(leads[email_column])
        if "email_domain_kind" in leads.columns:
            have = leads["email_domain_kind"]
            leads["email_domain_kind"] = have.astype(object).where(have.notna(), derived)
        else:
            leads["email_domain_kind"] = derived
    return leads


class ProfileEncoder(TransformerMixin, BaseEstimator):
    """Learns the profile levels on training rows and encodes any frame to the same columns.

    Categorical columns come out as pandas ``Categorical`` with fixed categories (the kept levels,
    ``other`` and ``missing``); numeric columns as float64, with a ``<col>__missing`` indicator when
    values were missing in training. Levels rarer than ``min_frequency`` (or beyond ``max_levels``)
    are grouped into ``other``, which keeps a 500-level id column from overfitting.
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        *,
        min_frequency: float = 0.005,
        max_levels: int = 50,
        missing_tokens: Sequence[str] = DEFAULT_MISSING_TOKENS,
        behaviour_columns: Sequence[str] = (),
    ):
        self.columns = columns
        self.min_frequency = min_frequency
        self.max_levels = max_levels
        self.missing_tokens = missing_tokens
        self.behaviour_columns = behaviour_columns

    def fit(self, X: pd.DataFrame, y=None) -> ProfileEncoder:
        columns = list(self.columns) if self.columns is not None else list(X.columns)
        self.categorical_: dict[str, list[str]] = {}
        self.numeric_: list[str] = []
        self.missing_flags_: list[str] = []
        for column in columns:
            values = X[column]
            if _is_numeric(values):
                self.numeric_.append(column)
                if pd.to_numeric(values, errors="coerce").isna().any():
                    self.missing_flags_.append(column)
            else:
                cleaned = clean_categorical(values, self.missing_tokens)
                # a level literally named "other" joins the grouped rare levels
                shares = cleaned[~cleaned.isin([MISSING, OTHER])].value_counts() / max(len(cleaned), 1)
                kept = shares[shares >= self.min_frequency].sort_values(ascending=False, kind="stable")
                levels = sorted(kept.index[: self.max_levels].tolist())
                self.categorical_[column] = levels
        self.feature_names_out_ = self._output_names(columns)
        self.columns_ = columns
        return self

    def _output_names(self, columns: Sequence[str]) -> list[str]:
        names = []
        for column in columns:
            names.append(column)
            if column in getattr(self, "missing_flags_", []):
                names.append(f"{column}__missing")
        return names

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "columns_")
        out = {}
        for column in self.columns_:
            if column not in X.columns:
                out[column] = pd.Series(np.nan, index=X.index)
                values = out[column]
            else:
                values = X[column]
            if column in self.categorical_:
                levels = self.categorical_[column]
                cleaned = clean_categorical(values, self.missing_tokens)
                known = cleaned.isin(levels) | (cleaned == MISSING)
                cleaned[~known] = OTHER
                out[column] = pd.Categorical(cleaned, categories=levels + [OTHER, MISSING])
            else:
                numbers = pd.to_numeric(values, errors="coerce").astype("float64")
                out[column] = numbers
                if column in self.missing_flags_:
                    out[f"{column}__missing"] = numbers.isna().astype("float64")
        return pd.DataFrame(out, index=X.index)[self.feature_names_out_]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "columns_")
        return np.asarray(self.feature_names_out_, dtype=object)

    def feature_info(self) -> list[FeatureInfo]:
        """Metadata of every output column (group profile, or behaviour for flat behaviour columns)."""
        check_is_fitted(self, "columns_")
        infos = []
        for name in self.feature_names_out_:
            source = name.removesuffix("__missing")
            group: FeatureGroup = "behaviour" if source in self.behaviour_columns else "profile"
            label = _label(source)
            if name.endswith("__missing"):
                infos.append(FeatureInfo(name, group, source, "numeric", template=f"{label} not given"))
            elif name in self.categorical_:
                infos.append(FeatureInfo(name, group, source, "categorical", template=f"{label}: {{value}}"))
            else:
                infos.append(FeatureInfo(name, group, source, "numeric", template=f"{label}: {{value}}"))
        return infos


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _label(column: str) -> str:
    """A column name as words: ``job_level`` -> ``Job level``."""
    words = re.sub(r"[_\.]+", " ", column).strip()
    return words[:1].upper() + words[1:]
