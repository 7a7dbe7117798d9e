"""What each CLI command does: call the API, print a short summary with rich.

Kept apart from ``cli.py`` (argument parsing only) so that every command is a plain function a test
or a notebook can call; the work itself lives in the API modules.
"""

from __future__ import annotations

import sys
import warnings
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from leadml.data import contract
from leadml.data.io import write_table
from leadml.features.snapshots import to_utc

_NO_SPINNER = SimpleNamespace(update=lambda *args, **kwargs: None)
NO_EVENTS_NOTE = "no events table: training on profile features only"


def spinner(console: Console, message: str) -> AbstractContextManager:
    """A spinner while work runs, only when both the console and stderr are terminals: nothing in a pipe
    or a CI log (rich alone would draw it there under FORCE_COLOR), like the scoring job's progress bar."""
    if getattr(console.file, "isatty", lambda: False)() and sys.stderr.isatty():
        return console.status(message)
    return nullcontext(_NO_SPINNER)


def run_simulate(out: Path, n_leads: int, seed: int, base_rate: float, console: Console) -> dict[str, Path]:
    from leadml.data.simulate.world import write_simulation

    with spinner(console, f"simulating {n_leads:,} leads (seed {seed})"):
        paths = write_simulation(out, n_leads, seed, base_rate=base_rate)
    for name, path in paths.items():
        console.print(f"wrote {name:<9} {path}")
    return paths


def summarize_tables(leads: pd.DataFrame, events: pd.DataFrame | None, outcomes: pd.DataFrame | None) -> dict[str, Any]:
    """The figures `leadml validate` prints: rows, date range, base rate, event types."""
    summary: dict[str, Any] = {
        "leads": len(leads),
        "created_from": leads["created_at"].min(),
        "created_to": leads["created_at"].max(),
    }
    if events is not None:
        summary["events"] = len(events)
        summary["events_from"] = events["timestamp"].min() if len(events) else None
        summary["events_to"] = events["timestamp"].max() if len(events) else None
        summary["event_types"] = events["event_type"].astype(str).value_counts().sort_index().to_dict()
    if outcomes is not None:
        outcomes = outcomes.loc[(outcomes["outcome"] >= 0).to_numpy()]  # decided deals (not open ones kept for stages)
        summary["closed"] = len(outcomes)
        summary["won"] = int(outcomes["outcome"].sum())
        summary["base_rate_closed"] = float(outcomes["outcome"].mean())
        summary["open"] = int(len(leads) - leads["lead_id"].isin(outcomes["lead_id"]).sum())
    return summary


