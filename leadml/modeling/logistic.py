"""Logistic regression over the feature frame, with its own preprocessing, under the scikit-learn contract.

A numeric column gets a signed log only when its right tail is heavy (:class:`TailLog`): counts and
recencies with a long tail are tamed, and a column without one keeps the linear shape a plain
standardised regression would give it. Logging every column bent X Education's time on the website
(skewness 1, its strongest signal) away from the label: 0.880 test ROC-AUC against 0.898 for a plain
one-hot + standardise regression on the same split; 0.898 with the log kept to heavy tails.

Its ``fit`` also keeps the mean of the design matrix over the training rows (``design_mean_``): the
reference of its exact linear SHAP values (:mod:`leadml.modeling.contributions`), so one lead
explained alone gets the reasons it gets in a batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import _check_sample_weight, check_array, check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from leadml.core.config import LogisticConfig
from leadml.data.labels import binary_target
from leadml.modeling.blockwise import (
    BlockwiseNumeric,
    DesignColumns,
    column_blocks,
    design_matrix,
    float_block,
    log_block,
    placeholder_outputs,
)
from leadml.modeling.model_inputs import binary_tags, column_skewness, feature_frame

__all__ = ["HEAVY_TAIL_SKEW", "LogisticModel", "TailLog", "make_logistic"]

# an exponential's skewness: a column whose right tail is longer than an exponential's gets the log
HEAVY_TAIL_SKEW = 2.0


class TailLog(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Signed log (:func:`signed_log1p`) of the numeric columns whose skewness in training exceeds 2.

    Why not every column: the log tames a long tail (page views 0, 1, 2, ... 300; days since the
    last visit), but it also bends a column without one: on X Education's time on the website
    (skewness 1; conversion climbs from 12 % below 100 s to 70 % past 800 s) it made the step from
    0 s to 20 s weigh as much as the one from 20 s to 440 s and squeezed that climb together.
    Missing values stay missing (the imputer after it flags them). One column out per column in,
    so the linear SHAP values map back to their features.

    After ``fit``: ``logged_`` (a boolean per column), ``n_features_in_`` (and ``feature_names_in_``
    for a frame).
    """

    def fit(self, X, y=None, sample_weight=None) -> TailLog:
        """Choose the columns to log from the training rows; ``sample_weight`` weighs them as repeated rows.

        The skewness is computed a block of columns at a time (:func:`column_blocks`), so only a block
        is ever copied to float64; each column's figure is the one the whole matrix gives.
        """
        X = _two_dimensional(X)
        validate_data(self, X, reset=True, skip_check_array=True)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, np.empty((len(X), 0)))
        skew = [column_skewness(float_block(X, block), sample_weight) for block in column_blocks(X.shape[1])]
        self.logged_ = np.concatenate(skew) > HEAVY_TAIL_SKEW if skew else np.zeros(0, dtype=bool)
        return self

    def transform(self, X) -> np.ndarray:
        """The columns with the heavy-tailed ones logged, converted and written a block at a time."""
        check_is_fitted(self, "logged_")
        X = _two_dimensional(X)
        validate_data(self, X, reset=False, skip_check_array=True)
        out = np.empty(X.shape, dtype=np.float64, order="F")
        for block in column_blocks(X.shape[1]):
            out[:, block] = log_block(float_block(X, block), self.logged_[block])
        return out


def _two_dimensional(X):
    """A frame as it is; anything else as a checked 2-D float64 array (NaN allowed), as TailLog always read it."""
    if hasattr(X, "iloc"):
        return X
    return check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")


