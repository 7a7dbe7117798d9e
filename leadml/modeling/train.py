"""Training: the rules baseline, logistic regression and LightGBM, fitted, calibrated, chosen and judged.

The parts of a :class:`~leadml.features.build.TrainSet` have one job each:

- ``train``: fits every model (and the rules baseline's map from points to probability);
- ``validation`` (later snapshots): LightGBM's early stopping, the calibration of every candidate,
  the choice of the model that goes forward (``models.select_metric``) and the MQL threshold
  (``mql.policy``, :mod:`leadml.modeling.policy`);
- ``test`` (later still, after a gap of the label horizon): only the report. The choice never
  looks at it, so its figures are honest.

When the frame has a ``weight`` column (each lead's snapshots share one unit, so that old leads
with many snapshots do not dominate), every candidate is fitted on the training rows with those
weights, and LightGBM early-stops on the weighted validation loss. Calibration, the validation
scores, the choice and the MQL threshold stay unweighted: a probability must be calibrated to the
snapshots as scoring meets them. Without the column every row weighs 1.

A threshold that makes no MQL on validation (a fixed ``mql.probability`` above every validation
probability, a capacity too small for the span) is refused with what to change (``ModelError``)
for the model that goes forward; for the other candidates it is a note.

The rules baseline is a candidate like the models: it is calibrated the same way, and when it wins
on validation it is kept. With fewer than ``models.min_positives`` converted or
``models.min_negatives`` unconverted training snapshots (cold start), only the rules baseline is
fitted and kept; :attr:`TrainingResult.reason` says why. Labels of one class only are refused
(``LeadDataError``) when every training snapshot converted, or when none did and no rules are given;
none converted with rules is a cold start on the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from leadml.core.config import PipelineConfig
from leadml.core.errors import LeadDataError, ModelError
from leadml.data.contract import LABEL_COLUMN
from leadml.features.build import TrainSet
from leadml.modeling.calibrate import CalibratedModel, log_loss, reliability_table
from leadml.modeling.estimators import fit_model, make_models
from leadml.modeling.evaluate import Evaluation, evaluate_predictions
from leadml.modeling.group_policy import MQLRule, rule_threshold, training_value_median
from leadml.modeling.policy import NightlyScores, Threshold, find_threshold, span_weeks
from leadml.rules.ruleset import POINTS_COLUMN

RULES = "rules"
WEIGHT_COLUMN = "weight"  # a training snapshot's weight in the fit (absent: every row weighs 1)

Progress = Callable[[str], None]


@dataclass
class TrainingResult:
    """What a training run produced.

    Attributes:
        models: the calibrated, fitted candidates by name (``rules``, ``logistic``, ``lightgbm``).
        chosen: the name of the one that goes forward (chosen on validation), or None.
        reason: why it was chosen, or why the rules baseline was kept (cold start).
        cold_start: True when too few labelled training snapshots stopped the models.
        evaluation: metrics with intervals on the test rows, and differences against the rules.
        validation: per candidate, the validation metrics the choice was made on and the calibration.
        reliability: per candidate, the reliability table on the test rows.
        thresholds: per candidate, its MQL threshold (found on validation by the MQL policy).
        predictions: the test rows (``lead_id``, ``as_of``, ``converted``) with each candidate's
            calibrated probability in a column named after it.
        counts: rows, positives and base rate per split.
        feature_names: the feature columns the models take.
        mql: per candidate, its threshold and the MQLs it gives on validation and on test
            (count, per week when the snapshots have time, share).
        notes: what the run noticed on the way: validation or test lacking a class, a candidate
            (not the chosen one) whose MQL threshold makes no MQL on validation, and why.
        mql_rules: per candidate, its MQL rule with a threshold per lead (``mql.capacity_by`` or
            ``mql.policy: value``, :mod:`leadml.modeling.group_policy`); empty otherwise.
    """

    models: dict[str, CalibratedModel]
    chosen: str | None
    reason: str
    cold_start: bool
    evaluation: Evaluation | None
    validation: pd.DataFrame
    reliability: dict[str, pd.DataFrame]
    thresholds: dict[str, Threshold]
    predictions: pd.DataFrame
    counts: pd.DataFrame
    feature_names: list[str]
    mql: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    mql_rules: dict[str, MQLRule] = field(default_factory=dict)  # per candidate: its threshold per lead, if any

    @property
    def metrics(self) -> pd.DataFrame:
        """model x metric with value, low, high on the test rows (empty when there was no test)."""
        if self.evaluation is None:
            return pd.DataFrame(columns=["model", "metric", "value", "low", "high"])
        return self.evaluation.metrics

    @property
    def model(self) -> CalibratedModel | None:
        return self.models.get(self.chosen) if self.chosen else None

    @property
    def threshold(self) -> float | None:
        """The chosen model's MQL threshold (a calibrated probability)."""
        return self.thresholds[self.chosen].threshold if self.chosen in self.thresholds else None

    @property
    def mql_rule(self) -> MQLRule | None:
        """The chosen model's MQL rule with a threshold per lead (None: one threshold for every lead)."""
        return self.mql_rules.get(self.chosen) if self.chosen else None