def load_tables(
    leads_path: Path, events_path: Path | None, outcomes_path: Path | None, drop_orphans: bool
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None, list[str]]:
    """Load and validate the tables given on a command line; warnings come back as problems."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", contract.LeadDataWarning)
        leads = contract.load_leads(leads_path)
        events = (
            contract.load_events(events_path, leads=leads, on_orphans="drop" if drop_orphans else "error")
            if events_path
            else None
        )
        outcomes = contract.load_outcomes(outcomes_path, leads=leads) if outcomes_path else None
    problems = [str(w.message) for w in caught if issubclass(w.category, contract.LeadDataWarning)]
    return leads, events, outcomes, problems


def run_validate(
    leads_path: Path, events_path: Path | None, outcomes_path: Path | None, drop_orphans: bool, console: Console
) -> dict[str, object]:
    leads, events, outcomes, problems = load_tables(leads_path, events_path, outcomes_path, drop_orphans)
    return show_validation(leads, events, outcomes, problems, console)


def show_validation(
    leads: pd.DataFrame, events: pd.DataFrame | None, outcomes: pd.DataFrame | None, problems: list[str],
    console: Console,
) -> dict[str, object]:  # fmt: skip
    """Print what `leadml validate` prints of tables loaded already (the demo trains on the same frames)."""
    summary = summarize_tables(leads, events, outcomes)
    table = Table(title="leadml validate: the tables follow the data contract", show_header=False)
    table.add_row(
        "leads",
        f"{summary['leads']:,} (created {summary['created_from']:%Y-%m-%d} .. {summary['created_to']:%Y-%m-%d})",
    )
    if events is not None:
        table.add_row(
            "events", f"{summary['events']:,} ({summary['events_from']:%Y-%m-%d} .. {summary['events_to']:%Y-%m-%d})"
        )
        types = ", ".join(f"{k} {v:,}" for k, v in summary["event_types"].items())
        table.add_row("event types", types)
    if outcomes is not None:
        table.add_row(
            "outcomes",
            f"{summary['closed']:,} closed, {summary['won']:,} won "
            f"(base rate {summary['base_rate_closed']:.1%} of closed), {summary['open']:,} open",
        )
    table.add_row("problems", f"{len(problems)} (listed below)" if problems else "none")
    console.print(table)
    for problem in problems:
        console.print(f"[yellow]problem:[/yellow] {problem}", soft_wrap=True)
    summary["problems"] = problems
    return summary


def has_no_events(config) -> bool:
    """True for three tables without an events table: the models see the profile features only."""
    return config.data.source == "tables" and config.data.events is None


def run_validate_pipeline(pipeline: Path, console: Console) -> dict[str, Any]:
    """`leadml validate PIPELINE`: the pipeline's data read exactly as `leadml train` reads it, summed up."""
    from leadml.core.config import load_pipeline
    from leadml.data.sources import load_pipeline_data

    config = load_pipeline(pipeline)
    with spinner(console, "reading the data as training reads it"), warnings.catch_warnings():
        warnings.simplefilter("ignore", contract.LeadDataWarning)  # kept in data.problems, listed below
        data = load_pipeline_data(config.data, need_outcomes=False)
    table = Table(title=f"leadml validate {pipeline}: the data as `leadml train` reads it", show_header=False)
    if data.flat is not None:
        flat = data.flat
        summary: dict[str, Any] = {"rows": len(flat), "won": int(flat[contract.LABEL_COLUMN].sum())}
        summary["base_rate"] = summary["won"] / max(len(flat), 1)
        table.add_row("flat table", f"{summary['rows']:,} rows x {flat.shape[1] - 2} columns")
        table.add_row("label", f"{summary['won']:,} converted (base rate {summary['base_rate']:.1%})")
    else:
        assert data.leads is not None  # three-table data always has leads
        no_events = has_no_events(config)
        summary = summarize_tables(data.leads, None if no_events else data.events, data.outcomes)
        summary.update(data.counted())
        _table_rows(table, summary, no_events, has_outcomes=data.outcomes is not None)
    table.add_row("problems", f"{len(data.problems)} (listed below)" if data.problems else "none")
    console.print(table)
    for problem in data.problems:
        console.print(Text.assemble(("problem:", "yellow"), f" {problem}"), soft_wrap=True)  # [brackets] as written
    if data.flat is None and data.outcomes is None:
        console.print("note: no outcomes table: `leadml train` needs data.outcomes (the closed deals)")
    summary["problems"] = list(data.problems)
    return summary


def _table_rows(table: Table, summary: dict[str, Any], no_events: bool, *, has_outcomes: bool) -> None:
    """The rows of `leadml validate PIPELINE` for three-table data."""
    table.add_row(
        "leads",
        f"{summary['leads']:,} (created {summary['created_from']:%Y-%m-%d} .. {summary['created_to']:%Y-%m-%d})",
    )
    if no_events:
        table.add_row("events", f"none: {NO_EVENTS_NOTE}")
    else:
        span = f" ({summary['events_from']:%Y-%m-%d} .. {summary['events_to']:%Y-%m-%d})" if summary["events"] else ""
        table.add_row("events", f"{summary['events']:,}{span}")
        table.add_row("event types", ", ".join(f"{k} {v:,}" for k, v in summary["event_types"].items()) or "none")
        table.add_row("orphan events dropped", f"{summary['orphan_events']:,}")
        table.add_row("events before their lead", f"{summary['early_events']:,} (kept)")
    if has_outcomes:
        table.add_row(
            "outcomes",
            f"{summary['closed']:,} closed, {summary['won']:,} won (base rate {summary['base_rate_closed']:.1%} "
            f"of closed, {summary['won'] / max(summary['leads'], 1):.1%} of leads), {summary['open']:,} leads open",
        )
        table.add_row("open deals censored", f"{summary['open_deals']:,} (left out: their leads stay open)")
        table.add_row("early outcomes dropped", f"{summary['early_outcomes']:,} (closed before the lead was created)")
    else:
        table.add_row("outcomes", "none (`leadml train` needs data.outcomes)")


