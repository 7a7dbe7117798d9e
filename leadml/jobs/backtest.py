"""The backtest: did the scores handed to sales convert?

``leadml backtest`` joins the score history (:mod:`leadml.jobs.history`: every run's served
scores) to today's outcomes. A served score at as_of is labelled exactly like a training snapshot
at as_of (:func:`leadml.features.snapshots.label_snapshots`): 1 when its lead reached the target
stage within ``[as_of, as_of + horizon)``, 0 when not, and censored (no label yet) when
``as_of + horizon`` lies after the data's end. A score of a lead that, by today's data, had closed
or passed the target before its as_of (a CRM entry made late) is left out, as a training snapshot
would be.

Per scoring period (month or week of as_of) it measures what sales met: rows, labelled rows, the
share still censored, conversions, the realised ROC-AUC, precision and recall of the MQL flag as
served, and calibration (mean predicted against observed rate, ECE), each with a 95 % bootstrap
interval that resamples whole leads (a lead scored by several runs of a period is one unit; seeded,
so the same history gives the same figures). Beside them stands the estimate the serving model
version was trained with (``test.<model>.roc_auc`` of its MLflow run, with its interval). A period
with fewer than ``min_labelled`` labelled rows, or with one class only, gets no figure (NaN: "n/a").
The page is :mod:`leadml.explain.report.backtest`; the backtest is logged as an MLflow run of the
pipeline's experiment (tag ``leadml.backtest=true``, metrics ``backtest.<period>.<metric>``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadml.core.config import PipelineConfig
from leadml.core.errors import ConfigError, LeadDataError, ModelError
from leadml.features.snapshots import data_end_of, label_snapshots, to_utc

if TYPE_CHECKING:
    from leadml.data.sources import PipelineData

__all__ = [
    "METRICS",
    "PERIODS",
    "Backtest",
    "label_served",
    "log_backtest",
    "period_metrics",
    "run_backtest",
    "scoring_periods",
    "served_scores",
    "training_estimates",
]

PERIODS = ("month", "week")
METRICS = ("roc_auc", "precision_at_mql", "recall_at_mql", "mean_predicted", "observed_rate", "ece")
TRAINING_METRICS = ("roc_auc", "precision_at_mql", "recall_at_mql", "ece")  # what a training run logs on test
MIN_LABELLED = 50
_RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Backtest:
    """What a backtest found: one row per period (``periods``), the training estimates per serving
    model version (``training``), the served rows with their label and period (``served``), the
    page written and the MLflow run (None when not logged)."""

    periods: pd.DataFrame
    training: pd.DataFrame
    served: pd.DataFrame
    by: str
    data_end: pd.Timestamp
    path: Path | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    notes: tuple[str, ...] = ()


def label_served(scores: pd.DataFrame, data: PipelineData, config: PipelineConfig) -> pd.DataFrame:
    """The served scores with ``converted`` (1, 0, NaN) and ``status`` (labelled, censored, left_out).

    Labels follow the training snapshots' rule (:func:`~leadml.features.snapshots.label_snapshots`)
    with the pipeline's target and horizon; ``attrs["data_end"]`` is the instant used.
    """
    from leadml.features.build import target_pql_times

    assert data.leads is not None  # three-table data (run_backtest refuses a flat table)
    end = data.data_end if data.data_end is not None else data_end_of(data.leads, None, data.outcomes)
    candidates = pd.DataFrame({"lead_id": scores["lead_id"].astype(str), "as_of": scores["as_of"]})
    candidates = candidates.reset_index(drop=True).assign(row=np.arange(len(candidates)))
    snap = config.snapshots
    kept = label_snapshots(candidates, data.outcomes, horizon_days=snap.horizon_days, data_end=end,
                           stage=snap.target, pql=target_pql_times(config, data.events))  # fmt: skip
    label = np.full(len(scores), np.nan)
    label[kept["row"].to_numpy()] = kept["converted"].to_numpy()
    status = np.full(len(scores), "left_out", dtype=object)
    status[kept["row"].to_numpy()] = np.where(np.isnan(kept["converted"].to_numpy()), "censored", "labelled")
    served = scores.reset_index(drop=True).assign(converted=label, status=status)
    served.attrs["data_end"] = end
    return served


def scoring_periods(as_of: pd.Series, by: str = "month") -> tuple[pd.Series, pd.Series]:
    """The period of each as_of (``2026-03`` by month, ISO ``2026-W10`` by week) and its first day (UTC).

    Example:
        >>> stamps = pd.Series(pd.to_datetime(["2026-03-01T00:00", "2026-03-04T10:00"], utc=True))
        >>> scoring_periods(stamps, "week")[0].tolist(), scoring_periods(stamps, "month")[0].tolist()
        (['2026-W09', '2026-W10'], ['2026-03', '2026-03'])
    """
    if by not in PERIODS:
        raise ConfigError(f"backtest periods are by month or week, not {by!r}")
    day = pd.to_datetime(as_of, utc=True).dt.floor("D")
    if by == "month":
        return day.dt.strftime("%Y-%m"), day - pd.to_timedelta(day.dt.day - 1, unit="D")
    monday = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    iso = monday.dt.isocalendar()
    labels = iso["year"].astype(str) + "-W" + iso["week"].astype(int).map("{:02d}".format)
    return labels, monday


def _served_metrics(y: np.ndarray, p: np.ndarray, flag: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric for every row of ``weights`` (how often each served row counts in a resample)."""
    from leadml.modeling.evaluate import weighted_metrics

    base = weighted_metrics(y, p, weights, top_shares=())
    total, positives = weights.sum(axis=1), weights @ y
    chosen, hits = weights @ flag, weights @ (flag * y)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"roc_auc": base["roc_auc"], "precision_at_mql": np.where(chosen > 0, hits / chosen, np.nan),
                "recall_at_mql": np.where(positives > 0, hits / positives, np.nan),
                "mean_predicted": (weights @ p) / total, "observed_rate": positives / total, "ece": base["ece"]}  # fmt: skip


