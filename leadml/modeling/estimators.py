"""The models that compete with the rules: logistic regression and LightGBM over the feature frame.

Both take the feature frame as :class:`~leadml.features.build.TrainSet` builds it (categorical
columns as pandas ``Categorical`` with fixed categories, numeric columns as float with NaN allowed)
and follow the scikit-learn contract: every hyperparameter is a constructor parameter (so
``GridSearchCV`` and ``clone`` work), ``fit`` checks and learns, learned state is in ``_`` names.
``from_config`` builds a model from a pipeline's ``models`` section. A numeric array works too
(its columns are named ``x0``, ``x1``, ...).

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
from pydantic import ValidationError
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from leadml.core.config import LightGBMConfig, LogisticConfig, ModelsConfig
from leadml.core.errors import LeadDataError
from leadml.rules.baseline import binary_target

NUM_THREADS = 2
_LGB_FORBIDDEN = re.compile(r'[\[\]{}:,"]')
# the hyperparameters of LightGBMModel: the keys of a pipeline's models.lightgbm section
LIGHTGBM_SETTINGS = tuple(name for name in LightGBMConfig.model_fields if name != "enabled")


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``: tames count features (0, 1, 2, ... 300 page views) for a linear model."""
    return np.sign(values) * np.log1p(np.abs(values))


