"""Points learned from closed deals: an L1 logistic regression on readable yes/no conditions,
turned into an integer points table in the same rules format marketers already use.

Each candidate condition is one a rule can express exactly ("viewed the pricing page at least 2
times in the last 30 days", "job level is vp"), so the learned file loads back into the rule engine
and scores the same leads the same way. Points are on a stated scale: ``points_to_double_odds``
points (default 20) double the odds of converting; the MQL threshold is the points total whose
probability equals the MQL policy's probability.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from leadml.features.metadata import FeatureInfo
from leadml.features.profile import MISSING, OTHER

COUNT_NAME = re.compile(r"^(?P<event>[^\[\]]+?)(?:\[(?P<value>[^\]]+)\])?__count_(?P<window>\d+)d$")
COUNT_THRESHOLDS = (1, 2, 3, 5, 10)


def _count_conditions(info: FeatureInfo, values: pd.Series) -> list[tuple[str, dict, np.ndarray]]:
    match = COUNT_NAME.match(info.name)
    if not match or info.group != "behaviour" or match.group("event") == "events":
        return []
    event, window = match.group("event"), int(match.group("window"))
    what = event.replace("_", " ")
    rule: dict = {"event": event, "within_days": window}
    if match.group("value"):
        if info.attribute is None:
            return []
        rule["where"] = {info.attribute[0]: info.attribute[1]}
        what = f"{what} ({info.attribute[0]} {info.attribute[1]})"
    numbers = values.fillna(0).to_numpy()
    out = []
    for k in COUNT_THRESHOLDS:
        holds = numbers >= k
        if 0.002 < holds.mean() < 0.998:
            label = f"{what}: at least {k} in the last {window} days"
            out.append((label, {**rule, "min_count": k}, holds))
    return out


def _profile_conditions(info: FeatureInfo, values: pd.Series) -> list[tuple[str, dict, np.ndarray]]:
    if info.group != "profile" or info.name.endswith("__missing"):
        return []
    out = []
    if info.kind == "categorical":
        text = values.astype(object)
        for level in values.cat.categories:
            if level in (OTHER, MISSING):
                continue
            holds = (text == level).to_numpy()
            if 0.002 < holds.mean() < 0.998:
                out.append(
                    (f"{info.source.replace('_', ' ')} is {level}", {"field": info.source, "equals": level}, holds)
                )
        return out
    numbers = values.to_numpy(dtype=float)
    finite = numbers[np.isfinite(numbers)]
    if len(finite) == 0:
        return []
    for q in (0.25, 0.5, 0.75):
        cut = float(np.quantile(finite, q))
        holds = np.nan_to_num(numbers, nan=-np.inf) >= cut
        if 0.002 < holds.mean() < 0.998:
            out.append((f"{info.source.replace('_', ' ')} at least {cut:g}", {"field": info.source, "gte": cut}, holds))
    return out


def candidate_conditions(features: pd.DataFrame, infos: Sequence[FeatureInfo]) -> tuple[pd.DataFrame, list[dict]]:
    """Yes/no conditions a rule can express, as a 0/1 frame, with the rule of each column."""
    columns: dict[str, np.ndarray] = {}
    rules: list[dict] = []
    for info in infos:
        if info.name not in features.columns:
            continue
        for label, rule, holds in _count_conditions(info, features[info.name]) + _profile_conditions(
            info, features[info.name]
        ):
            if label in columns:
                continue
            columns[label] = holds.astype(np.float64)
            rules.append({"name": label, **rule})
    return pd.DataFrame(columns, index=features.index), rules


def l1_logistic(C: float, seed: int) -> LogisticRegression:
    """An L1-penalised logistic regression, spelled for the installed scikit-learn (1.8 renamed it)."""
    import sklearn

    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 8):
        return LogisticRegression(l1_ratio=1.0, C=C, solver="liblinear", max_iter=2000, random_state=seed)
    return LogisticRegression(penalty="l1", C=C, solver="liblinear", max_iter=2000, random_state=seed)


@dataclass(frozen=True)
class LearnedScorecard:
    """A points table learned from data, ready to write as a rules file."""

    rules: dict
    validation_auc: float
    C: float
    n_conditions: int
    paths: pd.DataFrame | None = None  # the learned paths (leadml.rules.learned_paths), when asked for


def learn_scorecard(
    features: pd.DataFrame,
    labels: pd.Series,
    infos: Sequence[FeatureInfo],
    *,
    validation: pd.Series | np.ndarray,
    mql_probability: float = 0.3,
    points_to_double_odds: float = 20.0,
    max_rules: int = 25,
    seed: int = 0,
    name: str = "learned-points",
) -> LearnedScorecard:
    """Fit an L1 logistic regression on readable conditions and write it as integer points.

    ``validation`` marks the rows used to pick the regularisation strength (the rest train). The
    strength is the one with the best validation ROC-AUC among those that keep at most
    ``max_rules`` conditions, so the table stays short enough to read.
    """
    validation = np.asarray(validation, dtype=bool)
    X, rules = candidate_conditions(features, infos)
    y = np.asarray(labels, dtype=float)
    X_train, y_train, X_valid, y_valid = X[~validation], y[~validation], X[validation], y[validation]
    best = None
    for C in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0):
        model = l1_logistic(C, seed)
        model.fit(X_train, y_train)
        kept = np.flatnonzero(np.round(model.coef_[0] * points_to_double_odds / math.log(2)) != 0)
        if len(kept) == 0 or len(kept) > max_rules:
            continue
        auc = roc_auc_score(y_valid, model.decision_function(X_valid)) if len(np.unique(y_valid)) > 1 else 0.5
        if best is None or auc > best[0] + 1e-4:
            best = (auc, C, model, kept)
    if best is None:
        raise ValueError("no points table could be learned: no condition carries signal on these rows")
    auc, C, model, kept = best
    scale = points_to_double_odds / math.log(2)
    learned_rules = []
    for index in kept:
        points = int(np.round(model.coef_[0][index] * scale))
        learned_rules.append({**rules[index], "points": points})
    learned_rules.sort(key=lambda r: -abs(r["points"]))
    logit = math.log(mql_probability / (1 - mql_probability))
    mql_points = int(math.ceil((logit - model.intercept_[0]) * scale))
    nurture_points = int(math.ceil((math.log(0.1 / 0.9) - model.intercept_[0]) * scale))
    tiers = [{"name": "MQL", "min": mql_points}]
    if nurture_points < mql_points:
        tiers.append({"name": "nurture", "min": nurture_points})
    tiers.append({"name": "unqualified"})
    document = {
        "name": name,
        "description": (
            f"Learned from closed deals by L1 logistic regression (C={C}); {points_to_double_odds:g} points "
            f"double the odds; MQL at {mql_points} points = probability {mql_probability:g}."
        ),
        "rules": learned_rules,
        "tiers": tiers,
    }
    return LearnedScorecard(rules=document, validation_auc=float(auc), C=C, n_conditions=X.shape[1])


def learn_rules_for_pipeline(config, trainset=None, *, paths: bool = True) -> LearnedScorecard:
    """Learn a points table from a pipeline's training snapshots (train rows fit, validation picks C).

    The threshold matches the pipeline's MQL probability. Flat tables are not supported yet: their
    raw category spellings differ from the cleaned levels a rule would have to test. With ``paths``
    the ordered paths of events that lift conversion follow the points rules as scenario rules
    (:mod:`leadml.rules.learned_paths`), their points counting only what they add to the table.
    """
    from leadml.core.errors import ConfigError
    from leadml.features.build import build_trainset

    if config.is_flat:
        raise ConfigError(f"{config.name}: `rules learn` needs event data (leads + events), not a flat table")
    trainset = trainset if trainset is not None else build_trainset(config)
    rows = trainset.part("train", "validation")
    learned = learn_scorecard(
        rows[trainset.feature_names],
        rows["converted"],
        trainset.feature_info,
        validation=(rows["split"] == "validation").to_numpy(),
        mql_probability=config.mql.probability if config.mql.probability is not None else 0.3,
        seed=config.models.seed,
        name=f"{config.name}-learned-points",
    )
    if not paths:
        return learned
    from leadml.rules.learned_paths import learn_paths_for_trainset

    conditions, _ = candidate_conditions(rows[trainset.feature_names], trainset.feature_info)
    table = {rule["name"]: rule["points"] for rule in learned.rules["rules"]}
    base = conditions[list(table)].to_numpy() @ np.array(list(table.values()), dtype=float) * math.log(2) / 20.0
    found = learn_paths_for_trainset(trainset, base_log_odds=base, points_to_double_odds=20.0)
    document = {**learned.rules, "rules": learned.rules["rules"] + found.rules}
    return dataclasses.replace(learned, rules=document, paths=found.chosen)
