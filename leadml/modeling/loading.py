"""The model side of a batch job: loading a leadml pyfunc from MLflow, checking its feature set, scoring.

:func:`load_model` resolves ``models:/NAME@ALIAS`` (or ``/VERSION``), ``runs:/RUN/model`` or a
model folder against the pipeline's tracking URI and returns the
:class:`~leadml.modeling.registry.LeadScoringModel` inside the pyfunc, with the name and version
that go into every scores row. Registry problems become :class:`~leadml.core.errors.ModelError` with
the URI and what to do.

:class:`Scorer` gives the calibrated probabilities through ``LeadScoringModel.probability``, which
for a calibrated LightGBM model feeds the booster a float matrix directly (categoricals as the
booster's own category codes, mapped once per distinct value) and costs about what a bare
``Booster.predict`` costs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from leadml.core.config import PipelineConfig
from leadml.core.errors import ConfigError, ModelError
from leadml.core.memo import BoundedMemo

if TYPE_CHECKING:
    from leadml.modeling.scoring_model import LeadScoringModel

_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class LoadedModel:
    """A leadml model and where it came from (``name`` and ``version`` go into every scores row)."""

    scoring: LeadScoringModel
    uri: str
    name: str
    version: str


def default_model_uri(config: PipelineConfig) -> str:
    return f"models:/{config.mlflow.registered_model}@champion"


def load_model(config: PipelineConfig | None = None, model_uri: str | os.PathLike | None = None) -> LoadedModel:
    """Load a leadml pyfunc model: the config's champion, a ``models:/``/``runs:/`` URI, or a folder.

    Raises:
        ModelError: the registry cannot be reached, the alias or version does not exist, or the
            model is not a leadml model.
    """
    from mlflow.exceptions import MlflowException

    from leadml.modeling.registry import LeadScoringModel, tracking_uri

    if isinstance(model_uri, LeadScoringModel):
        return LoadedModel(model_uri, "<in memory>", model_uri.name or "leadml", "")
    if model_uri is not None:
        uri = str(model_uri)
    elif config is not None:
        uri = default_model_uri(config)
    else:
        raise ConfigError("give a pipeline (its champion is scored) or a model URI")
    where = tracking_uri(config)
    name, version, load_uri, run_id = resolve_model_uri(uri, where)
    try:
        if run_id is not None and load_uri.startswith(("models:/", "runs:/")):  # a logged model: its files never change
            scoring = _LOADED.get((where, load_uri, run_id), lambda: _unpacked(where, load_uri))
        else:
            scoring = _unpacked(where, load_uri)
    except (MlflowException, OSError) as exc:
        raise ModelError(f"cannot load model {uri} (MLflow at {where}): {_message(exc)}") from exc
    if not isinstance(scoring, LeadScoringModel):
        raise ModelError(f"{uri} is not a leadml model (its python model holds no LeadScoringModel); "
                         "train it with leadml")  # fmt: skip
    if not version and run_id:  # a runs:/ URI: the run stands for the version
        version = run_id
    if not version and Path(load_uri).is_dir():
        from mlflow.models import Model

        version = Model.load(load_uri).run_id or "local"
    return LoadedModel(scoring, uri, name, version)


# logged models this process has loaded, by store, URI and run: a job that scores several days (the
# demo's score history) or draws a report after scoring unpacks the pyfunc once (about 0.2 s each)
_LOADED: BoundedMemo = BoundedMemo(4)


def _unpacked(where: str, load_uri: str):
    """The ``scoring`` object of the pyfunc at ``load_uri`` (None when it is not a leadml model)."""
    from leadml.modeling.registry import _mlflow_at

    with _mlflow_at(where):
        import mlflow.pyfunc

        loaded = mlflow.pyfunc.load_model(load_uri)
    return getattr(loaded.unwrap_python_model(), "scoring", None)


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", exc)).splitlines()[0]


class ResolvedModel(NamedTuple):
    """Where a model URI points: its registered name and version (empty outside the registry), the
    URI to load and the MLflow run that logged it (None when unknown, e.g. a model folder)."""

    name: str
    version: str
    load_uri: str
    run_id: str | None


def resolve_model_uri(uri: str, where: str) -> ResolvedModel:
    """Resolve ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN/...`` or a folder against
    the MLflow at ``where``; registry look-ups become :class:`ModelError`, and a tracking server
    that does not answer fails at once (:func:`~leadml.modeling.registry.check_reachable`)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from leadml.modeling.registry import check_reachable
    from leadml.modeling.tracking_store import open_store, orphan_reason

    if uri.startswith(("models:/", "runs:/")):
        check_reachable(where)  # MLflow's client would retry a dead server for minutes before it fails
        open_store(where)  # created once under a lock; stale runs closed, orphan versions tagged
    if not uri.startswith("models:/"):
        if not uri.startswith("runs:/") and "://" not in uri and not Path(uri).exists():
            raise ModelError(f"{uri}: no such model folder (give models:/NAME@ALIAS, runs:/RUN_ID/model or a folder)")
        run_id = uri.removeprefix("runs:/").split("/")[0] if uri.startswith("runs:/") else None
        return ResolvedModel(Path(uri).name if "://" not in uri else uri, "", uri, run_id)
    spec = uri.removeprefix("models:/")
    name, alias = spec.split("@", 1) if "@" in spec else (spec.partition("/")[0], None)
    try:
        client = MlflowClient(tracking_uri=where, registry_uri=where)
        if alias is not None:
            found = client.get_model_version_by_alias(name, alias)
        else:
            found = client.get_model_version(name, spec.partition("/")[2])
    except MlflowException as exc:
        if getattr(exc, "error_code", None) not in _NOT_FOUND:
            raise ModelError(f"cannot reach the MLflow registry at {where}: {_message(exc)}") from exc
        if alias is not None:
            raise ModelError(
                f"MLflow at {where}: registered model '{name}' has no alias '{alias}' ({_message(exc)}); "
                "train one with `leadml train` or give a version with `leadml promote --version N`"
            ) from exc
        raise ModelError(f"MLflow at {where}: registered model '{name}' has no version "
                         f"{spec.partition('/')[2]!r} ({_message(exc)})") from exc  # fmt: skip
    except Exception as exc:  # an unreadable database, a refused connection: say where
        raise ModelError(f"cannot reach the MLflow registry at {where}: {_message(exc)}") from exc
    orphan = orphan_reason(client, found)
    if orphan is not None:  # a killed training's version, or one whose files are gone: never served
        raise ModelError(f"MLflow at {where}: {found.name} version {found.version} ({uri}) is an orphan and is not "
                         f"served ({orphan}); promote a complete version with `leadml promote --version N` "
                         "or train a new one")  # fmt: skip
    return ResolvedModel(found.name, str(found.version), f"models:/{found.name}/{found.version}", found.run_id)