def run_features(
    pipeline: Path | None,
    leads_path: Path | None,
    events_path: Path | None,
    as_of: str,
    out: Path,
    drop_orphans: bool,
    console: Console,
    *,
    engine: str = "pandas",
    spark_master: str | None = None,
) -> pd.DataFrame | Path:
    from leadml.features.scoring_set import features_at
    from leadml.jobs.engines import check_engine

    if check_engine(engine, option="--engine") == "spark":
        from leadml.jobs.spark import spark_features

        folder = spark_features(pipeline, leads_path, events_path, as_of, out, spark_master=spark_master)
        console.print(f"wrote features of the open leads at {as_of} to {folder} (Spark)")
        return folder
    frame = features_at(pipeline, leads_path, events_path, to_utc(as_of), drop_orphans=drop_orphans)
    write_table(frame, out)
    console.print(f"wrote features of {len(frame):,} open leads x {frame.shape[1] - 2} features at {as_of} to {out}")
    return frame


def run_trainset(pipeline: Path, out: Path, console: Console) -> pd.DataFrame:
    from leadml.core.config import load_pipeline
    from leadml.features.build import build_trainset

    config = load_pipeline(pipeline)
    with spinner(console, "building snapshots and features"):
        trainset = build_trainset(config)
    write_table(trainset.frame, out)
    counts = trainset.frame["split"].value_counts().to_dict()
    console.print(
        f"wrote {len(trainset.frame):,} snapshot rows x {len(trainset.feature_names)} features to {out} "
        f"(splits: {', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))})"
    )
    return trainset.frame


def run_rules_score(
    rules_path: Path,
    leads_path: Path,
    events_path: Path | None,
    as_of: str,
    out: Path,
    drop_orphans: bool,
    console: Console,
) -> pd.DataFrame:
    from leadml.rules.ruleset import RuleSet

    ruleset = RuleSet.load(rules_path)
    leads, events, _, problems = load_tables(leads_path, events_path, None, drop_orphans)
    for problem in problems:
        console.print(f"[yellow]warning:[/yellow] {problem}")
    scores = ruleset.score(leads, events, as_of, subscores=True)  # leads created after as_of left out
    write_table(scores, out)
    tiers = scores["tier"].value_counts().to_dict()
    console.print(
        f"scored {len(scores):,} leads created by {as_of} with {rules_path.name}: "
        + ", ".join(f"{k} {v:,}" for k, v in tiers.items())
        + f"; wrote {out}"
    )
    return scores


def run_rules_learn(pipeline: Path, out: Path, console: Console, *, paths: bool = True) -> dict:
    import yaml
    from rich.markup import escape

    from leadml.core.config import load_pipeline
    from leadml.data.io import write_text
    from leadml.rules.scorecard import learn_rules_for_pipeline

    config = load_pipeline(pipeline)
    with spinner(console, "learning points (and paths) from the training snapshots"):
        learned = learn_rules_for_pipeline(config, paths=paths)
    write_text(yaml.safe_dump(learned.rules, sort_keys=False, allow_unicode=True), out)
    table = Table(
        title=f"learned points ({learned.n_conditions} candidate conditions, validation ROC-AUC {learned.validation_auc:.3f})"
    )
    table.add_column("rule")
    table.add_column("points", justify="right")
    for rule in learned.rules["rules"]:
        if "scenario" not in rule:  # the learned paths have their own table
            table.add_row(escape(rule["name"]), str(rule["points"]))
    console.print(table)
    if learned.paths is not None:
        console.print(learned_paths_table(learned.paths))
    console.print(f"tiers: {learned.rules['tiers']}; wrote {out}")
    return learned.rules


def learned_paths_table(paths) -> Table:
    """The learned paths: support, conversion with and without, lift with its 95 % interval, points."""
    from rich.markup import escape  # ``page_view[pricing]`` is not markup

    table = Table(title=f"learned paths ({len(paths)}; scenario rules after the points, 0 points: not written)")
    for header in ("path", "leads (snapshots)", "conversion with", "without", "lift [95 % interval]", "points"):
        table.add_column(header, justify="left" if header == "path" else "right")
    for row in paths.itertuples(index=False):
        table.add_row(
            escape(row.path), f"{row.leads} ({row.snapshots})", f"{row.conversion_with:.1%}", f"{row.conversion_without:.1%}",
            f"{row.lift:.2f} [{row.lift_low:.2f}, {row.lift_high:.2f}]", str(row.points),
        )  # fmt: skip
    return table


