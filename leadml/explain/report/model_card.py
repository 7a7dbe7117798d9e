"""The model card: for data scientists, what the model is, how it was measured and how it behaves.

The data, rules vs models with intervals, the 2x2 table and F1 at the MQL threshold (validation and
test), calibration over equal-mass and equal-width bins, gains/lift, global SHAP importance (bar and
beeswarm), scores by tier, metrics per segment (``evaluation.segments``: source, country, ...), each
level with intervals, levels of too few conversions greyed and unjudged, and the ratio of MQL rates
across levels (disparate impact, flagged below 0.8). When the rules baseline is the model (a cold
start or a rules win), the card says so at the top, and why, and lists the rules.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.config import EvaluationConfig
from leadml.core.errors import LeadDataError
from leadml.data.contract import LABEL_COLUMN
from leadml.explain.report.html import html_table, render_page
from leadml.modeling.calibrate import calibration_errors, reliability_tables
from leadml.modeling.contributions import Contributions, explain_margin
from leadml.modeling.evaluate import FOUR_FIFTHS, Confusion, SegmentMetrics, mql_confusion, segment_metrics

__all__ = ["MODEL_CARD_METRICS", "write_model_card"]

MODEL_CARD_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10", "capture_top10",
                      "precision_at_mql", "recall_at_mql", "mql_share", "f1")  # fmt: skip
FEW_ROWS = 30  # a calibration bin with fewer test snapshots is drawn lighter: its observed rate is mostly noise


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


def _rules_section(result, rules) -> dict | None:
    """What the card says of a rules model: that it is the rules scored as a model, why, its threshold
    when no validation label set it, and the rules with their points; None when the model is not the rules."""
    if result.chosen != "rules":
        return None
    name = f" '{rules.name}'" if rules is not None else ""
    if result.cold_start:
        why = f"too few closed deals to train the models ({result.reason})"
    else:
        why = f"the rules won on validation ({result.reason})"
    section = {
        "sentence": f"This model is the marketing rules{name} scored as a model: each lead's rules points are "
        f"mapped to a calibrated probability of converting, and `leadml score` serves it like any model. Why: {why}.",
        "threshold": None, "table": None,
    }  # fmt: skip
    if rules is None:
        return section
    if "rules" not in result.thresholds:
        from leadml.modeling.scoring_model import mql_points, rules_threshold

        points = mql_points(rules)
        section["threshold"] = (
            f"No labelled validation snapshot could set the MQL threshold by policy: it is "
            f"{rules_threshold(result.models['rules'], rules):.4g}, the probability of the rules' own MQL "
            f"points ({'any' if points is None else f'{points:g}'})."
        )
    listed = pd.DataFrame({"rule": rules.rule_names, "tag": [r.tag for r in rules.rules],
                           "points": [r.points for r in rules.rules]})  # fmt: skip
    section["table"] = html_table(listed)
    return section


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else ""


def _confusion_table(matrix: Confusion):
    """The 2x2 table (MQL or not x converted or not) with counts, each cell's share of all snapshots,
    the conversion rate of each row (precision for the MQLs) and the MQL share of each column (recall)."""
    c, n = matrix, matrix.rows

    def cell(count: int) -> str:
        return f"{count:,} ({_share(count, n)})"

    table = pd.DataFrame({
        "": ["MQL", "not MQL", "all", "share that are MQL"],
        "converted": [cell(c.tp), cell(c.fn), cell(c.conversions), f"{_share(c.tp, c.conversions)} (recall)"],
        "not converted": [cell(c.fp), cell(c.tn), cell(n - c.conversions), _share(c.fp, n - c.conversions)],
        "all": [cell(c.mqls), cell(n - c.mqls), f"{n:,}", _share(c.mqls, n)],
        "conversion rate": [f"{_share(c.tp, c.mqls)} (precision)", _share(c.fn, n - c.mqls), _share(c.conversions, n), ""],
    })  # fmt: skip
    return html_table(table)


def _confusion_section(result, shown: str | None) -> dict | None:
    """The chosen model's 2x2 tables on validation and test, its F1 (test: with the bootstrap interval),
    and every candidate's counts; None without an MQL threshold."""
    confusion = mql_confusion(result.thresholds, result.predictions, result.counts)
    mine = confusion[confusion["model"] == shown]
    if mine.empty:
        return None
    tables = []
    for row in mine.to_dict("records"):
        matrix = Confusion(*(int(row[k]) for k in ("tp", "fp", "fn", "tn")))
        f1 = f"{matrix.f1:.3f}" if np.isfinite(matrix.f1) else "undefined (no MQL and no conversion)"
        if row["split"] == "test" and result.evaluation is not None:
            found = result.evaluation.metrics.set_index(["model", "metric"])
            if (shown, "f1") in found.index:
                low, high = found.loc[(shown, "f1"), ["low", "high"]]
                f1 += f" [{low:.3f}, {high:.3f}] (95 % bootstrap interval)"
        tables.append({"split": row["split"], "table": _confusion_table(matrix), "f1": f1, "rows": matrix.rows})
    shown_columns = ["split", "model", "threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1"]
    return {"model": shown, "threshold": float(mine["threshold"].iloc[0]), "tables": tables,
            "all": html_table(confusion[shown_columns], percent_columns=["precision", "recall"])}  # fmt: skip


