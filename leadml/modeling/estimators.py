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

Both take ``sample_weight`` in ``fit`` (training weighs each lead's snapshots so that they share
one unit): a weight of 2 counts a row twice, and weights that are all 1 give the unweighted model
bit for bit.

Everything is seeded: the same frame, config and seed give the same predictions bit for bit
(LightGBM runs with ``deterministic``, ``force_row_wise`` and a fixed thread count).
"""

from __future__ import annotations

import pandas as pd
from sklearn.base import BaseEstimator

from leadml.core.config import ModelsConfig
from leadml.modeling.lightgbm.model import LIGHTGBM_SETTINGS, NUM_THREADS, LightGBMModel, lightgbm_names
from leadml.modeling.logistic import LogisticModel, make_logistic
from leadml.modeling.model_inputs import signed_log1p

__all__ = [
    "LIGHTGBM_SETTINGS",
    "NUM_THREADS",
    "LightGBMModel",
    "LogisticModel",
    "fit_model",
    "lightgbm_names",
    "make_logistic",
    "make_models",
    "signed_log1p",
]


def make_models(config: ModelsConfig | None = None) -> dict[str, BaseEstimator]:
    """The enabled, unfitted models of a config, by name (``logistic``, ``lightgbm``)."""
    config = config or ModelsConfig()
    models: dict[str, BaseEstimator] = {}
    if config.logistic.enabled:
        models["logistic"] = LogisticModel.from_config(config.logistic, seed=config.seed)
    if config.lightgbm.enabled:
        models["lightgbm"] = LightGBMModel.from_config(config.lightgbm, seed=config.seed)
    return models


def fit_model(
    model: BaseEstimator,
    X: pd.DataFrame,
    y,
    X_valid: pd.DataFrame | None = None,
    y_valid=None,
    *,
    sample_weight=None,
    valid_weight=None,
):
    """Fit any of :func:`make_models`' models; LightGBM early-stops on the validation part when given.

    ``sample_weight`` weighs the training rows (None: all alike); ``valid_weight`` weighs the
    validation rows in LightGBM's early-stopping loss, so it stops on the loss it minimises.
    """
    if isinstance(model, LightGBMModel):
        eval_set = (X_valid, y_valid) if X_valid is not None and len(X_valid) else None
        return model.fit(X, y, eval_set=eval_set, sample_weight=sample_weight,
                         eval_sample_weight=valid_weight if eval_set is not None else None)  # fmt: skip
    return model.fit(X, y, sample_weight=sample_weight)
