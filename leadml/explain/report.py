"""Self-contained HTML reports: the model card, the sales report and (from :mod:`.funnel`) the funnel.

Every page is one HTML file: charts are embedded as base64 PNG (matplotlib, Agg) or inline SVG,
styles and the little JavaScript (search, sort, expand) are inline, nothing is fetched, so a page
opens offline and can be mailed around. Pages are rendered with a small jinja2 template
(``leadml/explain/templates``) and written atomically.

- :func:`write_model_card`: for data scientists: the data, rules vs models with intervals,
  calibration, gains/lift, global SHAP importance (bar and beeswarm), scores by tier, metrics per
  segment (source, country, ...).
- :func:`write_sales_report`: for sales managers: leads by score with tier, MQL flag and reasons,
  searchable and sortable; a click on a lead opens its reasons and, for the top ``waterfalls``
  leads, its waterfall chart (inline SVG, about 3 kB each, so the page stays small).
- :func:`write_funnel_report`: lead -> MQL -> SQL -> won, by source and month, stuck MQLs.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.data.contract import LABEL_COLUMN
from leadml.data.io import write_text
from leadml.errors import LeadDataError
from leadml.explain.funnel import write_funnel_report
from leadml.explain.reasons import Contributions, explain_margin

__all__ = ["html_table", "render_page", "write_funnel_report", "write_model_card", "write_sales_report"]

TEMPLATES = Path(__file__).parent / "templates"
MODEL_CARD_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10", "capture_top10",
                      "precision_at_mql", "recall_at_mql", "mql_share")  # fmt: skip
REASON_COLUMNS = ("reason_1", "reason_2", "reason_3", "counter_reason_1", "counter_reason_2")


def render_page(template: str, path: str | os.PathLike, **context) -> Path:
    """Render one of the templates with ``context`` and write it atomically to ``path``."""
    import jinja2

    import leadml

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)  # fmt: skip
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = env.get_template(template).render(version=leadml.__version__, generated=generated, **context)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_text(text, target)


def _cell(value, percent: bool, digits: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.1%}" if percent else f"{value:,.{digits}f}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def html_table(frame: pd.DataFrame, *, percent: bool = False, digits: int = 3, percent_columns: Sequence[str] = ()):
    """A frame as an escaped HTML table (floats rounded; rates as percents when ``percent``)."""
    import markupsafe

    rates = {c for c in frame.columns if percent and ("→" in str(c) or str(c) in ("from_previous", "from_lead"))}
    rates |= set(percent_columns)
    head = "".join(f"<th>{markupsafe.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            f"<td>{markupsafe.escape(_cell(v, c in rates, digits))}</td>" for c, v in zip(frame.columns, row)
        )
        body.append(f"<tr>{cells}</tr>")
    return markupsafe.Markup(f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


# -- model card -------------------------------------------------------------------------------
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
    from leadml.config import MQLConfig
    from leadml.explain import plots
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
    charts = {}
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
            differences = html_table(diff[diff["metric"].isin(wanted)].drop(columns="baseline"), percent_columns=["share_better"])
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


# -- sales report -----------------------------------------------------------------------------
def write_sales_report(
    scores: pd.DataFrame,
    path: str | os.PathLike,
    *,
    contributions: Contributions | None = None,
    waterfalls: int = 200,
    max_leads: int | None = None,
    title: str = "Leads to call",
    history: pd.DataFrame | None = None,
    history_settings=None,
) -> Path:
    """Write the sales report: every lead by score with tier, MQL flag and reasons (self-contained HTML).

    Parameters:
        scores: one row per lead with ``lead_id`` and ``probability`` (or ``score``), and when
            present ``score``, ``tier``, ``is_mql``, ``as_of``, ``reason_1..3``,
            ``counter_reason_1..2``, ``why`` and ``counterfactual``.
        contributions: contributions of the scored leads (all or some), indexed like ``scores``;
            the top ``waterfalls`` leads by score that have them get a waterfall chart (inline SVG).
        waterfalls: how many leads get a chart (the page grows by about 3 kB per chart).
        max_leads: list only the best ``max_leads`` leads (the page grows by about 0.85 kB per
            lead: 100,000 leads make an 85 MB page, too heavy for a browser); None lists all.
        history: the score history (:func:`leadml.history.load_history`): the page then lists the
            leads warming up and the stuck MQLs, and the top leads show their score over time.
        history_settings: a :class:`~leadml.config.HistoryConfig` (windows and list sizes).

    With ``next_action`` / ``due_at`` / ``fit_score`` / ``engagement_score`` / ``grid_tier`` in the
    scores, each lead shows its hand-off line ("Call within 24 h: ...") and its grid tier.
    """
    from leadml.explain.plots import waterfall_svg
    from leadml.explain.sales_history import hand_off_line, history_context

    if "lead_id" not in scores.columns or not ({"probability", "score"} & set(scores.columns)):
        raise LeadDataError(
            "sales report: the scores need 'lead_id' and 'probability' (or 'score') columns "
            f"(columns present: {', '.join(map(str, list(scores.columns)[:12]))})"
        )
    explained = None
    if contributions is not None:  # by index label, so contributions of some leads only (the top) will do
        explained = pd.Index(contributions.index).get_indexer(scores.index)
        if not pd.Index(contributions.index).is_unique or (len(scores) and (explained < 0).all()):
            raise LeadDataError("sales report: the contributions must be indexed like the scores (unique labels)")
    key = scores["probability"] if "probability" in scores.columns else scores["score"]
    order = np.argsort(-key.to_numpy(dtype=float), kind="stable")
    n_scored = len(order)
    if max_leads is not None:
        order = order[:max_leads]
    ranked = scores.iloc[order].reset_index(drop=True)
    past = history_context(history, ranked["lead_id"].astype(str).tolist(), history_settings, charts=waterfalls)
    leads = []
    for rank, row in enumerate(ranked.to_dict("records")):
        probability = row.get("probability")
        score = row.get("score", None if probability is None else int(np.floor(probability * 100 + 0.5)))
        chart = None
        if explained is not None and rank < waterfalls and explained[order[rank]] >= 0:
            i = int(explained[order[rank]])
            chart = waterfall_svg(contributions.values[i], contributions.features, contributions.base_value,
                                  float(contributions.margin[i]), float(contributions.probability[i]))  # fmt: skip
        leads.append({
            "rank": rank + 1, "lead_id": str(row["lead_id"]), "score": score, "probability": probability,
            "tier": "" if pd.isna(row.get("tier", "")) else str(row.get("tier", "")),
            "is_mql": bool(row.get("is_mql", False)) if not pd.isna(row.get("is_mql", False)) else False,
            "as_of": row.get("as_of"),
            "reasons": [row[c] for c in REASON_COLUMNS[:3] if isinstance(row.get(c), str) and row[c]],
            "counter": [row[c] for c in REASON_COLUMNS[3:] if isinstance(row.get(c), str) and row[c]],
            "why": row.get("why") if isinstance(row.get("why"), str) else "",
            "counterfactual": row.get("counterfactual") if isinstance(row.get("counterfactual"), str) else "",
            "chart": chart,
        })  # fmt: skip
        lead = leads[-1]
        lead["hand_off"] = hand_off_line(row, lead["reasons"])
        lead["grid"] = _text(row.get("grid_tier"))
        lead["fit"], lead["engagement"] = _text(row.get("fit_score")), _text(row.get("engagement_score"))
        lead["past"] = past["per_lead"].get(lead["lead_id"], {"sparkline": None, "week_change": None, "runs": 0})
    n_mql = int(scores["is_mql"].fillna(False).astype(bool).sum()) if "is_mql" in scores.columns else 0
    return render_page("sales_report.html", path, title=title, leads=leads, n_leads=len(leads), n_mql=n_mql,
                       n_scored=n_scored,
                       waterfalls=min(waterfalls, len(leads)) if contributions is not None else 0,
                       has_tier="tier" in scores.columns, has_as_of="as_of" in scores.columns,
                       has_grid="grid_tier" in scores.columns and scores["grid_tier"].notna().any(),
                       has_action="next_action" in scores.columns and scores["next_action"].notna().any(),
                       past=past)  # fmt: skip


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)

