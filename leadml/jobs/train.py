"""One training run of a pipeline, end to end: data, training set, rules points, models, MLflow.

This is what `leadml train` and `leadml demo` call; notebooks call it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from leadml.core.config import PipelineConfig
from leadml.data.sources import PipelineData, load_pipeline_data
from leadml.features.build import TrainSet, build_trainset
from leadml.modeling.train import TrainingResult, train_models

if TYPE_CHECKING:  # mlflow loads only when a run is logged
    from leadml.modeling.registry import RunOutcome


@dataclass(frozen=True)
class TrainingRun:
    """The training set, what the models did on it, and where MLflow holds the run (None: not logged)."""

    trainset: TrainSet
    result: TrainingResult
    outcome: RunOutcome | None


def rules_points(config: PipelineConfig, trainset: TrainSet) -> pd.Series | None:
    """The rules baseline's points of every training row, indexed like the frame (None: no rules file)."""
    if config.rules is None:
        return None
    from leadml.rules.ruleset import RuleSet

    ruleset = RuleSet.load(config.rules)
    data = trainset.data
    if data.flat is not None:
        flat = data.flat.set_index("lead_id").loc[trainset.frame["lead_id"]].reset_index()
        points = ruleset.score_flat(flat)["points"]
    else:
        points = ruleset.score_snapshots(trainset.frame[["lead_id", "as_of"]], data.leads, data.events)["points"]
    return pd.Series(points.to_numpy(dtype=float), index=trainset.frame.index, name="rules__points")


def capacity_replay(
    config: PipelineConfig, trainset: TrainSet, say: Callable[[str], None]
) -> tuple[pd.DataFrame | None, pd.Series | None]:
    """For ``mql.policy: capacity``: the validation period's nightly runs and the rules' points of each.

    The capacity is in new MQLs a week, which only nightly runs show (a lead's score moves between
    two training snapshots); see :func:`leadml.features.build.nightly_replay`. (None, None) otherwise.
    """
    if not config.mql.capped:  # capacity, or value capped by a capacity
        return None, None
    from leadml.features.build import nightly_replay

    say("replaying the nightly scoring runs of the validation period (capacity in new MQLs a week)")
    replay = nightly_replay(config, trainset)
    if replay is None or config.rules is None or not len(replay):
        return replay, None
    from leadml.rules.ruleset import RuleSet

    data = trainset.data
    scored = RuleSet.load(config.rules).score_snapshots(replay[["lead_id", "as_of"]], data.leads, data.events)
    return replay, pd.Series(scored["points"].to_numpy(dtype=float), index=replay.index)


def release_unused_memory() -> None:
    """Hand the memory freed so far back to the system before the next step takes its own.

    pyarrow's allocator (the text columns of pandas 3 live in Arrow) and glibc's keep what a step
    freed for reuse; a whole step's worth (the rules' scoring of every snapshot: +0.7 GB at a
    million snapshots) would otherwise sit under the model fits' peak. Results are untouched.
    """
    import ctypes
    import ctypes.util

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    libc = ctypes.util.find_library("c")
    if libc is not None and hasattr(ctypes.CDLL(libc), "malloc_trim"):  # glibc only
        ctypes.CDLL(libc).malloc_trim(0)


def run_training(
    config: PipelineConfig,
    *,
    data: PipelineData | None = None,
    trainset: TrainSet | None = None,
    promote: str = "auto",
    log: bool = True,
    n_boot: int = 1000,
    progress: Callable[[str], None] | None = None,
) -> TrainingRun:
    """Build the training set, train rules / logistic / LightGBM, and log the run to MLflow.

    Parameters:
        trainset: a training set made already (:func:`leadml.jobs.trainset_file.load_trainset` reads
            one from a ``leadml trainset`` file); None builds it from ``data``.
        promote: ``auto`` (the new model takes ``champion`` when it beats it on the same test
            snapshots) or ``never``.
        log: False skips MLflow (for quick experiments).
    """
    say = progress or (lambda message: None)
    if log:
        from leadml.modeling.model_env import start_wheel_build

        start_wheel_build()  # the logged model carries leadml's wheel: a cold build overlaps the training
    if trainset is None:
        say("loading and validating the data")
        data = data if data is not None else load_pipeline_data(config.data)
        say("building snapshots and features")
        trainset = build_trainset(config, data)
    say("checking for leakage")
    from leadml.modeling.leakage import check_leakage

    check_leakage(trainset, config)
    say("scoring the rules baseline on every snapshot")
    points = rules_points(config, trainset)
    replay, replay_points = capacity_replay(config, trainset, say)
    release_unused_memory()
    result = train_models(config, trainset, points, n_boot=n_boot, progress=say,
                          replay=replay, replay_points=replay_points)  # fmt: skip
    outcome = None
    if log:
        say("logging the run to MLflow")
        outcome = log_run(config, trainset, result, promote=promote)
    return TrainingRun(trainset=trainset, result=result, outcome=outcome)


def log_run(config: PipelineConfig, trainset: TrainSet, result: TrainingResult, *, promote: str = "auto"):
    """Log a training run to MLflow and register its model (:func:`leadml.modeling.registry.log_training`),
    with the model card of this version beside it (what ``leadml report`` shows for it)."""
    from leadml.jobs.model_cards import log_model_card
    from leadml.jobs.reasons import default_reasons
    from leadml.modeling.registry import log_training

    return log_training(
        config,
        trainset,
        result,
        promote=promote,
        artifacts=lambda mlflow: log_model_card(mlflow, config, trainset, result),
        reasons=default_reasons,  # the model's leads input explains its leads as `leadml score` does
    )
