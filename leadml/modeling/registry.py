"""MLflow: one run per training, the chosen model as a pyfunc, and the champion / challenger aliases.

Tracking goes to ``MLFLOW_TRACKING_URI`` when it is set, else to ``mlflow.tracking_uri`` of the
pipeline, else to ``sqlite:///mlruns.db`` in the working folder; with a SQLite store the artifacts
go to ``mlartifacts/`` next to the database file, so nothing needs a server.

A run logs the resolved config, a fingerprint of the input data, rows and base rates per split, the
metrics of every model and of the rules (with intervals and paired differences) on the same test
snapshots, the validation scores the choice was made on, plots, the feature metadata, the model
card (``reports/model_card.html``, what ``leadml report`` shows for this version), and the chosen
model as a pyfunc (:class:`LeadScoringModel`) that takes the feature frame and returns
``probability``, ``score``, ``tier`` and ``is_mql`` (or, with ``params={"input": "leads", "as_of": ...}``,
lead rows with their events: :mod:`~leadml.modeling.lead_rows`); it carries leadml's wheel and its pinned
requirements (:mod:`~leadml.modeling.model_env`), so it loads where leadml is not installed. The new
version gets alias ``challenger``; it takes ``champion`` when there is none yet, or when it beats the
champion on ``mlflow.promote_metric``
with both scored on the *current* test snapshots (the champion's own feature set is rebuilt for them
when it differs): by default the whole 95 % paired bootstrap interval of the gain must lie above
``mlflow.promote_margin`` (``mlflow.promote_rule: point``: the gain itself;
:func:`~leadml.modeling.promotion.promotion_verdict`); the reason and the run give the interval.

A cold start or a win of the rules registers the rules baseline as a model like any other (its
input is the rules points, ``rules__points``; it carries the pipeline's rule set), with version
tags saying why (``leadml.chosen_model``, ``leadml.cold_start``, ``leadml.reason``). It takes
``champion`` the same way: when there is none yet, or when it beats the champion on the same test
snapshots; a test part without both classes compares nothing, and the champion stays. Only a
training with no model at all (no rules given) registers nothing.

MLflow pyfunc models are Python pickles: load them only from a registry you trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel  # imported by name: mypy reads mlflow.pyfunc as mlflow's lazy attribute

from leadml.core.config import PipelineConfig
from leadml.core.errors import ModelError, RegistryUnreachable
from leadml.features.build import TrainSet
from leadml.modeling.model_env import WHEEL_ARTIFACT, leadml_wheel
from leadml.modeling.promotion import ChampionComparison, compare_with_champion, promotion_verdict
from leadml.modeling.run_plots import log_plots as _log_plots
from leadml.modeling.scoring_model import LeadScoringModel
from leadml.modeling.tracking_store import create_experiment, open_store, orphan_reason, run_tags
from leadml.modeling.train import RULES, TrainingResult

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
CHAMPION, CHALLENGER = "champion", "challenger"


def tracking_uri(config: PipelineConfig | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the config's ``mlflow.tracking_uri``, else the SQLite default."""
    configured = config.mlflow.tracking_uri if config is not None else None
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_TRACKING_URI


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast with a clear message when an HTTP tracking server does not answer.

    MLflow's own client retries with back-off for minutes before it gives up; a nightly job (or a
    data scientist) should hear at once that the server is down. Local URIs (sqlite, file) are
    always reachable.
    """
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # it answered: a server that lacks /health is still a server
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryUnreachable(
            f"MLflow tracking server at {uri} is unreachable ({getattr(exc, 'reason', exc)}); check that the "
            "server is running, or set MLFLOW_TRACKING_URI (or the pipeline's mlflow.tracking_uri) to one that is"
        ) from exc


def _client(config: PipelineConfig):
    from mlflow import MlflowClient

    uri = tracking_uri(config)
    check_reachable(uri)
    open_store(uri)  # created once under a lock; stale runs closed, orphan versions tagged
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def _mlflow_at(uri: str):
    """Point MLflow's fluent API at ``uri`` for a block, then hand it back to the environment.

    ``mlflow.set_tracking_uri`` is process-wide (and writes the environment); leaving it set would
    send a later caller's runs to this URI.
    """
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # mlflow's hint omits None, which unsets the URI
        if previous is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous


def _experiment_id(client, config: PipelineConfig) -> str:
    """The experiment of the config, created with artifacts next to a SQLite database."""
    found = client.get_experiment_by_name(config.mlflow.experiment)
    if found is not None:
        return found.experiment_id
    uri = tracking_uri(config)
    location = None
    if uri.startswith("sqlite:///"):
        location = str((Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri())
    return create_experiment(client, config.mlflow.experiment, location)  # another process may make it first


def data_fingerprint(trainset: TrainSet) -> str:
    """A short hash of the input tables and of the training frame: same data, same fingerprint."""
    digest = hashlib.sha256()
    tables = [getattr(trainset.data, name, None) for name in ("leads", "events", "outcomes", "flat")]
    for table in [*tables, trainset.frame]:
        if table is not None:
            digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
            digest.update(",".join(map(str, table.columns)).encode())
    return digest.hexdigest()[:16]


FEATURES_INPUT, LEADS_INPUT = "features", "leads"  # the pyfunc's two inputs (params "input")


class LeadmlPyfunc(PythonModel):
    """The MLflow face of a :class:`LeadScoringModel`, with two inputs picked by ``params["input"]``.

    ``features`` (the default): the feature frame, or for a rules model (``scoring.needs_points``)
    one column, ``rules__points``, the points of its rule set (``scoring.rules_scores``); returns
    ``score`` of the frame. ``leads``: lead rows with their events in column ``events`` at
    ``params["as_of"]``; returns ``lead_id``, scores and reasons (:mod:`~leadml.modeling.lead_rows`).
    ``reasons`` makes the reasons step of a selection (``params["reasons"]``: ``all``, ``mql``,
    ``top:N``, ``none``); the training job gives :func:`leadml.jobs.reasons.default_reasons`.
    """

    reasons: Callable[[str], Any] | None = None  # models logged before the leads input have none

    def __init__(self, scoring: LeadScoringModel, reasons: Callable[[str], Any] | None = None):
        self.scoring = scoring
        self.reasons = reasons

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        mode = (params or {}).get("input") or FEATURES_INPUT
        if mode == FEATURES_INPUT:
            return self.scoring.score(pd.DataFrame(model_input))
        if mode != LEADS_INPUT:
            raise ModelError(f"params input is {mode!r}; give '{FEATURES_INPUT}' (the feature frame, the default) "
                             f"or '{LEADS_INPUT}' (lead rows with their events in column 'events', and as_of)")  # fmt: skip
        from leadml.modeling.lead_rows import score_lead_rows

        which = str((params or {}).get("reasons") or "all")
        step = self.reasons(which) if self.reasons is not None and which != "none" else None
        return score_lead_rows(self.scoring, model_input, (params or {}).get("as_of"), step)


def _signature(scoring: LeadScoringModel, example: pd.DataFrame):
    """Inputs: categoricals as text, numbers as double; outputs as ``score`` gives them.

    MLflow checks every input column against this schema before ``predict``. A ``string``
    column of text passes as it is and a ``double`` column costs at most a cast, whereas
    ``AnyType`` (what a Categorical would need) is checked value by value: several times the
    cost of the model. So a frame handed to the pyfunc carries its categoricals as text, as
    ``leadml features`` writes them and as CSV, Parquet and Spark give them.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    from leadml.modeling.lead_rows import lead_columns

    columns: list[ColSpec | TensorSpec] = [
        ColSpec("string" if name in scoring.categories else "double", name, required=False)
        for name in scoring.feature_names
    ]
    # the leads input's columns: passed through as they are (absent from a feature frame, they cost nothing)
    columns += [ColSpec(AnyType(), name, required=False)
                for name in lead_columns(scoring) if name not in scoring.feature_names]  # fmt: skip
    if getattr(scoring, "mql_rule", None) is not None:  # a feature frame's group / value under reserved names
        from leadml.data.mql_columns import GROUP_COLUMN, VALUE_COLUMN

        columns += [ColSpec("string", GROUP_COLUMN, required=False), ColSpec("double", VALUE_COLUMN, required=False)]
    params = ParamSchema([ParamSpec("input", "string", FEATURES_INPUT), ParamSpec("as_of", "string", ""),
                          ParamSpec("reasons", "string", "all")])  # fmt: skip
    outputs = infer_signature(None, scoring.score(example)).outputs
    return ModelSignature(inputs=Schema(columns), outputs=outputs, params=params)


