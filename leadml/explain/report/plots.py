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


def _reliability_panel(ax, tables: Mapping[str, pd.DataFrame], title: str, few: int, top: float | None) -> None:
    """One binning's reliability curves: bins with ``few`` rows or more as dots with their Wilson
    interval, smaller bins lighter and labelled with their count; the diagonal up to ``top``."""
    highest = 0.05
    for i, (name, table) in enumerate(tables.items()):
        colour = PALETTE[i % len(PALETTE)]
        filled = table[table["count"] > 0]
        x, y = filled["mean_predicted"].to_numpy(), filled["observed_rate"].to_numpy()
        ax.plot(x, y, color=colour, lw=1, alpha=0.8, label=name)
        solid = filled["count"].to_numpy() >= few
        if "observed_low" in filled:
            below = np.clip(y - filled["observed_low"].to_numpy(), 0, None)
            above = np.clip(filled["observed_high"].to_numpy() - y, 0, None)
            ax.errorbar(x[solid], y[solid], yerr=[below[solid], above[solid]], fmt="o", ms=4, color=colour,
                        lw=0.8, capsize=2)  # fmt: skip
        else:
            ax.plot(x[solid], y[solid], "o", ms=4, color=colour)
        ax.plot(x[~solid], y[~solid], "o", ms=4, color=colour, alpha=0.3)
        for xi, yi, n in zip(x[~solid], y[~solid], filled["count"].to_numpy()[~solid]):
            ax.annotate(f"n={int(n)}", (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7, color="#888")
        highest = max(highest, float(np.nanmax(x, initial=0)), float(np.nanmax(y, initial=0)))
    end = top if top is not None else highest
    ax.plot([0, end], [0, end], ls="--", color="#999", lw=1, label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed conversion rate", title=title)
    ax.legend(fontsize=8)


def calibration_plot(
    reliability: Mapping[str, pd.DataFrame], uniform: Mapping[str, pd.DataFrame] | None = None, *, few: int = 30
) -> str:
    """Mean predicted probability against the observed conversion rate, per bin and model.

    ``reliability`` holds the equal-mass tables (left); ``uniform`` the equal-width tables over
    [0, 1] (right), which show the high range the equal-mass bins average away. Bins of fewer than
    ``few`` snapshots are drawn lighter with their count: their rate is noise.
    """
    figure = new_figure(10.4 if uniform else 5.2, 4.4)
    panels = figure.subplots(1, 2) if uniform else [figure.add_subplot()]
    _reliability_panel(panels[0], reliability, "Equal-mass bins (test snapshots)", few, None)
    if uniform:
        _reliability_panel(panels[1], uniform, "Equal-width bins over [0, 1] (test snapshots)", few, 1.0)
        panels[1].set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.08))
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
    colours: tuple[str, str, str] = (RAISE_COLOUR, LOWER_COLOUR, "red raises, blue lowers"),
) -> str:
    """A lead's waterfall as inline SVG: base value, the ``top`` largest contributions, the rest, the margin.

    ``colours``: of what raises, of what lowers, and the caption that says so."""
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
        colour = colours[0] if value >= 0 else colours[1]
        text = html.escape(label if len(label) <= 38 else label[:37] + "…")
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{text}</text>'
                     f'<rect x="{a:.1f}" y="{y + 2}" width="{max(b - a, 1):.1f}" height="{row - 6}" fill="{colour}"/>'
                     f'<text x="{left + width + 4}" y="{y + 13}">{value:+.2f}</text>')  # fmt: skip
        start = end
    y += row
    parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-weight="bold">this lead (log-odds)</text>'
                 f'<line x1="{x(margin):.1f}" x2="{x(margin):.1f}" y1="{y}" y2="{y + row - 4}" stroke="#000" '
                 f'stroke-width="2"/><text x="{left + width + 4}" y="{y + 13}" font-weight="bold">{margin:+.2f}</text>'
                 f'<text x="{left}" y="{y + row + 14}" fill="#555">probability {probability:.1%}; {html.escape(colours[2])}</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


