"""The models that compete with the rules: logistic regression and LightGBM over the feature frame.

Both take the feature frame as :class:`~leadml.features.build.TrainSet` builds it (categorical
columns as pandas ``Categorical`` with fixed categories, numeric columns as float with NaN allowed)
and follow the scikit-learn contract (``fit`` / ``predict_proba``, learned state in ``_`` names).

High-cardinality categoricals (a landing-page id with hundreds of levels) are kept from overfitting
twice: the profile encoder groups rare levels into ``other`` before any model sees them, and inside
the models the logistic one-hot encoder groups levels seen fewer than ``min_category_count`` times
while LightGBM's categorical regularisation (``cat_smooth``, ``cat_l2``, ``min_data_per_group``)
ignores thin levels when it searches a split.

Everything is seeded: the same frame, config and seed give the same predictions bit for bit
(LightGBM runs with ``deterministic``, ``force_row_wise`` and a fixed thread count).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from leadml.core.config import LightGBMConfig, LogisticConfig, ModelsConfig
from leadml.core.errors import LeadDataError

NUM_THREADS = 2
_LGB_FORBIDDEN = re.compile(r'[\[\]{}:,"]')


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``: tames count features (0, 1, 2, ... 300 page views) for a linear model."""
    return np.sign(values) * np.log1p(np.abs(values))


def binary_labels(y, n_rows: int) -> np.ndarray:
    """``y`` as a float array of 0/1, one per row; anything else is a :class:`LeadDataError`."""
    values = np.asarray(y, dtype=float).ravel()
    if len(values) != n_rows:
        raise LeadDataError(f"labels: {len(values)} labels for {n_rows} rows")
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise LeadDataError(
            f"labels: {int(bad.sum())} values are not 0/1 (first: {values[bad][:3].tolist()}); "
            "drop censored snapshots (NaN labels) before fitting"
        )
    return values