def split_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows, labelled rows, positives and base rate per split, in a fixed order."""
    label = frame[LABEL_COLUMN]
    grouped = pd.DataFrame({"split": frame["split"].astype(str), "label": label})
    counts = grouped.groupby("split").agg(
        rows=("label", "size"), labelled=("label", "count"), positives=("label", "sum")
    )
    order = [s for s in ("train", "validation", "test", "gap", "censored") if s in counts.index]
    counts = counts.reindex(order + [s for s in counts.index if s not in order])
    counts["positives"] = counts["positives"].astype(np.int64)
    counts["base_rate"] = counts["positives"] / counts["labelled"].where(counts["labelled"] > 0)
    return counts.reset_index()


def _both_classes(y: np.ndarray) -> bool:
    return len(y) > 0 and 0 < y.sum() < len(y)


def _validation_scores(name: str, model: CalibratedModel, X, y: np.ndarray) -> dict:
    """The selection metrics on validation: ranking ones on the raw scores, log loss cross-fitted."""
    row = {"model": name, "calibration": model.method_, "rows": len(y)}
    if _both_classes(y):
        raw = model.raw_proba(X)
        row["roc_auc"] = roc_auc_score(y, raw)
        row["pr_auc"] = average_precision_score(y, raw)
        row["log_loss"] = log_loss(y, model.oof_)
    for method, loss in getattr(model, "losses_", {}).items():
        row[f"log_loss_{method}"] = loss
    return row


def choose(validation: pd.DataFrame, metric: str) -> tuple[str, str]:
    """The best candidate on validation by ``metric`` (ties: the earlier, simpler one) and a sentence why."""
    if metric not in validation.columns or validation[metric].isna().all():
        name = validation["model"].iloc[-1]
        return name, f"validation has too few labels to compare on {metric}; kept {name}"
    lower = metric == "log_loss"
    scores = validation.set_index("model")[metric]
    best = scores.idxmin() if lower else scores.idxmax()
    others = ", ".join(f"{m} {v:.4f}" for m, v in scores.items() if m != best)
    return best, f"{best} has the best validation {metric} ({scores[best]:.4f}; {others})"


def mql_summary(thresholds: dict[str, Threshold], predictions: pd.DataFrame) -> pd.DataFrame:
    """Each candidate's MQL threshold and the MQLs it yields on validation (where it was set) and on test."""
    has_time = len(predictions) > 0 and bool(predictions["as_of"].notna().any())
    weeks = span_weeks(predictions["as_of"]) if has_time else None
    rows = []
    for name, found in thresholds.items():
        chosen = int((predictions[name] >= found.threshold).sum()) if name in predictions else 0
        rows.append({
            "model": name, "policy": found.policy, "threshold": found.threshold,
            "validation_mqls": found.mql_count, "validation_per_week": found.per_week,
            "replayed_new_per_week": found.new_per_week,
            "test_mqls": chosen, "test_per_week": chosen / weeks if weeks else None,
            "test_share": chosen / len(predictions) if len(predictions) else None,
        })  # fmt: skip
    return pd.DataFrame(rows)


