"""Honest evaluation: every model and the rules baseline on the same test rows, with bootstrap intervals.

Metrics: ROC-AUC, PR-AUC (average precision), log loss, Brier score, ECE (equal-mass bins), lift and
share of all conversions captured in the top 5 / 10 / 20 %, and precision, recall, MQL share and F1
at each model's MQL threshold. Intervals are 95 % percentile bootstrap intervals; the difference of a
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

At the MQL threshold, :func:`mql_confusion` gives the 2x2 table (MQL or not, converted or not) of
every candidate on validation (where the threshold was set) and on test. :func:`segment_metrics`
judges one segment column (source, country, industry, ...): ROC-AUC and MQL rate per level with
bootstrap intervals, levels with too few conversions left unjudged, and the ratio of the lowest MQL
rate to the highest (the disparate-impact figure, flagged under the four-fifths rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.modeling.calibrate import bin_ids
from leadml.modeling.policy import Threshold

TOP_SHARES = (0.05, 0.10, 0.20)
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
BIAS_SHIFTED = frozenset({"ece"})
_CELLS = 4_000_000  # resamples x rows held at once: about 32 MB per float array
FOUR_FIFTHS = 0.8  # a lowest / highest MQL rate below this is flagged (the four-fifths rule of disparate impact)


def metric_names(top_shares: Sequence[float] = TOP_SHARES, with_threshold: bool = True) -> list[str]:
    """The metric names in report order."""
    names = ["roc_auc", "pr_auc", "log_loss", "brier", "ece"]
    for share in top_shares:
        pct = f"{share * 100:g}"
        names += [f"lift_top{pct}", f"capture_top{pct}"]
    if with_threshold:
        names += ["precision_at_mql", "recall_at_mql", "mql_share", "f1"]
    return names


def _tie_groups(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted rows and conversions per group of tied scores, highest score first (shape ``(B, groups)``)."""
    order = np.argsort(-p, kind="stable")
    ps, ys, Ws = p[order], y[order], W[:, order]
    starts = np.r_[0, np.flatnonzero(np.diff(ps) != 0) + 1]
    return np.add.reduceat(Ws, starts, axis=1), np.add.reduceat(Ws * ys, starts, axis=1)


def _roc_auc(G_pos: np.ndarray, G_neg: np.ndarray) -> np.ndarray:
    """ROC-AUC from tie groups: each conversion beats the non-conversions below it and half of those tied."""
    neg = G_neg.sum(axis=1)
    neg_below = neg[:, None] - np.cumsum(G_neg, axis=1)
    return (G_pos * (neg_below + 0.5 * G_neg)).sum(axis=1) / (G_pos.sum(axis=1) * neg)


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
    G_all, G_pos = _tie_groups(y, p, W)
    G_neg = G_all - G_pos
    total, pos = G_all.sum(axis=1), G_pos.sum(axis=1)
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["roc_auc"] = _roc_auc(G_pos, G_neg)
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
            out["f1"] = 2 * hits / (chosen + pos)  # 2 TP / (MQLs + conversions)
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


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of the finite bootstrap values (NaN when there are none)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


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

    def interval(values: np.ndarray, metric: str, estimate: float) -> tuple[float, float]:
        low, high = percentile_interval(values, level)
        finite = values[np.isfinite(values)]
        if metric in BIAS_SHIFTED and np.isfinite(estimate) and finite.size:
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


