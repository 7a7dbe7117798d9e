"""The model card travels with the model: logged into its training run, fetched back for ``leadml report``.

A card drawn later from a new training would describe a new model as soon as the data has moved
(new leads, deals closed since); the card logged with the run describes the registered version
that serves. :func:`log_model_card` writes it into the active MLflow run as
``reports/model_card.html``; :func:`fetch_model_card` finds the run behind a model URI (the
champion by default) and copies its card.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from leadml.core.config import PipelineConfig
from leadml.data.io import atomic_output

CARD_ARTIFACT = "reports/model_card.html"
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def pipeline_rules(config: PipelineConfig):
    """The pipeline's rule set (None without a rules file): what a card names when the rules are the model."""
    if config.rules is None:
        return None
    from leadml.rules.ruleset import RuleSet

    return RuleSet.load(config.rules)


def log_model_card(mlflow, config: PipelineConfig, trainset, result) -> None:
    """Draw the model card of ``result`` and log it into the active run (``reports/model_card.html``)."""
    from leadml.explain.report import write_model_card

    with tempfile.TemporaryDirectory(prefix="leadml-card-") as folder:
        card = write_model_card(result, trainset, Path(folder) / Path(CARD_ARTIFACT).name, tiers=config.mql.tiers,
                                title=f"Model card: {config.name}", rules=pipeline_rules(config),
                                evaluation=config.evaluation)  # fmt: skip
        mlflow.log_artifact(str(card), str(Path(CARD_ARTIFACT).parent))


def model_run_id(config: PipelineConfig, model_uri: str) -> str | None:
    """The MLflow run that logged ``model_uri`` (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``,
    ``runs:/RUN/...`` or a model folder); None for a folder saved outside a run.

    Raises:
        ModelError: the registry cannot be reached, or the alias or version does not exist.
    """
    from leadml.modeling.loading import resolve_model_uri
    from leadml.modeling.registry import tracking_uri

    found = resolve_model_uri(model_uri, tracking_uri(config))
    if found.run_id is not None or found.load_uri.startswith(("models:/", "runs:/")):
        return found.run_id
    from mlflow.models import Model

    return Model.load(found.load_uri).run_id  # a model folder: its MLmodel file may name the run


@contextlib.contextmanager
def _no_progress_bar():
    """MLflow draws a progress bar for every download, even of one small file: not for the card."""
    before = os.environ.get(_PROGRESS_BAR)
    os.environ[_PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_PROGRESS_BAR, None)
        else:
            os.environ[_PROGRESS_BAR] = before


def fetch_model_card(config: PipelineConfig, model_uri: str, path: str | Path) -> str | None:
    """Copy the card logged with ``model_uri``'s run to ``path`` (atomically); the run id, or None
    when that run logged no card (trained before cards were logged, or saved outside a run).

    Raises:
        ModelError: as :func:`model_run_id`.
    """
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from leadml.modeling.registry import tracking_uri

    run_id = model_run_id(config, model_uri)
    if run_id is None:
        return None
    with tempfile.TemporaryDirectory(prefix="leadml-card-") as folder, _no_progress_bar():
        try:
            card = download_artifacts(run_id=run_id, artifact_path=CARD_ARTIFACT, dst_path=folder,
                                      tracking_uri=tracking_uri(config))  # fmt: skip
        except (MlflowException, OSError):
            return None
        if not Path(card).is_file():
            return None
        with atomic_output(path) as temp:
            shutil.copyfile(card, temp)
    return run_id
