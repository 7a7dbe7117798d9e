"""The backtest page: did the scores handed to sales convert, period by period?

One chart (the realised ROC-AUC per period with its 95 % interval band, against the interval the
serving model was trained with, inline SVG) and one table (counts, the realised metrics with
their intervals, the training estimate, calibration). The figures come from
:func:`leadml.jobs.backtest.run_backtest`; a period without figures (too few labelled rows, one
class only) says "n/a" and why.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["backtest_table", "interval_text", "write_backtest_report"]


def interval_text(value: float, low: float = np.nan, high: float = np.nan, *, percent: bool = False,
                  newline: bool = False, compact: bool = False) -> str:  # fmt: skip
    """``0.812 [0.770, 0.850]`` (or percents), the value alone without an interval, ``n/a`` without a
    value; ``compact`` (a terminal's narrow columns): ``0.81 0.77–0.85`` and ``26% 19–32%``.

    Example:
        >>> interval_text(0.8123, 0.77, 0.85), interval_text(float("nan")), interval_text(0.05, percent=True)
        ('0.812 [0.770, 0.850]', 'n/a', '5.0%')
        >>> interval_text(0.2612, 0.19, 0.32, percent=True, compact=True)
        '26% 19–32%'
    """

    def text(number: float) -> str:
        if percent:
            return f"{number:.0%}" if compact else f"{number:.1%}"
        return f"{number:.2f}" if compact else f"{number:.3f}"

    if value is None or not np.isfinite(value):
        return "n/a"
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return text(value)
    gap = chr(10) if newline else " "
    if compact:
        return f"{text(value)}{gap}{text(low).rstrip('%')}–{text(high)}"
    return f"{text(value)}{gap}[{text(low)}, {text(high)}]"


def backtest_table(periods: pd.DataFrame, *, newline: bool = False, compact: bool = False) -> pd.DataFrame:
    """The periods as texts for people: counts, realised metrics and the training estimate, "n/a" where none.

    ``compact`` (for a terminal): two decimals, whole percents, intervals as ``low–high``, short
    headings, no model and no note columns.
    """

    def cells(name: str, percent: bool = False) -> list[str]:
        return [interval_text(v, lo, hi, percent=percent, newline=newline, compact=compact)
                for v, lo, hi in zip(periods[name], periods[f"{name}_low"], periods[f"{name}_high"])]  # fmt: skip

    predicted = [interval_text(v, percent=True, compact=compact) for v in periods["mean_predicted"]]
    table = pd.DataFrame({
        "period": periods["period"].astype(str),
        "served by": periods["served_by"].astype(str),
        "rows": [f"{n:,}" for n in periods["rows"]],
        "labelled": [f"{n:,}" for n in periods["labelled"]],
        "censored": [f"{share:.0%}" for share in periods["censored_share"]],
        "converted": [f"{n:,}" for n in periods["conversions"]],
        "ROC-AUC": cells("roc_auc"),
        "training ROC-AUC": cells("training_roc_auc"),
        "vs training": periods["vs_training"].astype(str),
        "precision@MQL": cells("precision_at_mql", percent=True),
        "recall@MQL": cells("recall_at_mql", percent=True),
        "predicted": predicted,
        "observed": cells("observed_rate", percent=True),
        "ECE": cells("ece"),
        "note": periods["note"].fillna("").astype(str),
    })  # fmt: skip
    if not compact:
        return table
    renamed = {"training ROC-AUC": "training", "precision@MQL": "prec@MQL", "recall@MQL": "rec@MQL",
               "predicted": "pred.", "censored": "cens.", "converted": "conv."}  # fmt: skip
    return table.drop(columns=["served by", "note"]).rename(columns=renamed)


def write_backtest_report(
    periods: pd.DataFrame,
    path: str | os.PathLike,
    *,
    by: str = "month",
    title: str = "Backtest",
    target: str = "won",
    horizon_days: int = 120,
    data_end: pd.Timestamp | None = None,
    notes: Sequence[str] = (),
    min_labelled: int = 50,
) -> Path:
    """Write the backtest page (self-contained HTML): the realised ROC-AUC chart and the table per period.

    Parameters:
        periods: one row per period as :func:`leadml.jobs.backtest.period_metrics` makes them, with
            the training estimate (``training_roc_auc`` and its ``_low`` / ``_high``) and ``vs_training``.
        by: what a period is (``month`` or ``week``), for the headings.
        target, horizon_days, data_end: how the served scores were labelled, for the note under the title.
        notes: lines a reader should know (left-out rows, mixed model versions, missing training runs).
    """
    import markupsafe

    from leadml.explain.report.html import html_table, render_page
    from leadml.explain.report.plots import interval_band_svg

    chart = interval_band_svg(
        periods["period"].astype(str).tolist(), periods["roc_auc"], periods["roc_auc_low"], periods["roc_auc_high"],
        reference=(periods["training_roc_auc"], periods["training_roc_auc_low"], periods["training_roc_auc_high"]),
        names=(f"realised per {by} (95 % interval)", "training estimate (95 % interval)"),
    )  # fmt: skip
    measured = periods["roc_auc"].notna()
    return render_page(
        "backtest_report.html", path, title=title, by=by, target=target, horizon_days=horizon_days,
        data_end=data_end, chart=markupsafe.Markup(chart), table=html_table(backtest_table(periods, newline=True)),
        notes=list(notes), min_labelled=min_labelled, n_periods=len(periods), n_measured=int(measured.sum()),
        n_rows=int(periods["rows"].sum()), n_labelled=int(periods["labelled"].sum()),
        n_conversions=int(periods["conversions"].sum()),
        n_within=int(periods["vs_training"].isin(["within", "overlaps"]).sum()),
        first=periods["period"].iloc[0] if len(periods) else "", last=periods["period"].iloc[-1] if len(periods) else "",
    )  # fmt: skip