def comparison_table(result, title: str = "test snapshots") -> Table:
    """Rules vs models with 95 % intervals, as a rich table."""
    metrics = ["roc_auc", "pr_auc", "brier", "ece", "lift_top10", "precision_at_mql", "recall_at_mql"]
    frame = result.metrics
    table = Table(title=title)
    table.add_column("model")
    shown = [m for m in metrics if m in set(frame["metric"])]
    headers = {
        "roc_auc": "ROC-AUC",
        "pr_auc": "PR-AUC",
        "brier": "Brier",
        "ece": "ECE",
        "lift_top10": "lift@10%",
        "precision_at_mql": "prec@MQL",
        "recall_at_mql": "rec@MQL",
    }
    for metric in shown:
        table.add_column(headers.get(metric, metric), justify="right")
    for model in frame["model"].drop_duplicates():
        cells = []
        for metric in shown:
            row = frame.loc[(frame["model"] == model) & (frame["metric"] == metric)].iloc[0]
            cells.append(f"{row['value']:.3f}\n[{row['low']:.3f}, {row['high']:.3f}]")
        mark = " (chosen)" if model == result.chosen else ""
        table.add_row(model + mark, *cells)
    return table


def run_train(pipeline: Path, promote: str, console: Console, *, trainset: Path | None = None):
    from leadml.core.config import load_pipeline
    from leadml.core.errors import ConfigError
    from leadml.jobs.train import run_training
    from leadml.jobs.trainset_file import load_trainset

    if promote not in ("auto", "never"):
        raise ConfigError(f"--promote must be auto or never, got {promote!r}")
    config = load_pipeline(pipeline)
    if has_no_events(config):
        console.print(f"note: {NO_EVENTS_NOTE}")
    from leadml.modeling.model_env import start_wheel_build

    start_wheel_build()  # the model carries leadml's wheel: a cold build runs beside the training
    with spinner(console, "training") as status:
        given = None
        if trainset is not None:
            status.update(f"reading {trainset} and refitting its feature set on the pipeline's data")
            given = load_trainset(config, trainset)
        run = run_training(config, trainset=given, promote=promote, progress=lambda message: status.update(message))
    result, outcome = run.result, run.outcome
    counts = ", ".join(f"{r.split} {r.rows:,}" for r in result.counts.itertuples())
    console.print(f"snapshots: {counts}")
    if not result.metrics.empty:
        console.print(
            comparison_table(result, f"{config.name}: rules vs models on the test snapshots (95 % intervals)")
        )
    console.print(f"chosen: {result.chosen} ({result.reason})")
    for note in result.notes:
        console.print(f"note: {note}")
    if outcome is not None:
        console.print(f"MLflow run {outcome.run_id} at {outcome.tracking_uri} (experiment {outcome.experiment_id})")
        if outcome.version:
            state = "champion" if outcome.promoted else "challenger"
            console.print(
                f"registered {outcome.registered_model} version {outcome.version} as {state}: {outcome.reason}"
            )
        else:
            console.print(outcome.reason)
    return run


def run_promote(pipeline: Path, version: int, console: Console) -> None:
    from leadml.core.config import load_pipeline
    from leadml.modeling.registry import promote_version

    config = load_pipeline(pipeline)
    previous = promote_version(config, version)
    before = f" (was version {previous})" if previous else ""
    console.print(f"{config.mlflow.registered_model} version {version} is now the champion{before}")


def run_score(
    pipeline: Path,
    as_of: str,
    out: Path,
    model: str | None,
    engine: str,
    spark_master: str | None,
    reasons: bool | str,
    console: Console,
    *,
    subscores: bool = True,
    history: bool | None = None,
    format: str = "leadml",
):
    from leadml.core.config import load_pipeline
    from leadml.jobs.engines import check_engine
    from leadml.jobs.output import crm_scores_path, write_crm_scores
    from leadml.jobs.score import ScoreOptions, score_batch

    check_engine(engine, option="--engine")  # before the pipeline is read
    config = load_pipeline(pipeline)
    options = ScoreOptions(reasons=True if reasons == "default" else reasons, subscores=subscores, history=history,
                           progress=None)  # fmt: skip
    scores = out if format == "leadml" else crm_scores_path(out)  # a CRM file is made from the full scores
    summary = score_batch(config, as_of, scores, options, model_uri=model, engine=engine, spark_master=spark_master)
    tiers = ", ".join(f"{k} {v:,}" for k, v in summary.tiers.items())
    console.print(
        f"scored {summary.rows:,} open leads at {summary.as_of:%Y-%m-%d %H:%M} with {summary.model_name} "
        f"version {summary.model_version} in {summary.seconds:.1f} s: {summary.mql:,} MQL ({tiers}); wrote {summary.out}"
    )
    if summary.drift_path is not None:
        console.print(f"drift table: {summary.drift_path}")
    if summary.history_path is not None:
        console.print(f"score history: {summary.history_path}")
    for note in summary.notes:
        console.print(f"note: {note}")
    if has_no_events(config):
        console.print("note: no events table: scoring on profile features only")
    if format != "leadml":
        rows = write_crm_scores(summary.out, out, format)
        console.print(f"{format} import file: {rows:,} rows to {out}")
    return summary


