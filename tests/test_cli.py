"""The `leadml` command end to end in subprocesses: outputs, exit codes, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def leadml(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "leadml.cli.app", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    result = leadml("simulate", "--leads", 1500, "--seed", 3, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def test_help_lists_the_commands():
    result = leadml("--help")
    assert result.returncode == 0
    for command in ("simulate", "validate", "features", "trainset", "rules", "demo"):
        assert command in result.stdout


def test_simulate_writes_four_tables(sim_dir):
    assert sorted(p.name for p in sim_dir.iterdir()) == [
        "events.parquet", "leads.parquet", "outcomes.parquet", "truth.parquet",
    ]
    assert len(pd.read_parquet(sim_dir / "leads.parquet")) == 1500


def test_validate_prints_a_summary(sim_dir):
    result = leadml("validate", "--leads", sim_dir / "leads.parquet", "--events", sim_dir / "events.parquet",
                    "--outcomes", sim_dir / "outcomes.parquet")
    assert result.returncode == 0, result.stderr
    assert "1,500" in result.stdout and "page_view" in result.stdout and "base rate" in result.stdout


def test_features_without_a_pipeline(sim_dir, tmp_path):
    out = tmp_path / "features.parquet"
    result = leadml("features", "--leads", sim_dir / "leads.parquet", "--events", sim_dir / "events.parquet",
                    "--as-of", "2026-01-01", "--out", out)
    assert result.returncode == 0, result.stderr
    features = pd.read_parquet(out)
    leads = pd.read_parquet(sim_dir / "leads.parquet")
    assert len(features) == (leads["created_at"] <= pd.Timestamp("2026-01-01", tz="UTC")).sum()
    assert {"lead_id", "as_of", "email_open__count_30d", "events__count_90d"} <= set(features.columns)


def _pipeline(tmp_path, sim_dir, **extra):
    config = {
        "name": "cli",
        "data": {"source": "tables", "leads": str(sim_dir / "leads.parquet"),
                 "events": str(sim_dir / "events.parquet"), "outcomes": str(sim_dir / "outcomes.parquet")},
        "snapshots": {"horizon_days": 100},
        **extra,
    }
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_trainset_and_features_from_a_pipeline(sim_dir, tmp_path):
    pipeline = _pipeline(tmp_path, sim_dir)
    out = tmp_path / "trainset.csv"
    result = leadml("trainset", pipeline, "--out", out)
    assert result.returncode == 0, result.stderr
    trainset = pd.read_csv(out)
    assert set(trainset["split"]) <= {"train", "validation", "test", "gap", "censored"}
    assert list(trainset.columns[:4]) == ["lead_id", "as_of", "split", "converted"]
    result = leadml("features", pipeline, "--as-of", "2026-02-01", "--out", tmp_path / "f.parquet")
    assert result.returncode == 0, result.stderr


def test_rules_score_writes_points_tier_and_breakdown(sim_dir, tmp_path):
    out = tmp_path / "rules.parquet"
    result = leadml("rules", "score", REPO / "pipelines/rules/seed_points.yaml", "--leads", sim_dir / "leads.parquet",
                    "--events", sim_dir / "events.parquet", "--as-of", "2026-06-01", "--out", out)
    assert result.returncode == 0, result.stderr
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["lead_id", "as_of", "points", "tier", "breakdown", "fit_points",
                                    "engagement_points", "fit_score", "engagement_score", "grid_tier"]
    row = scores.sort_values("points").iloc[-1]
    assert sum(item["points"] for item in json.loads(row["breakdown"])) == pytest.approx(row["points"])
    # seed points has engagement rules only (at most 20 + 10 + 25 + 15 = 70 points) and no fit rule
    assert (scores["engagement_points"] == scores["points"]).all() and (scores["fit_points"] == 0).all()
    expected = (scores["engagement_points"] / 70 * 100).round().astype(int)
    assert (scores["engagement_score"].astype(int) - expected).abs().max() <= 1
    assert scores["fit_score"].isna().all() and scores["grid_tier"].isna().all()  # no fit rules: no fit scale


def test_rules_learn_writes_a_rules_file_that_loads_back(sim_dir, tmp_path):
    pipeline = _pipeline(tmp_path, sim_dir, features={"attribute_counts": {"page_view": {"page": ["pricing"]}}})
    out = tmp_path / "learned.yaml"
    result = leadml("rules", "learn", pipeline, "--out", out)
    assert result.returncode == 0, result.stderr
    from leadml.rules.ruleset import RuleSet

    ruleset = RuleSet.load(out)
    assert len(ruleset.rules) >= 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["validate", "--leads", "missing.csv"], "missing.csv: file not found"),
        (["validate", "--leads", "leads.txt"], "unknown table format"),
        (["trainset", "nope.yaml", "--out", "x.parquet"], "nope.yaml: pipeline file not found"),
        (["rules", "score", "nope.yaml", "--leads", "l.csv", "--as-of", "2026-01-01", "--out", "x.parquet"], "nope.yaml"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(tmp_path, args, message):
    (tmp_path / "leads.txt").write_text("x")
    result = leadml(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) <= 3


def test_orphans_error_then_drop(sim_dir, tmp_path):
    events = pd.read_parquet(sim_dir / "events.parquet")
    extra = events.head(2).assign(lead_id="ghost")
    path = tmp_path / "events.parquet"
    pd.concat([events, extra]).to_parquet(path)
    args = ["validate", "--leads", sim_dir / "leads.parquet", "--events", path]
    failed = leadml(*args)
    assert failed.returncode == 1 and "2 events of unknown leads" in failed.stderr
    dropped = leadml(*args, "--drop-orphans")
    assert dropped.returncode == 0
    assert "dropped 2 events of unknown leads" in dropped.stdout + dropped.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = leadml("--debug", "validate", "--leads", "missing.csv", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_train_registers_a_champion_and_promote_moves_it(tmp_path):
    sim = tmp_path / "sim"
    assert leadml("simulate", "--leads", 8000, "--seed", 5, "--out", sim).returncode == 0
    pipeline = _pipeline(tmp_path, sim, rules=str(REPO / "pipelines/rules/seed_points.yaml"),
                         mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'runs.db'}", "registered_model": "cli-model"},
                         models={"lightgbm": {"n_estimators": 200}})
    env_free = {"cwd": tmp_path}
    first = leadml("train", pipeline, **env_free)
    assert first.returncode == 0, first.stderr
    assert "rules" in first.stdout and "logistic" in first.stdout and "lightgbm" in first.stdout
    assert "registered cli-model version 1 as champion" in first.stdout
    second = leadml("train", pipeline, "--promote", "never", **env_free)
    assert second.returncode == 0, second.stderr
    assert "version 2 as challenger: promotion is off" in second.stdout
    promoted = leadml("promote", pipeline, "--version", 2, **env_free)
    assert promoted.returncode == 0 and "version 2 is now the champion (was version 1)" in promoted.stdout
    missing = leadml("promote", pipeline, "--version", 9, **env_free)
    assert missing.returncode == 1 and "has no version 9" in missing.stderr
    # the model card is the one logged with each version's run, not drawn from a new training
    runs = {}
    for version in (1, 2):
        card = leadml("report", pipeline, "--model", f"models:/cli-model/{version}", "--out", f"card{version}",
                      **env_free)  # fmt: skip
        assert card.returncode == 0, card.stderr
        assert "logged with run" in card.stdout and "training" not in card.stdout
        runs[version] = card.stdout.split("logged with run ")[1].split(")")[0]
    assert runs[1] != runs[2]
    champion = leadml("report", pipeline, "--out", "card", **env_free)
    assert f"model card of models:/cli-model@champion (logged with run {runs[2]})" in champion.stdout
    assert (tmp_path / "card" / "model_card.html").read_bytes() == (tmp_path / "card2" / "model_card.html").read_bytes()
    unknown = leadml("report", pipeline, "--model", "models:/cli-model/9", "--out", "card9", **env_free)
    assert unknown.returncode == 1 and "has no version '9'" in unknown.stderr and not (tmp_path / "card9").exists()


def test_train_with_too_few_closed_deals_keeps_the_rules(tmp_path, sim_dir):
    pipeline = _pipeline(tmp_path, sim_dir, rules=str(REPO / "pipelines/rules/seed_points.yaml"),
                         models={"min_positives": 500})
    result = leadml("train", pipeline, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no model registered" in result.stdout
    report = leadml("report", pipeline, "--out", "reports", cwd=tmp_path)  # no champion: a card drawn anew
    assert report.returncode == 0, report.stderr
    assert "has no alias 'champion'" in report.stdout and "drawing the card from a training run" in report.stdout
    assert "Model card" in (tmp_path / "reports" / "model_card.html").read_text()
