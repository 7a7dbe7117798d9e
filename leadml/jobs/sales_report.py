"""The sales report of a scores file, as ``leadml report --scores`` and ``leadml demo`` write it.

A scores file (Parquet or leadml's own CSV, whose timestamps are text) is drawn by
:func:`~leadml.explain.report.write_sales_report` with what a sales manager needs beside it:

- the leads-table columns of ``report.display_columns`` (name, company, owner), read through the
  data layer as every job reads the pipeline's tables;
- the score history (``history.path``, else ``score_history`` beside the scores) for the trend;
- waterfall charts of the top leads: the model that wrote the scores explains them at the scores'
  ``as_of``, their features rebuilt by the scoring job's own feature source
  (:func:`~leadml.jobs.feature_source.feature_source`); a lead whose rebuilt probability is not the
  one in the file (the data changed since) gets no chart, and a rules model none at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.config import PipelineConfig
from leadml.core.errors import LeadDataError, ModelError
from leadml.modeling.contributions import Contributions

__all__ = ["MAX_CHARTS", "SalesReport", "read_scores", "sales_report"]

MAX_CHARTS = 1000  # about 3 kB a chart: the page stays under a few MB
SAME_PROBABILITY = 1e-6  # rebuilt features give the served probability (to float rounding)


@dataclass(frozen=True)
class SalesReport:
    """Where the sales report was written, how many leads got a waterfall chart, and notes for the user."""

    path: Path
    charts: int = 0
    notes: tuple[str, ...] = ()


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    """A scores file from ``leadml score`` (Parquet or CSV), its timestamps as UTC.

    Raises:
        LeadDataError: no ``lead_id`` or no ``probability`` / ``score`` column, or timestamps
            that cannot be read (naming the column and rows).
    """
    from leadml.data.io import read_output
    from leadml.explain.report.sales import scores_timestamps

    scores = read_output(path, text_columns=("lead_id",))
    if "lead_id" not in scores.columns or not {"probability", "score"} & set(scores.columns):
        raise LeadDataError(
            f"{path}: a scores file needs 'lead_id' and 'probability' (or 'score') columns, as "
            f"`leadml score` writes them (columns present: {', '.join(map(str, scores.columns))})"
        )
    return scores_timestamps(scores, str(path))


def sales_report(
    config: PipelineConfig,
    scores: pd.DataFrame | str | os.PathLike,
    path: str | os.PathLike,
    *,
    model_uri: str | None = None,
    max_leads: int | None = 5000,
    waterfalls: int = 200,
    history: pd.DataFrame | None | bool = True,
    title: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> SalesReport:
    """Write the sales report of ``scores`` (a frame or a scores file) to ``path``.

    Parameters:
        config: the pipeline: its leads table (``report.display_columns``), its report settings,
            its history folder, and the registry the serving model comes from.
        model_uri: the model that explains the top leads (default: the one that wrote the scores,
            ``models:/<model_name>/<model_version>``, else the champion).
        max_leads: list the best ``max_leads`` leads only.
        waterfalls: the top leads that get a waterfall chart: the MQLs and at least this many
            (at most :data:`MAX_CHARTS`); 0 draws none and loads no model.
        history: the score history, True to read the pipeline's when there is one, False for none.
        title: the page title (default ``Leads to call: <pipeline name>``).
        progress: called with a line on what is being done.

    Raises:
        LeadDataError: a bad scores file, or a display column that the leads table lacks.
    """
    from leadml.explain.report import write_sales_report

    say = progress or (lambda message: None)
    source = None if isinstance(scores, pd.DataFrame) else scores
    if source is not None:
        scores = read_scores(source)
    assert isinstance(scores, pd.DataFrame)
    listed = _ranked(scores).head(max_leads) if max_leads is not None else _ranked(scores)
    ids = listed["lead_id"].astype(str)
    leads = _display_leads(config, ids, say) if config.report.display_columns else None
    past = _history(config, source, ids, listed, say) if history is True else (history or None)
    notes: list[str] = []
    contributions, threshold, count = None, None, 0
    if waterfalls > 0 and "probability" in scores.columns and len(listed):
        n_mql = int(listed["is_mql"].map(_flag).sum()) if "is_mql" in listed.columns else 0
        count = min(max(n_mql, waterfalls), MAX_CHARTS, len(listed))
        contributions, threshold, note = _contributions(config, listed.head(count), model_uri, say)
        if note:
            notes.append(note)
    say("drawing the sales report")
    written = write_sales_report(
        scores, path, contributions=contributions, waterfalls=count if contributions is not None else 0,
        max_leads=max_leads, title=title or f"Leads to call: {config.name}", history=past,
        history_settings=config.history, settings=config.report, leads=leads, threshold=threshold,
        chart_note=" ".join(notes),
    )  # fmt: skip
    charts = 0 if contributions is None else len(contributions)
    return SalesReport(written, charts, tuple(notes))


def _ranked(scores: pd.DataFrame) -> pd.DataFrame:
    key = scores["probability"] if "probability" in scores.columns else scores["score"]
    return scores.iloc[np.argsort(-key.to_numpy(dtype=float), kind="stable")]


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return False if value is None or pd.isna(value) else bool(value)


def _display_leads(config: PipelineConfig, ids: pd.Series, say: Callable[[str], None]) -> pd.DataFrame:
    """``lead_id`` and the display columns of the listed leads, from the pipeline's leads table."""
    from leadml.data.sources import load_pipeline_data
    from leadml.explain.report.display import lead_columns

    say("reading the leads' " + ", ".join(config.report.display_columns))
    data = load_pipeline_data(config.data, need_outcomes=False)
    table = data.leads if data.leads is not None else data.flat
    assert table is not None  # a pipeline's data has its leads or its flat table
    shown = lead_columns(table, config.report.display_columns, source="leads" if data.leads is not None else "flat")
    return shown.reindex(pd.Index(ids.unique(), name="lead_id")).reset_index()


