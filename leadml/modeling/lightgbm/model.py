"""LightGBM over the feature frame: native categoricals, early stopping, seeded, under the scikit-learn contract.

LightGBM runs with ``deterministic``, ``force_row_wise`` and a fixed thread count, so the same
frame, settings and seed give the same trees bit for bit.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pydantic import ValidationError
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from leadml.core.config import LightGBMConfig
from leadml.data.labels import binary_target
from leadml.modeling.model_inputs import binary_tags, column_names, feature_frame

__all__ = ["LIGHTGBM_SETTINGS", "NUM_THREADS", "LightGBMModel", "lightgbm_names"]

NUM_THREADS = 2
_LGB_FORBIDDEN = re.compile(r'[\[\]{}:,"]')
# the hyperparameters of LightGBMModel: the keys of a pipeline's models.lightgbm section
LIGHTGBM_SETTINGS = tuple(name for name in LightGBMConfig.model_fields if name != "enabled")


def lightgbm_names(columns: list[str]) -> list[str]:
    """Column names LightGBM accepts (no JSON punctuation such as ``[``), unique, readable."""
    names: list[str] = []
    seen: set[str] = set()
    for column in columns:
        name = _LGB_FORBIDDEN.sub("_", str(column))
        base, k = name, 1
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


class LightGBMModel(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees with native categorical handling and early stopping.

    ``fit(X, y, eval_set=(X_valid, y_valid))`` stops on the validation part passed in (the later,
    time-ordered snapshots); without one, the last ``holdout_fraction`` of the rows (the frame is in
    time order) serves for early stopping and the model is refitted on all rows with the number of
    trees found. Pandas ``Categorical`` columns are split natively; LightGBM remaps categories by
    name at prediction time, so any frame with the same categories scores the same.

    Parameters:
        num_leaves, learning_rate, min_child_samples, subsample, colsample_bytree, reg_lambda:
            LightGBM's tree settings.
        n_estimators: the most trees; early stopping keeps fewer.
        early_stopping_rounds: trees without a better validation loss before stopping.
        cat_smooth, cat_l2, min_data_per_group, max_cat_to_onehot: LightGBM's regularisation of
            categorical splits (thin levels are ignored when a split is searched).
        seed: the seed of every random choice (bagging, feature sampling).
        num_threads: fixed, so that the result never depends on the machine.
        holdout_fraction: the share of the rows held out when no ``eval_set`` is given.

    The defaults are those of a pipeline's ``models.lightgbm`` section (:class:`LightGBMConfig`,
    whose ranges ``fit`` checks); :meth:`from_config` builds the model of a section.

    Example:
        >>> model = LightGBMModel.from_config(LightGBMConfig(num_leaves=15), seed=3)
        >>> model.get_params()["num_leaves"], model.get_params()["seed"]
        (15, 3)
    """

    def __init__(
        self,
        *,
        num_leaves: int = 7,
        learning_rate: float = 0.05,
        n_estimators: int = 1000,
        early_stopping_rounds: int = 50,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        cat_smooth: float = 20.0,
        cat_l2: float = 10.0,
        min_data_per_group: int = 100,
        max_cat_to_onehot: int = 4,
        seed: int = 0,
        num_threads: int = NUM_THREADS,
        holdout_fraction: float = 0.2,
    ):
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.cat_smooth = cat_smooth
        self.cat_l2 = cat_l2
        self.min_data_per_group = min_data_per_group
        self.max_cat_to_onehot = max_cat_to_onehot
        self.seed = seed
        self.num_threads = num_threads
        self.holdout_fraction = holdout_fraction

    @classmethod
    def from_config(cls, config: LightGBMConfig | None = None, **params) -> LightGBMModel:
        """The model of a pipeline's ``models.lightgbm`` section; ``params`` (``seed=...``) add or override."""
        settings = (config or LightGBMConfig()).model_dump(exclude={"enabled"})
        return cls(**{**settings, **params})

    def __setstate__(self, state: dict) -> None:
        # a model pickled before its hyperparameters were parameters keeps them in one LightGBMConfig
        # under "config" (issue 16): spread them out, so that old registered models load and clone
        if "config" in state:
            config = state.pop("config") or LightGBMConfig()
            state = {**config.model_dump(exclude={"enabled"}), **state}
        super().__setstate__(state)

    def __sklearn_tags__(self):
        return binary_tags(super().__sklearn_tags__())

    def _settings(self) -> LightGBMConfig:
        """The hyperparameters, checked against the ranges of the pipeline YAML."""
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"LightGBMModel: holdout_fraction must be between 0 and 1 (got {self.holdout_fraction!r})")
        try:
            return LightGBMConfig(**{name: getattr(self, name) for name in LIGHTGBM_SETTINGS})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e['input']!r})" for e in exc.errors()
            )
            raise ValueError(f"LightGBMModel: {problems}") from exc

    def _classifier(self, n_estimators: int):
        import lightgbm as lgb

        settings = self._settings()
        return lgb.LGBMClassifier(
            objective="binary",
            n_estimators=n_estimators,
            learning_rate=settings.learning_rate,
            num_leaves=settings.num_leaves,
            min_child_samples=settings.min_child_samples,
            subsample=settings.subsample,
            subsample_freq=1 if settings.subsample < 1 else 0,
            colsample_bytree=settings.colsample_bytree,
            reg_lambda=settings.reg_lambda,
            cat_smooth=settings.cat_smooth,
            cat_l2=settings.cat_l2,
            min_data_per_group=settings.min_data_per_group,
            max_cat_to_onehot=settings.max_cat_to_onehot,
            random_state=self.seed,
            deterministic=True,
            force_row_wise=True,
            num_threads=self.num_threads,
            verbose=-1,
        )

    def _booster_frame(self, X, *, reset: bool = False) -> pd.DataFrame:
        """X as a frame with the fitted columns, in order, under LightGBM-safe names."""
        frame = feature_frame(self, X, reset=reset)
        return frame.set_axis(lightgbm_names(list(frame.columns)), axis=1)

    def fit(self, X, y, eval_set: tuple | None = None, *, sample_weight=None, eval_sample_weight=None) -> LightGBMModel:
        """Fit on ``X, y``; early-stop on ``eval_set = (X_valid, y_valid)`` or on a time-ordered holdout.

        ``sample_weight`` weighs the training rows (each lead's snapshots sharing one unit, say);
        ``eval_sample_weight`` those of ``eval_set`` in the early-stopping loss. Without an
        ``eval_set`` the holdout keeps its rows' weights. Weights that are all 1 grow the very
        trees of the unweighted fit. ``min_child_samples`` and ``min_data_per_group`` still count
        rows, not weight.
        """
        import lightgbm as lgb

        settings = self._settings()
        frame = self._booster_frame(X, reset=True)
        self.classes_, target = binary_target(y, len(frame), "LightGBMModel")
        weights = _sample_weight(sample_weight, frame)
        if target.min() == target.max():
            raise ValueError(f"LightGBMModel: y holds one class only ({self.classes_.tolist()[int(target[0])]!r}); "
                             "a model needs converted and unconverted rows")  # fmt: skip
        stop = [lgb.early_stopping(settings.early_stopping_rounds, first_metric_only=True, verbose=False)]
        if eval_set is not None:
            valid = self._booster_frame(eval_set[0])
            _, valid_target = binary_target(eval_set[1], len(valid), "LightGBMModel (eval_set)", classes=self.classes_)
            valid_weights = _sample_weight(eval_sample_weight, valid)
            model = self._classifier(settings.n_estimators)
            model.fit(frame, target, sample_weight=weights, **_eval_kwargs(valid, valid_target, valid_weights),
                      callbacks=stop)  # fmt: skip
            self.n_trees_ = int(model.best_iteration_ or settings.n_estimators)
        else:
            cut = min(max(int(round(len(frame) * (1 - self.holdout_fraction))), 1), len(frame) - 1)
            head, tail = (None, None) if weights is None else (weights[:cut], weights[cut:])
            probe = self._classifier(settings.n_estimators)
            probe.fit(frame.iloc[:cut], target[:cut], sample_weight=head,
                      **_eval_kwargs(frame.iloc[cut:], target[cut:], tail), callbacks=stop)  # fmt: skip
            self.n_trees_ = int(probe.best_iteration_ or settings.n_estimators)
            model = self._classifier(self.n_trees_).fit(frame, target, sample_weight=weights)
        self.model_ = model
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        p = self.model_.predict_proba(self._booster_frame(X), num_iteration=self.n_trees_)[:, 1]
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def booster_(self):
        """The fitted LightGBM booster (for SHAP: feed it :meth:`lightgbm_frame`)."""
        check_is_fitted(self, "model_")
        return self.model_.booster_

    def lightgbm_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """X as the booster sees it: the fitted columns, in order, under LightGBM-safe names."""
        check_is_fitted(self, "model_")
        return self._booster_frame(X)

    def feature_importance(self, kind: str = "gain") -> pd.Series:
        """Importance per original feature name (``gain`` or ``split``), largest first."""
        values = self.booster_.feature_importance(importance_type=kind)
        return pd.Series(values, index=column_names(self)).sort_values(ascending=False, kind="stable")


def _sample_weight(sample_weight, X) -> np.ndarray | None:
    """Weights checked as scikit-learn checks them (one per row, finite, >= 0, not all 0); None stays None."""
    if sample_weight is None:
        return None
    return _check_sample_weight(sample_weight, X, ensure_non_negative=True)


def _eval_kwargs(X_valid: pd.DataFrame, y_valid: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """The validation part as LightGBM's fit wants it (``eval_X``/``eval_y`` from 4.7, ``eval_set`` before)."""
    import inspect

    import lightgbm as lgb

    weighted = {"eval_sample_weight": [weights]} if weights is not None else {}
    if "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters:
        return {"eval_X": (X_valid,), "eval_y": (y_valid,), "eval_metric": "binary_logloss", **weighted}
    return {"eval_set": [(X_valid, y_valid)], "eval_metric": "binary_logloss", **weighted}