def run_history(pipeline: Path, lead: str | None, store: Path | None, as_of: str | None, console: Console):
    """Print one lead's history, or the warming-up and stuck lists of the last run."""
    from leadml.core.config import load_pipeline
    from leadml.explain.trends import lead_history, stuck_mqls, warming_up
    from leadml.jobs.handoff import current_handoff, load_acceptance, run_counts
    from leadml.jobs.history import history_path, load_history

    config = load_pipeline(pipeline)
    store = store or history_path(config, Path("scores.parquet"))
    settings = config.history
    if lead is not None:
        history = load_history(store, lead_ids=[lead], until=as_of)
        if history.empty:
            lead_history(load_history(store, until=as_of), lead)  # raises, naming leads the history knows
        events = _lead_events(config, lead)
        rows = lead_history(history, lead, events)
        table = Table(title=f"lead {lead}: score over time ({store})")
        for column in (
            "as_of",
            "score",
            "change",
            "week",
            "tier",
            "route",
            "fit",
            "engagement",
            "grid",
            "events since the run before",
        ):
            table.add_column(column)
        for row in rows.itertuples(index=False):
            table.add_row(f"{row.as_of:%Y-%m-%d %H:%M}", str(row.score), _signed(row.change), _signed(row.week_change),
                          str(row.tier), _text(getattr(row, "mql_route", None)),
                          _text(getattr(row, "fit_score", None)), _text(getattr(row, "engagement_score", None)),
                          _text(getattr(row, "grid_tier", None)), str(getattr(row, "events", "")))  # fmt: skip
        console.print(table)
        return rows
    history = load_history(store, until=as_of)
    known = load_acceptance(config, as_of if as_of is not None else history["as_of"].max())
    accepted = known["sql_at"] if known is not None else None
    rising = warming_up(history, as_of, days=settings.warming_days, top=settings.top)
    stuck = stuck_mqls(history, as_of, days=settings.stuck_days, points=settings.stuck_points, accepted=accepted)
    table = Table(title=f"warming up: biggest score rises over {settings.warming_days} days")
    for column in ("lead", "score", "before", "change", "tier"):
        table.add_column(column)
    for row in rising.itertuples(index=False):
        table.add_row(str(row.lead_id), str(row.score), str(row.score_before), _signed(row.change), str(row.tier))
    console.print(table)
    table = Table(title=f"stuck: MQLs for more than {settings.stuck_days} days, not accepted by sales, "
                        f"engagement up <= {settings.stuck_points} points")  # fmt: skip
    for column in ("lead", "MQL since", "days waiting", "score", "rise"):
        table.add_column(column)
    for row in stuck.head(settings.top).itertuples(index=False):
        table.add_row(str(row.lead_id), f"{row.mql_since:%Y-%m-%d}", f"{row.days_waiting:g}", str(row.score),
                      _signed(row.rise))  # fmt: skip
    console.print(table)
    waiting = current_handoff(history, as_of, known)
    table = Table(title=f"the MQLs of the last run: {len(waiting):,}, {int(waiting['overdue'].sum()):,} overdue")
    for column in ("lead", "tier", "route", "MQL since", "due", "overdue"):
        table.add_column(column)
    for row in waiting.head(settings.top).itertuples(index=False):
        table.add_row(str(row.lead_id), str(row.tier), _text(getattr(row, "mql_route", None)), _when(row.mql_since),
                      _when(row.due_at),
                      "yes" if row.overdue else "")  # fmt: skip
    console.print(table)
    console.print(_counts_table("hand-off per run", run_counts(history, known), "as_of"))
    return rising, stuck


