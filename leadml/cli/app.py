"""The `leadml` command: a thin layer over the Python API.

Every command validates its inputs first, exits non-zero with one clear line on bad input
(``--debug`` shows the traceback), and writes outputs atomically.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

# Before numpy loads: transparent huge pages make every fresh large array cost ~0.2 s of page
# faults on this kind of machine (numpy's own switch; measured in benchmarks/README.md).
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from leadml.core.errors import LeadmlError
from leadml.core.logs import quiet
from leadml.core.version import __version__

try:  # typer >= 0.26 runs on its own copy of click, whose exceptions are not click's
    from typer._click import exceptions as _click_errors
except ImportError:  # older typer runs on click itself
    from click import exceptions as _click_errors  # type: ignore[no-redef]

_NO_ARGS_IS_HELP = getattr(_click_errors, "NoArgsIsHelpError", ())  # click >= 8.2

app = typer.Typer(
    name="leadml",
    help="Predictive lead scoring: point-in-time features, models measured against the rules, reasons per lead.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(
    help="The points rules baseline: score leads with a rules file, or learn points from data.", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")

console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, highlight=False)
_state = {"debug": False}


def _show_version(value: bool) -> None:
    if value:
        console.print(f"leadml {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    _state["debug"] = debug


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    if not caught:  # `leadml --version` and `--help` load no pandas
        return
    from leadml.data.contract import LeadDataWarning

    for warning in caught:
        if issubclass(warning.category, LeadDataWarning):
            # one line, however long, and the message as text (its [brackets] are not markup)
            err_console.print(Text.assemble(("warning:", "yellow"), f" {warning.message}"), soft_wrap=True)


@app.command()
def simulate(
    leads: int = typer.Option(20_000, "--leads", help="Number of leads."),
    seed: int = typer.Option(7, "--seed", help="Random seed: same seed, same files."),
    out: Path = typer.Option(..., "--out", help="Folder for leads/events/outcomes/truth.parquet."),
    base_rate: float = typer.Option(0.08, "--base-rate", help="Share of leads that win."),
) -> None:
    """Write a seeded simulated CRM + web-analytics export (leads, events, outcomes, truth)."""
    from leadml.cli.commands import run_simulate

    run_simulate(out, leads, seed, base_rate, console)


@app.command()
def validate(
    ctx: typer.Context,
    pipeline: Path | None = typer.Argument(
        None, help="Pipeline YAML: its tables are read exactly as `leadml train` reads them."
    ),
    leads: Path | None = typer.Option(None, "--leads", help="Leads table (CSV or Parquet), without a pipeline."),
    events: Path | None = typer.Option(None, "--events", help="Events table."),
    outcomes: Path | None = typer.Option(None, "--outcomes", help="Outcomes table."),
    drop_orphans: bool = typer.Option(False, "--drop-orphans", help="Drop events of unknown leads (counted)."),
) -> None:
    """Check a pipeline's export (or tables named by --leads/--events/--outcomes) and print a summary."""
    from leadml.cli.commands import run_validate, run_validate_pipeline

    tables = leads is not None or events is not None or outcomes is not None or drop_orphans
    if pipeline is not None and tables:
        raise _click_errors.UsageError(
            "give a pipeline or --leads/--events/--outcomes, not both (the pipeline's data keys say how to read "
            "its tables)",
            ctx=ctx,
        )
    if pipeline is not None:
        run_validate_pipeline(pipeline, console)
    elif leads is not None:
        run_validate(leads, events, outcomes, drop_orphans, console)
    else:
        raise _click_errors.UsageError("give a pipeline YAML, or the tables with --leads (and --events, --outcomes)",
                                       ctx=ctx)  # fmt: skip


@app.command()
def features(
    pipeline: Path | None = typer.Argument(None, help="Pipeline YAML (optional)."),
    leads: Path | None = typer.Option(None, "--leads", help="Leads table (instead of the pipeline's data)."),
    events: Path | None = typer.Option(None, "--events", help="Events table."),
    as_of: str = typer.Option(..., "--as-of", help="Date or timestamp (a date means 00:00 UTC)."),
    out: Path = typer.Option(..., "--out", help="Output table (.parquet or .csv; Spark: a Parquet folder)."),
    drop_orphans: bool = typer.Option(False, "--drop-orphans", help="Drop events of unknown leads (counted)."),
    engine: str = typer.Option("pandas", "--engine", help="pandas (one machine) or spark."),
    spark_master: str | None = typer.Option(
        None, "--spark-master", help="Spark master (default local[2] or SPARK_MASTER)."
    ),
) -> None:
    """Features of every open lead at AS_OF (one row per lead)."""
    from leadml.cli.commands import run_features

    run_features(pipeline, leads, events, as_of, out, drop_orphans, console, engine=engine, spark_master=spark_master)


