"""Challenger against champion: a paired bootstrap of the promotion metric on the same test snapshots.

With about 70 test conversions a PR-AUC moves by several points between resamples, so a point
gain alone can flip by chance from one retraining to the next. Resampling whole leads and scoring
both models on each resample gives the interval of the gain itself, much tighter than the two
models' own intervals side by side (:mod:`leadml.modeling.evaluate` does the resampling).

So by default (``mlflow.promote_rule: interval``) the challenger takes champion only when that
whole 95 % interval lies above ``mlflow.promote_margin``: a gain that chance alone could have made
keeps the champion. ``point`` promotes on the point gain alone (leadml's rule up to 0.2.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from leadml.modeling.evaluate import evaluate_predictions


@dataclass(frozen=True)
class ChampionComparison:
    """Both models' values of ``metric`` on the same rows and the paired interval of the gain."""

    metric: str
    challenger: float
    champion: float
    gain_low: float  # 95 % paired bootstrap interval of challenger - champion
    gain_high: float
    share_better: float  # share of resamples in which the challenger was better
    n_rows: int

    @property
    def gain(self) -> float:
        return self.challenger - self.champion

    def text(self) -> str:
        """``0.4120 vs 0.3980; gain +0.0140, 95 % paired interval [...], better in 87 % of resamples``."""
        return (
            f"{self.challenger:.4f} vs {self.champion:.4f}; gain {self.gain:+.4f}, 95 % paired interval "
            f"[{self.gain_low:+.4f}, {self.gain_high:+.4f}], better in {self.share_better:.0%} of resamples"
        )

    def values_text(self) -> str:
        """``0.4120 vs 0.3980 on the same 880 test snapshots, better in 87% of resamples``."""
        return (f"{self.challenger:.4f} vs {self.champion:.4f} on the same {self.n_rows:,} test snapshots, "
                f"better in {self.share_better:.0%} of resamples")  # fmt: skip


def promotion_verdict(
    comparison: ChampionComparison, *, margin: float = 0.0, rule: Literal["interval", "point"] = "interval"
) -> tuple[bool, str]:
    """Whether the challenger takes champion, and why, in a clause that gives the gain and its interval.

    ``interval`` (the default): only when the 95 % paired interval of the gain lies wholly above
    ``margin``, i.e. ``gain_low > margin``; ``point``: when the gain itself is above ``margin``. A gain
    that could not be measured (NaN) never promotes.

    Example:
        >>> kept = ChampionComparison("pr_auc", 0.412, 0.400, -0.004, 0.029, 0.81, 880)
        >>> promotion_verdict(kept)
        (False, 'kept the champion: the gain +0.0120 has a 95 % paired interval [-0.0040, +0.0290] that includes 0')
        >>> promotion_verdict(kept, rule="point")[0]
        True
    """
    if rule not in ("interval", "point"):
        raise ValueError(f"promote_rule must be 'interval' or 'point', got {rule!r}")
    gain, low, high = comparison.gain, comparison.gain_low, comparison.gain_high
    interval = f"95 % paired interval [{low:+.4f}, {high:+.4f}]"
    if not np.isfinite(gain) or (rule == "interval" and not (np.isfinite(low) and np.isfinite(high))):
        return False, f"kept the champion: the gain on {comparison.metric} or its interval could not be measured"
    if rule == "point":
        promoted = bool(gain > margin)
        said = "is above" if promoted else "is not above"
        why = f"the gain {gain:+.4f} {said} {margin:g} (mlflow.promote_rule: point; its {interval})"
        return promoted, why if promoted else f"kept the champion: {why}"
    if low > margin:
        return True, f"the gain {gain:+.4f} has a {interval} wholly above {margin:g}"
    if high < margin:
        where = f"wholly below {margin:g}"
    else:
        where = f"that includes the margin {margin:g}" if margin else "that includes 0"
    return False, f"kept the champion: the gain {gain:+.4f} has a {interval} {where}"


def compare_with_champion(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    *,
    metric: str,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> ChampionComparison:
    """Compare two models' probabilities of the same rows on ``metric``, resampling ``groups`` (leads) whole."""
    evaluation = evaluate_predictions(y, {"challenger": challenger, "champion": champion}, baseline="champion",
                                      n_boot=n_boot, seed=seed, groups=groups)  # fmt: skip
    differences = evaluation.differences
    gain = differences[(differences["model"] == "challenger") & (differences["metric"] == metric)].iloc[0]
    return ChampionComparison(metric, evaluation.value("challenger", metric), evaluation.value("champion", metric),
                              float(gain["low"]), float(gain["high"]), float(gain["share_better"]), len(y))  # fmt: skip
