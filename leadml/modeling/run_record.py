"""What a training run records about itself: every setting as an MLflow param, the version's tags and description.

The params are flat keys named after the YAML (``models.lightgbm.num_leaves``, ``snapshots.horizon_days``,
``split.method``, ``mql.capacity_per_week``, ``features.windows``), so a run says how it was made without
opening its ``config.json``; a value is text, lists joined with commas, and cut to :data:`MAX_VALUE`
characters (the limit of the strictest MLflow servers). Beside the settings: what the run found
(``split.method`` as applied, the number of event types, the LightGBM trees actually used, the data
fingerprint). A registered version gets tags to filter on and a description a person reads in the
MLflow UI: the chosen model, its test metrics with their intervals, the span of the snapshots and
how many leads and snapshots trained it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from leadml.core.config import PipelineConfig
from leadml.core.version import __version__
from leadml.features.build import TrainSet, split_method
from leadml.modeling.train import TrainingResult

MAX_VALUE = 500  # MLflow 3 takes 6,000 characters; servers before 1.28 took 500
MAX_DESCRIPTION = 5000  # the registry's column for a version's description
SECTIONS = ("models", "snapshots", "split")  # logged whole
MQL_KEYS = ("policy", "capacity_per_week", "capacity_by", "value_column", "touch_cost", "target_precision",
            "probability")  # fmt: skip
FEATURE_KEYS = ("windows", "decay_half_lives", "velocity", "event_types")
DESCRIBED_METRICS = ("pr_auc", "roc_auc", "log_loss", "brier", "lift_top10", "precision_at_mql")


def param_text(value: Any) -> str:
    """A setting as MLflow param text: lists joined with commas, mappings as compact JSON, at most MAX_VALUE long.

    Example:
        >>> param_text([7, 30, 90]), param_text(None), param_text(0.05)
        ('7,30,90', 'None', '0.05')
    """
    if isinstance(value, (list, tuple)):
        text = ",".join(param_text(v) for v in value)
    elif isinstance(value, Mapping):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    else:
        text = str(value)
    if len(text) > MAX_VALUE:
        more = f"...(+{len(text) - MAX_VALUE + 20} chars)"
        text = text[: MAX_VALUE - len(more)] + more
    return text


def flatten(section: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """``{"lightgbm": {"num_leaves": 7}}`` under ``models`` -> ``{"models.lightgbm.num_leaves": "7"}``."""
    flat: dict[str, str] = {}
    for key, value in section.items():
        name = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        else:
            flat[name] = param_text(value)
    return flat


def _tiers(tiers: list[dict]) -> str:
    return ",".join(t["name"] + ("" if t.get("min") is None else f">={t['min']}") for t in tiers)


def best_iteration(result: TrainingResult) -> int | None:
    """The number of LightGBM trees the fitted model predicts with (early stopping's best), or None."""
    model = result.models.get("lightgbm")
    return getattr(getattr(model, "estimator", None), "n_trees_", None)


def run_params(config: PipelineConfig, trainset: TrainSet, result: TrainingResult, fingerprint: str) -> dict[str, str]:
    """Every setting of the run and what it found, as flat MLflow params (keys named after the YAML)."""
    settings = config.resolved_dict()
    params: dict[str, str] = {}
    for section in SECTIONS:
        params.update(flatten(settings[section], section))
    params["split.method"] = split_method(config, trainset.data)
    mql = settings["mql"]
    params.update({f"mql.{key}": param_text(mql[key]) for key in MQL_KEYS})
    params["mql.tiers"] = param_text(_tiers(mql["tiers"]))
    params["mql.grid.fit_bands"] = param_text(mql["grid"]["fit_bands"])
    params["mql.grid.engagement_bands"] = param_text(mql["grid"]["engagement_bands"])
    features = settings["features"]
    params.update({f"features.{key}": param_text(features[key]) for key in FEATURE_KEYS})
    for key in ("attribute_counts", "event_values", "scenarios", "flat_behaviour"):
        params[f"features.{key}"] = param_text(features[key])
    builder = trainset.builder
    params["features.n_event_types"] = str(len(getattr(builder, "event_types_", [])))
    params["features.n_profile_columns"] = str(len(getattr(builder, "profile_columns_", [])))
    params["features.spec_hash"] = builder.spec_hash()
    params["data.source"] = settings["data"]["source"]
    params["data.fingerprint"] = fingerprint
    trees = best_iteration(result)
    if trees is not None:
        params["models.lightgbm.best_iteration"] = str(trees)
    params["leadml.package_version"] = __version__
    return params


def version_tags(config: PipelineConfig, result: TrainingResult, fingerprint: str) -> dict[str, str]:
    """Tags of a registered version to filter and audit on (pipeline, model, target, data, leadml)."""
    return {
        "leadml.pipeline": config.name,
        "leadml.chosen_model": str(result.chosen),
        "leadml.target_stage": config.snapshots.target,
        "leadml.data_fingerprint": fingerprint,
        "leadml.package_version": __version__,
    }


def _metric_line(metrics: pd.DataFrame, model: str) -> str:
    rows = metrics.loc[metrics["model"] == model].set_index("metric")
    parts = []
    for name in DESCRIBED_METRICS:
        if name in rows.index and np.isfinite(rows.at[name, "value"]):
            row = rows.loc[name]
            interval = f" [{row['low']:.3f}, {row['high']:.3f}]" if np.isfinite(row["low"]) else ""
            parts.append(f"{name} {row['value']:.3f}{interval}")
    return "; ".join(parts)


def version_description(config: PipelineConfig, trainset: TrainSet, result: TrainingResult) -> str:
    """What a person reads on the registered version: the model, its test metrics, the data that trained it.

    Example (the shape):
        ``lightgbm chosen on validation pr_auc (target: won within 120 days; pipeline demo).
        Test metrics (95 % intervals): pr_auc 0.412 [0.371, 0.455]; ...
        Snapshots: 2025-01-06 to 2025-10-13 (as_of); 3,000 leads, 5,210 snapshots (train 3,100, ...).``
    """
    frame = trainset.frame
    lines = [f"{result.chosen} chosen on validation {config.models.select_metric} "
             f"(target: {config.snapshots.target} within {config.snapshots.horizon_days} days; "
             f"pipeline {config.name}): {result.reason}"]  # fmt: skip
    metrics = _metric_line(result.metrics, str(result.chosen))
    n_test = int((frame["split"] == "test").sum())
    lines.append(f"Test metrics on {n_test:,} snapshots (95 % intervals): {metrics or 'none (no test part)'}.")
    as_of = frame["as_of"].dropna() if "as_of" in frame else pd.Series(dtype=object)
    span = (f"{as_of.min():%Y-%m-%d} to {as_of.max():%Y-%m-%d} (as_of)" if len(as_of)
            else "no time (flat data, one row per lead)")  # fmt: skip
    parts = ", ".join(f"{row.split} {row.rows:,}" for row in result.counts.itertuples())
    lines.append(f"Snapshots: {span}; {frame['lead_id'].nunique():,} leads, {len(frame):,} snapshots ({parts}).")
    text = "\n".join(lines)
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."
