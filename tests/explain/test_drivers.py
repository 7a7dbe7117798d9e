"""On 20,000 simulated leads, the model's SHAP importance recovers the simulator's true drivers."""

from __future__ import annotations

import pytest

from leadml.core.config import LightGBMConfig, parse_pipeline
from leadml.data.simulate import DRIVER_FAMILIES, TRUE_DRIVERS, simulate
from leadml.data.sources import PipelineData
from leadml.features.build import build_trainset
from leadml.modeling.contributions import explain_margin
from leadml.modeling.estimators import LightGBMModel
from tests.explain.conftest import PIPELINE


@pytest.fixture(scope="module")
def explained_20k():
    sim = simulate(20_000, seed=3)
    data = PipelineData.from_simulation(sim)
    # the 100-day gap split of this test's design: its train and gap parts are fitted, validation stops early
    trainset = build_trainset(parse_pipeline({**PIPELINE, "split": {"gap_days": 100}}), data)
    frame = trainset.frame.loc[trainset.frame["converted"].notna()]
    names = trainset.feature_names
    fit = frame.loc[frame["split"].isin(["train", "gap"])]
    valid = frame.loc[frame["split"] == "validation"]
    model = LightGBMModel.from_config(LightGBMConfig(n_estimators=1000, learning_rate=0.05))
    model.fit(fit[names], fit["converted"], eval_set=(valid[names], valid["converted"]))
    return frame, explain_margin(model, frame, trainset.feature_info)


def test_true_drivers_are_ordered_by_mean_absolute_contribution():
    """TRUE_DRIVERS uses the measure global SHAP importance uses: mean |contribution - its mean|."""
    truth = simulate(20_000, seed=3).truth
    drivers = truth[[f"driver__{name}" for name in TRUE_DRIVERS]]
    spread = (drivers - drivers.mean()).abs().mean()
    assert list(spread.index.str.removeprefix("driver__")[:3]) == list(TRUE_DRIVERS)[:3]
    assert spread.is_monotonic_decreasing or (spread.diff().dropna() < 0.02).all()


def test_driver_families_add_to_engagement_only_what_no_other_driver_reads():
    """The declared families: TRUE_DRIVERS, plus for engagement every event feature nobody else reads."""
    assert list(DRIVER_FAMILIES) == list(TRUE_DRIVERS)
    for driver, family in DRIVER_FAMILIES.items():
        assert set(TRUE_DRIVERS[driver]) <= set(family)
        assert driver == "engagement" or family == TRUE_DRIVERS[driver]
    others = {f for driver, family in TRUE_DRIVERS.items() if driver != "engagement" for f in family}
    engagement = set(DRIVER_FAMILIES["engagement"])
    assert not engagement & others
    assert {"email_open__count_30d", "download__days_since_last", "page_view__count_7d",
            "page_view[product]__count_30d"} <= engagement  # fmt: skip
    assert not {"page_view[pricing]__count_30d", "demo_request__count_7d", "job_level"} & engagement


def _driver_importance(values) -> dict[str, float]:
    """A driver's importance in the model: mean |sum of the SHAP values of its feature family|."""
    return {
        driver: float(values[[c for c in family if c in values]].sum(axis=1).abs().mean())
        for driver, family in DRIVER_FAMILIES.items()
    }


@pytest.mark.slow
def test_the_true_top_3_drivers_are_among_the_models_top_6(explained_20k):
    """Drivers compared as drivers, each by the SHAP values summed over its declared feature family.

    Student and decision maker share their only feature (job level), so they rank together; the
    engagement family spans every activity feature no other driver reads. Engagement still comes
    out below its true weight: it is halved for free e-mail domains, and SHAP gives part of that
    interaction to the e-mail domain feature (which rises above its own true weight).
    """
    frame, contributions = explained_20k
    importance = _driver_importance(contributions.frame())
    top6 = sorted(importance, key=importance.get, reverse=True)[:6]
    true_top3 = list(TRUE_DRIVERS)[:3]
    assert true_top3 == ["student", "decision_maker", "engagement"]
    for driver in true_top3 + ["pricing_visits"]:  # pricing is a close fourth in the truth
        assert driver in top6, (driver, top6, importance)


@pytest.mark.slow
def test_careers_visits_lower_only_the_visitors(explained_20k):
    """A rare driver (4 % of leads) is checked where it acts: it lowers the visitors' scores, only theirs."""
    frame, contributions = explained_20k
    values = contributions.frame()
    careers = values[[c for c in TRUE_DRIVERS["careers_visits"] if c in values]].sum(axis=1)
    visited = (frame["page_view[careers]__count_30d"] > 0).to_numpy()
    assert visited.mean() < 0.1
    assert careers[visited].mean() < -0.5
    assert abs(careers[~visited].mean()) < 0.1