class _SplitRows(Mapping[str, pd.DataFrame]):
    """The feature rows of each split, cut from the frame when asked and not kept.

    A split's rows are a copy (pandas copies a row selection): holding all three at once would
    hold most of the feature frame twice, so each fit, calibration or prediction takes its own
    and lets it go when done.
    """

    def __init__(self, frame: pd.DataFrame, features: list[str], masks: dict[str, np.ndarray]):
        self._frame, self._features, self._masks = frame, features, masks

    def __getitem__(self, split: str) -> pd.DataFrame:
        return self._frame.loc[self._masks[split], self._features]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def index(self, split: str) -> pd.Index:
        """The frame index of a split's rows (without copying them)."""
        return self._frame.index[self._masks[split]]

    @property
    def columns(self) -> list[str]:
        return list(self._features)


@dataclass
class _Parts:
    """The labelled rows of each split: features ``X``, points ``P`` (rules), labels ``y``, weights ``w``.

    ``X`` cuts a split's feature rows when asked (:class:`_SplitRows`); ``w`` holds the weights of
    ``train`` and ``validation``, None when the frame has no ``weight`` column (every row weighs 1).
    """

    X: _SplitRows
    y: dict[str, np.ndarray]
    P: dict[str, pd.DataFrame]
    w: dict[str, np.ndarray | None] = field(default_factory=dict)

    @classmethod
    def of(cls, frame: pd.DataFrame, features: list[str], rules_points: pd.Series | None) -> _Parts:
        labelled = frame[LABEL_COLUMN].notna().to_numpy()
        masks = {s: labelled & (frame["split"] == s).to_numpy() for s in ("train", "validation", "test")}
        points = None
        if rules_points is not None:
            values = pd.Series(rules_points).reindex(frame.index).to_numpy(dtype=float)
            points = pd.DataFrame({POINTS_COLUMN: values}, index=frame.index)
        return cls(
            X=_SplitRows(frame, features, masks),
            y={s: frame.loc[m, LABEL_COLUMN].to_numpy(dtype=int) for s, m in masks.items()},
            P={s: points.loc[m] for s, m in masks.items()} if points is not None else {},
            w={s: _weights(frame, masks[s], s) for s in ("train", "validation")},  # test rows are never fitted
        )

    def inputs(self, name: str, split: str) -> pd.DataFrame:
        """What a candidate takes: the points for the rules, the features for a model."""
        return self.P[split] if name == RULES else self.X[split]