@app.command()
def trainset(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML."),
    out: Path = typer.Option(..., "--out", help="Output table (.parquet or .csv)."),
) -> None:
    """Snapshot rows with features, label and split, as the pipeline defines them."""
    from leadml.cli.commands import run_trainset

    run_trainset(pipeline, out, console)


@rules_app.command("score")
def rules_score(
    rules: Path = typer.Argument(..., help="Rules YAML."),
    leads: Path = typer.Option(..., "--leads", help="Leads table."),
    events: Path | None = typer.Option(None, "--events", help="Events table."),
    as_of: str = typer.Option(..., "--as-of", help="Date or timestamp (a date means 00:00 UTC)."),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output table: lead_id, as_of, points, tier, breakdown, fit/engagement points and 0-100 scores, grid tier.",
    ),
    drop_orphans: bool = typer.Option(False, "--drop-orphans", help="Drop events of unknown leads (counted)."),
) -> None:
    """Score leads with a points rules file at AS_OF, with the exact breakdown."""
    from leadml.cli.commands import run_rules_score

    run_rules_score(rules, leads, events, as_of, out, drop_orphans, console)


@rules_app.command("learn")
def rules_learn(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (its training snapshots teach the points)."),
    out: Path = typer.Option(..., "--out", help="Rules YAML to write."),
    paths: bool = typer.Option(
        True, "--paths/--no-paths", help="Also learn ordered paths of events that lift conversion (scenario rules)."
    ),
) -> None:
    """Learn a points table (and the paths that lift conversion) from closed deals; write a rules file."""
    from leadml.cli.commands import run_rules_learn

    run_rules_learn(pipeline, out, console, paths=paths)


@app.command()
def train(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML."),
    promote: str = typer.Option(
        "auto", "--promote", help="auto: take champion when better on the same test rows; never."
    ),
    trainset: Path | None = typer.Option(
        None, "--trainset", help="Train on a file from `leadml trainset` (its features are checked against the data)."
    ),
) -> None:
    """Train rules vs logistic vs LightGBM, compare them on the test snapshots, log and register in MLflow."""
    from leadml.cli.commands import run_train

    run_train(pipeline, promote, console, trainset=trainset)


@app.command()
def promote(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (names the registered model)."),
    version: int = typer.Option(..., "--version", help="Registered model version to make champion."),
) -> None:
    """Make a registered model version the champion used by batch scoring."""
    from leadml.cli.commands import run_promote

    run_promote(pipeline, version, console)


@app.command()
def score(
    ctx: typer.Context,
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (its data, and its registered model)."),
    as_of: str = typer.Option(..., "--as-of", help="Scoring instant (a date means 00:00 UTC)."),
    out: Path = typer.Option(..., "--out", help="Scores file (.parquet or .csv; Spark: a Parquet folder)."),
    model: str | None = typer.Option(None, "--model", help="Model URI or path (default models:/<name>@champion)."),
    engine: str = typer.Option("pandas", "--engine", help="pandas (one machine) or spark."),
    spark_master: str | None = typer.Option(
        None, "--spark-master", help="Spark master (default local[2] or SPARK_MASTER)."
    ),
    reasons: str = typer.Option(
        "default", "--reasons", help="Leads to explain: default (MQLs and top 20 %), all, mql, top:N, top:N%."
    ),
    no_reasons: bool = typer.Option(False, "--no-reasons", help="Skip the reasons: the fastest path."),
    no_subscores: bool = typer.Option(
        False, "--no-subscores", help="Leave fit/engagement sub-scores and grid tier empty."
    ),
    no_history: bool = typer.Option(False, "--no-history", help="Do not add these scores to the score history."),
    format: str = typer.Option(
        "leadml", "--format", help="leadml (the scores file), or hubspot / salesforce: --out is a CSV to import."
    ),
) -> None:
    """Score every open lead at AS_OF with the champion model, in chunks, written atomically."""
    from leadml.cli.commands import run_score
    from leadml.jobs.output import CRM_FORMATS

    if format not in CRM_FORMATS:
        raise _click_errors.BadParameter(
            f"use {_either(CRM_FORMATS)}, not {format!r}", ctx=ctx, param_hint="'--format'"
        )
    if format != "leadml" and out.suffix.lower() != ".csv":
        raise _click_errors.BadParameter(f"a {format} import file is a .csv, not {out.name!r}", ctx=ctx,
                                         param_hint="'--out'")  # fmt: skip
    run_score(
        pipeline,
        as_of,
        out,
        model,
        engine,
        spark_master,
        False if no_reasons else reasons,
        console,
        subscores=not no_subscores,
        history=False if no_history else None,
        format=format,
    )