def scoring_model(result: TrainingResult, trainset: TrainSet, tiers, rules=None) -> LeadScoringModel:
    """The chosen model of a training result, packed for scoring (:meth:`LeadScoringModel.from_training`).

    ``rules`` (a RuleSet, a rules file or its mapping) is the rule set a chosen rules baseline scores with.
    """
    from leadml.rules.ruleset import RuleSet

    return LeadScoringModel.from_training(result, trainset, tiers, rules=RuleSet.coerce(rules))


def _requirements(wheel: Path | None) -> list[str]:
    """The model's requirements: leadml's dependencies pinned as installed, and leadml's ``wheel``
    by its path in the model folder (:mod:`~leadml.modeling.model_env`)."""
    from leadml.modeling.model_env import model_requirements

    return model_requirements(wheel)


@dataclass(frozen=True)
class RunOutcome:
    """Where a training run went and what happened to the model."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    registered_model: str | None
    version: str | None
    promoted: bool
    reason: str
    champion_version: str | None = None
    champion_metric: float | None = None
    new_metric: float | None = None
    comparison: ChampionComparison | None = None  # the paired comparison, when there was a champion


def _log_result(mlflow, config: PipelineConfig, trainset: TrainSet, result: TrainingResult) -> str:
    """Log the run's settings (flat params, :mod:`~leadml.modeling.run_record`), metrics and tables; the fingerprint."""
    from leadml.modeling.run_record import run_params

    fingerprint = data_fingerprint(trainset)
    mlflow.log_dict(config.resolved_dict(), "config.json")
    mlflow.log_params({
        "chosen_model": result.chosen, "cold_start": result.cold_start, "data_fingerprint": fingerprint,
        "select_metric": config.models.select_metric, "seed": config.models.seed,
        "n_features": len(result.feature_names), "mql_threshold": result.threshold,
        **run_params(config, trainset, result, fingerprint),
    })  # fmt: skip
    metrics: dict[str, float] = {}  # logged in one batch at the end: one write, not one per metric
    for row in result.counts.itertuples():
        metrics.update({f"rows.{row.split}": row.rows, f"positives.{row.split}": row.positives})
        if pd.notna(row.base_rate):
            metrics[f"base_rate.{row.split}"] = row.base_rate
    for row in result.metrics.itertuples():
        for kind in ("value", "low", "high"):
            value = getattr(row, kind)
            if np.isfinite(value):
                metrics[f"test.{row.model}.{row.metric}" + ("" if kind == "value" else f".{kind}")] = value
    if result.evaluation is not None:
        for row in result.evaluation.differences.itertuples():
            if np.isfinite(row.difference):
                metrics[f"vs_rules.{row.model}.{row.metric}"] = row.difference
        mlflow.log_table(result.evaluation.metrics, "evaluation/metrics.json")
        mlflow.log_table(result.evaluation.differences, "evaluation/differences.json")
    for row in result.validation.to_dict("records"):
        for key, value in row.items():
            if key not in ("model", "calibration") and isinstance(value, (int, float)) and np.isfinite(value):
                metrics[f"validation.{row['model']}.{key}"] = float(value)
    from leadml.modeling.calibrate import calibration_errors, reliability_tables
    from leadml.modeling.evaluate import mql_confusion

    confusion = mql_confusion(result.thresholds, result.predictions, result.counts)
    for row in confusion.to_dict("records"):  # test F1 and its interval come with the metrics above
        kept = ("tp", "fp", "fn", "tn", *(("f1",) if row["split"] == "validation" or result.evaluation is None else ()))
        metrics.update({f"{row['split']}.{row['model']}.{k}": float(row[k]) for k in kept if np.isfinite(row[k])})
    if len(confusion):
        mlflow.log_table(confusion, "evaluation/confusion.json")
    if result.evaluation is not None:  # ECE (equal-mass) is above; equal-width and the worst bin of each
        y_test = result.predictions["converted"].to_numpy(dtype=float)
        for name in result.models:
            for binning, table in reliability_tables(y_test, result.predictions[name].to_numpy()).items():
                errors, key = calibration_errors(table), binning.replace("-", "_")
                found = {f"max_bin_error_{key}": errors["max_error"]}
                if binning == "equal-width":
                    found[f"ece_{key}"] = errors["ece"]
                metrics.update({f"test.{name}.{k}": v for k, v in found.items() if np.isfinite(v)})
    mlflow.log_metrics(metrics)
    mlflow.log_table(result.counts, "evaluation/counts.json")
    mlflow.log_table(trainset.builder.metadata().astype(str), "features/metadata.json")
    mlflow.log_text(result.reason + "".join(f"\n{note}" for note in result.notes), "reason.txt")
    _log_plots(mlflow, result)
    return fingerprint


