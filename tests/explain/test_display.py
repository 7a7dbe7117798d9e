"""What the sales report shows a manager: the 0-100 display score, lead columns, links, trends, colours."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadml.core.config import ReportConfig
from leadml.core.errors import LeadDataError
from leadml.explain.report import write_sales_report
from leadml.explain.report.display import (
    crm_link,
    display_scores,
    lead_columns,
    mql_threshold,
    percentile_0_100,
    points_0_100,
    reason_effects,
    tier_colours,
)


@pytest.mark.parametrize("threshold", [0.01, 0.13, 0.5, 0.9])
def test_points_put_the_threshold_at_50_and_span_0_to_100(threshold):
    assert points_0_100([0.0, threshold, 1.0], threshold).tolist() == [0.0, 50.0, 100.0]
    assert points_0_100([threshold / 2], threshold)[0] == pytest.approx(25.0)
    assert points_0_100([(1 + threshold) / 2], threshold)[0] == pytest.approx(75.0)
    below = np.nextafter(threshold, 0)  # the best lead that is not an MQL never shows 50
    assert display_scores([below, threshold, 1.0], "points", threshold).tolist() == [49, 50, 100]


@given(st.lists(st.floats(0, 1), min_size=2, max_size=50), st.floats(0.001, 0.999))
def test_points_keep_the_order_of_the_probabilities(probabilities, threshold):
    p = np.sort(np.asarray(probabilities))
    points = points_0_100(p, threshold)
    assert np.all(np.diff(points) >= 0) and points.min() >= 0 and points.max() <= 100
    assert np.all(np.diff(display_scores(p, "points", threshold)) >= 0)


def test_points_need_a_threshold_inside_0_1():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        points_0_100([0.5], 1.0)


def test_percentile_is_the_rank_among_the_leads_of_the_run():
    assert percentile_0_100([0.1, 0.4, 0.2, 0.4]).tolist() == [25.0, 100.0, 50.0, 100.0]
    shown = display_scores(np.linspace(0, 0.3, 100), "percentile", None)
    assert shown[0] == 1 and shown[-1] == 100 and np.all(np.diff(shown) == 1)
    assert display_scores([0.3, 0.05], "points", None).tolist() == [30, 5]  # no threshold: p x 100


def test_the_threshold_is_the_models_when_the_flags_agree_else_the_lowest_mql():
    p, flags = [0.5, 0.2, 0.1], [True, True, False]
    assert mql_threshold(p, flags, 0.15) == (0.15, "the model's")
    assert mql_threshold(p, flags, 0.3)[0] == 0.2
    assert mql_threshold(p, flags, None)[0] == 0.2
    assert mql_threshold(p, [False] * 3, None) == (None, "")
    assert mql_threshold(p, None, 0.3) == (0.3, "the model's")


def test_a_missing_display_column_is_one_line_naming_it_and_the_columns_present():
    leads = pd.DataFrame({"lead_id": ["a", "b"], "name": ["Ann", "Bo"], "owner": ["x", "y"]})
    with pytest.raises(LeadDataError, match=r"^report.display_columns: column 'company' is not in the leads table "
                                            r"\(columns present: lead_id, name, owner\)$"):  # fmt: skip
        lead_columns(leads, ["name", "company"])
    assert lead_columns(leads, ["owner"]).to_dict() == {"owner": {"a": "x", "b": "y"}}
    scores = pd.DataFrame({"lead_id": ["a"], "probability": [0.5]})
    with pytest.raises(LeadDataError, match="column 'company' is not in the leads table"):
        write_sales_report(scores, "unused.html", settings=ReportConfig(display_columns=["company"]), leads=leads)


def test_links_effects_and_tier_colours():
    assert crm_link("https://crm.example.com/leads/{lead_id}?tab=1", "L 1/2&x") == (
        "https://crm.example.com/leads/L%201%2F2%26x?tab=1"
    )
    assert crm_link(None, "a") == ""
    reasons = ('[{"feature": "a", "value": 1, "contribution": 0.8, "points": 8.2, "decisive": false}, '
               '{"feature": "b", "value": 0, "contribution": -0.1, "points": -0.31, "decisive": false}]')  # fmt: skip
    assert reason_effects(reasons, 3, 2) == (["+8 pts", "", ""], ["-0.3 pts", ""])
    assert reason_effects('[{"rule": "Student", "points": -30}]', 1, 1) == ([""], [""])  # rules say their points
    colours = tier_colours(pd.Series(["unqualified", "MQL", "nurture", "MQL"]), pd.Series([0.01, 0.4, 0.1, 0.5]))
    assert list(colours) == ["MQL", "nurture", "unqualified"]
    assert colours["MQL"] == "#1a7f37" and colours["unqualified"] == "#8a94a6"


def test_scores_as_a_csv_holds_them_with_history_give_the_trend_and_the_hand_off(tmp_path):
    """Text timestamps and flags (a CSV file) no longer crash the page; the trend is in display points."""
    scores = pd.DataFrame({
        "lead_id": ["a", "b", "c"], "as_of": ["2026-03-08T00:00:00+00:00"] * 3, "probability": [0.6, 0.2, 0.05],
        "is_mql": ["True", "True", "False"], "tier": ["MQL", "MQL", "unqualified"],
        "due_at": ["2026-03-09T00:00:00+00:00", "2026-03-09T00:00:00+00:00", ""],
        "mql_since": ["2026-03-01T00:00:00+00:00", "2026-03-08T00:00:00+00:00", ""],
        "overdue": ["True", "False", "False"],
    })  # fmt: skip
    history = pd.DataFrame({
        "lead_id": ["a", "b", "c"], "as_of": pd.to_datetime(["2026-03-01"] * 3, utc=True),
        "probability": [0.2, 0.6, 0.05], "score": [20, 60, 5], "is_mql": [True, True, False],
    })  # fmt: skip
    text = write_sales_report(scores, tmp_path / "sales.html", history=history, threshold=0.2).read_text()
    rows = dict(re.findall(r'data-lead="(\w)">(.*?)</tr>', text, re.S))
    shown = {lead: int(re.search(r"<b>(\d+)</b>", row).group(1)) for lead, row in rows.items()}
    assert shown == {"a": 75, "b": 50, "c": 12}  # points with the threshold 0.2 at 50
    assert "(p = 0.60)" in rows["a"] and "(p = 0.05)" in rows["c"]
    assert "▲ +25" in rows["a"] and "▼ -25" in rows["b"] and "– 0" in rows["c"]
    assert "2026-03-01" in rows["a"] and "2026-03-09 00:00" in rows["a"] and "overdue" in rows["a"]
    assert "overdue" not in rows["b"] and "the MQL threshold (p = 0.2, the model&#39;s) at 50" in text