class _BandScale:
    """Where a period and a metric value land on the band chart (periods in slots, values on [bottom, top])."""

    def __init__(self, n: int, values: np.ndarray, longest: int):
        shown = values[np.isfinite(values)]
        shown = shown if shown.size else np.array([0.5, 1.0])  # nothing measured: the whole useful range
        self.bottom = float(np.floor(shown.min() * 20) / 20)
        self.top = max(min(float(np.ceil(shown.max() * 20) / 20), 1.0), self.bottom + 0.05)
        self.n, self.slot = n, max(36, min(90, 640 // max(n, 1)))
        self.left, self.plot_top, self.plot_height = 52, 34, 200
        self.rotate = longest * 6.5 > self.slot
        self.width = max(self.left + self.slot * n + 20, 520)
        self.base = self.plot_top + self.plot_height
        self.height = self.base + (64 if self.rotate else 40)

    def x(self, i: int) -> float:
        return self.left + self.slot * (i + 0.5)

    def y(self, value: float) -> float:
        return self.plot_top + (self.top - value) / (self.top - self.bottom) * self.plot_height

    def grid(self, axis: str) -> list[str]:
        """The value lines and their ticks, the line of a random ranking (0.5) when in range, the axis name."""
        right, step = self.width - 20, 0.05 if self.top - self.bottom <= 0.3 else 0.1
        parts = [f'<line x1="{self.left}" x2="{right}" y1="{self.y(t):.1f}" y2="{self.y(t):.1f}" stroke="#e3e6eb"/>'
                 f'<text x="{self.left - 6}" y="{self.y(t) + 4:.1f}" text-anchor="end">{t:.2f}</text>'
                 for t in np.arange(self.bottom, self.top + 1e-9, step)]  # fmt: skip
        if self.bottom <= 0.5 <= self.top:
            parts.append(f'<line x1="{self.left}" x2="{right}" y1="{self.y(0.5):.1f}" y2="{self.y(0.5):.1f}" '
                         f'stroke="#999" stroke-dasharray="2 3"/><text x="{right - 2}" y="{self.y(0.5) - 3:.1f}" '
                         'text-anchor="end" fill="#777">random</text>')  # fmt: skip
        middle = self.plot_top + self.plot_height / 2
        parts.append(f'<text x="12" y="{middle:.1f}" transform="rotate(-90 12 {middle:.1f})" '
                     f'text-anchor="middle">{html.escape(axis)}</text>')  # fmt: skip
        return parts


def _reference_marks(scale: _BandScale, reference: np.ndarray) -> list[str]:
    """Per period, the reference interval as a box and its value as a dashed line."""
    parts = []
    half = scale.slot * 0.45
    for i, (value, low, high) in enumerate(reference.T):
        if np.isfinite(low) and np.isfinite(high):
            parts.append(f'<rect x="{scale.x(i) - half:.1f}" y="{scale.y(high):.1f}" width="{2 * half:.1f}" '
                         f'height="{max(scale.y(low) - scale.y(high), 1):.1f}" fill="#f3b27a" fill-opacity="0.35"/>')  # fmt: skip
        if np.isfinite(value):
            parts.append(f'<line x1="{scale.x(i) - half:.1f}" x2="{scale.x(i) + half:.1f}" y1="{scale.y(value):.1f}" '
                         f'y2="{scale.y(value):.1f}" stroke="#c0611a" stroke-dasharray="4 3"/>')  # fmt: skip
    return parts


def _band_marks(scale: _BandScale, points: np.ndarray, labels: Sequence[str]) -> list[str]:
    """The band and line through consecutive measured periods, each point with its interval, the labels."""
    value, low, high = points
    known = np.isfinite(points).all(axis=0)
    parts = []
    stretches = np.split(np.arange(scale.n), np.flatnonzero(np.diff(known.astype(int)) != 0) + 1) if scale.n else []
    for run in (r for r in stretches if len(r) > 1 and known[r[0]]):
        edge = [f"{scale.x(i):.1f},{scale.y(high[i]):.1f}" for i in run]
        edge += [f"{scale.x(i):.1f},{scale.y(low[i]):.1f}" for i in run[::-1]]
        line = " ".join(f"{scale.x(i):.1f},{scale.y(value[i]):.1f}" for i in run)
        parts.append(f'<polygon points="{" ".join(edge)}" fill="{PALETTE[0]}" fill-opacity="0.18"/>'
                     f'<polyline points="{line}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>')  # fmt: skip
    for i in range(scale.n):
        x, label = scale.x(i), html.escape(str(labels[i]))
        turn = f'transform="rotate(-40 {x:.1f} {scale.base + 16})" text-anchor="end"' if scale.rotate else (
            'text-anchor="middle"')  # fmt: skip
        parts.append(f'<text x="{x:.1f}" y="{scale.base + 16}" {turn}>{label}</text>')
        if not known[i]:
            parts.append(f'<text x="{x:.1f}" y="{scale.base - 6}" text-anchor="middle" fill="#999">n/a</text>')
            continue
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{scale.y(low[i]):.1f}" y2="{scale.y(high[i]):.1f}" '
                     f'stroke="{PALETTE[0]}"/><circle cx="{x:.1f}" cy="{scale.y(value[i]):.1f}" r="3.5" '
                     f'fill="{PALETTE[0]}"><title>{label}: {value[i]:.3f} [{low[i]:.3f}, {high[i]:.3f}]</title></circle>')  # fmt: skip
    return parts


def interval_band_svg(
    labels: Sequence[str],
    value: Sequence[float],
    low: Sequence[float],
    high: Sequence[float],
    *,
    reference: tuple[Sequence[float], Sequence[float], Sequence[float]] | None = None,
    names: tuple[str, str] = ("realised (95 % interval)", "training estimate (95 % interval)"),
    axis: str = "ROC-AUC",
) -> str:
    """A metric per period as inline SVG: its points joined by a line in a shaded interval band, and
    per period the ``reference`` (value, low, high; e.g. the training estimate) as an orange box with
    a dashed line. A period without a value (NaN) says "n/a" on the axis; no matplotlib, a few kB."""
    points = np.asarray([value, low, high], dtype=float).reshape(3, len(labels))
    ref = np.asarray(reference, dtype=float).reshape(3, len(labels)) if reference is not None else None
    values = points if ref is None else np.concatenate([points, ref])
    scale = _BandScale(len(labels), values, max((len(str(label)) for label in labels), default=0))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{scale.width}" height="{scale.height}" '
             f'font-family="sans-serif" font-size="11" role="img" aria-label="{html.escape(axis)} per period">']  # fmt: skip
    parts += scale.grid(axis)
    parts += _reference_marks(scale, ref) if ref is not None else []
    parts += _band_marks(scale, points, labels)
    parts.append(f'<rect x="{scale.left}" y="6" width="12" height="10" fill="{PALETTE[0]}" fill-opacity="0.35"/>'
                 f'<text x="{scale.left + 16}" y="15">{html.escape(names[0])}</text>')  # fmt: skip
    if ref is not None:
        parts.append(f'<rect x="{scale.left + 230}" y="6" width="12" height="10" fill="#f3b27a" fill-opacity="0.6"/>'
                     f'<text x="{scale.left + 246}" y="15">{html.escape(names[1])}</text>')  # fmt: skip
    return "".join(parts) + "</svg>"
