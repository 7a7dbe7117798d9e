"""The plots a training run logs to MLflow: ROC, PR, calibration, lift/gains, score distribution.

The calibration plot draws both binnings: equal-mass bins (solid, what the ECE is computed on) and
equal-width bins over [0, 1] (dashed), which reach the high probabilities equal-mass bins average away.
"""

from __future__ import annotations

import numpy as np

from leadml.modeling.calibrate import reliability_table
from leadml.modeling.train import TrainingResult


def log_plots(mlflow, result: TrainingResult) -> None:
    """ROC, PR, calibration, gains and score distribution of every candidate on the test rows."""
    if result.evaluation is None or not len(result.predictions):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    y = result.predictions["converted"].to_numpy()
    names = list(result.models)
    figures = [plt.subplots(figsize=(6, 5)) for _ in range(5)]
    axes = [ax for _, ax in figures]
    for name in names:
        p = result.predictions[name].to_numpy()
        fpr, tpr, _ = roc_curve(y, p)
        axes[0].plot(fpr, tpr, label=f"{name} ({result.evaluation.value(name, 'roc_auc'):.3f})")
        precision, recall, _ = precision_recall_curve(y, p)
        axes[1].plot(recall, precision, label=f"{name} ({result.evaluation.value(name, 'pr_auc'):.3f})")
        table = result.reliability[name]
        line = axes[2].plot(table["mean_predicted"], table["observed_rate"], marker="o", label=f"{name} (equal-mass)")
        width = reliability_table(y, p, strategy="uniform").dropna(subset=["mean_predicted"])
        axes[2].plot(width["mean_predicted"], width["observed_rate"], marker="s", ls="--", color=line[0].get_color(),
                     alpha=0.7, label=f"{name} (equal-width)")  # fmt: skip
        order = np.argsort(-p, kind="stable")
        axes[3].plot(np.arange(1, len(y) + 1) / len(y), np.cumsum(y[order]) / y.sum(), label=name)
    chosen = result.predictions[result.chosen or names[-1]].to_numpy()
    axes[4].hist([chosen[y == 0], chosen[y == 1]], bins=30, label=["not converted", "converted"], density=True)
    top = min(max(float(np.nanmax(result.predictions[names].to_numpy())), 0.05), 1.0)
    for ax, diagonal in ((axes[0], 1.0), (axes[2], top), (axes[3], 1.0)):
        ax.plot([0, diagonal], [0, diagonal], "k:", linewidth=1)
    panels = [("roc", "ROC", "false positive rate", "true positive rate"),
              ("pr", "Precision-recall", "recall", "precision"),
              ("calibration", "Calibration (equal-mass and equal-width bins)", "mean predicted", "observed rate"),
              ("gains", "Gains", "share of leads contacted", "share of conversions"),
              ("scores", f"Probability of {result.chosen}", "probability", "density")]  # fmt: skip
    for (fig, ax), (file, title, xlabel, ylabel) in zip(figures, panels, strict=True):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        mlflow.log_figure(fig, f"plots/{file}.png")
        plt.close(fig)
