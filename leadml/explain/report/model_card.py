"""The model card: for data scientists, what the model is, how it was measured and how it behaves.

The data, rules vs models with intervals, calibration, gains/lift, global SHAP importance (bar and
beeswarm), scores by tier, metrics per segment (source, country, ...).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.data.contract import LABEL_COLUMN
from leadml.explain.report.html import html_table, render_page
from leadml.modeling.contributions import Contributions, explain_margin

__all__ = ["MODEL_CARD_METRICS", "write_model_card"]

MODEL_CARD_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10", "capture_top10",
                      "precision_at_mql", "recall_at_mql", "mql_share")  # fmt: skip


def _test_rows(result, trainset) -> pd.DataFrame:
    """The trainset rows behind ``result.predictions`` (labelled test snapshots, in order)."""
    frame = trainset.frame
    mask = (frame["split"] == "test").to_numpy() & frame[LABEL_COLUMN].notna().to_numpy()
    rows = frame.loc[mask]
    if len(rows) != len(result.predictions) or not np.array_equal(
        rows["lead_id"].astype(str).to_numpy(), result.predictions["lead_id"].astype(str).to_numpy()
    ):
        raise LeadDataError("model card: the training result's test rows are not this training set's test rows")
    return rows


def _explained_model(result) -> str | None:
    if result.chosen and result.chosen != "rules":
        return result.chosen
    others = [m for m in result.models if m != "rules"]
    return others[-1] if others else None


def _segment_table(result, rows: pd.DataFrame, trainset, segments: Sequence[str], model: str | None) -> list[dict]:
    """Metrics per level of each segment column: rows, conversions, AUC, MQL share, precision, recall."""
    from sklearn.metrics import roc_auc_score

    out = []
    predictions = result.predictions
    y = predictions[LABEL_COLUMN].to_numpy(dtype=float)
    leads = trainset.data.leads if trainset.data is not None and trainset.data.leads is not None else None
    for segment in segments:
        if segment in rows.columns:
            values = rows[segment].astype(object).to_numpy()
        elif leads is not None and segment in leads.columns:
            values = rows["lead_id"].map(leads.set_index("lead_id")[segment]).astype(object).to_numpy()
        else:
            continue
        values = np.where(pd.isna(values), "missing", values).astype(str)
        table = []
        threshold = result.thresholds[model].threshold if model in result.thresholds else None
        for level in pd.unique(values):
            mask = values == level
            yy = y[mask]
            row = {"segment": level, "snapshots": int(mask.sum()), "conversions": int(yy.sum()),
                   "conversion rate": yy.mean()}  # fmt: skip
            for name in [m for m in (model, "rules") if m in predictions]:
                p = predictions[name].to_numpy()[mask]
                auc = roc_auc_score(yy, p) if 0 < yy.sum() < len(yy) and len(yy) >= 20 else np.nan
                row[f"{name} ROC-AUC"] = auc
            if model in predictions and threshold is not None:
                flag = predictions[model].to_numpy()[mask] >= threshold
                row["mean probability"] = predictions[model].to_numpy()[mask].mean()
                row["MQL share"] = flag.mean()
                row["precision at MQL"] = yy[flag].mean() if flag.any() else np.nan
                row["recall at MQL"] = yy[flag].sum() / yy.sum() if yy.sum() else np.nan
            table.append(row)
        frame = pd.DataFrame(table).sort_values("snapshots", ascending=False, kind="stable")
        rates = ["conversion rate", "mean probability", "MQL share", "precision at MQL", "recall at MQL"]
        out.append({"name": segment, "table": html_table(frame, percent_columns=rates)})
    return out


def write_model_card(
    result,
    trainset,
    path: str | os.PathLike,
    *,
    contributions: Contributions | None = None,
    segments: Sequence[str] = ("source", "country"),
    tiers=None,
    max_points: int = 3000,
    title: str = "Model card",
) -> Path:
    """Write the model card of a training run (self-contained HTML).

    Parameters:
        result: the :class:`~leadml.modeling.train.TrainingResult`.
        trainset: the :class:`~leadml.features.build.TrainSet` it was trained on.
        contributions: SHAP contributions to show; by default the chosen model (or the best
            model when the rules won) is explained on the test snapshots, against the training rows.
        segments: columns (features or lead fields) whose levels get a row of metrics each.
        tiers: the MQL tiers (``MQLConfig.tiers``; default tiers when None).
        max_points: the most leads drawn in the beeswarm.
    """
    from leadml.core.config import MQLConfig
    from leadml.explain.report import plots
    from leadml.modeling.policy import assign_tiers, ordered_tiers

    rows = _test_rows(result, trainset)
    model = _explained_model(result)
    names = trainset.feature_names
    if contributions is None and model is not None and len(rows):
        train = trainset.part("train")
        contributions = explain_margin(result.models[model], rows, trainset.feature_info,
                                       background=train.loc[train[LABEL_COLUMN].notna(), names])  # fmt: skip
    shap = None
    if contributions is not None and len(contributions):
        explained = trainset.frame.reindex(contributions.index)
        importance = contributions.importance()
        shap = {"bar": plots.importance_bar(importance), "beeswarm": plots.beeswarm(contributions, explained, max_points=max_points),
                "table": html_table(importance.head(15).rename("mean |SHAP|").reset_index()
                                    .rename(columns={"index": "feature"})),
                "kind": contributions.kind, "rows": len(contributions), "background": contributions.background}  # fmt: skip

    predictions = result.predictions
    y = predictions[LABEL_COLUMN].to_numpy(dtype=float) if len(predictions) else np.empty(0)
    candidates = [m for m in result.models if m in predictions]
    charts: dict[str, str | None] = {"calibration": None, "gains": None, "tiers": None}  # None: not drawn
    if result.reliability:
        charts["calibration"] = plots.calibration_plot(result.reliability)
    if len(y) and 0 < y.sum() < len(y):
        charts["gains"] = plots.gains_chart(y, {m: predictions[m].to_numpy() for m in candidates})
    tier_table = None
    shown = result.chosen if result.chosen in predictions else model
    if shown is not None and len(predictions):
        threshold = result.thresholds[shown].threshold if shown in result.thresholds else None
        tiers = ordered_tiers(tiers if tiers is not None else MQLConfig().tiers, threshold)
        p = predictions[shown].to_numpy()
        assigned = np.asarray(assign_tiers(p, tiers, threshold)).astype(str)
        charts["tiers"] = plots.tier_histogram(p, assigned, [t.name for t in tiers], threshold)
        by_tier = pd.DataFrame({"tier": assigned, "y": y, "p": p}).groupby("tier", sort=False)
        tier_table = html_table(pd.DataFrame({
            "snapshots": by_tier.size(), "conversions": by_tier["y"].sum().astype(int),
            "conversion rate": by_tier["y"].mean(), "mean probability": by_tier["p"].mean(),
        }).reindex([t.name for t in tiers]).dropna(how="all").reset_index(), percent_columns=["conversion rate", "mean probability"])  # fmt: skip

    metrics = differences = None
    if result.evaluation is not None:
        wanted = [m for m in MODEL_CARD_METRICS if m in set(result.evaluation.metrics["metric"])]
        metrics = html_table(result.evaluation.table(wanted).reset_index())
        if len(result.evaluation.differences):
            diff = result.evaluation.differences
            differences = html_table(
                diff[diff["metric"].isin(wanted)].drop(columns="baseline"), percent_columns=["share_better"]
            )
    frame = trainset.frame
    groups = pd.Series([i.group for i in trainset.feature_info]).value_counts()
    summary = {
        "snapshots": len(frame), "leads": int(frame["lead_id"].nunique()), "features": len(names),
        "profile": int(groups.get("profile", 0)), "behaviour": int(groups.get("behaviour", 0)),
        "first": frame["as_of"].min() if "as_of" in frame and frame["as_of"].notna().any() else None,
        "last": frame["as_of"].max() if "as_of" in frame and frame["as_of"].notna().any() else None,
    }  # fmt: skip
    thresholds = pd.DataFrame([{"model": m, "threshold": t.threshold, "policy": t.policy, "note": t.note}
                               for m, t in result.thresholds.items()])  # fmt: skip
    return render_page(
        "model_card.html", path, title=title, result=result, summary=summary,
        counts=html_table(result.counts, percent_columns=["base_rate"]),
        validation=html_table(result.validation) if len(result.validation) else None,
        thresholds=html_table(thresholds) if len(thresholds) else None,
        metrics=metrics, differences=differences, charts=charts, shap=shap, tier_table=tier_table,
        segments=_segment_table(result, rows, trainset, segments, shown) if len(rows) else [],
        explained_model=model, shown_model=shown, n_test=len(predictions),
    )  # fmt: skip