def check_builder(scoring) -> None:
    """Refuse a model whose feature set is missing or describes itself differently than at training."""
    builder = getattr(scoring, "builder", None)
    if builder is None:
        raise ModelError("the model carries no fitted FeatureBuilder, so its features cannot be rebuilt; retrain it")
    recorded = getattr(scoring, "spec_hash", None)
    if recorded is not None and builder.spec_hash() != recorded:
        raise ModelError(
            f"the model's feature set hashes to {builder.spec_hash()} now but {recorded} at training: this "
            "leadml version builds its features differently; retrain the model with it"
        )


def check_spec(scoring, found: dict | None) -> None:
    """Refuse features built under another spec than the model's, naming the differences."""
    from leadml.features.chunk import spec_differences

    if found is None:
        return
    expected = scoring.builder.spec()
    if found != expected:
        raise ModelError("the features were built under another feature spec than the model's: "
                         + "; ".join(spec_differences(expected, found)))  # fmt: skip


# -- scoring a frame ---------------------------------------------------------------------------
def probabilities(scoring, features: pd.DataFrame) -> np.ndarray:
    """The model's calibrated probabilities, skipping ``prepare`` when the frame is prepared already.

    Features made by the model's own builder have every categorical with the training categories
    and numbers as floats; converting them to text and back (what ``prepare`` does for any input)
    would cost more than the model itself.
    """
    if not len(features):
        return np.zeros(0)
    ready = all(
        isinstance(features[name].dtype, pd.CategoricalDtype)
        and list(features[name].cat.categories) == list(levels)
        for name, levels in scoring.categories.items() if name in features.columns
    )  # fmt: skip
    if not ready or any(name not in features.columns for name in scoring.feature_names):
        return scoring.probability(features)
    numeric = {n: features[n].astype("float64") for n in scoring.feature_names if n not in scoring.categories}
    prepared = pd.DataFrame({n: numeric.get(n, features[n]) for n in scoring.feature_names}, index=features.index)
    return scoring.model.predict_proba(prepared)[:, 1]


class Scorer:
    """Calibrated probabilities of a LeadScoringModel, as the scoring job computes them.

    :meth:`LeadScoringModel.probability` feeds a calibrated LightGBM's booster a float matrix
    directly (its categories mapped once per distinct value), so the job uses it as is.
    """

    def __init__(self, scoring):
        self.scoring = scoring

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The booster's own input for ``features`` (for benchmarks against a bare ``Booster.predict``)."""
        plan = self.scoring._booster_plan()
        if plan is None:
            raise ModelError("this model is not a calibrated LightGBM: it has no booster matrix")
        return self.scoring.matrix(features, plan)

    def __call__(self, features: pd.DataFrame, matrix: np.ndarray | None = None) -> np.ndarray:
        return self.scoring.probability(features, matrix) if len(features) else np.zeros(0)
