"""Honest evaluation: every model and the rules baseline on the same test rows, with bootstrap intervals.

Metrics: ROC-AUC, PR-AUC (average precision), log loss, Brier score, ECE (equal-mass bins), lift and
share of all conversions captured in the top 5 / 10 / 20 %, and precision, recall and MQL share at
each model's MQL threshold. Intervals are 95 % percentile bootstrap intervals; the difference of a
model against the baseline is a *paired* bootstrap (the same resampled rows for both), so the
interval of the difference is much tighter than the two intervals side by side suggest. ECE is the
exception to plain percentiles: resampling adds noise to every bin, and an absolute gap only grows
with noise, so resampled ECEs sit above the sample's; its interval is shifted down by that bootstrap
bias (mean of the resampled values minus the point estimate) and floored at 0.

Every metric is computed for a whole block of resamples at once: a resample is a row of weights
(how often each row was drawn), and each metric is a weighted sum over rows sorted once by score.
Rows with tied scores form one threshold (as scikit-learn does); the top k % counts k * n rows and
shares a tie group that straddles the cut in proportion (as if ties were broken at random).
With ``groups`` (e.g. lead ids when a lead has several snapshots) whole groups are resampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.modeling.calibrate import bin_ids

TOP_SHARES = (0.05, 0.10, 0.20)
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
BIAS_SHIFTED = frozenset({"ece"})
_CELLS = 4_000_000  # resamples x rows held at once: about 32 MB per float array


def metric_names(top_shares: Sequence[float] = TOP_SHARES, with_threshold: bool = True) -> list[str]:
    """The metric names in report order."""
    names = ["roc_auc", "pr_auc", "log_loss", "brier", "ece"]
    for share in top_shares:
        pct = f"{share * 100:g}"
        names += [f"lift_top{pct}", f"capture_top{pct}"]
    if with_threshold:
        names += ["precision_at_mql", "recall_at_mql", "mql_share"]
    return names


def weighted_metrics(
    y: np.ndarray,
    p: np.ndarray,
    weights: np.ndarray,
    *,
    threshold: float | None = None,
    top_shares: Sequence[float] = TOP_SHARES,
    ece_bins: int = 10,
) -> dict[str, np.ndarray]:
    """Every metric for each row of ``weights`` (shape ``(B, n)``: how often each row counts).

    With ``weights = np.ones((1, n))`` these are the plain metrics of the sample. ECE bins are the
    equal-mass bins of the whole sample, kept fixed across resamples.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    W = np.atleast_2d(np.asarray(weights, dtype=float))
    order = np.argsort(-p, kind="stable")
    ps, ys, Ws = p[order], y[order], W[:, order]
    starts = np.r_[0, np.flatnonzero(np.diff(ps) != 0) + 1]
    G_all = np.add.reduceat(Ws, starts, axis=1)
    G_pos = np.add.reduceat(Ws * ys, starts, axis=1)
    G_neg = G_all - G_pos
    total, pos = G_all.sum(axis=1), G_pos.sum(axis=1)
    neg = total - pos
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        neg_below = neg[:, None] - np.cumsum(G_neg, axis=1)
        out["roc_auc"] = (G_pos * (neg_below + 0.5 * G_neg)).sum(axis=1) / (pos * neg)
        tp, fp = np.cumsum(G_pos, axis=1), np.cumsum(G_neg, axis=1)
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
        out["pr_auc"] = (G_pos * precision).sum(axis=1) / pos
        q = np.clip(p, 1e-15, 1 - 1e-15)
        out["log_loss"] = (W @ -(y * np.log(q) + (1 - y) * np.log(1 - q))) / total
        out["brier"] = (W @ (p - y) ** 2) / total
        bins = bin_ids(p, ece_bins, "quantile")
        onehot = np.zeros((len(p), ece_bins))
        onehot[np.arange(len(p)), bins] = 1.0
        out["ece"] = np.abs(W @ (onehot * p[:, None]) - W @ (onehot * y[:, None])).sum(axis=1) / total
        before = np.cumsum(G_all, axis=1) - G_all
        pos_rate_in_group = np.where(G_all > 0, G_pos / np.maximum(G_all, 1e-300), 0.0)
        for share in top_shares:
            pct = f"{share * 100:g}"
            m = share * total
            taken = np.clip(m[:, None] - before, 0.0, G_all)
            pos_top = (taken * pos_rate_in_group).sum(axis=1)
            out[f"lift_top{pct}"] = (pos_top / m) / (pos / total)
            out[f"capture_top{pct}"] = pos_top / pos
        if threshold is not None:
            flag = (p >= threshold).astype(float)
            chosen, hits = W @ flag, W @ (flag * y)
            out["precision_at_mql"] = np.where(chosen > 0, hits / np.maximum(chosen, 1e-300), np.nan)
            out["recall_at_mql"] = hits / pos
            out["mql_share"] = chosen / total
    return out