def _weights(frame: pd.DataFrame, mask: np.ndarray, split: str) -> np.ndarray | None:
    """The ``weight`` of a split's labelled rows, checked (finite, >= 0, not all 0); None without the column."""
    if WEIGHT_COLUMN not in frame.columns:
        return None
    weights = pd.to_numeric(frame.loc[mask, WEIGHT_COLUMN], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        rows = frame.index[mask][bad][:3].tolist()
        raise LeadDataError(
            f"training set: column '{WEIGHT_COLUMN}' has {int(bad.sum())} {split} rows that are missing, negative "
            f"or not numbers (first rows: {rows}); a weight is a snapshot's share of its lead (>= 0)"
        )
    if len(weights) and not weights.any():
        raise LeadDataError(f"training set: every {split} row has weight 0 in column '{WEIGHT_COLUMN}'")
    return weights


def _check_both_classes(config: PipelineConfig, y_train: np.ndarray, *, rules: bool) -> None:
    """Refuse training labels of one class, where nothing sensible can be fitted on them.

    All converted: the outcome values are almost surely read wrong (every lead won), and even the
    rules baseline would give every lead probability 1; refused with or without rules. None
    converted (a CRM on its first day): a cold start on the rules baseline, as any cold start; refused
    only without rules, where no model at all could come out. No labelled training snapshot at all
    stays a cold start (nothing to learn from yet).
    """
    n, positives = len(y_train), int(np.sum(y_train))
    if n == 0 or 0 < positives < n or (positives == 0 and rules):
        return
    which = "converted" if positives else "unconverted"
    fix = ("check the outcomes table's won/lost values (data.outcomes.won, data.outcomes.lost)" if positives
           else "give a rules file for a cold start, or wait for the first conversions")  # fmt: skip
    raise LeadDataError(
        f"{config.name}: all {n:,} labelled training snapshots are {which}; a model cannot learn from one class: {fix}"
    )


def _fit_candidates(config: PipelineConfig, parts: _Parts, say: Progress) -> tuple[dict, bool, str]:
    """The fitted rules baseline and models, whether it was a cold start, and the cold-start reason."""
    models_cfg = config.models
    candidates: dict[str, object] = {}
    y_train = parts.y["train"]
    weighted = " (weighted)" if parts.w.get("train") is not None else ""
    _check_both_classes(config, y_train, rules=bool(parts.P))
    if parts.P and len(y_train):
        from leadml.rules.baseline import PointsBaseline

        say(f"fitting the rules baseline{weighted}")
        candidates[RULES] = PointsBaseline().fit(parts.P["train"], y_train, sample_weight=parts.w.get("train"))
    positives, negatives = int(y_train.sum()), int(len(y_train) - y_train.sum())
    if positives < models_cfg.min_positives or negatives < models_cfg.min_negatives:
        kept = "kept the rules baseline" if RULES in candidates else "no rules given, so no model"
        reason = (
            f"cold start: {positives} converted and {negatives} unconverted training snapshots, fewer than "
            f"models.min_positives={models_cfg.min_positives} / min_negatives={models_cfg.min_negatives}; {kept}"
        )
        return candidates, True, reason
    for name, model in make_models(models_cfg).items():
        say(f"fitting {name} on {len(y_train):,} training snapshots{weighted}")
        candidates[name] = fit_model(
            model, parts.X["train"], y_train, parts.X["validation"], parts.y["validation"],
            sample_weight=parts.w.get("train"), valid_weight=parts.w.get("validation"),
        )  # fmt: skip
    return candidates, False, ""


def _calibrate(config: PipelineConfig, candidates: dict, parts: _Parts, say: Progress, notes: list[str]):
    """Every candidate calibrated on validation, and the validation scores the choice is made on."""
    method = config.models.calibration
    y_valid = parts.y["validation"]
    if not _both_classes(y_valid) and method != "none":
        notes.append("validation lacks one of the classes: probabilities are not calibrated")
        method = "none"
    calibrated: dict[str, CalibratedModel] = {}
    rows = []
    for name, model in candidates.items():
        say(f"calibrating {name} on {len(y_valid):,} validation snapshots")
        X_valid = parts.inputs(name, "validation")
        calibrated[name] = CalibratedModel(model, method=method, seed=config.models.seed).fit(X_valid, y_valid)
        rows.append(_validation_scores(name, calibrated[name], X_valid, y_valid))
    return calibrated, pd.DataFrame(rows)


@dataclass(frozen=True)
class PerLead:
    """The leads columns of an MQL rule with a threshold per lead (:mod:`leadml.modeling.group_policy`):
    each lead's group and value, the groups of the leads table and the training leads' median value."""

    columns: pd.DataFrame  # mql__group / mql__value, indexed by lead_id (text)
    groups: tuple[str, ...]
    value_median: float | None

    @classmethod
    def build(cls, config: PipelineConfig, trainset: TrainSet) -> PerLead | None:
        """The columns of the training data's leads (None when the policy has one threshold for all)."""
        mql = config.mql
        if mql.capacity_by is None and mql.value_column is None:
            return None
        from leadml.data.mql_columns import DEFAULT_GROUP, GROUP_COLUMN, VALUE_COLUMN, lead_mql_columns

        data = trainset.data
        leads = data.flat if data.flat is not None else data.leads
        assert leads is not None  # a training set always has its leads
        table = config.data.leads
        source = str(table.path) if table is not None and getattr(table, "path", None) else "leads"
        columns = lead_mql_columns(leads, mql.capacity_by, mql.value_column, source)
        columns.index = pd.Index(leads["lead_id"].astype(str).to_numpy(), name="lead_id")
        columns = columns[~columns.index.duplicated(keep="last")]
        groups: tuple[str, ...] = ()
        if GROUP_COLUMN in columns:
            text = columns[GROUP_COLUMN]
            groups = tuple(sorted(set(text.dropna()) | ({DEFAULT_GROUP} if text.isna().any() else set())))
        median = None
        if VALUE_COLUMN in columns:
            trained = trainset.frame.loc[(trainset.frame["split"] == "train").to_numpy(), "lead_id"].astype(str)
            median = training_value_median(columns[VALUE_COLUMN].reindex(pd.Index(trained.unique())))
        return cls(columns, groups, median)

    def of(self, lead_ids: pd.Series) -> pd.DataFrame:
        """The columns of some snapshots' leads, in their order (positional index)."""
        ids = pd.Index(np.asarray(lead_ids, dtype=object).astype(str))
        return self.columns.reindex(ids).reset_index(drop=True)

    def of_replay(self, replay: pd.DataFrame | None) -> pd.DataFrame | None:
        """The columns each replayed night carries (:func:`~leadml.features.build.nightly_replay`)."""
        if replay is None:
            return None
        return replay[[c for c in self.columns.columns if c in replay.columns]].reset_index(drop=True)


def _thresholds(
    config: PipelineConfig,
    calibrated: dict[str, CalibratedModel],
    parts: _Parts,
    frame: pd.DataFrame,
    chosen: str | None,
    notes: list[str],
    replay: pd.DataFrame | None = None,
    replay_points: pd.Series | None = None,
    lead_columns: PerLead | None = None,
    mql_rules: dict[str, MQLRule] | None = None,
) -> dict[str, Threshold]:
    """Each candidate's MQL threshold on validation (unweighted).

    With ``replay`` (the validation period's nightly runs, :func:`~leadml.features.build.nightly_replay`)
    the capacity policy counts the MQL spells each candidate would start there; the rules candidate
    needs ``replay_points`` for it (else it keeps the snapshot rule).

    One that makes no MQL is refused for the chosen model and a note for the others. When validation
    lacks a class (a cold start before the first conversion) no threshold can be judged on it: a note.
    With ``lead_columns`` (a threshold per lead), each candidate's rule goes into ``mql_rules``.
    """
    valid = frame.loc[frame.index.isin(parts.X.index("validation"))]
    if not len(valid):
        return {}
    y_valid = parts.y["validation"]
    thresholds: dict[str, Threshold] = {}
    for name, model in calibrated.items():
        features = parts.X.columns
        nightly = _nightly(name, model, features, replay, replay_points) if config.mql.capped else None
        p_valid = model.predict_proba(parts.inputs(name, "validation"))[:, 1]
        if lead_columns is not None and mql_rules is not None:
            found, mql_rules[name] = rule_threshold(
                config.mql, p_valid, lead_columns.of(valid["lead_id"]), as_of=valid["as_of"], y=y_valid,
                nightly=nightly, nightly_columns=lead_columns.of_replay(replay), groups=lead_columns.groups,
                value_median=lead_columns.value_median,
            )  # fmt: skip
        else:
            found = find_threshold(p_valid, config.mql, as_of=valid["as_of"], y=y_valid, nightly=nightly)
        thresholds[name] = found
        if found.mql_count:
            continue
        problem = f"{name}'s MQL threshold makes no MQL of the {len(valid):,} validation snapshots: {found.advice}"
        if name == chosen and _both_classes(y_valid):
            raise ModelError(f"{config.name}: {problem}")
        notes.append(problem if _both_classes(y_valid) else f"{problem} (validation lacks one of the classes)")
    return thresholds


def _nightly(
    name: str, model: CalibratedModel, features: list[str], replay: pd.DataFrame | None, points: pd.Series | None
) -> NightlyScores | None:
    """A candidate's probabilities over the replayed nights (None without a replay or the rules' points)."""
    if replay is None or not len(replay):
        return None
    if name == RULES:
        if points is None:
            return None
        inputs = pd.DataFrame({POINTS_COLUMN: points.to_numpy(dtype=float)}, index=replay.index)
    else:
        inputs = replay[features]
    return NightlyScores(
        p=model.predict_proba(inputs)[:, 1], lead_id=replay["lead_id"].astype(str).to_numpy(),
        as_of=replay["as_of"], created_at=replay["created_at"], fraction=float(replay.attrs.get("fraction", 1.0)),
    )  # fmt: skip


def train_models(
    config: PipelineConfig,
    trainset: TrainSet,
    rules_points: pd.Series | None = None,
    *,
    n_boot: int = 1000,
    progress: Progress | None = None,
    replay: pd.DataFrame | None = None,
    replay_points: pd.Series | None = None,
) -> TrainingResult:
    """Fit, calibrate and choose on the training and validation parts; evaluate everything on test.

    Parameters:
        config: the pipeline config (``models``, ``mql``).
        trainset: snapshots with ``split``, ``converted`` and the feature columns.
        rules_points: the rules baseline's points of every snapshot, indexed like ``trainset.frame``
            (from ``RuleSet.score_snapshots``); None leaves the rules out.
        n_boot: bootstrap resamples for the test intervals.
        progress: called with a short message before each long step.
        replay, replay_points: the validation period's nightly runs (features, and the rules' points
            of each), for the capacity policy in new MQLs a week (see :func:`_thresholds`).

    Returns:
        A :class:`TrainingResult`; on cold start it holds only the rules baseline and says why.

    Raises:
        LeadDataError: the training labels are of one class (see above), or the ``weight`` column
            holds missing or negative values.
        ModelError: the chosen model's MQL threshold makes no MQL on validation; the message names
            the policy, the threshold, the highest validation probability and what to change.
    """
    say = progress or (lambda message: None)
    frame = trainset.frame
    notes: list[str] = []
    parts = _Parts.of(frame, trainset.feature_names, rules_points)
    candidates, cold_start, reason = _fit_candidates(config, parts, say)
    calibrated, validation = _calibrate(config, candidates, parts, say, notes)
    if cold_start or not calibrated:
        chosen = RULES if RULES in calibrated else None
        reason = reason or "no model is enabled and no rules were given"
    else:
        chosen, reason = choose(validation, config.models.select_metric)

    mql_rules: dict[str, MQLRule] = {}
    thresholds = _thresholds(config, calibrated, parts, frame, chosen, notes, replay, replay_points,
                             PerLead.build(config, trainset), mql_rules)  # fmt: skip
    predictions = frame.loc[parts.X.index("test"), ["lead_id", "as_of", LABEL_COLUMN]].reset_index(drop=True)
    for name, model in calibrated.items():
        predictions[name] = model.predict_proba(parts.inputs(name, "test"))[:, 1] if len(predictions) else []
    evaluation, reliability, y_test = None, {}, parts.y["test"]
    if calibrated and _both_classes(y_test):
        say(f"evaluating on {len(y_test):,} test snapshots ({n_boot} bootstrap resamples)")
        evaluation = evaluate_predictions(
            y_test, {name: predictions[name].to_numpy() for name in calibrated},
            thresholds={name: t.threshold for name, t in thresholds.items()},
            baseline=RULES if RULES in calibrated else None,
            n_boot=n_boot, seed=config.models.seed, groups=predictions["lead_id"].to_numpy(),
        )  # fmt: skip
        reliability = {name: reliability_table(y_test, predictions[name].to_numpy()) for name in calibrated}
    elif calibrated:
        notes.append("the test part lacks one of the classes: no test metrics")
    return TrainingResult(
        models=calibrated, chosen=chosen, reason=reason, cold_start=cold_start, evaluation=evaluation,
        validation=validation, reliability=reliability, thresholds=thresholds, predictions=predictions,
        counts=split_counts(frame), feature_names=list(trainset.feature_names),
        mql=mql_summary(thresholds, predictions), notes=notes, mql_rules=mql_rules,
    )  # fmt: skip
