"""PointsBaseline: the rules as a scikit-learn classifier (contract, monotone probabilities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from leadml.core.errors import LeadDataError
from leadml.rules.baseline import PointsBaseline
from leadml.rules.ruleset import RuleSet

RULES_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "rules"


@pytest.fixture
def snapshot_points():
    """Points per training snapshot with a label that grows more likely with the points."""
    rng = np.random.default_rng(0)
    points = rng.choice([0, 10, 20, 25, 35, 45, 55, 70, 90], 600).astype(float)
    converted = (rng.random(600) < 0.05 + points / 120).astype(int)
    return pd.DataFrame({"rules__points": points}), converted


def test_clone_and_get_params_keep_the_rules():
    rules = RuleSet.load(RULES_DIR / "seed_points.yaml")
    model = PointsBaseline(rules=rules)
    assert model.get_params() == {"rules": rules}
    twin = clone(model)
    assert twin.get_params()["rules"] == rules
    assert not hasattr(twin, "link_")
    assert clone(PointsBaseline(str(RULES_DIR / "seed_points.yaml"))).rules.endswith("seed_points.yaml")


def test_predict_proba_needs_fit(snapshot_points):
    X, _ = snapshot_points
    with pytest.raises(NotFittedError):
        PointsBaseline().predict_proba(X)


def test_probabilities_are_monotone_in_points_and_in_unit_interval(snapshot_points):
    X, y = snapshot_points
    model = PointsBaseline().fit(X, y)
    grid = pd.DataFrame({"rules__points": np.linspace(-50, 200, 251)})
    proba = model.predict_proba(grid)
    assert proba.shape == (251, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert (np.diff(proba[:, 1]) >= 0).all()
    assert proba[-1, 1] > proba[0, 1]
    assert model.classes_.tolist() == [0, 1]
    assert set(model.predict(grid)) <= {0, 1}
    assert model.points(grid).tolist() == grid["rules__points"].tolist()


@settings(max_examples=25, deadline=None)
@given(
    points=st.lists(st.floats(-100, 300, allow_nan=False), min_size=4, max_size=40),
    labels=st.lists(st.integers(0, 1), min_size=40, max_size=40),
    seed=st.integers(0, 10),
)
def test_probabilities_do_not_depend_on_row_order(points, labels, seed):
    X = pd.DataFrame({"rules__points": points})
    y = labels[: len(points)]
    model = PointsBaseline().fit(X, y)
    order = np.random.default_rng(seed).permutation(len(points))
    shuffled = model.predict_proba(X.iloc[order])[:, 1]
    assert np.allclose(shuffled, model.predict_proba(X)[:, 1][order])
    refit = PointsBaseline().fit(X.iloc[order], np.asarray(y)[order])
    assert np.allclose(refit.predict_proba(X)[:, 1], model.predict_proba(X)[:, 1])
    p = model.predict_proba(X.sort_values("rules__points"))[:, 1]
    assert ((p >= 0) & (p <= 1)).all() and (np.diff(p) >= -1e-12).all()


def test_flat_table_is_scored_by_the_rules():
    rules = {
        "rules": [
            {"name": "visits", "event": "TotalVisits", "min_count": 5, "points": 30},
            {"name": "decision maker", "field": "job_level", "in": ["vp", "owner"], "points": 40},
        ]
    }
    flat = pd.DataFrame(
        {
            "TotalVisits": [0, 8, 1, 9, 6, 0, 2, 7],
            "job_level": ["student", "vp", "owner", "owner", "specialist", None, "vp", "vp"],
        }
    )
    y = [0, 1, 0, 1, 0, 0, 1, 1]
    model = PointsBaseline(rules=rules).fit(flat, y)
    assert model.points(flat).tolist() == [0, 70, 40, 70, 30, 0, 40, 70]
    proba = model.predict_proba(flat)[:, 1]
    assert proba[1] == proba[3] == proba[7] == 1.0
    assert proba[0] == proba[5] == 0.0


def test_arrays_hold_points_one_column_per_rule_and_bad_input_is_named():
    model = PointsBaseline().fit(np.array([[0.0], [10.0], [20.0], [30.0]]), [0, 0, 1, 1])
    assert model.predict_proba(np.array([[5.0], [25.0]]))[:, 1].tolist() == [0.0, 1.0]
    per_rule = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [10.0, 20.0]])  # the points of two rules
    twin = PointsBaseline().fit(per_rule, [0, 0, 1, 1])
    assert twin.points(per_rule).tolist() == [0.0, 10.0, 20.0, 30.0]
    assert np.array_equal(twin.predict_proba(per_rule), model.predict_proba(per_rule.sum(axis=1, keepdims=True)))
    with pytest.raises(ValueError, match="X has 1 features, but PointsBaseline is expecting 2"):
        twin.predict_proba(np.array([[5.0], [25.0]]))
    with pytest.raises(ValueError, match="Reshape your data"):  # a 1-D array is ambiguous: rows or columns?
        model.predict_proba(np.array([5.0, 25.0]))
    with pytest.raises(LeadDataError, match="no 'rules__points' column and no rules"):
        PointsBaseline().fit(pd.DataFrame({"x": [1, 2]}), [0, 1])
    with pytest.raises(LeadDataError, match="1 values are missing, not 0/1.*censored"):
        PointsBaseline().fit(pd.DataFrame({"rules__points": [1, 2]}), [0, np.nan])
    with pytest.raises(LeadDataError, match="rows have no points"):
        PointsBaseline().fit(pd.DataFrame({"rules__points": [1, np.nan]}), [0, 1])
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        PointsBaseline().fit(pd.DataFrame({"rules__points": [1, 2, 3]}), [0, 1, 2])


def test_a_cold_start_without_conversions_still_fits_and_other_labels_are_classes():
    X = pd.DataFrame({"rules__points": [0.0, 10.0, 20.0, 30.0]})
    cold = PointsBaseline().fit(X, [0, 0, 0, 0])  # no lead has converted yet: both classes remain
    assert cold.classes_.tolist() == [0, 1] and cold.predict_proba(X).shape == (4, 2)
    assert (cold.predict_proba(X)[:, 1] == 0).all()
    named = PointsBaseline().fit(X, ["lost", "lost", "won", "won"])
    assert named.classes_.tolist() == ["lost", "won"]
    assert named.predict(X).tolist() == ["lost", "lost", "won", "won"]
