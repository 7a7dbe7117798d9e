"""The model card of the model that serves, as ``leadml report`` and ``leadml demo`` write it.

The card to show is the one logged with the model's training run (:mod:`leadml.jobs.model_cards`):
it describes the version that serves, whatever the data has become since. A model trained before
cards were logged, or a pipeline with no champion yet, gets a card drawn from a training run
instead: one the caller already holds, or a new one that is not logged (the same data, config
and seed give the same model). :func:`model_card` does either and says which, so the command
line only prints it.

Kept apart from :mod:`leadml.jobs.model_cards` because it trains: the training job logs its card
through that module, and this one runs the training job.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from leadml.core.config import PipelineConfig

if TYPE_CHECKING:
    from leadml.jobs.train import TrainingRun

__all__ = ["ModelCard", "model_card"]


@dataclass(frozen=True)
class ModelCard:
    """Where a model card was written and where it came from.

    ``run_id`` is the MLflow run the card was logged with; None when the card was drawn from a
    training run, and then ``missing`` says why no logged card was used (no champion, no card
    logged with the model, ...) and ``trained`` whether a training run (not logged) was made for it.
    """

    path: Path
    model_uri: str
    run_id: str | None = None
    missing: str | None = None
    trained: bool = False

    @property
    def logged(self) -> bool:
        """True when the card is the one logged with the model's training run."""
        return self.run_id is not None

    @property
    def message(self) -> str:
        """One line on where the card comes from, for a person to read."""
        if self.logged:
            return f"model card of {self.model_uri} (logged with run {self.run_id})"
        source = "a training run that is not logged" if self.trained else "the training run at hand"
        return f"{self.missing}: drawing the card from {source}"


def model_card(
    config: PipelineConfig,
    model_uri: str | None,
    path: str | os.PathLike,
    *,
    training: TrainingRun | None = None,
    title: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ModelCard:
    """Write the model card of ``model_uri`` (default: the pipeline's champion) to ``path``.

    The card logged with the model's run is copied when there is one; else the card is drawn from
    ``training`` when given, or from a new training run of ``config`` that is not logged.

    Parameters:
        config: the pipeline (its MLflow settings find the model; its data trains when needed).
        model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN/model`` or a model
            folder; None: ``models:/<registered_model>@champion``, and a missing champion or an
            unreachable registry then leads to a drawn card instead of an error.
        path: the HTML file to write (written whole or not at all).
        training: a training run already done (the demo's), drawn from instead of training again.
        title: the title of a drawn card (default ``Model card: <pipeline name>``, as logged cards).
        progress: called with a line on what is being done (the training's steps when it trains).

    Returns:
        A :class:`ModelCard`: the path, the model URI, and the logging run or why there was none.

    Raises:
        ModelError: ``model_uri`` was given and cannot be found (unknown version, alias, run).
    """
    from leadml.core.errors import ModelError, RegistryUnreachable
    from leadml.jobs.model_cards import fetch_model_card
    from leadml.modeling.loading import default_model_uri

    say = progress or (lambda message: None)
    uri = model_uri or default_model_uri(config)
    path = Path(path)
    say(f"looking for the model card logged with {uri}")
    try:
        run_id = fetch_model_card(config, uri, path)
    except ModelError as exc:
        if model_uri is not None or isinstance(exc, RegistryUnreachable):  # asked for by name, or no registry
            raise
        run_id, missing = None, str(exc)
    else:
        missing = f"{uri} has no model card logged with it"
    if run_id is not None:
        return ModelCard(path, uri, run_id=run_id)
    card = ModelCard(path, uri, missing=missing, trained=training is None)
    say(card.message)
    if training is None:
        from leadml.jobs.train import run_training

        training = run_training(config, log=False, progress=say)
    from leadml.explain.report import write_model_card
    from leadml.jobs.model_cards import pipeline_rules

    write_model_card(training.result, training.trainset, path, tiers=config.mql.tiers,
                     title=title or f"Model card: {config.name}", rules=pipeline_rules(config),
                     evaluation=config.evaluation)  # fmt: skip
    return card