def bootstrap_weights(n: int, n_boot: int, seed: int, groups=None, chunk: int | None = None):
    """Blocks of resampling weights (shape ``(b, n)``), drawn from one seeded generator.

    Without ``groups`` rows are drawn with replacement; with ``groups`` whole groups are drawn and
    every row of a group gets its group's count. Blocks hold at most ``chunk`` resamples (by default
    as many as keep a block near 4 million cells); the draws do not depend on the block size.
    """
    chunk = chunk or int(np.clip(_CELLS // max(n, 1), 1, 200))
    rng = np.random.default_rng(seed)
    codes = pd.factorize(pd.Series(groups))[0] if groups is not None else np.arange(n)
    n_units = int(codes.max()) + 1 if n else 0
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        draws = rng.integers(0, n_units, size=(b, n_units))
        counts = np.bincount((draws + np.arange(b)[:, None] * n_units).ravel(), minlength=b * n_units)
        yield counts.reshape(b, n_units)[:, codes].astype(float)
        done += b


@dataclass
class Evaluation:
    """Metrics with intervals (``metrics``) and paired differences against the baseline (``differences``).

    ``metrics``: one row per (model, metric) with ``value``, ``low``, ``high``.
    ``differences``: one row per (model, metric) with ``baseline``, ``difference`` (model - baseline),
    ``low``, ``high`` and ``share_better`` (the share of resamples in which the model was better).
    """

    metrics: pd.DataFrame
    differences: pd.DataFrame
    n_rows: int
    n_positives: int
    n_boot: int
    settings: dict = field(default_factory=dict)

    def value(self, model: str, metric: str) -> float:
        row = self.metrics[(self.metrics["model"] == model) & (self.metrics["metric"] == metric)]
        return float(row["value"].iloc[0]) if len(row) else float("nan")

    def table(self, metrics: Sequence[str] | None = None, digits: int = 3) -> pd.DataFrame:
        """A model x metric table of ``value [low, high]`` texts, for printing."""
        frame = self.metrics if metrics is None else self.metrics[self.metrics["metric"].isin(metrics)]
        text = [
            f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
            for v, lo, hi in zip(frame["value"], frame["low"], frame["high"])
        ]
        wide = frame.assign(text=text).pivot(index="model", columns="metric", values="text")
        order = [m for m in dict.fromkeys(frame["metric"]) if m in wide.columns]
        models = [m for m in dict.fromkeys(frame["model"])]
        return wide.loc[models, order]


def evaluate_predictions(
    y,
    predictions: Mapping[str, np.ndarray],
    *,
    thresholds: Mapping[str, float] | float | None = None,
    baseline: str | None = "rules",
    n_boot: int = 1000,
    seed: int = 0,
    groups=None,
    top_shares: Sequence[float] = TOP_SHARES,
    ece_bins: int = 10,
    level: float = 0.95,
) -> Evaluation:
    """Evaluate every model's probabilities on the same rows, with bootstrap and paired intervals.

    Parameters:
        y: the labels (0/1) of the test rows.
        predictions: model name -> probabilities for the same rows, in the same order.
        thresholds: the MQL threshold per model (or one for all); None leaves out the threshold metrics.
        baseline: the model the others are compared with (paired bootstrap); None for no comparison.
        n_boot: bootstrap resamples (the same resamples for every model).
        groups: optional group of each row (e.g. ``lead_id``): whole groups are resampled.

    Raises:
        LeadDataError: labels not binary, both classes not present, or predictions of another length.

    Example:
        >>> import numpy as np
        >>> y = np.array([0, 0, 1, 1, 0, 1])
        >>> ev = evaluate_predictions(y, {"rules": np.array([.1, .4, .35, .8, .2, .5]),
        ...                               "model": np.array([.1, .2, .6, .8, .3, .7])}, n_boot=50)
        >>> ev.value("model", "roc_auc")
        1.0
    """
    y = np.asarray(y, dtype=float)
    if len(y) == 0 or not np.isin(y, (0.0, 1.0)).all() or len(np.unique(y)) < 2:
        raise LeadDataError(
            f"evaluation: labels must be 0/1 with both classes present (got {len(y)} rows, "
            f"values {np.unique(y)[:5].tolist()})"
        )
    probs = {name: np.asarray(p, dtype=float) for name, p in predictions.items()}
    for name, p in probs.items():
        if p.shape != y.shape:
            raise LeadDataError(f"evaluation: model '{name}' has {p.shape[0]} predictions for {len(y)} rows")
    if baseline is not None and baseline not in probs:
        baseline = None
    if isinstance(thresholds, (int, float)):
        thresholds = {name: float(thresholds) for name in probs}
    thresholds = dict(thresholds or {})
    names = metric_names(top_shares, with_threshold=bool(thresholds))

    point = {
        name: weighted_metrics(
            y, p, np.ones((1, len(y))), threshold=thresholds.get(name), top_shares=top_shares, ece_bins=ece_bins
        )
        for name, p in probs.items()
    }
    draws: dict[str, dict[str, list[np.ndarray]]] = {name: {m: [] for m in names} for name in probs}
    for W in bootstrap_weights(len(y), n_boot, seed, groups):
        for name, p in probs.items():
            result = weighted_metrics(y, p, W, threshold=thresholds.get(name), top_shares=top_shares, ece_bins=ece_bins)
            for metric in names:
                draws[name][metric].append(result.get(metric, np.full(len(W), np.nan)))
    stacked = {name: {m: np.concatenate(v) if v else np.empty(0) for m, v in d.items()} for name, d in draws.items()}
    tail = (1 - level) / 2 * 100

    def interval(values: np.ndarray, metric: str, estimate: float) -> tuple[float, float]:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return float("nan"), float("nan")
        low, high = np.percentile(finite, [tail, 100 - tail])
        if metric in BIAS_SHIFTED and np.isfinite(estimate):
            shift = finite.mean() - estimate
            low, high = low - shift, high - shift
        return float(low), float(high)

    rows, diffs = [], []
    for name in probs:
        for metric in names:
            value = float(point[name].get(metric, np.array([np.nan]))[0])
            low, high = interval(stacked[name][metric], metric, value)
            if metric in BIAS_SHIFTED:
                low = max(low, 0.0)
            rows.append({"model": name, "metric": metric, "value": value, "low": low, "high": high})
            if baseline is None or name == baseline:
                continue
            delta = stacked[name][metric] - stacked[baseline][metric]
            base_value = float(point[baseline].get(metric, np.array([np.nan]))[0])
            low, high = interval(delta, metric, value - base_value)
            finite = delta[np.isfinite(delta)]
            better = (finite < 0) if metric in LOWER_IS_BETTER else (finite > 0)
            diffs.append(
                {
                    "model": name,
                    "metric": metric,
                    "baseline": baseline,
                    "difference": value - base_value,
                    "low": low,
                    "high": high,
                    "share_better": float(better.mean()) if finite.size else float("nan"),
                }
            )
    differences = pd.DataFrame(
        diffs, columns=["model", "metric", "baseline", "difference", "low", "high", "share_better"]
    )
    return Evaluation(
        metrics=pd.DataFrame(rows, columns=["model", "metric", "value", "low", "high"]),
        differences=differences,
        n_rows=len(y),
        n_positives=int(y.sum()),
        n_boot=n_boot,
        settings={
            "seed": seed,
            "level": level,
            "ece_bins": ece_bins,
            "ece_strategy": "quantile",
            "top_shares": list(top_shares),
            "thresholds": thresholds,
            "grouped": groups is not None,
        },
    )
