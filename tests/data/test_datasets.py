"""Public data sets: exact counts on the real files (when present), leaky columns, folder errors."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from leadml.core.errors import LeadDataError
from leadml.data.datasets import (
    DATASETS_ENV,
    PublicDataset,
    default_datasets_dir,
    feature_columns,
    get_public,
    list_public,
    load_public,
)

X_LEAKY = (
    "Tags",
    "Lead Quality",
    "Lead Profile",
    "Asymmetrique Activity Index",
    "Asymmetrique Profile Index",
    "Asymmetrique Activity Score",
    "Asymmetrique Profile Score",
)

# name: (rows, positives, columns of the flat frame)
EXPECTED = {
    "x_education": (9_240, 3_561, 37),
    "bank_marketing": (41_188, 4_640, 22),
    "bank_marketing_full": (45_211, 5_289, 18),
}


@pytest.fixture(scope="module")
def real_dir():
    folder = default_datasets_dir()
    if not folder.is_dir():
        pytest.skip(f"shared datasets folder absent: {folder} (set {DATASETS_ENV} to run the real-data tests)")
    return folder


@pytest.fixture(scope="module")
def load(real_dir):
    """Load a public data set once for the module."""
    cache: dict[str, tuple[pd.DataFrame, PublicDataset]] = {}

    def _load(name: str) -> tuple[pd.DataFrame, PublicDataset]:
        if not (real_dir / get_public(name).path).is_file():
            pytest.skip(f"shared datasets folder absent: {real_dir / get_public(name).path} is missing")
        if name not in cache:
            cache[name] = load_public(name, real_dir)
        return cache[name]

    return _load


@pytest.fixture(params=sorted(EXPECTED))
def real(request, load):
    return load(request.param)


# ---------------------------------------------------------------- the real files


@pytest.mark.realdata
def test_exact_rows_positives_and_columns(real):
    frame, dataset = real
    rows, positives, n_columns = EXPECTED[dataset.name]
    assert len(frame) == rows
    assert int(frame["converted"].sum()) == positives
    assert frame.shape[1] == n_columns
    assert frame["converted"].dtype == np.int8 and set(frame["converted"].unique()) == {0, 1}


@pytest.mark.realdata
def test_flat_contract_shape(real):
    frame, dataset = real
    assert frame.columns[0] == "lead_id" and frame.columns[-1] == "converted"
    assert frame["lead_id"].is_unique and frame["lead_id"].notna().all()
    assert pd.api.types.is_string_dtype(frame["lead_id"])
    assert dataset.label not in frame.columns  # the raw label cannot reach the features


@pytest.mark.realdata
def test_leaky_columns_kept_in_frame_and_excluded_from_features(real):
    frame, dataset = real
    assert set(dataset.leaky) <= set(frame.columns)
    assert set(dataset.borderline) <= set(frame.columns)
    with_borderline = feature_columns(frame, dataset)
    without = feature_columns(frame, dataset, include_borderline=False)
    for excluded in (*dataset.leaky, *dataset.id_columns, "lead_id", "converted"):
        assert excluded not in with_borderline
    assert set(dataset.borderline) <= set(with_borderline)
    assert set(without) == set(with_borderline) - set(dataset.borderline)
    assert set(with_borderline) | set(dataset.leaky) | {"lead_id", "converted"} >= set(frame.columns) - set(
        dataset.id_columns
    )


@pytest.mark.realdata
def test_x_education_specifics(load):
    frame, dataset = load("x_education")
    assert dataset.leaky == X_LEAKY
    assert dataset.borderline == ("Last Activity", "Last Notable Activity")
    assert dataset.id_columns[0] == "Prospect ID" and "Lead Number" in dataset.id_columns
    assert "Lead Number" in frame.columns and "Prospect ID" not in frame.columns
    assert frame["lead_id"].str.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").all()
    assert (frame["Specialization"] == "Select").sum() > 0  # 'Select' is left for feature cleaning
    assert len(feature_columns(frame, dataset)) == 27
    assert not any(column.endswith("\r") for column in frame.columns)  # CRLF handled


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["bank_marketing", "bank_marketing_full"])
def test_bank_specifics(load, name):
    frame, dataset = load(name)
    assert dataset.leaky == ("duration",) and dataset.id_columns == ()
    width = len(str(len(frame)))
    assert frame["lead_id"].iloc[0] == "1".zfill(width)
    assert frame["lead_id"].iloc[-1] == str(len(frame))
    assert frame["lead_id"].is_monotonic_increasing  # text order is row (time) order
    assert (frame["job"] == "unknown").sum() > 0  # 'unknown' is left for feature cleaning
    assert "duration" not in feature_columns(frame, dataset)


# ---------------------------------------------------------------- without the real files


def test_registry():
    names = [dataset.name for dataset in list_public()]
    assert names == ["bank_marketing", "bank_marketing_full", "x_education"]
    assert get_public("bank_marketing").path == "bank_marketing/bank-additional-full.csv"
    assert get_public("bank_marketing_full").path == "bank_marketing/bank-full.csv"
    assert get_public("x_education").leaky == X_LEAKY
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_public("x_education").label = "Tags"
    with pytest.raises(LeadDataError, match="unknown public data set 'iris'; known: bank_marketing, "):
        get_public("iris")


def test_missing_folder_error(tmp_path):
    absent = tmp_path / "nowhere"
    with pytest.raises(
        LeadDataError,
        match=re.escape(f"{absent}: public data sets folder not found; set LEADML_DATASETS or pass datasets_dir"),
    ):
        load_public("x_education", absent)


def test_missing_file_error(tmp_path):
    with pytest.raises(
        LeadDataError,
        match=re.escape("Leads.csv: file of public data set 'x_education' not found; set LEADML_DATASETS"),
    ):
        load_public("x_education", tmp_path)


def test_env_var_sets_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path))
    assert default_datasets_dir() == tmp_path.resolve()
    monkeypatch.delenv(DATASETS_ENV)
    assert default_datasets_dir().parts[-2:] == ("shared", "datasets")


def test_loader_on_a_small_crlf_copy(monkeypatch, tmp_path):
    """The X Education mapping on four hand-made rows in the real file's layout (CRLF, quirks)."""
    dataset = get_public("x_education")
    header = ["Prospect ID", "Lead Number", "Converted", "TotalVisits", "Specialization", *X_LEAKY, *dataset.borderline]
    rows = [
        ["a-1", "660737", "0", "0", "Select", *["x"] * 7, "Email Opened", "Modified"],
        ["a-2", "660728", "1", "5", "Finance Management", *["x"] * 7, "SMS Sent", "SMS Sent"],
        ["a-3", "660727", "1", "", "Select", *[""] * 7, "Email Opened", "Modified"],
        ["a-4", "660719", "0", "2", "", *["x"] * 7, "Page Visited", "Modified"],
    ]
    folder = tmp_path / "x_education_leads"
    folder.mkdir()
    (folder / "Leads.csv").write_bytes("\r\n".join(",".join(row) for row in [header, *rows]).encode() + b"\r\n")
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path))
    frame, loaded = load_public("x_education")
    assert loaded is dataset
    assert frame["lead_id"].tolist() == ["a-1", "a-2", "a-3", "a-4"]
    assert frame["converted"].tolist() == [0, 1, 1, 0]
    assert frame["Specialization"].tolist()[:3] == ["Select", "Finance Management", "Select"]
    assert feature_columns(frame, dataset) == ["TotalVisits", "Specialization", *dataset.borderline]
    assert feature_columns(frame, dataset, include_borderline=False) == ["TotalVisits", "Specialization"]


def test_a_file_without_a_declared_column_is_rejected(tmp_path):
    folder = tmp_path / "bank_marketing"
    folder.mkdir()
    (folder / "bank-full.csv").write_text('"age";"campaign";"y"\n30;1;"no"\n')
    with pytest.raises(LeadDataError, match=r"bank-full.csv: missing required column\(s\) 'duration'"):
        load_public("bank_marketing_full", tmp_path)


def test_feature_columns_on_a_hand_made_frame():
    dataset = PublicDataset(
        name="toy",
        path="toy/t.csv",
        label="y",
        leaky=("after",),
        borderline=("late",),
        id_columns=("id", "number"),
        description="toy",
    )
    frame = pd.DataFrame(columns=["lead_id", "number", "age", "after", "late", "visits", "converted"])
    assert feature_columns(frame, dataset) == ["age", "late", "visits"]
    assert feature_columns(frame, dataset, include_borderline=False) == ["age", "visits"]
