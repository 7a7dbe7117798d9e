"""Reports: self-contained HTML with every lead; funnel tables counted by hand."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import EvaluationConfig, MQLConfig
from leadml.core.errors import LeadDataError
from leadml.explain.counterfactual import counterfactuals
from leadml.explain.report import write_funnel_report, write_model_card, write_sales_report
from leadml.explain.report.funnel import funnel_by, funnel_stages, stage_counts, stuck_mqls, time_in_stage
from leadml.explain.sentences import reason_table, rules_reason_table
from leadml.modeling.contributions import explain_margin
from leadml.modeling.policy import apply_policy


def assert_self_contained(text: str) -> None:
    """No file, script, style or image is fetched: only inline content and data URIs."""
    assert text.startswith("<!doctype html>")
    for match in re.finditer(r'(?:src|href)="([^"]*)"', text):
        assert match.group(1).startswith(("data:", "#")), match.group(1)
    assert "<script src" not in text and '<link rel="stylesheet"' not in text and "@import" not in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text


def make_scores(trained, trainset, rows: pd.DataFrame):
    """Scores of the chosen model with policy columns, reasons and counterfactuals, and the contributions."""
    name = "lightgbm"
    model, threshold = trained.models[name], trained.thresholds[name].threshold
    contributions = explain_margin(model, rows, trainset.feature_info)
    scores = pd.concat([
        rows[["lead_id", "as_of"]],
        apply_policy(contributions.probability, threshold, MQLConfig().tiers).set_index(rows.index),
        reason_table(contributions, rows, trainset.feature_info, threshold=threshold),
        counterfactuals(model, rows, trainset.feature_info, threshold=threshold),
    ], axis=1)  # fmt: skip
    return scores, contributions


@pytest.fixture(scope="module")
def sales(trained, trainset, test_rows, tmp_path_factory):
    scores, contributions = make_scores(trained, trainset, test_rows)
    path = write_sales_report(scores, tmp_path_factory.mktemp("sales") / "sales.html", contributions=contributions,
                              waterfalls=25)  # fmt: skip
    return scores, path


def test_sales_report_lists_every_lead_by_score_with_reasons(sales):
    scores, path = sales
    text = path.read_text()
    assert_self_contained(text)
    ids = re.findall(r'<tr class="lead[^"]*" tabindex="0" data-lead="([^"]+)"', text)
    assert sorted(ids) == sorted(scores["lead_id"])
    expected = scores.sort_values("probability", ascending=False, kind="stable")["lead_id"].tolist()
    assert ids == expected
    assert text.count("<svg") == 25
    assert text.count('<tr class="lead mql"') == int(scores["is_mql"].sum())
    top = scores.loc[scores["probability"].idxmax()]
    for column in ("reason_1", "reason_2", "counter_reason_1"):
        if top[column]:
            shown = top[column].removesuffix(" (raises)").removesuffix(" (lowers)")  # colour and effect say it
            assert shown.replace("'", "&#39;") in text
    assert "would make it an MQL" in text


def test_sales_report_draws_waterfalls_for_the_explained_leads_only(trained, trainset, test_rows, tmp_path):
    scores, contributions = make_scores(trained, trainset, test_rows)
    best = np.argsort(-contributions.probability, kind="stable")[:5]
    text = write_sales_report(scores, tmp_path / "some.html", contributions=contributions.take(best)).read_text()
    assert text.count("<svg") == 5
    with pytest.raises(LeadDataError, match="indexed like the scores"):
        write_sales_report(scores.reset_index(drop=True).set_axis(scores.index + 10**6), tmp_path / "x.html",
                           contributions=contributions)  # fmt: skip


def test_sales_report_of_rules_scores_and_errors(tmp_path, rules_scores):
    scores = pd.concat([rules_scores.head(40).reset_index(drop=True),
                        rules_reason_table(rules_scores.head(40)).reset_index(drop=True)], axis=1)  # fmt: skip
    scores = scores.rename(columns={"points": "score"})
    text = write_sales_report(scores, tmp_path / "rules.html").read_text()
    assert len(re.findall(r'<tr class="lead', text)) == 40 and "<svg" not in text
    best = write_sales_report(scores, tmp_path / "best.html", max_leads=10).read_text()
    ids = re.findall(r'<tr class="lead[^"]*" tabindex="0" data-lead="([^"]+)"', best)
    assert ids == scores.sort_values("score", ascending=False, kind="stable")["lead_id"].head(10).tolist()
    assert "The best 10 of 40 scored leads" in best
    with pytest.raises(LeadDataError, match="'lead_id' and 'probability'"):
        write_sales_report(scores.drop(columns="score"), tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists()


def test_sales_report_marks_the_leads_unlike_training(tmp_path):
    scores = pd.DataFrame({"lead_id": ["a", "b", "c"], "probability": [0.9, 0.5, 0.1],
                           "out_of_range": ["lead__age_days", None, "page_view__count_30d"]})  # fmt: skip
    text = write_sales_report(scores, tmp_path / "sales.html").read_text()
    rows = re.findall(r'<tr class="lead[^"]*" tabindex="0" data-lead="([^"]+)">(.*?)</tr>', text, re.S)
    marked = {lead for lead, row in rows if "outside training" in row}
    assert [lead for lead, _ in rows] == ["a", "b", "c"] and marked == {"a", "c"}
    assert "2 marked &#9888; are unlike every lead the model learned from" in text
    assert "lead__age_days outside the range training saw" in text
    plain = write_sales_report(scores.drop(columns="out_of_range"), tmp_path / "plain.html").read_text()
    assert "outside training" not in plain and "unlike every lead" not in plain


def test_model_card_has_every_section_and_embeds_its_charts(trained, trainset, tmp_path):
    path = write_model_card(trained, trainset, tmp_path / "reports" / "model_card.html")
    text = path.read_text()
    assert_self_contained(text)
    for section in ('id="data"', 'id="metrics"', 'id="confusion"', 'id="calibration"', 'id="importance"', 'id="tiers"',
                    'id="segments"'):  # fmt: skip
        assert section in text
    assert text.count('src="data:image/png;base64,') == 5  # calibration, gains, SHAP bar, beeswarm, tiers
    for segment in ("<h3>source</h3>", "<h3>country</h3>"):  # evaluation.segments by default
        assert segment in text
    assert "<h3>Validation (" in text and "<h3>Test (" in text and "(95 % bootstrap interval)" in text
    assert "(precision)" in text and "(recall)" in text
    assert "equal-mass bins</h3>" in text and "equal-width bins</h3>" in text
    # the small simulation has fewer than 30 conversions in every source: all greyed, unjudged, no ratio
    source = text[text.index("<h3>source</h3>") : text.index("<h3>country</h3>")]
    levels = source.count("<tr")
    assert levels > 2 and source.count('<tr class="thin">') == levels - 1  # every row but the header
    assert source.count("too few conversions to judge (fewer than 30)") == levels - 1
    assert "No ratio of MQL rates: fewer than two levels with at least 30 conversions" in source
    low = write_model_card(trained, trainset, tmp_path / "low.html", evaluation=EvaluationConfig(min_conversions=1))
    judged = low.read_text()
    assert "Ratio of MQL rates (disparate impact), over the levels with at least 1 conversion:" in judged
    for model in ("rules", "logistic", "lightgbm"):
        assert f"<td>{model}</td>" in text
    assert "job_level" in text and f"Chosen model: <b>{trained.chosen}</b>" in text
    assert not list(tmp_path.glob("reports/.leadml-tmp-*"))


def test_model_card_of_a_cold_start_keeps_the_rules(pipeline_config, trainset, rules_scores, trained, tmp_path):
    from leadml.modeling.train import train_models

    config = pipeline_config.model_copy(
        update={"models": pipeline_config.models.model_copy(update={"min_positives": 10**6})}
    )
    points = pd.Series(rules_scores["points"].to_numpy(), index=trainset.frame.index)
    cold = train_models(config, trainset, points, n_boot=20)
    assert cold.cold_start and list(cold.models) == ["rules"]
    text = write_model_card(cold, trainset, tmp_path / "cold.html").read_text()
    assert_self_contained(text)
    assert "Cold start" in text and "No model to explain" in text
    fewer = trainset.frame.drop(index=trainset.frame.index[trainset.frame["split"] == "test"][:3])
    with pytest.raises(LeadDataError, match="test rows"):
        write_model_card(trained, trainset.__class__(fewer, trainset.builder, trainset.data), tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists()


# -- funnel -------------------------------------------------------------------------------------
def funnel_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Six leads: a won deal, one stuck as MQL, one lost at SQL, one fresh MQL, one still a lead, one won without stage times."""
    leads = pd.DataFrame({
        "lead_id": ["a", "b", "c", "d", "e", "f"],
        "created_at": pd.to_datetime(["2026-01-05", "2026-01-10", "2026-01-20", "2026-02-20", "2026-02-25", "2026-01-07"], utc=True),
        "source": ["organic", "paid", "organic", "paid", "organic", "paid"],
    })  # fmt: skip
    t = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    outcomes = pd.DataFrame({
        "lead_id": ["a", "b", "c", "d", "f"],
        "outcome": ["won", None, "lost", None, "won"],
        "closed_at": [t("2026-02-20"), pd.NaT, t("2026-02-25"), pd.NaT, t("2026-02-10")],
        "mql_at": [t("2026-01-10"), t("2026-01-15"), t("2026-01-25"), t("2026-02-25"), pd.NaT],
        "sql_at": [t("2026-01-20"), pd.NaT, t("2026-02-01"), pd.NaT, pd.NaT],
        "opportunity_at": [t("2026-02-01"), pd.NaT, pd.NaT, pd.NaT, pd.NaT],
    })  # fmt: skip
    return leads, outcomes