def _test_rows(trainset: TrainSet) -> np.ndarray:
    frame = trainset.frame
    return ((frame["split"] == "test") & frame["converted"].notna()).to_numpy()


def _test_probability(scoring: LeadScoringModel, trainset: TrainSet) -> np.ndarray:
    """A model's probabilities of this training set's test snapshots (its own features rebuilt if they differ)."""
    return scoring.probability(scoring.features_for(trainset, _test_rows(trainset)))


def _rules_to_pack(config: PipelineConfig, result: TrainingResult):
    """The pipeline's rule set when the rules baseline was chosen (None otherwise, or without a rules file)."""
    if result.chosen != RULES or config.rules is None:
        return None
    from leadml.rules.ruleset import RuleSet

    return RuleSet.load(config.rules)


def _example(scoring: LeadScoringModel, trainset: TrainSet) -> pd.DataFrame:
    """Five rows of the model's input (test snapshots first), categoricals as text as the signature says."""
    rows = _test_rows(trainset)
    if not rows.any():
        rows = np.ones(len(trainset.frame), dtype=bool)
    first = np.zeros(len(rows), dtype=bool)
    first[np.flatnonzero(rows)[:5]] = True
    example = scoring.features_for(trainset, first)[scoring.feature_names]
    return example.astype({name: object for name in scoring.categories})


