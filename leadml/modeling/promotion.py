"""Challenger against champion: a paired bootstrap of the promotion metric on the same test snapshots.

With about 70 test conversions a PR-AUC moves by several points between resamples, so a point
gain alone can flip by chance from one retraining to the next. Resampling whole leads and scoring
both models on each resample gives the interval of the gain itself, much tighter than the two
models' own intervals side by side (:mod:`leadml.modeling.evaluate` does the resampling).
"""

from __future__ import annotations

from dataclasses import dataclass

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
