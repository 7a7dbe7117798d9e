"""`leadml demo`: the whole story on simulated data, into one folder.

Each step calls the public API, so the demo doubles as an end-to-end check of the toolkit.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from leadml.core.config import load_pipeline, parse_pipeline
from leadml.core.paths import pipelines_dir
from leadml.data.io import write_table
from leadml.data.sources import PipelineData
from leadml.features.build import build_trainset

HISTORY_DAYS, HISTORY_STEP = 21, 3  # the demo's score history: every third day of the last three weeks


def run_demo_story(
    folder: Path, *, n_leads: int = 20_000, seed: int = 7, console: Console | None = None
) -> dict[str, Path]:
    """Simulate, validate, build the training set, score the rules baseline, train and register a model.

    Returns the paths written. MLflow tracks into ``folder/mlruns.db`` (artifacts beside it) unless
    ``MLFLOW_TRACKING_URI`` points elsewhere.
    """
    from leadml.cli.commands import load_tables, run_simulate, show_validation, spinner
    from leadml.modeling.model_env import start_wheel_build
    from leadml.rules.ruleset import RuleSet

    start_wheel_build()  # the registered model carries leadml's wheel: a cold build runs beside steps 1-5
    console = console or Console()
    folder = Path(folder)
    data_dir = folder / "data"
    console.rule("1. simulate a CRM + web-analytics export")
    paths = run_simulate(data_dir, n_leads, seed, 0.08, console)
    console.rule("2. validate it against the data contract")
    leads, events, outcomes, problems = load_tables(paths["leads"], paths["events"], paths["outcomes"], False)
    show_validation(leads, events, outcomes, problems, console)  # the tables read once: validated and trained on
    assert events is not None and outcomes is not None  # both paths were given
    data = PipelineData(leads=leads, events=events, outcomes=outcomes)
    console.rule("3. point-in-time training set")
    shipped = load_pipeline(pipelines_dir() / "demo.yaml").resolved_dict()
    shipped["mlflow"]["tracking_uri"] = f"sqlite:///{(folder / 'mlruns.db').resolve()}"
    shipped["history"]["path"] = str((folder / "score_history").resolve())  # every run of the demo, one history
    config = parse_pipeline(shipped, source=str(pipelines_dir() / "demo.yaml"), base=pipelines_dir())
    from leadml.modeling.registry import tracking_uri
    from leadml.modeling.tracking_store import start_store_creation

    start_store_creation(tracking_uri(config))  # MLflow's new database made by a child process, beside steps 3-5
    with spinner(console, "building snapshots and features"):
        trainset = build_trainset(config, data)
    written = dict(paths)
    written["trainset"] = write_table(trainset.frame, folder / "trainset.parquet")
    counts = trainset.frame["split"].value_counts().to_dict()
    console.print(
        f"{len(trainset.frame):,} snapshots x {len(trainset.feature_names)} features "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))}) -> {written['trainset']}"
    )
    console.rule("4. the rules baseline (seed points) on today's open leads")
    from leadml.features.scoring_set import open_lead_snapshots

    assert config.rules is not None  # the demo pipeline ships with its rules file
    ruleset = RuleSet.load(config.rules)
    as_of = events["timestamp"].max().ceil("D")
    scores = ruleset.score_snapshots(open_lead_snapshots(data, as_of), leads, events)
    written["rules_scores"] = write_table(scores, folder / "rules_scores.parquet")
    tiers = scores["tier"].value_counts().to_dict()
    console.print(
        f"rules tiers of {len(scores):,} open leads at {as_of:%Y-%m-%d}: "
        + ", ".join(f"{k} {v:,}" for k, v in tiers.items())
    )
    console.rule("5. rules vs logistic regression vs LightGBM, tracked in MLflow")
    from leadml.cli.commands import comparison_table
    from leadml.jobs.train import run_training

    with spinner(console, "training") as status:
        run = run_training(config, trainset=trainset, progress=lambda message: status.update(message))  # built once
    console.print(comparison_table(run.result, "rules vs models on the later test snapshots (95 % intervals)"))
    console.print(f"chosen: {run.result.chosen} ({run.result.reason})")
    if run.outcome is not None and run.outcome.version:
        state = "champion" if run.outcome.promoted else "challenger"
        console.print(f"registered {run.outcome.registered_model} version {run.outcome.version} as {state}")
    written["mlflow"] = folder / "mlruns.db"
    console.rule("6. score today's open leads with the champion, with reasons")
    from leadml.data.io import read_table
    from leadml.jobs.score import ScoreOptions, score_batch

    outcome = run.outcome
    model_uri = f"models:/{outcome.registered_model}/{outcome.version}" if outcome and outcome.version else None
    if model_uri is not None:
        earlier = folder / "earlier_scores"
        days = [as_of - pd.Timedelta(days=d) for d in range(HISTORY_DAYS, 0, -HISTORY_STEP)]
        nightly = ScoreOptions(reasons=False, drift=False, progress=False)  # no reasons needed for the history
        with spinner(console, f"scoring {len(days)} earlier days into the score history") as status:
            for day in days:  # the nightly job of the past weeks
                status.update(f"scoring the open leads of {day:%Y-%m-%d} into the score history")
                score_batch(config, day, earlier / f"scores-{day:%Y-%m-%d}.parquet", nightly, model_uri=model_uri)
        summary = score_batch(config, as_of, folder / "scores.parquet", model_uri=model_uri)
        written["scores"] = summary.out
        if summary.history_path is not None:
            written["history"] = summary.history_path
        console.print(f"{summary.rows:,} open leads scored, {summary.mql:,} MQL -> {summary.out}")
        _print_hand_offs(read_table(summary.out), console)
    console.rule("7. reports for the data scientist and for sales")
    reports = folder / "reports"
    from leadml.jobs.report import model_card

    # the card logged with the registered version; else (no version registered) the champion's, or
    # one drawn from this run
    card = model_card(config, model_uri, reports / "model_card.html", training=run, title="Model card: leadml demo")
    written["model_card"] = card.path
    console.print(card.message)
    if "scores" in written:
        from leadml.jobs.sales_report import sales_report

        # the champion's waterfall charts of the top leads, the trend from the score history
        with spinner(console, "the sales report") as status:
            sales = sales_report(config, written["scores"], reports / "sales.html", max_leads=5000,
                                 title="Leads to call: leadml demo", progress=status.update)  # fmt: skip
        written["sales"] = sales.path
        for note in sales.notes:
            console.print(f"note: {note}")
    console.rule("done: where everything is")
    for name, path in written.items():
        console.print(f"{name:<13} {path}")
    console.print("\nNext:")
    console.print(
        f"  mlflow ui --backend-store-uri sqlite:///{(folder / 'mlruns.db').resolve()}   # the runs and the registered model"
    )
    console.print(f"  open {reports / 'model_card.html'} and {reports / 'sales.html'}")
    console.print(
        "  leadml train pipelines/demo.yaml && leadml score pipelines/demo.yaml --as-of 2026-06-01 --out scores.parquet"
    )
    console.print(
        f"  leadml history pipelines/demo.yaml --store {written.get('history', 'score_history')}   # warming up, stuck MQLs"
    )
    return written


def _print_hand_offs(scores: pd.DataFrame, console: Console, top: int = 3) -> None:
    """The first hand-offs a rep would read, from the best-scored MQLs."""
    from leadml.explain.report.sales_history import hand_off_line

    mqls = scores[scores["is_mql"]]
    if "mql_route" in mqls.columns and len(mqls):
        routes = mqls["mql_route"].fillna("none").value_counts()
        console.print(
            "MQLs by route (the highest sub-score; +scenario: the whole content path): "
            + ", ".join(f"{name} {count:,}" for name, count in routes.items())
        )
    best = mqls.sort_values("probability", ascending=False, kind="stable").head(top)
    for row in best.to_dict("records"):
        reasons = [row[c] for c in ("reason_1", "reason_2") if isinstance(row.get(c), str)]
        line = hand_off_line(row, reasons)
        console.print(f"  {row['lead_id']} ({row['grid_tier'] or '?'}, score {row['score']}): {line}", soft_wrap=True)