def _tag_version(client, name: str, version: str, result: TrainingResult,
                 config: PipelineConfig, trainset: TrainSet, fingerprint: str) -> None:  # fmt: skip
    """Say on the registered version what it is and why it was chosen (a cold start, the rules' win, ...):
    tags to filter on, and a description with its test metrics and data (:mod:`~leadml.modeling.run_record`)."""
    from leadml.modeling.run_record import version_description, version_tags

    tags = {"leadml.chosen_model": str(result.chosen), "leadml.cold_start": str(result.cold_start),
            "leadml.reason": result.reason[:4000], **version_tags(config, result, fingerprint)}  # fmt: skip
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=version_description(config, trainset, result))


def _champion(
    config: PipelineConfig, trainset: TrainSet, client, *, score: bool = True
) -> tuple[str, np.ndarray | None] | None:
    """The current champion's version and its probabilities of this training set's test snapshots
    (None without ``score``: a test part that cannot compare two models is not scored)."""
    from mlflow.exceptions import MlflowException

    name = config.mlflow.registered_model
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    if orphan_reason(client, current) is not None:
        return None  # a champion with no model behind it cannot serve: nothing to beat (tracking_store)
    if not score:
        return str(current.version), None
    with _mlflow_at(tracking_uri(config)):
        loaded = mlflow.pyfunc.load_model(f"models:/{name}/{current.version}")
    return str(current.version), _test_probability(loaded.unwrap_python_model().scoring, trainset)