class LogisticModel(ClassifierMixin, BaseEstimator):
    """Logistic regression (L2) over the feature frame, with its own preprocessing.

    Categorical columns (pandas ``Categorical``) are one-hot encoded, unknown levels ignored and levels
    seen fewer than ``min_category_count`` times in training pooled; numeric columns get a signed log
    when heavy-tailed (:class:`TailLog`), a median imputation with a missing indicator, and standard
    scaling.
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
        return binary_tags(super().__sklearn_tags__())

    def _pipeline(self, *, weighted: bool = False) -> Pipeline:
        """The unfitted preprocessing and classifier; ``weighted`` routes ``sample_weight`` to the tail
        test, the scaler and the regression (call it inside ``config_context(enable_metadata_routing=True)``)."""
        numeric = BlockwiseNumeric(
            [
                ("log", TailLog()),
                ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
        categorical = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=self.min_category_count)
        preprocess = DesignColumns(
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
        if weighted:
            numeric["log"].set_fit_request(sample_weight=True)
            numeric["scale"].set_fit_request(sample_weight=True)
            classifier.set_fit_request(sample_weight=True)
        return Pipeline([("preprocess", preprocess), ("model", classifier)])

    def fit(self, X, y, sample_weight=None) -> LogisticModel:
        """Fit the preprocessing and the regression on ``X, y``, and keep the mean of the design matrix.

        ``sample_weight`` weighs the rows in the regression's loss, in the skewness that decides which
        columns are logged and in the scaler's mean and variance, so a row of weight 2 counts as two
        rows there; the imputed median, the pooling of rare levels and ``design_mean_`` count rows
        (the snapshots as scoring sees them). Weights that are all 1 fit exactly the unweighted model.
        """
        frame = feature_frame(self, X, reset=True)
        self.classes_, target = binary_target(y, len(frame), "LogisticModel")
        labels = self.classes_[target.astype(int)]
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, frame, ensure_non_negative=True)
        # the preprocessing is fitted for its steps and output columns, then writes the design matrix once
        if sample_weight is None or np.all(sample_weight == 1):  # weights of 1: the unweighted fit, bit for bit
            pipeline = self._pipeline()
            with placeholder_outputs():
                pipeline[0].fit(frame, labels)
            design = design_matrix(pipeline[0], frame)
            with one_blas_thread():
                pipeline[-1].fit(design, labels)
        else:
            with config_context(enable_metadata_routing=True):
                pipeline = self._pipeline(weighted=True)
                with placeholder_outputs():
                    pipeline[0].fit(frame, labels, sample_weight=sample_weight)
                design = design_matrix(pipeline[0], frame)
                with one_blas_thread():
                    pipeline[-1].fit(design, labels, sample_weight=sample_weight)
        self.pipeline_ = pipeline  # fitted step after step, as Pipeline.fit fits them
        self.n_iter_ = pipeline[-1].n_iter_
        self.design_mean_ = np.asarray(design, dtype=float).mean(axis=0)
        return self

    def _design(self, frame: pd.DataFrame) -> np.ndarray:
        return design_matrix(self.pipeline_[0], frame)

    def design_matrix(self, X) -> np.ndarray:
        """The rows as the regression sees them: one-hot levels, scaled numbers (heavy tails logged), missing flags."""
        check_is_fitted(self, "pipeline_")
        return self._design(feature_frame(self, X, reset=False))

    def decision_function(self, X) -> np.ndarray:
        """The margin (log-odds of the second class) of each row.

        The regression reads :meth:`design_matrix`: the array ``pipeline_`` would hand it, the same
        bits and layout, written once instead of by the ColumnTransformer's blocks and their stack.
        """
        design = self.design_matrix(X)  # checks that the model is fitted
        return self.pipeline_[-1].decision_function(design)

    def predict_proba(self, X) -> np.ndarray:
        """The probability of each class, from :meth:`design_matrix` as :meth:`decision_function` reads it."""
        design = self.design_matrix(X)  # checks that the model is fitted
        return self.pipeline_[-1].predict_proba(design)

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def one_blas_thread() -> threadpool_limits:
    """The regression's fit on one BLAS thread: the same coefficients on any machine, whatever its
    cores (a threaded BLAS sums the products in another order, and L-BFGS then takes other steps),
    and faster: the products of a design of some 10,000 x 200 are too small to share, and on the
    demo's 16,174 x 204 design the fit took 0.6-0.8 s on one thread, 1.3-1.6 s on two idle cores
    and 4.8-5.8 s on two when other work held one (``benchmarks/README.md``, the demo)."""
    return threadpool_limits(limits=1, user_api="blas")


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