@dataclass(frozen=True)
class Confusion:
    """The 2x2 table of an MQL threshold: ``tp`` MQL and converted, ``fp`` MQL and not converted,
    ``fn`` not MQL yet converted (a conversion sales never heard of), ``tn`` neither."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def rows(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def mqls(self) -> int:
        return self.tp + self.fp

    @property
    def conversions(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        """Converted among the MQLs (NaN without MQLs)."""
        return self.tp / self.mqls if self.mqls else float("nan")

    @property
    def recall(self) -> float:
        """MQLs among the conversions (NaN without conversions)."""
        return self.tp / self.conversions if self.conversions else float("nan")

    @property
    def f1(self) -> float:
        """``2 TP / (MQLs + conversions)``, the harmonic mean of precision and recall (NaN when both are empty)."""
        return 2 * self.tp / (self.mqls + self.conversions) if self.mqls + self.conversions else float("nan")

    def as_dict(self) -> dict[str, float]:
        """Counts and rates, as one row of :func:`mql_confusion`."""
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn, "rows": self.rows, "mqls": self.mqls,
                "conversions": self.conversions, "precision": self.precision, "recall": self.recall, "f1": self.f1}  # fmt: skip


def confusion_at(y, p, threshold: float) -> Confusion:
    """The confusion counts of ``p >= threshold`` against the labels ``y`` (0/1).

    Example:
        >>> confusion_at([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1], 0.5)
        Confusion(tp=1, fp=1, fn=1, tn=1)
    """
    y = np.asarray(y, dtype=float) == 1
    flag = np.asarray(p, dtype=float) >= threshold
    return Confusion(tp=int((flag & y).sum()), fp=int((flag & ~y).sum()), fn=int((~flag & y).sum()),
                     tn=int((~flag & ~y).sum()))  # fmt: skip


def confusion_of_threshold(found: Threshold, rows: int, conversions: int) -> Confusion:
    """The confusion counts a :class:`~leadml.modeling.policy.Threshold` found on ``rows`` labelled
    snapshots with ``conversions`` among them: ``tp = precision * MQLs``, the rest by difference.

    The training result keeps no validation probabilities, only what the policy measured there.

    Raises:
        ValueError: the counts do not fit the threshold's (it was found on other rows).
    """
    tp = round(found.precision * found.mql_count) if found.mql_count and found.precision is not None else 0
    counts = Confusion(
        tp=tp, fp=found.mql_count - tp, fn=conversions - tp, tn=rows - found.mql_count - (conversions - tp)
    )
    if min(counts.fp, counts.fn, counts.tn) < 0:
        raise ValueError(
            f"a threshold with {found.mql_count} MQLs ({tp} converted) cannot come from {rows} snapshots with "
            f"{conversions} conversions"
        )
    return counts


def mql_confusion(
    thresholds: Mapping[str, Threshold], predictions: pd.DataFrame, counts: pd.DataFrame, label: str = "converted"
) -> pd.DataFrame:
    """Every candidate's confusion counts, precision, recall and F1 at its MQL threshold, on validation
    (from what the policy measured there, with the rows and conversions of ``counts``) and on test
    (``predictions``: a label column and one probability column per candidate).

    Returns one row per (split, model): ``split``, ``model``, ``threshold``, ``tp``, ``fp``, ``fn``,
    ``tn``, ``rows``, ``mqls``, ``conversions``, ``precision``, ``recall``, ``f1``.
    """
    rows = []
    split = counts.set_index("split") if len(counts) else pd.DataFrame()
    if "validation" in split.index and split.loc["validation", "labelled"] > 0:
        labelled, positives = int(split.loc["validation", "labelled"]), int(split.loc["validation", "positives"])
        for name, found in thresholds.items():
            matrix = confusion_of_threshold(found, labelled, positives)
            rows.append({"split": "validation", "model": name, "threshold": found.threshold, **matrix.as_dict()})
    if len(predictions):
        y = predictions[label].to_numpy(dtype=float)
        for name, found in thresholds.items():
            if name in predictions:
                matrix = confusion_at(y, predictions[name].to_numpy(), found.threshold)
                rows.append({"split": "test", "model": name, "threshold": found.threshold, **matrix.as_dict()})
    columns = ["split", "model", "threshold", "tp", "fp", "fn", "tn", "rows", "mqls", "conversions", "precision",
               "recall", "f1"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


@dataclass
class SegmentMetrics:
    """One segment column judged level by level (:func:`segment_metrics`).

    ``table``: one row per level, most rows first: ``level``, ``rows``, ``conversions``,
    ``conversion_rate``, ``roc_auc`` (``_low``, ``_high``), ``verdict``, ``mql_rate`` (``_low``,
    ``_high``), ``precision_at_mql``, ``recall_at_mql``, ``mean_probability``, ``judged``, ``note``.
    ``impact_ratio``: the lowest MQL rate over the highest among the judged levels, ``lowest`` and
    ``highest`` their levels (NaN and None with fewer than two judged levels or no MQL among them).
    """

    table: pd.DataFrame
    impact_ratio: float
    lowest: str | None
    highest: str | None
    min_conversions: int

    @property
    def flagged(self) -> bool:
        """The ratio is below the four-fifths rule (0.8)."""
        return bool(np.isfinite(self.impact_ratio) and self.impact_ratio < FOUR_FIFTHS)


def _auc_verdict(value: float, low: float, high: float, overall: float | None) -> str:
    """How a level ranks its leads, from its ROC-AUC interval against chance and the overall ROC-AUC."""
    if not np.isfinite(value):
        return ""
    if low <= 0.5:
        return "no better than chance"
    if overall is None or not np.isfinite(overall):
        return "better than chance"
    if high < overall:
        return "below the overall ROC-AUC"
    if low > overall:
        return "above the overall ROC-AUC"
    return "in line with the overall ROC-AUC"


def segment_metrics(
    y,
    p,
    levels,
    *,
    threshold: float | None,
    min_conversions: int = 30,
    overall_auc: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    groups=None,
    level: float = 0.95,
) -> SegmentMetrics:
    """ROC-AUC and MQL rate per level of a segment, with seeded bootstrap intervals (within each level,
    ``groups`` resampled whole), and the disparate-impact ratio of the MQL rates.

    A level with fewer than ``min_conversions`` conversions is measured but not judged: no ROC-AUC
    verdict, a note instead, and it stays out of the ratio (a level of five snapshots and no MQL
    would flag any model). Missing levels are named ``missing``.

    Example:
        >>> seg = segment_metrics([1, 0, 1, 0, 0, 0], [.9, .2, .8, .3, .1, .6], ["a", "a", "a", "b", "b", "b"],
        ...                       threshold=0.5, min_conversions=1, n_boot=20)
        >>> seg.table["mql_rate"].tolist(), seg.lowest  # "b" has no conversion: not judged
        ([0.6666666666666666, 0.3333333333333333], None)
    """
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    named = pd.Series(levels, dtype=object)
    values = named.where(named.notna(), "missing").astype(str).to_numpy()
    codes = None if groups is None else np.asarray(groups)
    rows = []
    for value in pd.unique(values):
        mask = values == value
        yy, pp = y[mask], p[mask]
        point = weighted_metrics(yy, pp, np.ones((1, len(yy))), threshold=threshold, top_shares=())
        draws: dict[str, list[np.ndarray]] = {"roc_auc": [], "mql_share": []}
        flag = (pp >= threshold).astype(float) if threshold is not None else None
        for W in bootstrap_weights(len(yy), n_boot, seed, None if codes is None else codes[mask]):
            G_all, G_pos = _tie_groups(yy, pp, W)  # only the two figures: a fraction of weighted_metrics' cost
            with np.errstate(invalid="ignore", divide="ignore"):
                draws["roc_auc"].append(_roc_auc(G_pos, G_all - G_pos))
            draws["mql_share"].append(W @ flag / W.sum(axis=1) if flag is not None else np.full(len(W), np.nan))
        interval = {m: percentile_interval(np.concatenate(d) if d else np.empty(0), level) for m, d in draws.items()}
        auc = float(point["roc_auc"][0])
        judged = int(yy.sum()) >= min_conversions
        rows.append({
            "level": value, "rows": int(mask.sum()), "conversions": int(yy.sum()), "conversion_rate": float(yy.mean()),
            "roc_auc": auc, "roc_auc_low": interval["roc_auc"][0], "roc_auc_high": interval["roc_auc"][1],
            "verdict": _auc_verdict(auc, *interval["roc_auc"], overall_auc) if judged else "",
            "mql_rate": float(point["mql_share"][0]) if "mql_share" in point else np.nan,
            "mql_rate_low": interval["mql_share"][0], "mql_rate_high": interval["mql_share"][1],
            "precision_at_mql": float(point["precision_at_mql"][0]) if "precision_at_mql" in point else np.nan,
            "recall_at_mql": float(point["recall_at_mql"][0]) if "recall_at_mql" in point else np.nan,
            "mean_probability": float(pp.mean()), "judged": judged,
            "note": "" if judged else f"too few conversions to judge (fewer than {min_conversions})",
        })  # fmt: skip
    columns = ["level", "rows", "conversions", "conversion_rate", "roc_auc", "roc_auc_low", "roc_auc_high", "verdict",
               "mql_rate", "mql_rate_low", "mql_rate_high", "precision_at_mql", "recall_at_mql", "mean_probability",
               "judged", "note"]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns).sort_values("rows", ascending=False, kind="stable")
    table = table.reset_index(drop=True)
    compared = table[table["judged"].astype(bool) & np.isfinite(table["mql_rate"].astype(float))]
    ratio, lowest, highest = float("nan"), None, None
    if len(compared) >= 2 and compared["mql_rate"].max() > 0:
        low_row, high_row = compared.loc[compared["mql_rate"].idxmin()], compared.loc[compared["mql_rate"].idxmax()]
        ratio = float(low_row["mql_rate"] / high_row["mql_rate"])
        lowest, highest = str(low_row["level"]), str(high_row["level"])
    return SegmentMetrics(table, ratio, lowest, highest, min_conversions)