def _when(stamp) -> str:
    return "" if stamp is None or pd.isna(stamp) else f"{pd.Timestamp(stamp):%Y-%m-%d %H:%M}"


def _counts_table(title: str, counts: pd.DataFrame, first: str) -> Table:
    """Per-run or per-week hand-off counts; the columns the outcomes do not give stay empty."""
    table = Table(title=title)
    shown = [first, *(c for c in ("runs", "new", "planned", "open", "accepted", "rejected", "overdue", "breaches",
                                 "median_hours") if c in counts.columns)]  # fmt: skip
    for column in shown:
        table.add_column(column.replace("_", " "), justify="left" if column == first else "right")
    for row in counts.itertuples(index=False):
        cells = [f"{getattr(row, first):%Y-%m-%d}"]
        for column in shown[1:]:
            value = getattr(row, column)
            cells.append("" if value is None or pd.isna(value) else
                         f"{value:.1f}" if column == "median_hours" else f"{int(value):,}")  # fmt: skip
        table.add_row(*cells)
    return table


def run_sla(pipeline: Path, store: Path | None, as_of: str | None, console: Console):
    """`leadml sla`: the hand-off per week from the score history (breaches counted once per MQL spell)."""
    from leadml.core.config import load_pipeline
    from leadml.jobs.handoff import sla_report

    config = load_pipeline(pipeline)
    report = sla_report(config, store, as_of)
    console.print(_counts_table(f"{config.name}: hand-off to sales per week ({report.store})", report.weeks, "week"))
    if not report.outcomes_known:
        console.print("note: the outcomes carry no sql_at or lost deals: accepted and rejected are unknown")
    console.print(f"MQLs waiting now: {len(report.current):,}, overdue {int(report.current['overdue'].sum()):,}")
    return report


def _lead_events(config, lead: str) -> pd.DataFrame | None:
    """The lead's events from the pipeline's data (None for flat data or when the data cannot be read)."""
    if config.is_flat:
        return None
    from leadml.data.sources import load_pipeline_data

    events = load_pipeline_data(config.data, need_outcomes=False).events
    return events[events["lead_id"] == lead] if events is not None else None


def _signed(value) -> str:
    return "" if value is None or pd.isna(value) else f"{int(value):+d}"


def _text(value) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def run_monitor(pipeline: Path, scores: Path, model: str | None, console: Console) -> pd.DataFrame:
    from leadml.core.config import load_pipeline
    from leadml.jobs.drift import monitor_scores

    drift = monitor_scores(load_pipeline(pipeline), scores, model_uri=model)
    table = Table(title=f"drift of {scores.name} against the model's training snapshots (PSI; > 0.2 drifted)")
    for column in drift.columns[:4]:
        table.add_column(str(column))
    for row in drift.head(15).itertuples(index=False):
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row[:4]])
    console.print(table)
    return drift


def run_report(pipeline: Path, scores_path: Path | None, out: Path, max_leads: int, console: Console,
               model_uri: str | None = None, waterfalls: int = 200) -> dict[str, Path]:  # fmt: skip
    """The model card is the one logged with the model's training run (the champion by default): it
    describes the version that serves, whatever the data has become since. A model trained before
    cards were logged gets one from a training run without logging (same data, config and seed give
    the same model; the command says so). The sales report of ``scores_path`` shows the leads'
    display columns, their trend from the score history, and waterfall charts of the top leads."""
    from leadml.core.config import load_pipeline
    from leadml.jobs.report import model_card
    from leadml.jobs.sales_report import read_scores, sales_report

    config = load_pipeline(pipeline)
    # read and checked before any work: a bad scores file must not cost a training run
    scores = read_scores(scores_path) if scores_path is not None else None
    with spinner(console, "the model card") as status:
        card = model_card(config, model_uri, Path(out) / "model_card.html", progress=status.update)
    console.print(card.message)
    written = {"model_card": card.path}
    if scores is not None:
        with spinner(console, "the sales report") as status:
            # the charts are drawn by the model that wrote the scores (their model_name and version)
            sales = sales_report(config, scores, Path(out) / "sales.html", max_leads=max_leads,
                                 waterfalls=waterfalls, progress=status.update)  # fmt: skip
        for note in sales.notes:
            console.print(f"note: {note}")
        written["sales"] = sales.path
    for name, path in written.items():
        console.print(f"wrote {name:<10} {path}")
    return written


