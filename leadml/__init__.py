"""leadml: predictive lead scoring from closed deals, measured against the rules baseline.

The public API is re-exported here and loaded lazily, so ``import leadml`` stays fast: heavy
libraries (mlflow, shap, lightgbm, pyspark) load only when a function that needs them runs.

Example:
    >>> import leadml
    >>> sim = leadml.simulate(300, seed=1)
    >>> leads = leadml.validate_leads(sim.leads)
    >>> len(leads)
    300
"""

from __future__ import annotations

import importlib

from leadml import _shims
from leadml.core.errors import ConfigError, LeadDataError, LeadmlError, ModelError
from leadml.core.version import __version__

_shims.install()  # the 0.1 import paths, for one release

_LAZY = {
    # data
    "load_leads": "leadml.data.contract",
    "load_events": "leadml.data.contract",
    "load_outcomes": "leadml.data.contract",
    "load_flat": "leadml.data.contract",
    "validate_leads": "leadml.data.contract",
    "validate_events": "leadml.data.contract",
    "validate_outcomes": "leadml.data.contract",
    "validate_flat": "leadml.data.contract",
    "LeadDataWarning": "leadml.data.contract",
    "read_table": "leadml.data.io",
    "write_table": "leadml.data.io",
    "simulate": "leadml.data.simulate.world",
    "write_simulation": "leadml.data.simulate.world",
    "load_public": "leadml.data.datasets",
    # config
    "load_pipeline": "leadml.core.config",
    "PipelineConfig": "leadml.core.config",
    # features
    "build_snapshots": "leadml.features.snapshots",
    "time_split": "leadml.features.snapshots",
    "behaviour_features": "leadml.features.behaviour.features",
    "ProfileEncoder": "leadml.features.profile",
    "FeatureBuilder": "leadml.features.build",
    "build_trainset": "leadml.features.build",
    "features_at": "leadml.features.scoring_set",
    "FeatureInfo": "leadml.features.metadata",
    # rules
    "RuleSet": "leadml.rules.ruleset",
    "PointsBaseline": "leadml.rules.baseline",
    "learn_scorecard": "leadml.rules.scorecard",
    # modeling
    "LightGBMModel": "leadml.modeling.estimators",
    "LeadScoringModel": "leadml.modeling.scoring_model",
    "load_model": "leadml.modeling.loading",
    "build_lead_rows": "leadml.modeling.lead_rows",
    # explain
    "explain_lead": "leadml.explain.lead",
    "write_model_card": "leadml.explain.report",
    "write_sales_report": "leadml.explain.report",
    # jobs
    "run_training": "leadml.jobs.train",
    "score_batch": "leadml.jobs.score",
    "run_backtest": "leadml.jobs.backtest",
    "ScoreOptions": "leadml.jobs.score",
    "model_card": "leadml.jobs.report",
    "load_history": "leadml.jobs.history",
    # notebooks and scripts
    "quiet": "leadml.core.logs",
}

__all__ = ["ConfigError", "LeadDataError", "LeadmlError", "ModelError", "__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'leadml' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
