"""Profile features: cleaning, rare levels, missing flags, derived fields, the fitted contract."""

import numpy as np
import pandas as pd
from sklearn.base import clone

from leadml.features.profile import (
    ProfileEncoder,
    add_derived_fields,
    clean_categorical,
    derive_email_kind,
    derive_job_level,
)


def test_clean_categorical_trims_cases_and_folds_placeholders():
    values = pd.Series(["  Google ", "google", "Select", "", None, "Direct  Traffic", "UNKNOWN"])
    assert clean_categorical(values).tolist() == [
        "google",
        "google",
        "missing",
        "missing",
        "missing",
        "direct traffic",
        "missing",
    ]


def test_encoder_groups_rare_levels_and_maps_unseen_to_other():
    train = pd.DataFrame({"source": ["a"] * 50 + ["b"] * 45 + ["rare"] * 2 + ["Select"] * 3})
    encoder = ProfileEncoder(["source"], min_frequency=0.05).fit(train)
    assert encoder.categorical_ == {"source": ["a", "b"]}
    out = encoder.transform(pd.DataFrame({"source": ["A ", "rare", "never seen", None, "b"]}))
    assert out["source"].tolist() == ["a", "other", "other", "missing", "b"]
    assert list(out["source"].cat.categories) == ["a", "b", "other", "missing"]


def test_encoder_caps_levels_at_max_levels():
    train = pd.DataFrame({"page": [f"p{i:03d}" for i in range(500)] * 2 + ["top"] * 100})
    encoder = ProfileEncoder(["page"], min_frequency=0.0, max_levels=10).fit(train)
    assert len(encoder.categorical_["page"]) == 10
    assert "top" in encoder.categorical_["page"]


def test_numeric_columns_get_missing_flags_only_when_missing_in_training():
    train = pd.DataFrame({"budget": [10.0, np.nan, 30.0], "employees": [1, 2, 3]})
    encoder = ProfileEncoder().fit(train)
    assert encoder.feature_names_out_ == ["budget", "budget__missing", "employees"]
    out = encoder.transform(pd.DataFrame({"budget": [np.nan, 5.0], "employees": [np.nan, "7"]}))
    assert out["budget__missing"].tolist() == [1.0, 0.0]
    assert out["employees"].isna().tolist() == [True, False]
    assert out["employees"].iloc[1] == 7.0


def test_encoder_follows_sklearn_contract_and_reports_metadata():
    encoder = ProfileEncoder(["job_level"], min_frequency=0.1)
    assert clone(encoder).get_params()["min_frequency"] == 0.1
    encoder.fit(pd.DataFrame({"job_level": ["vp", "student", "vp"]}))
    info = {i.name: i for i in encoder.feature_info()}
    assert info["job_level"].group == "profile" and info["job_level"].kind == "categorical"
    assert info["job_level"].sentence("student") == "Job level: student"


def test_missing_column_at_scoring_time_becomes_missing_level():
    encoder = ProfileEncoder(["industry"]).fit(pd.DataFrame({"industry": ["retail", "saas"]}))
    out = encoder.transform(pd.DataFrame({"other": [1, 2]}))
    assert out["industry"].tolist() == ["missing", "missing"]


def test_derived_job_level_and_email_kind():
    assert derive_job_level(
        pd.Series(["Chief Executive Officer", "Co-Founder", "Data Analyst", "Team Lead Sales", "PhD candidate", None])
    ).tolist() == [
        "c_level",
        "owner",
        "specialist",
        "manager",
        "student",
        np.nan,
    ]
    assert derive_email_kind(pd.Series(["x@Outlook.com", "bob@acme-corp.com", ""])).tolist() == [
        "free",
        "corporate",
        np.nan,
    ]
    leads = pd.DataFrame(
        {"job_title": ["VP Sales", "Intern"], "job_level": [None, "manager"], "email_domain": ["gmail.com", "acme.io"]}
    )
    enriched = add_derived_fields(leads)
    assert enriched["job_level"].tolist() == ["vp", "manager"]  # a given level wins over the title
    assert enriched["email_domain_kind"].tolist() == ["free", "corporate"]