def _history(config: PipelineConfig, source, ids: pd.Series, listed: pd.DataFrame, say) -> pd.DataFrame | None:
    """The pipeline's score history of the listed leads up to the scores' as_of, when there is one."""
    from leadml.jobs.history import history_path, load_history

    store = history_path(config, source)
    if not store.is_dir():
        return None
    say(f"reading the score history in {store}")
    until = listed["as_of"].max() if "as_of" in listed.columns and len(listed) else None
    try:
        return load_history(store, lead_ids=ids.tolist(), until=None if pd.isna(until) else until)
    except LeadDataError:  # an empty folder: no history yet
        return None


def _contributions(config: PipelineConfig, top: pd.DataFrame, model_uri: str | None,
                   say: Callable[[str], None]) -> tuple[Contributions | None, float | None, str]:  # fmt: skip
    """SHAP contributions of the ``top`` leads at the scores' as_of (indexed like ``top``), the
    model's MQL threshold, and a note when some or all leads get no chart."""
    from leadml.jobs.feature_source import feature_source
    from leadml.modeling.contributions import explain_margin
    from leadml.modeling.loading import check_builder, load_model

    stamps = top["as_of"].dropna().unique() if "as_of" in top.columns else []
    if len(stamps) != 1:
        return None, None, "No waterfall charts: the scores hold no single as_of to explain the leads at."
    uri = model_uri
    if uri is None and {"model_name", "model_version"} <= set(top.columns):
        name, version = str(top["model_name"].iloc[0]), str(top["model_version"].iloc[0])
        uri = f"models:/{name}/{version}" if version.isdigit() else None
    say(f"loading the model to explain the top {len(top):,} leads")
    try:
        loaded = load_model(config, uri)
    except ModelError as exc:
        return None, None, f"No waterfall charts: the model cannot be loaded ({exc})."
    scoring = loaded.scoring
    if getattr(scoring, "needs_points", False):
        note = "No waterfall charts: the serving model is the rules model; its reasons are the rules that fired."
        return None, float(scoring.threshold), note
    check_builder(scoring)
    as_of = pd.Timestamp(stamps[0])
    wanted = pd.Series(top.index, index=top["lead_id"].astype(str).to_numpy())
    say(f"rebuilding the features of the top {len(top):,} leads at {as_of:%Y-%m-%d %H:%M} UTC")
    kept, kept_ids = [], []
    for chunk in feature_source(config, scoring.builder, as_of).chunks:
        ids = chunk.snapshots["lead_id"].astype(str)
        rows = np.flatnonzero(ids.isin(wanted.index).to_numpy())
        if len(rows):
            kept.append(chunk.features.iloc[rows])
            kept_ids.extend(ids.iloc[rows])
    if not kept:
        note = "No waterfall charts: none of the top leads is open at the scores' as_of."
        return None, float(scoring.threshold), note
    features = pd.concat(kept)
    features.index = pd.Index(wanted[kept_ids].to_numpy())
    say(f"explaining the top {len(features):,} leads")
    contributions = explain_margin(scoring.model, features, scoring.builder.feature_info_)
    served = top.loc[features.index, "probability"].to_numpy(dtype=float)
    same = np.abs(contributions.probability - served) <= SAME_PROBABILITY
    note = ""
    if not same.all():
        note = (f"{int((~same).sum()):,} of the top leads get no chart: their features at as_of give another "
                f"probability than the scores (the data or the model changed since they were scored).")  # fmt: skip
        contributions = contributions.take(np.flatnonzero(same))
    if len(contributions) == 0:
        return None, float(scoring.threshold), note
    return contributions, float(scoring.threshold), note