def run_funnel(pipeline: Path, out: Path, stuck_days: float | None, console: Console, *, as_of: str | None = None,
               store: Path | None = None) -> dict:  # fmt: skip
    """The funnel as known at ``as_of`` (default: the data's end); its stuck MQLs come from the score
    history when there is one (:func:`leadml.jobs.handoff.history_stuck`)."""
    from leadml.core.config import load_pipeline
    from leadml.core.errors import ConfigError
    from leadml.data.sources import load_pipeline_data
    from leadml.explain.report.funnel import write_funnel_report
    from leadml.features.snapshots import to_utc
    from leadml.jobs.handoff import history_stuck

    config = load_pipeline(pipeline)
    if config.is_flat:
        raise ConfigError(f"{config.name}: the funnel needs leads and outcomes with stage times, not a flat table")
    when = to_utc(as_of) if as_of is not None else None  # a bad date fails before the data is read
    data = load_pipeline_data(config.data)
    when = when if when is not None else data.data_end
    days = config.history.stuck_days if stuck_days is None else stuck_days
    days = int(days) if float(days).is_integer() else days  # "5 days" on the page, not "5.0 days"
    stuck = history_stuck(config, when, data.outcomes, store=store, days=days)
    paths = scenario_paths(config, data, when)
    tables = write_funnel_report(data.leads, data.outcomes, out, stuck_days=days, as_of=when, stuck=stuck,
                                 paths=paths)  # fmt: skip
    if stuck is None:
        console.print("note: no score history: the stuck MQLs are read from the outcomes alone")
    stages = tables["stages"]
    console.print(stages.to_string(index=False) if hasattr(stages, "to_string") else stages)
    console.print(f"wrote {out}")
    return tables


def scenario_paths(config, data, when) -> dict:
    """Per scenario rule of the pipeline's rules file, where the leads drop off its steps at ``when``."""
    if config.rules is None or data.events is None:
        return {}
    from leadml.explain.report.funnel import funnel_stages
    from leadml.rules.paths import path_report
    from leadml.rules.ruleset import RuleSet

    scenarios = [rule for rule in RuleSet.load(config.rules).rules if rule.is_scenario]
    if not scenarios:
        return {}
    stages = funnel_stages(data.leads, data.outcomes, as_of=when)
    target = f"reached_{config.snapshots.target}"  # conversion to the pipeline's target stage (pql: won)
    won = stages[target if target in stages else "won"].to_numpy(dtype=bool)
    won = pd.Series(won, index=stages["lead_id"].astype(str).to_numpy())
    return {rule.name: path_report(rule, data.leads, data.events, when, won) for rule in scenarios}


def run_backtest(pipeline: Path, since: str | None, until: str | None, by: str, out: Path, store: Path | None,
                 console: Console):  # fmt: skip
    """`leadml backtest`: the served scores against what happened, per period, next to the training estimate."""
    from rich import box

    from leadml.core.config import load_pipeline
    from leadml.explain.report.backtest import backtest_table
    from leadml.jobs.backtest import run_backtest as backtest

    config = load_pipeline(pipeline)
    with spinner(console, "backtesting the served scores") as status:
        result = backtest(config, since=since, until=until, by=by, out=out, store=store, progress=status.update)
    shown = backtest_table(result.periods, newline=True, compact=True)
    table = Table(title=f"{config.name}: did the served scores convert? (by {by}, 95 % intervals; labels: "
                        f"{config.snapshots.target} within {config.snapshots.horizon_days} days, data end "
                        f"{result.data_end:%Y-%m-%d})", box=box.SIMPLE_HEAD, padding=(0, 0))  # fmt: skip
    for column in shown.columns:
        left = column in ("period", "vs training")
        table.add_column(column, justify="left" if left else "right", no_wrap=column == "period")
    for row in shown.itertuples(index=False):
        table.add_row(*map(str, row))
    console.print(table)
    served_by = ", ".join(dict.fromkeys(result.periods["served_by"]))
    console.print(f"served by {served_by}; each interval resamples whole leads")
    for row in result.periods.loc[result.periods["note"].fillna("") != ""].itertuples():
        console.print(f"{row.period}: n/a, {row.note}")
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"wrote {result.path}")
    if result.run_id is not None:
        console.print(f"MLflow run {result.run_id} at {result.tracking_uri}")
    return result