def _bin_range(row: pd.Series, binning: str, n_bins: int) -> str:
    """A bin's span: its edges for equal-width bins, its lowest and highest probability for equal-mass ones."""
    if binning == "equal-width":
        return f"{row['bin'] / n_bins:.1f}–{(row['bin'] + 1) / n_bins:.1f}"
    return f"{row['lower']:.3f}–{row['upper']:.3f}"


def _calibration_section(result, candidates: Sequence[str], shown: str | None, n_bins: int = 10) -> dict | None:
    """Both binnings of every candidate (for the chart), their ECE and worst bin, and the chosen model's
    reliability tables; None when the test part lacks a class."""
    if not result.reliability:
        return None
    y = result.predictions[LABEL_COLUMN].to_numpy(dtype=float)
    tables = {m: reliability_tables(y, result.predictions[m].to_numpy(), n_bins) for m in candidates}
    summary = []
    for name, binnings in tables.items():
        row: dict[str, object] = {"model": name}
        for binning, table in binnings.items():
            errors = calibration_errors(table)
            worst = table.loc[table["bin"] == errors["bin"]]
            row[f"ECE ({binning})"] = errors["ece"]
            row[f"max bin error ({binning})"] = errors["max_error"]
            count = int(errors["count"])
            row[f"worst bin ({binning})"] = (
                f"{_bin_range(worst.iloc[0], binning, n_bins)}, {count:,} snapshot{'' if count == 1 else 's'}"
                if len(worst)
                else ""
            )
        summary.append(row)
    detail = []
    for binning, table in tables.get(shown, {}).items() if shown is not None else ():
        shown_table = pd.DataFrame({
            "bin": [_bin_range(r, binning, n_bins) for _, r in table.iterrows()],
            "snapshots": table["count"], "mean predicted": table["mean_predicted"],
            "observed rate": table["observed_rate"], "95 % interval": [
                f"{lo:.1%} – {hi:.1%}" if np.isfinite(lo) else "" for lo, hi in zip(table["observed_low"], table["observed_high"])],
            "error": table["error"],
            "note": ["no test snapshot" if n == 0 else f"fewer than {FEW_ROWS} snapshots" if n < FEW_ROWS else ""
                     for n in table["count"]],
        })  # fmt: skip
        rates = ["mean predicted", "observed rate", "error"]
        detail.append({"binning": binning, "table": html_table(shown_table, percent_columns=rates)})
    from leadml.explain.report import plots

    chart = plots.calibration_plot({m: t["equal-mass"] for m, t in tables.items()},
                                   {m: t["equal-width"] for m, t in tables.items()}, few=FEW_ROWS)  # fmt: skip
    return {"chart": chart, "summary": html_table(pd.DataFrame(summary)), "detail": detail, "model": shown}