def _with_intervals(y, p, flag, groups, n_boot: int, seed: int, level: float = 0.95) -> dict[str, float]:
    """Every metric and its percentile bootstrap interval, whole leads resampled (ECE shifted by its
    bootstrap bias, as :mod:`leadml.modeling.evaluate` does)."""
    from leadml.modeling.evaluate import BIAS_SHIFTED, bootstrap_weights

    point = _served_metrics(y, p, flag, np.ones((1, len(y))))
    draws: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for weights in bootstrap_weights(len(y), n_boot, seed, groups):
        for name, values in _served_metrics(y, p, flag, weights).items():
            draws[name].append(values)
    tail = (1 - level) / 2 * 100
    out: dict[str, float] = {}
    for name in METRICS:
        value = float(point[name][0])
        finite = np.concatenate(draws[name]) if draws[name] else np.empty(0)
        finite = finite[np.isfinite(finite)]
        low = high = float("nan")
        if finite.size and np.isfinite(value):
            low, high = (float(v) for v in np.percentile(finite, [tail, 100 - tail]))
            if name in BIAS_SHIFTED:
                shift = float(finite.mean()) - value
                low, high = max(low - shift, 0.0), max(high - shift, 0.0)
        out.update({name: value, f"{name}_low": low, f"{name}_high": high})
    return out


