"""Issue 22 item 6: ``leadml score --format hubspot|salesforce`` writes a file the CRM's import takes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from leadml.cli.app import main
from leadml.jobs.output import crm_scores_path, write_crm_scores

REPO = Path(__file__).resolve().parents[1]
HUBSPOT = ("Record ID,leadml_score,leadml_probability,leadml_tier,leadml_mql,leadml_mql_since,leadml_mql_route,"
           "leadml_fit_score,"
           "leadml_engagement_score,leadml_grid_tier,leadml_next_action,leadml_due_at,leadml_overdue,"
           "leadml_reason_1,leadml_reason_2,leadml_reason_3,leadml_scored_at,leadml_model_version")  # fmt: skip
SALESFORCE = ("Id,Leadml_Score__c,Leadml_Probability__c,Leadml_Tier__c,Leadml_MQL__c,Leadml_MQL_Since__c,"
              "Leadml_MQL_Route__c,Leadml_Fit_Score__c,Leadml_Engagement_Score__c,Leadml_Grid_Tier__c,Leadml_Next_Action__c,"
              "Leadml_Due_At__c,Leadml_Overdue__c,Leadml_Reason_1__c,Leadml_Reason_2__c,Leadml_Reason_3__c,"
              "Leadml_Scored_At__c,Leadml_Model_Version__c")  # fmt: skip


@pytest.fixture
def scored(tmp_path) -> Path:
    """Two scored leads as `leadml score` writes them (the columns a CRM file takes, and others)."""
    stamp = pd.Timestamp("2026-07-01 09:30", tz="UTC")
    scores = pd.DataFrame({
        "lead_id": ["00Q5e00000AbCdEAAV", "-7"], "as_of": [stamp, stamp], "model_name": "leadml",
        "model_version": "3", "probability": [0.61234, 0.0412], "score": pd.array([61, 4], dtype="int16"),
        "tier": ["A", "D"], "is_mql": [True, False], "fit_score": pd.array([80, None], dtype="Int16"),
        "engagement_score": pd.array([55, None], dtype="Int16"), "grid_tier": ["A2", None],
        "next_action": ["Call within 24 h", None], "due_at": [stamp + pd.Timedelta(hours=24), pd.NaT],
        "mql_since": [pd.Timestamp("2026-06-29", tz="UTC"), pd.NaT], "overdue": [False, None],
        "mql_route": ["behaviour+scenario", None], "out_of_range": [None, None], "reason_1": ["Visited pricing 3 times, « très » engaged", None],
        "reason_2": ["=cmd|x", None], "reason_3": [None, None],
    })  # fmt: skip
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path)
    return path


def test_hubspot_header_and_rows(scored, tmp_path):
    assert write_crm_scores(scored, tmp_path / "hubspot.csv", "hubspot") == 2
    header, first, second = (tmp_path / "hubspot.csv").read_text(encoding="utf-8").splitlines()
    assert header == HUBSPOT
    assert first == ('00Q5e00000AbCdEAAV,61,0.6123,A,true,2026-06-29T00:00:00Z,behaviour+scenario,80,55,A2,Call within 24 h,'
                     '2026-07-02T09:30:00Z,false,"Visited pricing 3 times, « très » engaged",\'=cmd|x,,'
                     "2026-07-01T09:30:00Z,3")  # fmt: skip
    assert second == "-7,4,0.0412,D,false,,,,,,,,,,,,2026-07-01T09:30:00Z,3"  # the id as it is: never guarded


def test_salesforce_header_and_a_row(scored, tmp_path):
    assert write_crm_scores(scored, tmp_path / "salesforce.csv", "salesforce") == 2
    header, first, _ = (tmp_path / "salesforce.csv").read_text(encoding="utf-8").splitlines()
    assert header == SALESFORCE
    assert first.startswith("00Q5e00000AbCdEAAV,61,0.6123,A,true,2026-06-29T00:00:00Z,behaviour+scenario,80,55,A2,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["salesforce.csv", "scores.parquet"]  # no temporary file


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--format", "pipedrive", "--out", "s.csv"],
         "error: invalid value for '--format': use leadml, hubspot or salesforce, not 'pipedrive'"),
        (["--format", "hubspot", "--out", "s.parquet"],
         "error: invalid value for '--out': a hubspot import file is a .csv, not 's.parquet'"),
    ],
    ids=["unknown format", "not a csv"],
)  # fmt: skip
def test_a_bad_format_is_a_one_line_usage_error_with_code_2(argv, error, tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("name: p\n")
    assert main(["score", tmp_path / "p.yaml", "--as-of", "2026-01-01", *argv]) == 2
    out, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert out == "" and line.startswith(error) and "usage: leadml score" in line


@pytest.mark.slow  # a full training
def test_score_writes_the_import_file_and_keeps_the_full_scores_beside_it(tmp_path, capsys):
    config = {"name": "tiny", "data": {"simulator": {"leads": 1200, "seed": 4, "months": 12}},
              "snapshots": {"horizon_days": 100, "max_per_lead": 4},
              "rules": str(REPO / "pipelines/rules/seed_points.yaml"),
              "models": {"lightgbm": {"n_estimators": 60}}}  # fmt: skip
    pipeline = tmp_path / "tiny.yaml"
    pipeline.write_text(yaml.safe_dump(config))
    assert main(["train", pipeline]) == 0
    out = tmp_path / "crm" / "hubspot.csv"
    assert main(["score", pipeline, "--as-of", "2026-01-01", "--out", out, "--format", "hubspot"]) == 0
    printed = capsys.readouterr().out
    scores = pd.read_parquet(crm_scores_path(out))
    crm = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert f"hubspot import file: {len(scores):,} rows to {out}" in printed
    assert ",".join(crm.columns) == HUBSPOT and len(crm) == len(scores) > 0
    assert crm["Record ID"].tolist() == scores["lead_id"].tolist()
    assert crm["leadml_score"].astype(int).tolist() == scores["score"].tolist()
    assert set(crm["leadml_mql"]) <= {"true", "false"} and (crm["leadml_scored_at"] == "2026-01-01T00:00:00Z").all()
    assert (crm["leadml_reason_1"] != "").any()