def _segment_values(rows: pd.DataFrame, trainset, segment: str) -> np.ndarray | None:
    """Each test snapshot's value of a segment: a column of the snapshots (a profile feature), else a
    field of the leads (or flat) table; numbers of many values in quartiles. None when not found."""
    data = trainset.data
    if segment in rows.columns:
        values = rows[segment]
    else:
        tables = [t for t in (getattr(data, "leads", None), getattr(data, "flat", None)) if t is not None]
        found = [t for t in tables if segment in t.columns and "lead_id" in t.columns]
        if not found:
            return None
        values = rows["lead_id"].map(found[0].drop_duplicates("lead_id").set_index("lead_id")[segment])
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and values.nunique() > 12:
        values = pd.qcut(values, 4, duplicates="drop").astype(str).where(values.notna())
    return values.astype(object).to_numpy()


def _impact_sentence(judged: SegmentMetrics) -> str:
    """The disparate-impact figure in words: lowest over highest MQL rate, against the four-fifths rule."""
    rates = judged.table.set_index("level")["mql_rate"]
    least = f"{judged.min_conversions} conversion{'' if judged.min_conversions == 1 else 's'}"
    if not np.isfinite(judged.impact_ratio):
        return f"No ratio of MQL rates: fewer than two levels with at least {least}, or no MQL among them."
    verdict = (f"below {FOUR_FIFTHS:g}: flagged by the four-fifths rule" if judged.flagged
               else f"at or above {FOUR_FIFTHS:g} (the four-fifths rule)")  # fmt: skip
    return (f"Ratio of MQL rates (disparate impact), over the levels with at least {least}: lowest "
            f"{judged.lowest} {rates[judged.lowest]:.1%} / highest {judged.highest} {rates[judged.highest]:.1%} "
            f"= {judged.impact_ratio:.2f}, {verdict}.")  # fmt: skip


def _interval_text(value: float, low: float, high: float, percent: bool) -> str:
    if not np.isfinite(value):
        return ""
    if percent:
        return f"{value:.1%} [{low:.1%}, {high:.1%}]" if np.isfinite(low) else f"{value:.1%}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]" if np.isfinite(low) else f"{value:.3f}"


SEGMENT_COLUMNS = ("level", "snapshots", "conversions", "conversion rate", "ROC-AUC [95 %]", "verdict",
                   "MQL rate [95 %]", "precision at MQL", "recall at MQL", "mean probability", "note")  # fmt: skip


def _segment_rows(judged: SegmentMetrics) -> list[dict]:
    """The rows of one segment's table as the template draws them: cells as text, and whether judged."""
    out = []
    for r in judged.table.to_dict("records"):
        percent = [f"{r[k]:.1%}" if np.isfinite(r[k]) else "" for k in
                   ("conversion_rate", "precision_at_mql", "recall_at_mql", "mean_probability")]  # fmt: skip
        cells = [r["level"], f"{r['rows']:,}", f"{r['conversions']:,}", percent[0],
                 _interval_text(r["roc_auc"], r["roc_auc_low"], r["roc_auc_high"], False), r["verdict"],
                 _interval_text(r["mql_rate"], r["mql_rate_low"], r["mql_rate_high"], True), *percent[1:], r["note"]]  # fmt: skip
        out.append({"cells": cells, "judged": bool(r["judged"])})
    return out


