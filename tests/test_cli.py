"""The `leadml` command end to end in subprocesses: outputs, exit codes, one-line errors.

Usage errors run the installed console script (what a user types) for a few cases and
`leadml.cli.app.main(argv)` in-process for the rest.
"""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from leadml.cli.app import main
from leadml.core.errors import LeadDataError
from leadml.core.version import __version__

REPO = Path(__file__).resolve().parents[1]
LEADML = Path(sys.executable).with_name("leadml")  # the console script pip installed next to this Python


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
        "events.parquet",
        "leads.parquet",
        "outcomes.parquet",
        "truth.parquet",
    ]
    assert len(pd.read_parquet(sim_dir / "leads.parquet")) == 1500


def test_validate_prints_a_summary(sim_dir):
    result = leadml(
        "validate",
        "--leads",
        sim_dir / "leads.parquet",
        "--events",
        sim_dir / "events.parquet",
        "--outcomes",
        sim_dir / "outcomes.parquet",
    )
    assert result.returncode == 0, result.stderr
    assert "1,500" in result.stdout and "page_view" in result.stdout and "base rate" in result.stdout


def test_features_without_a_pipeline(sim_dir, tmp_path):
    out = tmp_path / "features.parquet"
    result = leadml(
        "features",
        "--leads",
        sim_dir / "leads.parquet",
        "--events",
        sim_dir / "events.parquet",
        "--as-of",
        "2026-01-01",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    features = pd.read_parquet(out)
    leads = pd.read_parquet(sim_dir / "leads.parquet")
    assert len(features) == (leads["created_at"] <= pd.Timestamp("2026-01-01", tz="UTC")).sum()
    assert {"lead_id", "as_of", "email_open__count_30d", "events__count_90d"} <= set(features.columns)


def _pipeline(tmp_path, sim_dir, **extra):
    config = {
        "name": "cli",
        "data": {
            "source": "tables",
            "leads": str(sim_dir / "leads.parquet"),
            "events": str(sim_dir / "events.parquet"),
            "outcomes": str(sim_dir / "outcomes.parquet"),
        },
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
    assert set(trainset["split"]) <= {"train", "validation", "test", "purged", "gap", "censored"}
    assert list(trainset.columns[:4]) == ["lead_id", "as_of", "split", "converted"]
    result = leadml("features", pipeline, "--as-of", "2026-02-01", "--out", tmp_path / "f.parquet")
    assert result.returncode == 0, result.stderr


def test_rules_score_writes_points_tier_and_breakdown(sim_dir, tmp_path):
    out = tmp_path / "rules.parquet"
    result = leadml(
        "rules",
        "score",
        REPO / "pipelines/rules/seed_points.yaml",
        "--leads",
        sim_dir / "leads.parquet",
        "--events",
        sim_dir / "events.parquet",
        "--as-of",
        "2026-06-01",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    scores = pd.read_parquet(out)
    assert list(scores.columns) == [
        "lead_id",
        "as_of",
        "points",
        "tier",
        "mql_route",
        "breakdown",
        "fit_points",
        "engagement_points",
        "top_route",
        "fit_score",
        "engagement_score",
        "grid_tier",
    ]
    row = scores.sort_values("points").iloc[-1]
    assert sum(item["points"] for item in json.loads(row["breakdown"])) == pytest.approx(row["points"])
    # seed points has engagement rules only (at most 20 + 10 + 25 + 15 + 30 for the content path = 100
    # points) and no fit rule
    assert (scores["engagement_points"] == scores["points"]).all() and (scores["fit_points"] == 0).all()
    expected = (scores["engagement_points"] / 100 * 100).round().astype(int)
    assert (scores["engagement_score"].astype(int) - expected).abs().max() <= 1
    assert scores["fit_score"].isna().all() and scores["grid_tier"].isna().all()  # no fit rules: no fit scale
    # the seed set has no routes: an MQL's route is the one that gave it the most points
    mql = scores["tier"] == "MQL"
    assert mql.any() and scores.loc[mql, "mql_route"].isin(["behaviour", "scenario"]).all()
    assert scores.loc[~mql, "mql_route"].isna().all()


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
        (
            ["rules", "score", "nope.yaml", "--leads", "l.csv", "--as-of", "2026-01-01", "--out", "x.parquet"],
            "nope.yaml",
        ),
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
    pipeline = _pipeline(
        tmp_path,
        sim,
        rules=str(REPO / "pipelines/rules/seed_points.yaml"),
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'runs.db'}", "registered_model": "cli-model"},
        models={"lightgbm": {"n_estimators": 200}},
    )
    env_free = {"cwd": tmp_path}
    first = leadml("train", pipeline, **env_free)
    assert first.returncode == 0, first.stderr
    assert "rules" in first.stdout and "logistic" in first.stdout and "lightgbm" in first.stdout
    assert "registered cli-model version 1 as champion" in first.stdout
    assert "Downloading artifacts" not in first.stdout + first.stderr  # MLflow's progress bars stay off
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
    pipeline = _pipeline(
        tmp_path, sim_dir, rules=str(REPO / "pipelines/rules/seed_points.yaml"), models={"min_positives": 500}
    )
    result = leadml("train", pipeline, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(the rules, scored as a model) is the first champion" in " ".join(result.stdout.split())
    report = leadml("report", pipeline, "--out", "reports", cwd=tmp_path)  # the rules model's own card
    assert report.returncode == 0, report.stderr
    assert "logged with run" in report.stdout
    assert "Cold start: the rules, scored as a model." in (tmp_path / "reports" / "model_card.html").read_text()
    no_model = _pipeline(tmp_path, sim_dir, models={"min_positives": 500})  # no rules either: nothing to register
    result = leadml("train", no_model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no model registered: cold start" in " ".join(result.stdout.split())


# --- usage errors, version, exit codes --------------------------------------------------------------


def installed(*args, **kwargs):
    """Run the installed `leadml` console script, as a user does."""
    return subprocess.run([str(LEADML), *map(str, args)], capture_output=True, text=True, **kwargs)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_mistyped_command_is_one_line_with_the_near_misses():
    result = installed("trian")
    assert result.returncode == 2
    assert result.stdout == ""
    assert (
        result.stderr == "error: no such command 'trian'; did you mean 'train' or 'trainset'? (see 'leadml --help')\n"
    )


@pytest.mark.parametrize(
    "args, error",
    [
        (["score"], "error: missing argument 'pipeline'"),
        (
            ["score", "p.yaml", "--as-off", "2026-01-01", "--out", "s.parquet"],
            "error: no such option: --as-off; did you mean --as-of?",
        ),
    ],
    ids=["missing argument", "mistyped option"],
)
def test_usage_errors_of_the_installed_command(args, error):
    result = installed(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = lines(result.stderr)
    assert line == f"{error} (usage: leadml score [OPTIONS] {{pipeline}}; see 'leadml score --help')"


@pytest.mark.parametrize(
    "command", [[str(LEADML)], [sys.executable, "-m", "leadml"]], ids=["leadml", "python -m leadml"]
)
def test_version(command):
    result = subprocess.run([*command, "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"leadml {__version__}\n"
    assert __version__ == importlib.metadata.version("leadml")  # the installed metadata reads the same place


def test_python_m_leadml_passes_the_exit_code_on():
    result = subprocess.run([sys.executable, "-m", "leadml", "trian"], capture_output=True, text=True)
    assert result.returncode == 2
    assert lines(result.stderr)[0].startswith("error: no such command 'trian'")


def test_no_spinner_in_a_pipe_even_when_colour_is_forced(tmp_path):
    result = installed("simulate", "--leads", 300, "--out", tmp_path, env={**os.environ, "FORCE_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert lines(result.stdout) == [
        f"wrote {name:<9} {tmp_path / name}.parquet" for name in ("leads", "events", "outcomes", "truth")
    ]


@pytest.mark.parametrize(
    "argv, error, hint",
    [
        (
            ["rules", "lern"],
            "error: no such command 'lern'; did you mean 'learn'?",
            "(see 'leadml rules --help')",
        ),
        (["--nope"], "error: no such option: --nope", "(see 'leadml --help')"),
        (
            ["simulate", "--out", "sim", "--leads", "many"],
            "error: invalid value for '--leads': ",
            "(usage: leadml simulate [OPTIONS]; see 'leadml simulate --help')",
        ),
        (
            ["simulate", "--leads", "10"],
            "error: missing option '--out'",
            "(usage: leadml simulate [OPTIONS]; see 'leadml simulate --help')",
        ),
        (
            ["train", "a.yaml", "b.yaml"],
            "error: got unexpected extra argument",
            "(usage: leadml train [OPTIONS] {pipeline}; see 'leadml train --help')",
        ),
        (
            ["score", "p.yaml", "--out", "s.parquet", "--as-of"],
            "error: option '--as-of' requires an argument",
            "(see 'leadml --help')",
        ),
    ],
    ids=[
        "mistyped subcommand",
        "unknown root option",
        "not an integer",
        "missing option",
        "extra argument",
        "option without its value",
    ],
)
def test_usage_errors_are_one_line_and_a_hint(argv, error, hint, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    (line,) = lines(err)  # one line, with the usage and where to find help
    assert line.startswith(error) and line.endswith(hint)


@pytest.mark.parametrize(
    "argv, listed",
    [([], ["simulate", "train", "score", "rules"]), (["rules"], ["score", "learn"])],
    ids=["leadml", "leadml rules"],
)
def test_no_command_shows_the_help_and_exits_2(argv, listed, capsys):
    assert main(argv) == 2  # click's convention: nothing was done, the help is the answer
    out, err = capsys.readouterr()
    assert "Usage: leadml" in out and err == ""
    for command in listed:
        assert command in out


def test_help_and_version_in_process_exit_0(capsys):
    assert main(["--help"]) == 0
    assert "Usage: leadml" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"leadml {__version__}\n"


def test_a_leadml_error_is_one_line_as_written(monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise LeadDataError("leads.csv: column 'lead_id' has 1 duplicated ids (first rows: [lead_id='a'])")

    monkeypatch.setattr("leadml.cli.commands.run_validate", fail)
    assert main(["validate", "--leads", "leads.csv"]) == 1
    assert capsys.readouterr().err == (
        "error: leads.csv: column 'lead_id' has 1 duplicated ids (first rows: [lead_id='a'])\n"
    )
    with pytest.raises(LeadDataError, match="duplicated ids"):  # --debug: the traceback, from the error itself
        main(["--debug", "validate", "--leads", "leads.csv"])


def test_interrupted_exits_130(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("leadml.cli.commands.run_validate", interrupted)
    assert main(["validate", "--leads", "leads.csv"]) == 130
    assert capsys.readouterr().err == "aborted\n"