def test_funnel_counts_rates_times_and_stuck_leads():
    leads, outcomes = funnel_tables()
    stages = funnel_stages(leads, outcomes, as_of="2026-03-01")
    counts = stage_counts(stages)
    assert counts["stage"].tolist() == ["lead", "MQL", "SQL", "opportunity", "won"]
    assert counts["leads"].tolist() == [6, 5, 3, 2, 2]  # f was won without stage times: it passed every stage
    assert counts["from_previous"].tolist()[1:] == pytest.approx([5 / 6, 3 / 5, 2 / 3, 2 / 2])
    by_source = funnel_by(stages, "source").set_index("source")
    assert by_source.loc["organic", ["lead", "MQL", "SQL", "opportunity", "won"]].tolist() == [3, 2, 2, 1, 1]
    assert by_source.loc["paid", ["lead", "MQL", "SQL", "opportunity", "won"]].tolist() == [3, 3, 1, 1, 1]
    assert by_source.loc["all", "lead → won"] == pytest.approx(2 / 6)
    by_month = funnel_by(stages, "month").set_index("month")
    assert by_month["lead"].to_dict() == {"2026-01": 4, "2026-02": 2, "all": 6}
    times = time_in_stage(stages).set_index("step")
    assert times.loc["lead → MQL", "median_days"] == pytest.approx(5.0)  # a 5, b 5, c 5, d 5
    assert times.loc["MQL → SQL", "median_days"] == pytest.approx(8.5)  # a 10, c 7
    assert times.loc["opportunity → won", "leads"] == 1 and times.loc["opportunity → won", "median_days"] == 19
    stuck = stuck_mqls(stages, stuck_days=30)
    assert stuck["lead_id"].tolist() == ["b"] and stuck["days_as_mql"].tolist() == [45.0]
    # on 15 February: d and e did not exist yet, a (opportunity) and c (SQL) were still open, f was won
    earlier = funnel_stages(leads, outcomes, as_of="2026-02-15")
    assert stage_counts(earlier)["leads"].tolist() == [4, 4, 3, 2, 1]
    assert stuck_mqls(earlier, stuck_days=30)["lead_id"].tolist() == ["b"]
    assert stuck_mqls(earlier, stuck_days=31)["lead_id"].tolist() == []


def test_funnel_report_is_written_with_its_tables(tmp_path, sim_data):
    leads, outcomes = funnel_tables()
    tables = write_funnel_report(leads, outcomes, tmp_path / "funnel.html", stuck_days=30, as_of="2026-03-01")
    text = (tmp_path / "funnel.html").read_text()
    assert_self_contained(text)
    assert "Stuck as MQL for more than 30 days (1)" in text and "<td>b</td>" in text
    assert tables["stuck"]["lead_id"].tolist() == ["b"]
    simulated = write_funnel_report(sim_data.leads, sim_data.outcomes, tmp_path / "sim.html", as_of="2026-01-01")
    counts = simulated["stages"]["leads"].to_numpy()
    assert (np.diff(counts) <= 0).all() and counts[0] == (sim_data.leads["created_at"] <= "2026-01-01").sum()
    assert len(simulated["stuck"]) > 0 and (simulated["stuck"]["days_as_mql"] > 30).all()