def log_training(
    config: PipelineConfig,
    trainset: TrainSet,
    result: TrainingResult,
    *,
    promote: str = "auto",
    run_name: str | None = None,
    artifacts: Callable[[Any], None] | None = None,
    reasons: Callable[[str], Any] | None = None,
) -> RunOutcome:
    """Log a training run; register the chosen model (alias ``challenger``) and promote it if it wins.

    Parameters:
        promote: ``auto`` (take ``champion`` when there is none or when better on the same test
            snapshots by ``mlflow.promote_metric``, under ``mlflow.promote_rule``) or ``never``.
        artifacts: called with the ``mlflow`` module inside the run, after the model is logged, to
            log more files (:func:`leadml.jobs.train.run_training` logs the model card).
        reasons: what makes the reasons step the model's leads input explains with (a selection in,
            a step out: :func:`leadml.jobs.reasons.default_reasons`, which the training job gives).

    Raises:
        ModelError: MLflow could not be reached or refused the run (the message names the URI).
    """
    from mlflow.exceptions import MlflowException

    if promote not in ("auto", "never"):
        raise ValueError(f"promote must be 'auto' or 'never', got {promote!r}")
    uri = tracking_uri(config)
    name = config.mlflow.registered_model
    try:
        client = _client(config)
        experiment_id = _experiment_id(client, config)
        with (
            _mlflow_at(uri),
            mlflow.start_run(experiment_id=experiment_id, run_name=run_name or config.name, tags=run_tags()) as run,
        ):  # run_tags: the pid and host that run it, so that a run its killed process left is closed (tracking_store)
            run_id = run.info.run_id
            mlflow.set_tags({"leadml.pipeline": config.name, "leadml.chosen": str(result.chosen),
                             "leadml.cold_start": str(result.cold_start)})  # fmt: skip
            fingerprint = _log_result(mlflow, config, trainset, result)
            rules = _rules_to_pack(config, result)
            if result.chosen is None or (result.chosen == RULES and rules is None):
                mlflow.set_tag("leadml.registered", "false")
                why = result.reason if result.chosen is None else (
                    f"{result.reason}; the pipeline names no rules file to pack the rules baseline with")  # fmt: skip
                return RunOutcome(run_id, experiment_id, uri, None, None, False, f"no model registered: {why}")
            scoring = scoring_model(result, trainset, config.mql.tiers, rules)
            assert scoring.drift_reference is not None  # from_training always computes it
            mlflow.log_dict(scoring.drift_reference, "monitor/reference.json")
            example = _example(scoring, trainset)
            wheel = leadml_wheel()  # leadml itself, so the model loads where leadml is not installed
            with warnings.catch_warnings():  # hints about type hints and integer columns: not ours to act on
                warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=LeadmlPyfunc(scoring, reasons),
                    artifacts={WHEEL_ARTIFACT: str(wheel)} if wheel is not None else None,
                    signature=_signature(scoring, example),
                    input_example=example,
                    registered_model_name=name,
                    pip_requirements=_requirements(wheel),
                )
            version = str(info.registered_model_version)
            if artifacts is not None:  # what the job adds to the run, e.g. the model card for `leadml report`
                artifacts(mlflow)
            metric, margin = config.mlflow.promote_metric, config.mlflow.promote_margin
            kind = " (the rules, scored as a model)" if scoring.needs_points else ""
            new_value = result.evaluation.value(result.chosen, metric) if result.evaluation else float("nan")
            test = trainset.frame.loc[_test_rows(trainset)]
            y_test = test["converted"].to_numpy(dtype=float)
            comparable = 0 < y_test.sum() < len(y_test)  # both classes: a metric to compare on
            champion = _champion(config, trainset, client, score=comparable)
            champion_version = champion_value = comparison = None
            if champion is not None:
                champion_version = champion[0]
            if champion is not None and champion[1] is not None:
                comparison = compare_with_champion(
                    y_test, _test_probability(scoring, trainset), champion[1],
                    metric=metric, groups=test["lead_id"].to_numpy(), seed=config.models.seed)  # fmt: skip
                new_value, champion_value = comparison.challenger, comparison.champion
                mlflow.log_metrics({f"champion.{metric}": champion_value,
                                    f"champion.{metric}.gain_low": comparison.gain_low,
                                    f"champion.{metric}.gain_high": comparison.gain_high,
                                    f"champion.{metric}.share_better": comparison.share_better})  # fmt: skip
            if promote == "never":
                promoted, reason = False, "promotion is off (--promote never)"
            elif champion is None:
                promoted, reason = True, f"version {version}{kind} is the first champion of '{name}'"
            elif comparison is None:
                promoted, reason = False, (
                    f"version {version}{kind} is not compared with champion version {champion_version}: the "
                    "test snapshots lack one of the classes; the champion stays")  # fmt: skip
            else:
                promoted, why = promotion_verdict(comparison, margin=margin, rule=config.mlflow.promote_rule)
                verdict = "beats" if promoted else "does not beat"
                by = f" by more than {margin:g}" if margin else ""
                reason = (f"version {version}{kind} {verdict} champion version {champion_version} on {metric}{by}; "
                          f"{why} ({comparison.values_text()})")  # fmt: skip
            mlflow.set_tags({"leadml.registered": "true", "leadml.version": version, "leadml.promoted": str(promoted),
                             "leadml.promotion": reason})  # fmt: skip
        _tag_version(client, name, version, result, config, trainset, fingerprint)
        client.set_registered_model_alias(name, CHALLENGER, version)
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, version)
    except MlflowException as exc:
        raise ModelError(f"MLflow at {uri}: {exc.message if hasattr(exc, 'message') else exc}") from exc
    return RunOutcome(run_id, experiment_id, uri, name, version, promoted, reason,
                      champion_version, champion_value, new_value, comparison)  # fmt: skip


def promote_version(config: PipelineConfig, version: int | str) -> str | None:
    """Give a registered version the ``champion`` alias (``leadml promote``); returns the previous champion.

    Raises:
        ModelError: the registered model or the version does not exist, or the version is an orphan
            (its training did not finish, or its model files are missing).
    """
    from mlflow.exceptions import MlflowException

    client = _client(config)
    name = config.mlflow.registered_model
    try:
        found = client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise ModelError(
            f"MLflow at {tracking_uri(config)}: registered model '{name}' has no version {version}"
        ) from exc
    orphan = orphan_reason(client, found)
    if orphan is not None:
        raise ModelError(f"MLflow at {tracking_uri(config)}: {name} version {version} is an orphan and cannot be "
                         f"champion ({orphan}); promote a complete version, or train a new one")  # fmt: skip
    try:
        previous = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        previous = None
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return previous