def _column_names(estimator) -> list[str]:
    """The fitted columns: the frame's names, or ``x0``, ``x1``, ... for an array or unnamed columns."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(c) for c in names]
    return [f"x{i}" for i in range(estimator.n_features_in_)]


def feature_frame(estimator, X, *, reset: bool) -> pd.DataFrame:
    """``X`` as a frame of the estimator's columns, in order; ``reset=True`` (in fit) records them.

    A frame with named columns is read by name: extra columns (``lead_id``, ...) are ignored and a
    missing one is an error. An array is checked as scikit-learn checks one (2-D, numeric, NaN
    allowed, as many columns as in fit) and its columns get the fitted names.
    """
    owner = type(estimator).__name__
    if isinstance(X, pd.DataFrame):
        if reset:
            validate_data(estimator, X, reset=True, skip_check_array=True)
            if X.shape[0] < 1 or X.shape[1] < 1:
                raise ValueError(f"{owner}: the feature frame has shape {X.shape}; at least 1 row and 1 column "
                                 "are required")  # fmt: skip
        names = getattr(estimator, "feature_names_in_", None)
        if names is None:  # columns without names: by position
            if not reset:
                validate_data(estimator, X, reset=False, skip_check_array=True)
            return X.set_axis(_column_names(estimator), axis=1)
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise LeadDataError(
                f"feature frame: {len(missing)} columns the model was trained on are missing "
                f"(first: {missing[:5]}); build the features with the model's feature set"
            )
        return X[list(names)]
    values = validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan")
    return pd.DataFrame(values, columns=_column_names(estimator))


def _binary_only(tags):
    """Tags of a leadml model: a binary classifier over features that may be missing (NaN)."""
    tags.input_tags.allow_nan = True
    tags.classifier_tags.multi_class = False
    return tags


class LogisticModel(ClassifierMixin, BaseEstimator):
    """Logistic regression (L2) over the feature frame, with its own preprocessing.

    Categorical columns (pandas ``Categorical``) are one-hot encoded, unknown levels ignored and levels
    seen fewer than ``min_category_count`` times in training pooled; numeric columns get a signed log
    (counts are heavy-tailed), a median imputation with a missing indicator, and standard scaling.
    Pass the feature columns (others are ignored at prediction): the encoding is chosen by dtype.

    Parameters:
        C: inverse strength of the L2 penalty.
        class_weight: None, ``"balanced"`` or a weight per class.
        max_iter: the most iterations of the solver.
        min_category_count: levels seen fewer times in training are pooled into one column.
        seed: the solver's seed.

    After ``fit``: ``pipeline_`` (the fitted preprocessing and ``LogisticRegression``),
    ``design_mean_`` (the mean of the training design matrix: the reference of the linear SHAP
    values, so one lead explained alone gets the reasons it gets in a batch), ``classes_``,
    ``n_iter_``, ``n_features_in_`` and ``feature_names_in_``.

    Example:
        >>> import pandas as pd
        >>> X = pd.DataFrame({"visits": [0.0, 1.0, 5.0, 9.0] * 10,
        ...                   "level": pd.Categorical(["vp", "staff", "vp", "staff"] * 10)})
        >>> model = LogisticModel(C=0.5).fit(X, [0, 0, 1, 1] * 10)
        >>> model.predict_proba(X).shape, model.design_mean_.shape
        ((40, 2), (3,))
    """

    def __init__(
        self,
        *,
        C: float = 1.0,
        class_weight: str | dict | None = None,
        max_iter: int = 2000,
        min_category_count: int = 20,
        seed: int = 0,
    ):
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.min_category_count = min_category_count
        self.seed = seed

    @classmethod
    def from_config(cls, config: LogisticConfig | None = None, **params) -> LogisticModel:
        """The model of a pipeline's ``models.logistic`` section; ``params`` (``seed=...``) add or override."""
        settings = (config or LogisticConfig()).model_dump(exclude={"enabled"})
        return cls(**{**settings, **params})

    def __sklearn_tags__(self):
        return _binary_only(super().__sklearn_tags__())

    def _pipeline(self) -> Pipeline:
        """The unfitted preprocessing and classifier."""
        numeric = Pipeline(
            [
                ("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one")),
                ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
        categorical = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=self.min_category_count)
        preprocess = ColumnTransformer(
            [
                ("categorical", categorical, make_column_selector(dtype_include="category")),
                ("numeric", numeric, make_column_selector(dtype_include="number")),
            ],
            sparse_threshold=0.0,
        )
        classifier = LogisticRegression(
            C=self.C,
            l1_ratio=0.0,
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            random_state=self.seed,
        )
        return Pipeline([("preprocess", preprocess), ("model", classifier)])

    def fit(self, X, y) -> LogisticModel:
        """Fit the preprocessing and the regression on ``X, y``, and keep the mean of the design matrix."""
        frame = feature_frame(self, X, reset=True)
        self.classes_, target = binary_target(y, len(frame), "LogisticModel")
        self.pipeline_ = self._pipeline().fit(frame, self.classes_[target.astype(int)])
        self.n_iter_ = self.pipeline_[-1].n_iter_
        self.design_mean_ = self._design(frame).mean(axis=0)
        return self

    def _design(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline_[:-1].transform(frame), dtype=float)

    def design_matrix(self, X) -> np.ndarray:
        """The rows as the regression sees them: one-hot levels, logged and scaled numbers, missing flags."""
        check_is_fitted(self, "pipeline_")
        return self._design(feature_frame(self, X, reset=False))

    def decision_function(self, X) -> np.ndarray:
        """The margin (log-odds of the second class) of each row."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.decision_function(feature_frame(self, X, reset=False))

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict_proba(feature_frame(self, X, reset=False))

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def make_logistic(
    config: LogisticConfig | None = None, *, seed: int = 0, min_category_count: int = 20
) -> LogisticModel:
    """An unfitted :class:`LogisticModel` with the settings of ``config`` (``models.logistic``).

    Example:
        >>> import pandas as pd
        >>> X = pd.DataFrame({"visits": [0.0, 1.0, 5.0, 9.0] * 10,
        ...                   "level": pd.Categorical(["vp", "staff", "vp", "staff"] * 10)})
        >>> model = make_logistic().fit(X, [0, 0, 1, 1] * 10)
        >>> model.predict_proba(X).shape
        (40, 2)
    """
    return LogisticModel.from_config(config, seed=seed, min_category_count=min_category_count)


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
        return _binary_only(super().__sklearn_tags__())

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

    def fit(self, X, y, eval_set: tuple | None = None) -> LightGBMModel:
        """Fit on ``X, y``; early-stop on ``eval_set = (X_valid, y_valid)`` or on a time-ordered holdout."""
        import lightgbm as lgb

        settings = self._settings()
        frame = self._booster_frame(X, reset=True)
        self.classes_, target = binary_target(y, len(frame), "LightGBMModel")
        if target.min() == target.max():
            raise ValueError(f"LightGBMModel: y holds one class only ({self.classes_.tolist()[int(target[0])]!r}); "
                             "a model needs converted and unconverted rows")  # fmt: skip
        stop = [lgb.early_stopping(settings.early_stopping_rounds, first_metric_only=True, verbose=False)]
        if eval_set is not None:
            valid = self._booster_frame(eval_set[0])
            _, valid_target = binary_target(eval_set[1], len(valid), "LightGBMModel (eval_set)", classes=self.classes_)
            model = self._classifier(settings.n_estimators)
            model.fit(frame, target, **_eval_kwargs(valid, valid_target), callbacks=stop)
            self.n_trees_ = int(model.best_iteration_ or settings.n_estimators)
        else:
            cut = min(max(int(round(len(frame) * (1 - self.holdout_fraction))), 1), len(frame) - 1)
            probe = self._classifier(settings.n_estimators)
            probe.fit(frame.iloc[:cut], target[:cut], **_eval_kwargs(frame.iloc[cut:], target[cut:]), callbacks=stop)
            self.n_trees_ = int(probe.best_iteration_ or settings.n_estimators)
            model = self._classifier(self.n_trees_).fit(frame, target)
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
        return pd.Series(values, index=_column_names(self)).sort_values(ascending=False, kind="stable")


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
        models["logistic"] = LogisticModel.from_config(config.logistic, seed=config.seed)
    if config.lightgbm.enabled:
        models["lightgbm"] = LightGBMModel.from_config(config.lightgbm, seed=config.seed)
    return models


def fit_model(model: BaseEstimator, X: pd.DataFrame, y, X_valid: pd.DataFrame | None = None, y_valid=None):
    """Fit any of :func:`make_models`' models; LightGBM early-stops on the validation part when given."""
    if isinstance(model, LightGBMModel):
        eval_set = (X_valid, y_valid) if X_valid is not None and len(X_valid) else None
        return model.fit(X, y, eval_set=eval_set)
    return model.fit(X, y)