def make_logistic(config: LogisticConfig | None = None, *, seed: int = 0, min_category_count: int = 20) -> Pipeline:
    """Logistic regression (L2) as a Pipeline over the feature frame.

    Categorical columns (pandas ``Categorical``) are one-hot encoded, unknown levels ignored and levels
    seen fewer than ``min_category_count`` times in training pooled; numeric columns get a signed log
    (counts are heavy-tailed), a median imputation with a missing indicator, and standard scaling.
    Pass only the feature columns: the column selection is by dtype.

    Example:
        >>> import pandas as pd
        >>> X = pd.DataFrame({"visits": [0.0, 1.0, 5.0, 9.0] * 10,
        ...                   "level": pd.Categorical(["vp", "staff", "vp", "staff"] * 10)})
        >>> model = make_logistic().fit(X, [0, 0, 1, 1] * 10)
        >>> model.predict_proba(X).shape
        (40, 2)
    """
    config = config or LogisticConfig()
    numeric = Pipeline(
        [
            ("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=min_category_count)
    preprocess = ColumnTransformer(
        [
            ("categorical", categorical, make_column_selector(dtype_include="category")),
            ("numeric", numeric, make_column_selector(dtype_include="number")),
        ],
        sparse_threshold=0.0,
    )
    classifier = LogisticRegression(
        C=config.C,
        l1_ratio=0.0,
        class_weight=config.class_weight,
        max_iter=config.max_iter,
        random_state=seed,
    )
    return Pipeline([("preprocess", preprocess), ("model", classifier)])


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
        config: the LightGBM settings (trees, leaves, learning rate, categorical regularisation).
        seed: the seed of every random choice (bagging, feature sampling).
        num_threads: fixed, so that the result never depends on the machine.
        holdout_fraction: the share of the rows held out when no ``eval_set`` is given.
    """

    def __init__(
        self,
        config: LightGBMConfig | None = None,
        *,
        seed: int = 0,
        num_threads: int = NUM_THREADS,
        holdout_fraction: float = 0.2,
    ):
        self.config = config
        self.seed = seed
        self.num_threads = num_threads
        self.holdout_fraction = holdout_fraction

    def _classifier(self, n_estimators: int):
        import lightgbm as lgb

        cfg = self.config or LightGBMConfig()
        return lgb.LGBMClassifier(
            objective="binary",
            n_estimators=n_estimators,
            learning_rate=cfg.learning_rate,
            num_leaves=cfg.num_leaves,
            min_child_samples=cfg.min_child_samples,
            subsample=cfg.subsample,
            subsample_freq=1 if cfg.subsample < 1 else 0,
            colsample_bytree=cfg.colsample_bytree,
            reg_lambda=cfg.reg_lambda,
            cat_smooth=cfg.cat_smooth,
            cat_l2=cfg.cat_l2,
            min_data_per_group=cfg.min_data_per_group,
            max_cat_to_onehot=cfg.max_cat_to_onehot,
            random_state=self.seed,
            deterministic=True,
            force_row_wise=True,
            num_threads=self.num_threads,
            verbose=-1,
        )

    def _frame(self, X) -> pd.DataFrame:
        """X as a frame with the fitted columns, in order, under LightGBM-safe names."""
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X, dtype=float), columns=[f"x{i}" for i in range(np.shape(X)[1])])
        columns = getattr(self, "feature_names_in_", None)
        if columns is not None:
            missing = [c for c in columns if c not in X.columns]
            if missing:
                raise LeadDataError(
                    f"feature frame: {len(missing)} columns the model was trained on are missing "
                    f"(first: {missing[:5]}); build the features with the model's feature set"
                )
            X = X[list(columns)]
        frame = X.copy()
        frame.columns = lightgbm_names(list(X.columns))
        return frame

    def fit(self, X, y, eval_set: tuple | None = None) -> "LightGBMModel":
        """Fit on ``X, y``; early-stop on ``eval_set = (X_valid, y_valid)`` or on a time-ordered holdout."""
        import lightgbm as lgb

        cfg = self.config or LightGBMConfig()
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X, dtype=float), columns=[f"x{i}" for i in range(np.shape(X)[1])])
        y = binary_labels(y, len(X))
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.classes_ = np.array([0, 1])
        frame = self._frame(X)
        stop = [lgb.early_stopping(cfg.early_stopping_rounds, first_metric_only=True, verbose=False)]
        if eval_set is not None:
            valid = self._frame(eval_set[0])
            model = self._classifier(cfg.n_estimators)
            model.fit(frame, y, **_eval_kwargs(valid, binary_labels(eval_set[1], len(valid))), callbacks=stop)
            self.n_trees_ = int(model.best_iteration_ or cfg.n_estimators)
        else:
            cut = int(round(len(frame) * (1 - self.holdout_fraction)))
            probe = self._classifier(cfg.n_estimators)
            probe.fit(frame.iloc[:cut], y[:cut], **_eval_kwargs(frame.iloc[cut:], y[cut:]), callbacks=stop)
            self.n_trees_ = int(probe.best_iteration_ or cfg.n_estimators)
            model = self._classifier(self.n_trees_).fit(frame, y)
        self.model_ = model
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        p = self.model_.predict_proba(self._frame(X), num_iteration=self.n_trees_)[:, 1]
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    @property
    def booster_(self):
        """The fitted LightGBM booster (for SHAP: feed it :meth:`lightgbm_frame`)."""
        check_is_fitted(self, "model_")
        return self.model_.booster_

    def lightgbm_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """X as the booster sees it: the fitted columns, in order, under LightGBM-safe names."""
        check_is_fitted(self, "model_")
        return self._frame(X)

    def feature_importance(self, kind: str = "gain") -> pd.Series:
        """Importance per original feature name (``gain`` or ``split``), largest first."""
        values = self.booster_.feature_importance(importance_type=kind)
        return pd.Series(values, index=list(self.feature_names_in_)).sort_values(ascending=False, kind="stable")


def _eval_kwargs(X_valid: pd.DataFrame, y_valid: np.ndarray) -> dict:
    """The validation part as LightGBM's fit wants it (``eval_X``/``eval_y`` from 4.7, ``eval_set`` before)."""
    import inspect

    import lightgbm as lgb

    if "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters:
        return {"eval_X": (X_valid,), "eval_y": (y_valid,), "eval_metric": "binary_logloss"}
    return {"eval_set": [(X_valid, y_valid)], "eval_metric": "binary_logloss"}


def make_models(config: ModelsConfig | None = None) -> dict[str, BaseEstimator]:
    """The enabled, unfitted models of a config, by name (``logistic``, ``lightgbm``)."""
    config = config or ModelsConfig()
    models: dict[str, BaseEstimator] = {}
    if config.logistic.enabled:
        models["logistic"] = make_logistic(config.logistic, seed=config.seed)
    if config.lightgbm.enabled:
        models["lightgbm"] = LightGBMModel(config.lightgbm, seed=config.seed)
    return models


def fit_model(model: BaseEstimator, X: pd.DataFrame, y, X_valid: pd.DataFrame | None = None, y_valid=None):
    """Fit any of :func:`make_models`' models; LightGBM early-stops on the validation part when given."""
    if isinstance(model, LightGBMModel):
        eval_set = (X_valid, y_valid) if X_valid is not None and len(X_valid) else None
        return model.fit(X, y, eval_set=eval_set)
    return model.fit(X, binary_labels(y, len(X)).astype(int))
