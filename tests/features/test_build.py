"""The feature set end to end: training rows, scoring rows, and leaky columns kept out."""

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import parse_pipeline
from leadml.data.contract import validate_flat
from leadml.data.sources import PipelineData
from leadml.features.build import FeatureBuilder, build_trainset
from leadml.features.scoring_set import features_at
from tests.conftest import datasets_dir_or_skip


@pytest.fixture(scope="module")
def sim_data(small_sim):
    return PipelineData.from_simulation(small_sim)


def _config(**snapshots):
    return parse_pipeline(
        {
            "name": "t",
            "snapshots": {"horizon_days": 100, **snapshots},
            "features": {"attribute_counts": {"page_view": {"page": ["pricing", "careers"]}}},
        }
    )


def test_trainset_has_one_row_per_snapshot_and_the_fitted_columns(sim_data):
    trainset = build_trainset(_config(every_days=30, policy="every_days"), sim_data)
    frame = trainset.frame
    assert not frame.duplicated(["lead_id", "as_of"]).any()
    assert list(frame.columns[:5]) == ["lead_id", "as_of", "split", "converted", "weight"]
    assert list(frame.columns[5:]) == trainset.feature_names
    assert {"job_level", "page_view[pricing]__count_30d", "lead__age_days"} <= set(trainset.feature_names)
    # free text that feeds a derived field is not a feature itself
    assert "job_title" not in trainset.feature_names and "email_domain" not in trainset.feature_names
    assert frame.loc[frame["split"] == "censored", "converted"].isna().all()
    assert frame.loc[frame["split"] != "censored", "converted"].isin([0.0, 1.0]).all()
    groups = {info.name: info.group for info in trainset.feature_info}
    assert groups["job_level"] == "profile" and groups["email_open__count_7d"] == "behaviour"


def test_scoring_features_equal_training_features_at_the_same_as_of(sim_data):
    as_of = pd.Timestamp("2026-03-01", tz="UTC")
    config = _config(policy="fixed", as_of="2026-03-01")
    trainset = build_trainset(config, sim_data)
    scored = features_at(config, None, None, as_of, builder=trainset.builder, data=sim_data)
    train_rows = trainset.frame.set_index("lead_id")[trainset.feature_names].sort_index()
    score_rows = scored.set_index("lead_id")[trainset.feature_names].sort_index()
    assert len(score_rows) == len(train_rows) > 300
    pd.testing.assert_frame_equal(score_rows, train_rows)
    assert (scored["as_of"] == as_of).all()


def test_open_leads_only_at_scoring_time(sim_data):
    as_of = pd.Timestamp("2026-03-01", tz="UTC")
    config = _config(policy="fixed", as_of="2026-03-01")
    scored = features_at(config, None, None, as_of, data=sim_data)
    outcomes = sim_data.outcomes.set_index("lead_id")
    closed_before = outcomes.index[outcomes["closed_at"] < as_of]
    created_after = sim_data.leads.loc[sim_data.leads["created_at"] > as_of, "lead_id"]
    assert not scored["lead_id"].isin(closed_before).any()
    assert not scored["lead_id"].isin(created_after).any()
    expected = (sim_data.leads["created_at"] <= as_of).sum() - len(closed_before)
    assert len(scored) == expected


def test_declared_leaky_columns_never_reach_the_features():
    rng = np.random.default_rng(0)
    flat = validate_flat(
        pd.DataFrame(
            {
                "id": [f"x{i}" for i in range(400)],
                "y": rng.integers(0, 2, 400),
                "visits": rng.poisson(3, 400).astype(float),
                "source": rng.choice(["web", "ads"], 400),
                "sales_tag": rng.choice(["hot", "cold"], 400),
            }
        ),
        label="y",
        id_column="id",
    )
    data = PipelineData(flat=flat, leaky=("sales_tag",))
    trainset = build_trainset(
        parse_pipeline({"name": "flat", "data": {"source": "flat", "flat": "f.csv", "label": "y"}}), data
    )
    assert "sales_tag" not in trainset.feature_names
    assert trainset.feature_names == ["visits", "source"]
    allowed = parse_pipeline(
        {
            "name": "flat",
            "data": {"source": "flat", "flat": "f.csv", "label": "y"},
            "profile": {"allow_leaky": ["sales_tag"]},
        }
    )
    assert "sales_tag" in build_trainset(allowed, data).feature_names


@pytest.mark.realdata
@pytest.mark.parametrize(
    "pipeline, leaky",
    [
        (
            "x_education.yaml",
            [
                "Tags",
                "Lead Quality",
                "Lead Profile",
                "Asymmetrique Activity Index",
                "Asymmetrique Profile Index",
                "Asymmetrique Activity Score",
                "Asymmetrique Profile Score",
            ],
        ),
        ("bank_marketing.yaml", ["duration"]),
    ],
)
def test_flat_pipelines_load_real_data_without_leaky_columns(pipelines_dir, pipeline, leaky, monkeypatch):
    monkeypatch.setenv("LEADML_DATASETS", str(datasets_dir_or_skip()))
    from leadml.core.config import load_pipeline

    trainset = build_trainset(load_pipeline(pipelines_dir / pipeline))
    assert not set(leaky) & set(trainset.feature_names)
    assert not {"converted", "lead_id", "Prospect ID", "Lead Number"} & set(trainset.feature_names)
    counts = trainset.frame["split"].value_counts()
    assert counts["test"] == pytest.approx(0.2 * len(trainset.frame), abs=2)


def test_builder_refuses_to_transform_before_fit(sim_data):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FeatureBuilder().transform(sim_data.leads.head(0).assign(as_of=pd.NaT), sim_data.leads)