@app.command()
def explain(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (its data, and its registered model)."),
    lead: str = typer.Option(..., "--lead", help="The lead to explain."),
    as_of: str | None = typer.Option(None, "--as-of", help="When (default: the end of the data)."),
    model: str | None = typer.Option(
        None, "--model", help="Model URI or path (default the champion); 'rules' for the rules' breakdown."
    ),
    top: int = typer.Option(5, "--top", help="Reasons shown each way."),
) -> None:
    """Why one lead is (or is not) an MQL: its reasons, and what would change the verdict."""
    from leadml.explain.lead import explain_lead, format_explanation

    console.print(format_explanation(explain_lead(pipeline, lead, as_of, model), top=top), soft_wrap=True)


@app.command()
def history(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (its history settings and its data)."),
    lead: str | None = typer.Option(None, "--lead", help="One lead's scores over time, with the events between runs."),
    store: Path | None = typer.Option(
        None, "--store", help="History folder (default: history.path, else ./score_history)."
    ),
    as_of: str | None = typer.Option(None, "--as-of", help="Look back from this instant (default: the last run)."),
) -> None:
    """A lead's score over time, or the leads warming up, the MQLs stuck and the hand-off per run."""
    from leadml.cli.commands import run_history

    run_history(pipeline, lead, store, as_of, console)


@app.command()
def sla(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (its score history and its outcomes)."),
    store: Path | None = typer.Option(
        None, "--store", help="History folder (default: history.path, else ./score_history)."
    ),
    as_of: str | None = typer.Option(None, "--as-of", help="Runs up to this instant (default: all)."),
) -> None:
    """The hand-off to sales per week: new MQLs, accepted, rejected, overdue, SLA breaches."""
    from leadml.cli.commands import run_sla

    run_sla(pipeline, store, as_of, console)


@app.command()
def monitor(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML."),
    scores: Path = typer.Option(..., "--scores", help="A scores file from `leadml score`."),
    model: str | None = typer.Option(None, "--model", help="Model URI (default: the one that wrote the scores)."),
) -> None:
    """Drift (PSI) of every feature and of the score between training and a scored batch."""
    from leadml.cli.commands import run_monitor

    run_monitor(pipeline, scores, model, console)


@app.command()
def report(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML."),
    scores: Path | None = typer.Option(
        None, "--scores", help="A scores file from `leadml score` for the sales report."
    ),
    out: Path = typer.Option(Path("reports"), "--out", help="Folder for model_card.html (and sales.html)."),
    max_leads: int = typer.Option(5000, "--max-leads", help="Most leads listed in the sales report."),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Whose model card: models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN/model (default: the champion).",
    ),
    waterfalls: int = typer.Option(
        200, "--waterfalls", min=0, help="The MQLs and at least this many top leads get a waterfall chart (0: none)."
    ),
) -> None:
    """Write the model card (and, with --scores, the sales report) as self-contained HTML."""
    from leadml.cli.commands import run_report

    run_report(pipeline, scores, out, max_leads, console, model_uri=model, waterfalls=waterfalls)


@app.command()
def funnel(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (its leads and outcomes)."),
    out: Path = typer.Option(..., "--out", help="HTML file to write."),
    stuck_days: float | None = typer.Option(
        None, "--stuck-days", help="Stuck: an MQL longer than this, not accepted, not engaging (default from the YAML)."
    ),
    as_of: str | None = typer.Option(None, "--as-of", help="The funnel as known then (default: the data's end)."),
    store: Path | None = typer.Option(
        None, "--store", help="History folder for the stuck MQLs (default: history.path, else ./score_history)."
    ),
) -> None:
    """Lead -> MQL -> SQL -> won: counts, rates by source and month, time in stage, stuck MQLs."""
    from leadml.cli.commands import run_funnel

    run_funnel(pipeline, out, stuck_days, console, as_of=as_of, store=store)


@app.command()
def backtest(
    ctx: typer.Context,
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (its score history, data and MLflow)."),
    since: str | None = typer.Option(None, "--from", help="First served as_of to take (a date means 00:00 UTC)."),
    until: str | None = typer.Option(None, "--to", help="Last served as_of to take (included)."),
    by: str = typer.Option("month", "--by", help="Period of the served scores: month or week."),
    out: Path = typer.Option(Path("backtest.html"), "--out", help="HTML page to write."),
    store: Path | None = typer.Option(
        None, "--store", help="History folder (default: history.path, else ./score_history)."
    ),
) -> None:
    """Did the scores handed to sales convert? Realised ROC-AUC, precision, recall per period vs training."""
    from leadml.cli.commands import run_backtest

    if by not in ("month", "week"):
        raise _click_errors.BadParameter(f"use month or week, not {by!r}", ctx=ctx, param_hint="'--by'")
    run_backtest(pipeline, since, until, by, out, store, console)