def period_metrics(served: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                   min_labelled: int = MIN_LABELLED) -> pd.DataFrame:  # fmt: skip
    """One row per period of :func:`label_served` rows (with ``period`` and ``start``): counts, the
    metrics with intervals, the serving model, and a ``note`` when a period has no figures."""
    rows = []
    for period, part in served.groupby("period", sort=True):
        labelled = part.loc[(part["status"] == "labelled").to_numpy()]
        y = labelled["converted"].to_numpy(dtype=float)
        models = part.groupby(["model_name", "model_version"], sort=False).size().sort_values(ascending=False)
        row = {"period": period, "start": part["start"].iloc[0], "runs": part["as_of"].nunique(), "rows": len(part),
               "labelled": len(labelled), "censored": int((part["status"] == "censored").sum()),
               "left_out": int((part["status"] == "left_out").sum()), "conversions": int(y.sum()),
               "model_name": str(models.index[0][0]), "model_version": str(models.index[0][1]),
               "served_by": ", ".join(f"{name} {version}".strip() for name, version in models.index)}  # fmt: skip
        row["censored_share"] = row["censored"] / max(row["rows"], 1)
        if len(y) < min_labelled:
            row["note"] = f"{len(y)} labelled rows (fewer than {min_labelled})"
        elif y.min() == y.max():
            row["note"] = f"one class only ({'every' if y.max() else 'no'} labelled row converted)"
        else:
            flag = labelled["is_mql"].fillna(False).to_numpy(dtype=float)
            p = labelled["probability"].to_numpy(dtype=float)
            row.update(_with_intervals(y, p, flag, labelled["lead_id"].to_numpy(), n_boot, seed))
            row["note"] = ""
        rows.append(row)
    frame = pd.DataFrame(rows)
    for name in METRICS:
        for column in (name, f"{name}_low", f"{name}_high"):
            if column not in frame.columns:
                frame[column] = np.nan
    return frame


