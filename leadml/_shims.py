"""Old import paths (before the layered layout of 0.2) keep working for one release, with a warning.

``import leadml.batch`` gives the module ``leadml.jobs.score`` itself (not a copy), so code and
notebooks written against 0.1 run unchanged while they move to the new paths or to the names on
``leadml.__all__``. The table is the map of the move; ``docs/architecture.md`` has the layout.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED = {
    "leadml.errors": "leadml.core.errors",
    "leadml.config": "leadml.core.config",
    "leadml.logs": "leadml.core.logs",
    "leadml.paths": "leadml.core.paths",
    "leadml.numba_kernels": "leadml.core.kernels",
    "leadml.data.simulate_events": "leadml.data.simulate.events",
    "leadml.data.simulate_outcomes": "leadml.data.simulate.outcomes",
    "leadml.data.simulate_profile": "leadml.data.simulate.profile",
    "leadml.batch_merge": "leadml.data.merge",
    "leadml.features.timeline_kernel": "leadml.features.timeline.kernel",
    "leadml.features.behaviour_arrays": "leadml.features.timeline.arrays",
    "leadml.features.behaviour_codes": "leadml.features.timeline.codes",
    "leadml.features.behaviour_matrix": "leadml.features.behaviour.matrix",
    "leadml.features.behaviour_parquet": "leadml.features.behaviour.parquet",
    "leadml.features.behaviour_partitioned": "leadml.features.behaviour.partitioned",
    "leadml.features.behaviour_text": "leadml.features.behaviour.text",
    "leadml.batch_features": "leadml.features.chunk",
    "leadml.scoring": "leadml.rules",
    "leadml.scoring.rules": "leadml.rules.ruleset",
    "leadml.scoring.rules_config": "leadml.rules.schema",
    "leadml.scoring.rules_eval": "leadml.rules.evaluate",
    "leadml.scoring.rules_output": "leadml.rules.output",
    "leadml.scoring.rules_timeline": "leadml.rules.timeline",
    "leadml.scoring.baseline": "leadml.rules.baseline",
    "leadml.scoring.scorecard": "leadml.rules.scorecard",
    "leadml.explain.subscores": "leadml.modeling.subscores",
    "leadml.explain.tree_effects": "leadml.modeling.lightgbm.effects",
    "leadml.explain.treeshap": "leadml.modeling.lightgbm.treeshap",
    "leadml.explain.treeshap_kernel": "leadml.modeling.lightgbm.treeshap_kernel",
    "leadml.modeling.compiled_trees": "leadml.modeling.lightgbm.compiled",
    "leadml.modeling.compiled_trees_kernel": "leadml.modeling.lightgbm.compiled_kernel",
    "leadml.batch_model": "leadml.modeling.loading",
    "leadml.explain.funnel": "leadml.explain.report.funnel",
    "leadml.explain.sales_history": "leadml.explain.report.sales_history",
    "leadml.explain.plots": "leadml.explain.report.plots",
    "leadml.explain.reasons": "leadml.modeling.contributions",
    "leadml.batch": "leadml.jobs.score",
    "leadml.batch_decisions": "leadml.jobs.decisions",
    "leadml.batch_reasons": "leadml.jobs.reasons",
    "leadml.batch_io": "leadml.jobs.inputs",
    "leadml.batch_output": "leadml.jobs.output",
    "leadml.batch_quality": "leadml.jobs.quality",
    "leadml.batch_files": "leadml.jobs.feature_files",
    "leadml.spark": "leadml.jobs.spark",
    "leadml.history": "leadml.jobs.history",
    "leadml.monitor": "leadml.jobs.drift",
    "leadml.modeling.run": "leadml.jobs.train",
    "leadml.modeling.model_cards": "leadml.jobs.model_cards",
    "leadml.commands": "leadml.cli.commands",
    "leadml.demo": "leadml.cli.demo",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and loads it as the module that now lives at the new one."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname == "leadml.scoring")

    def create_module(self, spec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in leadml 0.3", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The module is already executed: it is the one at its new path."""


def install() -> None:
    """Put the old paths on the import system once (idempotent)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
