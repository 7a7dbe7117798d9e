"""Charts of the reports: matplotlib figures as base64 PNG data URIs, waterfalls as inline SVG.

Figures are made with matplotlib's object API on the Agg canvas (no pyplot, no global state, no
display needed), so reports render in batch jobs and tests alike. Each chart function returns a
``data:image/png;base64,...`` string that an ``<img src>`` embeds: the HTML needs no other file.
The per-lead waterfall is a small hand-written SVG (a few kB), so a sales report can carry
hundreds of them.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from leadml.explain.sentences import feature_label

RAISE_COLOUR = "#d6404e"  # a contribution that raises the probability
LOWER_COLOUR = "#2c7bb6"  # ... that lowers it
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def new_figure(width: float = 6.4, height: float = 4.0):
    """A matplotlib Figure on the Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def data_uri(figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    figure.canvas.print_png(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def calibration_plot(reliability: Mapping[str, pd.DataFrame]) -> str:
    """Mean predicted probability against the observed conversion rate, per bin and model."""
    figure = new_figure(5.2, 4.4)
    ax = figure.add_subplot()
    top = 0.05
    for i, (name, table) in enumerate(reliability.items()):
        ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", ms=4,
                color=PALETTE[i % len(PALETTE)], label=name)  # fmt: skip
        top = max(top, float(table["mean_predicted"].max()), float(table["observed_rate"].max()))
    ax.plot([0, top], [0, top], ls="--", color="#999", lw=1, label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed conversion rate",
           title="Calibration on the test snapshots (equal-mass bins)")  # fmt: skip
    ax.legend(fontsize=8)
    return data_uri(figure)


def gains_chart(y: np.ndarray, predictions: Mapping[str, np.ndarray]) -> str:
    """Cumulative gains (share of conversions in the top x % of leads) and lift per decile."""
    y = np.asarray(y, dtype=float)
    figure = new_figure(9.0, 3.8)
    gains, lift = figure.subplots(1, 2)
    share = np.arange(1, len(y) + 1) / max(len(y), 1)
    deciles = np.arange(1, 11)
    width = 0.8 / max(len(predictions), 1)
    for i, (name, p) in enumerate(predictions.items()):
        order = np.argsort(-np.asarray(p, dtype=float), kind="stable")
        captured = np.cumsum(y[order]) / max(y.sum(), 1)
        colour = PALETTE[i % len(PALETTE)]
        gains.plot(np.r_[0, share], np.r_[0, captured], color=colour, label=name)
        bins = np.minimum((np.arange(len(y)) * 10) // max(len(y), 1), 9)
        rate = np.bincount(bins, weights=y[order], minlength=10) / np.maximum(np.bincount(bins, minlength=10), 1)
        lift.bar(deciles + (i - (len(predictions) - 1) / 2) * width, rate / max(y.mean(), 1e-12),
                 width=width, color=colour, label=name)  # fmt: skip
    gains.plot([0, 1], [0, 1], ls="--", color="#999", lw=1, label="random")
    gains.set(xlabel="share of leads contacted (highest score first)", ylabel="share of conversions",
              title="Cumulative gains")  # fmt: skip
    gains.legend(fontsize=8)
    lift.axhline(1.0, ls="--", color="#999", lw=1)
    lift.set(xlabel="decile (1 = highest scores)", ylabel="lift over the base rate", title="Lift by decile",
             xticks=deciles)  # fmt: skip
    return data_uri(figure)


def importance_bar(importance: pd.Series, top: int = 15) -> str:
    """Mean |SHAP| per feature (log-odds), the ``top`` largest."""
    shown = importance.head(top)[::-1]
    figure = new_figure(7.0, 0.32 * len(shown) + 1.2)
    ax = figure.add_subplot()
    ax.barh([feature_label(n) for n in shown.index], shown.to_numpy(), color=RAISE_COLOUR)
    ax.set(xlabel="mean |contribution| (log-odds)", title="Global importance (mean |SHAP|)")
    ax.tick_params(axis="y", labelsize=8)
    return data_uri(figure)


def _colour_scale(values: pd.Series) -> np.ndarray:
    """Each value's rank in [0, 1] within its feature (categories by code); NaN stays NaN."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
        numbers = pd.Series(codes)
    else:
        numbers = pd.Series(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float))
    return numbers.rank(pct=True).to_numpy()


def beeswarm(contributions, features: pd.DataFrame, top: int = 15, max_points: int = 3000, seed: int = 0) -> str:
    """One dot per lead and feature: its contribution (x), coloured by the feature's value (low to high)."""
    importance = contributions.importance().head(top)
    rng = np.random.default_rng(seed)
    n = len(contributions)
    sample = np.sort(rng.choice(n, max_points, replace=False)) if n > max_points else np.arange(n)
    figure = new_figure(7.4, 0.36 * len(importance) + 1.4)
    ax = figure.add_subplot()
    position = {name: i for i, name in enumerate(contributions.features)}
    cmap = None
    for row, name in enumerate(importance.index[::-1]):
        x = contributions.values[sample, position[name]]
        colour = _colour_scale(features[name].iloc[sample]) if name in features else np.full(len(sample), np.nan)
        # jitter grows with the local density, so dense regions spread like a swarm
        hist, edges = np.histogram(x, bins=50)
        density = hist[np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(hist) - 1)] / max(hist.max(), 1)
        y = row + (rng.random(len(x)) - 0.5) * 0.8 * np.sqrt(density)
        known = ~np.isnan(colour)
        ax.scatter(x[~known], y[~known], s=4, color="#bbbbbb", linewidths=0)
        cmap = ax.scatter(x[known], y[known], s=4, c=colour[known], cmap="coolwarm", vmin=0, vmax=1, linewidths=0)
    ax.axvline(0, color="#666", lw=0.8)
    ax.set_yticks(range(len(importance)), [feature_label(n) for n in importance.index[::-1]], fontsize=8)
    ax.set(xlabel="contribution to the log-odds (SHAP)", title="How each feature moves the leads (grey: missing)")
    if cmap is not None:
        bar = figure.colorbar(cmap, ax=ax, ticks=[0, 1], aspect=40)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("feature value")
    return data_uri(figure)


def tier_histogram(
    probability: np.ndarray, tiers: Sequence[str] | np.ndarray, tier_order: Sequence[str], threshold: float | None
) -> str:
    """Histogram of probabilities, stacked by tier, with the MQL threshold."""
    probability = np.asarray(probability, dtype=float)
    tier_of_row = np.asarray(tiers, dtype=object)
    figure = new_figure(7.0, 3.6)
    ax = figure.add_subplot()
    bins = np.linspace(0, max(float(probability.max(initial=0.0)), 1e-6), 41)
    stacks = [probability[tier_of_row == name] for name in tier_order]
    ax.hist(stacks, bins=bins, stacked=True, label=list(tier_order),
            color=[PALETTE[i % len(PALETTE)] for i in range(len(tier_order))])  # fmt: skip
    if threshold is not None and np.isfinite(threshold) and threshold <= 1:
        ax.axvline(threshold, color="#222", ls="--", lw=1, label=f"MQL threshold {threshold:.3f}")
    ax.set(xlabel="calibrated probability", ylabel="snapshots", title="Score distribution by tier (test snapshots)")
    ax.legend(fontsize=8)
    return data_uri(figure)


def funnel_chart(counts: pd.DataFrame) -> str:
    """Horizontal bars: how many leads reached each stage."""
    figure = new_figure(6.4, 2.8)
    ax = figure.add_subplot()
    stages = counts["stage"].tolist()[::-1]
    values = counts["leads"].to_numpy()[::-1]
    ax.barh(stages, values, color=PALETTE[0])
    for y, v in enumerate(values):
        ax.text(v, y, f" {int(v):,}", va="center", fontsize=8)
    ax.set(xlabel="leads", title="Funnel: leads that reached each stage")
    return data_uri(figure)


def waterfall_svg(
    values: np.ndarray,
    names: Sequence[str],
    base_value: float,
    margin: float,
    probability: float,
    *,
    top: int = 8,
    labels: Sequence[str] | None = None,
) -> str:
    """A lead's waterfall as inline SVG: base value, the ``top`` largest contributions, the rest, the margin."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(-np.abs(values), kind="stable")[:top]
    rest = float(values.sum() - values[order].sum())
    shown = [(labels[i] if labels is not None else feature_label(names[i]), float(values[i])) for i in order]
    if len(values) > len(order):
        shown.append((f"{len(values) - len(order)} other features", rest))
    steps = np.cumsum([base_value] + [v for _, v in shown])
    low, high = float(min(steps.min(), base_value)), float(max(steps.max(), base_value))
    pad = (high - low) * 0.05 or 0.5
    low, high = low - pad, high + pad
    left, width, row = 230, 300, 20
    height = row * (len(shown) + 2) + 24

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * width

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 70}" height="{height}" '
             f'font-family="sans-serif" font-size="11" role="img" aria-label="waterfall of contributions">']  # fmt: skip
    y = 4
    parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">average lead (base value)</text>'
                 f'<line x1="{x(base_value):.1f}" x2="{x(base_value):.1f}" y1="{y}" y2="{y + row - 4}" '
                 f'stroke="#444" stroke-width="2"/><text x="{left + width + 4}" y="{y + 13}">{base_value:+.2f}</text>')  # fmt: skip
    start = base_value
    for label, value in shown:
        y += row
        end = start + value
        a, b = sorted((x(start), x(end)))
        colour = RAISE_COLOUR if value >= 0 else LOWER_COLOUR
        text = html.escape(label if len(label) <= 38 else label[:37] + "…")
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{text}</text>'
                     f'<rect x="{a:.1f}" y="{y + 2}" width="{max(b - a, 1):.1f}" height="{row - 6}" fill="{colour}"/>'
                     f'<text x="{left + width + 4}" y="{y + 13}">{value:+.2f}</text>')  # fmt: skip
        start = end
    y += row
    parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-weight="bold">this lead (log-odds)</text>'
                 f'<line x1="{x(margin):.1f}" x2="{x(margin):.1f}" y1="{y}" y2="{y + row - 4}" stroke="#000" '
                 f'stroke-width="2"/><text x="{left + width + 4}" y="{y + 13}" font-weight="bold">{margin:+.2f}</text>'
                 f'<text x="{left}" y="{y + row + 14}" fill="#555">probability {probability:.1%}; red raises, blue lowers</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)