def training_estimates(config: PipelineConfig, served: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The test metrics (with intervals) each serving model version was trained with, from its MLflow
    run; notes on the versions that have none (scored outside the registry, run gone)."""
    from mlflow.exceptions import MlflowException

    from leadml.modeling.registry import _client

    client = _client(config)
    rows, notes = [], []
    for name, version in served[["model_name", "model_version"]].drop_duplicates().itertuples(index=False):
        try:
            run_id = client.get_model_version(name, version).run_id if version.isdigit() else None
            run_id = version if _RUN_ID.fullmatch(version) else run_id
            run = client.get_run(run_id) if run_id else None
        except MlflowException:
            run = None
        if run is None:
            notes.append(f"{name} version {version or '(none)'} has no training run in MLflow to compare with")
            continue
        chosen = run.data.tags.get("leadml.chosen") or run.data.params.get("chosen_model", "")
        row = {"model_name": name, "model_version": version, "run_id": run.info.run_id, "model": chosen}
        for metric in TRAINING_METRICS:
            for suffix in ("", ".low", ".high"):
                row[f"training_{metric}{suffix.replace('.', '_')}"] = run.data.metrics.get(
                    f"test.{chosen}.{metric}{suffix}", np.nan
                )
        rows.append(row)
    columns = ["model_name", "model_version", "run_id", "model"] + [
        f"training_{m}{s}" for m in TRAINING_METRICS for s in ("", "_low", "_high")
    ]
    return pd.DataFrame(rows, columns=columns), notes


def _compare(periods: pd.DataFrame) -> pd.Series:
    """Where each period's realised ROC-AUC stands against its training interval."""
    value, low, high = periods["roc_auc"], periods["roc_auc_low"], periods["roc_auc_high"]
    t_low, t_high = periods["training_roc_auc_low"], periods["training_roc_auc_high"]
    verdict = np.select(
        [value.isna() | t_low.isna(), value.between(t_low, t_high), (high >= t_low) & (low <= t_high), high < t_low],
        ["n/a", "within", "overlaps", "below"],
        "above",
    )
    return pd.Series(verdict, index=periods.index)


def served_scores(store: Path, since: object = None, until: object = None) -> pd.DataFrame:
    """The history's scores served in ``[since, until]``, with model name, version and MQL flag filled.

    Raises:
        LeadDataError: no history (run ``leadml score`` first), none served in the span, or no probabilities.
    """
    from leadml.jobs.history import load_history

    scores = load_history(store, since=None if since is None else to_utc(since),
                          until=None if until is None else to_utc(until))  # fmt: skip
    if scores.empty:
        everything = load_history(store)
        raise LeadDataError(f"{store}: no scores served between {since or 'the start'} and {until or 'the end'} "
                            f"(the history runs from {everything['as_of'].min():%Y-%m-%d} to "
                            f"{everything['as_of'].max():%Y-%m-%d})")  # fmt: skip
    if "probability" not in scores.columns:
        raise LeadDataError(f"{store}: the score history has no 'probability' column; score again with this leadml")
    for column, missing in (("model_name", ""), ("model_version", ""), ("is_mql", False)):
        values = scores[column] if column in scores.columns else pd.Series(missing, index=scores.index)
        scores[column] = values.fillna(missing).astype(type(missing))
    return scores


def _with_training(periods: pd.DataFrame, training: pd.DataFrame) -> pd.DataFrame:
    """The periods with the training estimate of the version that served most of each, and the verdict."""
    periods = periods.merge(training.drop(columns=["run_id", "model"], errors="ignore"),
                            on=["model_name", "model_version"], how="left")  # fmt: skip
    for column in (f"training_{m}{s}" for m in TRAINING_METRICS for s in ("", "_low", "_high")):
        if column not in periods.columns:
            periods[column] = np.nan
    periods["vs_training"] = _compare(periods)
    return periods


def run_backtest(
    config: PipelineConfig,
    *,
    since: object = None,
    until: object = None,
    by: str = "month",
    out: str | os.PathLike | None = "backtest.html",
    store: str | os.PathLike | None = None,
    data: PipelineData | None = None,
    n_boot: int = 1000,
    seed: int | None = None,
    min_labelled: int = MIN_LABELLED,
    log: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Backtest:
    """Backtest the served scores of a pipeline: realised metrics per period against the training estimate.

    Parameters:
        since, until: the served as_of to take (both included; a date means 00:00 UTC).
        by: ``month`` or ``week`` of the served as_of.
        out: the HTML page to write (None: none).
        store: the score history (default: the pipeline's, :func:`~leadml.jobs.history.history_path`).
        data: the pipeline's data when already loaded (default: read as training reads it).
        n_boot, seed: bootstrap resamples and their seed (default the pipeline's ``models.seed``).
        min_labelled: a period with fewer labelled rows gets no figures.
        log: log the backtest as an MLflow run of the pipeline's experiment (and read the training
            estimates from the registry); False does neither.

    Raises:
        LeadDataError: no score history (run ``leadml score`` first), or none in ``[since, until]``.
        ConfigError: a flat pipeline (no outcomes over time), or ``by`` not month or week.
        ModelError: MLflow cannot be reached or refuses the run.
    """
    from leadml.data.sources import load_pipeline_data
    from leadml.jobs.history import history_path

    say = progress or (lambda message: None)
    if by not in PERIODS:
        raise ConfigError(f"backtest periods are by month or week, not {by!r}")
    if config.is_flat:
        raise ConfigError(f"{config.name}: a backtest needs leads and outcomes over time, not a flat table")
    store = Path(store) if store is not None else history_path(config, Path("scores.parquet"))
    say(f"reading the score history in {store}")
    scores = served_scores(store, since, until)
    say("labelling the served scores with what happened since")
    data = data if data is not None else load_pipeline_data(config.data)
    served = label_served(scores, data, config)
    served["period"], served["start"] = scoring_periods(served["as_of"], by)
    say(f"measuring each {by} ({n_boot:,} bootstrap resamples)")
    seed = config.models.seed if seed is None else seed
    periods = period_metrics(served, n_boot=n_boot, seed=seed, min_labelled=min_labelled)
    training, notes = pd.DataFrame(columns=["model_name", "model_version"]), list[str]()
    if log:
        say("reading the training estimates of the serving models")
        training, notes = training_estimates(config, served)
    periods = _with_training(periods, training)
    notes += _notes(periods, config)
    result = Backtest(periods, training, served, by, served.attrs["data_end"], notes=tuple(notes))
    path = None
    if out is not None:
        from leadml.explain.report.backtest import write_backtest_report

        path = write_backtest_report(periods, out, by=by, title=f"Backtest: {config.name}",
                                     target=config.snapshots.target, horizon_days=config.snapshots.horizon_days,
                                     data_end=result.data_end, notes=notes, min_labelled=min_labelled)  # fmt: skip
    result = replace(result, path=path)
    if log:
        say("logging the backtest to MLflow")
        result = log_backtest(config, result, since=since, until=until, n_boot=n_boot, seed=seed)
    return result


def _notes(periods: pd.DataFrame, config: PipelineConfig) -> list[str]:
    """What a reader of the figures should know: late CRM entries left out, mixed model versions."""
    notes = []
    left_out = int(periods["left_out"].sum())
    if left_out:
        notes.append(f"{left_out:,} served scores are of leads that, by today's data, had closed or reached "
                     f"{config.snapshots.target} before they were scored (entered late): left out, as a training "
                     "snapshot would be")  # fmt: skip
    mixed = periods.loc[periods["served_by"].str.contains(",", regex=False), "period"].tolist()
    if mixed:
        notes.append(f"{', '.join(mixed)}: scored by several model versions; the figures mix them and the "
                     "training estimate is that of the version that scored most rows")  # fmt: skip
    return notes


def log_backtest(config: PipelineConfig, result: Backtest, *, since: object = None, until: object = None,
                 n_boot: int = 1000, seed: int = 0) -> Backtest:  # fmt: skip
    """Log the backtest as a run of the pipeline's experiment, tagged with the serving models.

    Metrics ``backtest.<period>.<name>`` (counts, the metrics and their ``.low`` / ``.high``), the
    periods as ``backtest/periods.json`` and the page under ``reports/``.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from leadml.modeling.registry import _client, _experiment_id, _mlflow_at, tracking_uri
    from leadml.modeling.tracking_store import run_tags

    uri = tracking_uri(config)
    periods = result.periods
    names = sorted(set(periods["model_name"]))
    versions = sorted(set(periods["model_version"]), key=lambda v: (len(v), v))
    keys = {key: key for key in ("runs", "rows", "labelled", "censored", "censored_share", "left_out", "conversions")}
    keys.update({f"{m}{s.replace('.', '_')}": f"{m}{s}" for m in METRICS for s in ("", ".low", ".high")})
    metrics = {f"backtest.{row['period']}.{name}": float(row[column]) for row in periods.to_dict("records")
               for column, name in keys.items() if np.isfinite(row[column])}  # fmt: skip
    try:
        experiment_id = _experiment_id(_client(config), config)
        with (
            _mlflow_at(uri),
            mlflow.start_run(experiment_id=experiment_id, run_name=f"backtest {config.name}", tags=run_tags()) as run,
        ):
            mlflow.set_tags({"leadml.backtest": "true", "leadml.pipeline": config.name, "leadml.by": result.by,
                             "leadml.model_name": ", ".join(names), "leadml.model_version": ", ".join(versions)})  # fmt: skip
            mlflow.log_params({"by": result.by, "from": str(since or ""), "to": str(until or ""), "n_boot": n_boot,
                               "seed": seed, "target": config.snapshots.target,
                               "horizon_days": config.snapshots.horizon_days, "data_end": str(result.data_end)})  # fmt: skip
            mlflow.log_metrics(metrics)
            mlflow.log_table(periods.assign(start=periods["start"].astype(str)), "backtest/periods.json")
            if result.path is not None:
                mlflow.log_artifact(str(result.path), "reports")
    except MlflowException as exc:
        raise ModelError(f"MLflow at {uri}: {exc.message if hasattr(exc, 'message') else exc}") from exc
    return replace(result, run_id=run.info.run_id, tracking_uri=uri)