@app.command()
def serve(
    ctx: typer.Context,
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (its registered model, its serve settings)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    model: str | None = typer.Option(None, "--model", help="Model URI or path (default models:/<name>@champion)."),
    store: Path | None = typer.Option(None, "--store", help="State file (default serve.store)."),
    as_of: str | None = typer.Option(None, "--as-of", help="Score at this fixed instant (a replay; default now)."),
) -> None:
    """Serve the champion over HTTP: events in, scores, the MQL queue and tier-crossing alerts out."""
    from leadml.cli.serve import run_serve

    if not 0 < port < 65536:
        raise _click_errors.BadParameter(f"use a port between 1 and 65535, not {port}", ctx=ctx, param_hint="'--port'")
    run_serve(pipeline, host, port, model, store, as_of, console)


@app.command()
def demo(
    dir: Path = typer.Option(Path("leadml-demo"), "--dir", help="Folder for everything the demo writes."),
    leads: int = typer.Option(20_000, "--leads", help="Simulated leads."),
    seed: int = typer.Option(7, "--seed", help="Random seed."),
) -> None:
    """The whole story on simulated data: simulate, validate, features, rules baseline."""
    from leadml.cli.demo import run_demo_story

    run_demo_story(dir, n_leads=leads, seed=seed, console=console)


def main(argv: list[str] | None = None) -> int:
    """Run ``leadml`` on ``argv`` (default: the process arguments) and return its exit code.

    0 done; 1 a leadml error, told in one line (``--debug`` raises it with its traceback);
    2 a usage error (one line and a hint; no command at all shows the help, as click does);
    130 interrupted. The console script passes the code to ``sys.exit``.

    Example:
        >>> main(["trian"])  # on stderr: error: no such command 'trian'; did you mean 'train' or ...
        2
    """
    args = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    quiet()  # MLflow's INFO lines would drown the command's own summary
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                code = app(args=args, prog_name="leadml", standalone_mode=False)
            finally:
                _show_warnings(caught)
    except _click_errors.ClickException as exc:  # typer's own click: usage errors say 2, others 1
        _show_click_error(exc)
        return exc.exit_code
    except LeadmlError as exc:
        if "--debug" in args:
            raise
        _show_error(str(exc))
        return 1
    except KeyboardInterrupt:  # typer turns one inside a command into exit code 130; this is the rest
        code = 130
    except typer.Abort:
        _show_error("aborted")
        return 1
    code = code if isinstance(code, int) else 0  # a command returns None; typer returns Exit's code
    if code == 130:
        err_console.print("aborted")
    return code


def _show_error(message: str) -> None:
    # Text, not markup: a message holding [brackets] prints as it is; soft_wrap keeps it one line
    err_console.print(Text.assemble(("error:", "red"), f" {message}"), soft_wrap=True)


def _show_click_error(exc: _click_errors.ClickException) -> None:
    """A usage error in one line, with the command's usage and where to find help: no traceback."""
    if isinstance(exc, _NO_ARGS_IS_HELP):  # the help is the answer; rich has already printed it
        if exc.format_message():
            console.print(exc.format_message(), markup=False)
        return
    if isinstance(exc, _click_errors.NoSuchOption) and exc.possibilities:
        message = f"{exc.message}; did you mean {_either(exc.possibilities)}?"
    else:
        message = exc.format_message()
    head, near_miss, names = message.partition(". Did you mean ")  # typer's hint for a mistyped command
    if near_miss:
        message = f"{head}; did you mean {_either(names.rstrip('?').split(', '))}?"
    if message[:1].isupper() and message[1:2].islower():  # click's "No such ...", "Missing ..."
        message = message[0].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        hint = f"see '{ctx.command_path} {ctx.help_option_names[0]}'"
        if not isinstance(ctx.command, TyperGroup):  # a command's usage shows what it takes
            usage = " ".join(ctx.get_usage().split()).removeprefix("Usage: ")
            hint = f"usage: {usage}; {hint}"
    else:  # the option parser names no command
        hint = "see 'leadml --help'"
    _show_error(f"{message.rstrip('.')} ({hint})")


def _either(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


if __name__ == "__main__":
    sys.exit(main())