def _segment_tables(
    result, rows: pd.DataFrame, trainset, evaluation: EvaluationConfig, model: str | None
) -> list[dict]:
    """Per segment of ``evaluation.segments``: each level with rows, conversions, ROC-AUC and MQL rate
    (seeded bootstrap intervals, leads resampled whole), levels under ``min_conversions`` greyed and
    unjudged, and the ratio of MQL rates across the judged levels (flagged below 0.8)."""
    predictions = result.predictions
    if model not in predictions:
        return []
    y = predictions[LABEL_COLUMN].to_numpy(dtype=float)
    threshold = result.thresholds[model].threshold if model in result.thresholds else None
    ev = result.evaluation
    n_boot, seed = (ev.n_boot, ev.settings.get("seed", 0)) if ev is not None else (1000, 0)
    overall = ev.value(model, "roc_auc") if ev is not None else None
    out: list[dict[str, object]] = []
    for segment in evaluation.segments:
        values = _segment_values(rows, trainset, segment)
        if values is None:
            out.append(
                {"name": segment, "missing": f"'{segment}' is neither a column of the test snapshots nor of the leads"}
            )
            continue
        judged = segment_metrics(y, predictions[model].to_numpy(), values, threshold=threshold,
                                 min_conversions=evaluation.min_conversions, overall_auc=overall, n_boot=n_boot,
                                 seed=seed, groups=predictions["lead_id"].to_numpy())  # fmt: skip
        impact = _impact_sentence(judged) if threshold is not None else "No MQL threshold, so no MQL rates to compare."
        out.append({"name": segment, "missing": None, "columns": SEGMENT_COLUMNS, "rows": _segment_rows(judged),
                    "impact": impact, "flagged": judged.flagged})  # fmt: skip
    return out


def write_model_card(
    result,
    trainset,
    path: str | os.PathLike,
    *,
    contributions: Contributions | None = None,
    segments: Sequence[str] | None = None,
    evaluation: EvaluationConfig | None = None,
    tiers=None,
    max_points: int = 3000,
    title: str = "Model card",
    rules=None,
) -> Path:
    """Write the model card of a training run (self-contained HTML).

    Parameters:
        result: the :class:`~leadml.modeling.train.TrainingResult`.
        trainset: the :class:`~leadml.features.build.TrainSet` it was trained on.
        contributions: SHAP contributions to show; by default the chosen model (or the best
            model when the rules won) is explained on the test snapshots, against the training rows.
        segments: columns (profile features or lead fields) whose levels get a row of metrics each;
            by default ``evaluation.segments``.
        evaluation: the pipeline's ``evaluation`` section (segments and ``min_conversions``, under which
            a level is greyed and not judged); the defaults when None.
        tiers: the MQL tiers (``MQLConfig.tiers``; default tiers when None).
        max_points: the most leads drawn in the beeswarm.
        rules: the :class:`~leadml.rules.ruleset.RuleSet` of the pipeline, named and listed when the
            rules baseline is the model.
    """
    from leadml.core.config import MQLConfig
    from leadml.explain.report import plots
    from leadml.modeling.policy import assign_tiers, ordered_tiers

    judging = evaluation if evaluation is not None else EvaluationConfig()
    if segments is not None:
        judging = judging.model_copy(update={"segments": list(segments)})
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
    charts: dict[str, str | None] = {"gains": None, "tiers": None}  # None: not drawn
    shown = result.chosen if result.chosen in predictions else model
    calibration = _calibration_section(result, candidates, shown)
    if len(y) and 0 < y.sum() < len(y):
        charts["gains"] = plots.gains_chart(y, {m: predictions[m].to_numpy() for m in candidates})
    tier_table = None
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
        segments=_segment_tables(result, rows, trainset, judging, shown) if len(rows) else [],
        min_conversions=judging.min_conversions, confusion=_confusion_section(result, shown), calibration=calibration,
        few_rows=FEW_ROWS,
        explained_model=model, shown_model=shown, n_test=len(predictions), rules_model=_rules_section(result, rules),
    )  # fmt: skip
