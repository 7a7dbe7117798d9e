"""The logistic model's preprocessing by blocks of columns fits, scores and explains as the plain pipeline did, bit for bit.

``_reference_fit`` is the previous implementation: the whole-matrix ``TailLog`` and scikit-learn's
own ``Pipeline``, ``ColumnTransformer``, ``SimpleImputer``, ``StandardScaler`` and ``OneHotEncoder``,
fitted by ``Pipeline.fit``, the design mean from a second transform. Frames: simulated training
rows, and hand-made ones with NaNs, ties, constant and all-NaN columns, heavy tails, zeros of both
signs, categories, one numeric column, and a block of exactly one column left over.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from threadpoolctl import threadpool_info, threadpool_limits

from leadml.modeling.blockwise import BlockwiseNumeric, column_blocks
from leadml.modeling.contributions import explain_margin
from leadml.modeling.logistic import HEAVY_TAIL_SKEW, LogisticModel, TailLog
from leadml.modeling.model_inputs import column_skewness, signed_log1p
from tests.modeling.test_train import make_trainset


class _WholeTailLog(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """TailLog as it was: every numeric column converted to float64 at once."""

    def fit(self, X, y=None, sample_weight=None):
        values = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=True)
        weights = None if sample_weight is None else _check_sample_weight(sample_weight, values)
        self.logged_ = column_skewness(values, weights) > HEAVY_TAIL_SKEW
        return self

    def transform(self, X):
        check_is_fitted(self, "logged_")
        values = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False, copy=True)
        values[:, self.logged_] = signed_log1p(values[:, self.logged_])
        return values


def _reference_pipeline(model: LogisticModel, weighted: bool) -> Pipeline:
    numeric = Pipeline(
        [
            ("log", _WholeTailLog()),
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=model.min_category_count)
    preprocess = ColumnTransformer(
        [
            ("categorical", categorical, make_column_selector(dtype_include="category")),
            ("numeric", numeric, make_column_selector(dtype_include="number")),
        ],
        sparse_threshold=0.0,
    )
    classifier = LogisticRegression(
        C=model.C, l1_ratio=0.0, class_weight=model.class_weight, max_iter=model.max_iter, random_state=model.seed
    )
    if weighted:
        numeric["log"].set_fit_request(sample_weight=True)
        numeric["scale"].set_fit_request(sample_weight=True)
        classifier.set_fit_request(sample_weight=True)
    return Pipeline([("preprocess", preprocess), ("model", classifier)])


def _reference_fit(model: LogisticModel, frame: pd.DataFrame, y, sample_weight=None):
    """(fitted pipeline, design mean) of the previous LogisticModel.fit."""
    with threadpool_limits(limits=1, user_api="blas"):  # as LogisticModel fits its regression
        if sample_weight is None:
            pipeline = _reference_pipeline(model, False).fit(frame, y)
        else:
            with config_context(enable_metadata_routing=True):
                pipeline = _reference_pipeline(model, True).fit(frame, y, sample_weight=sample_weight)
    return pipeline, np.asarray(pipeline[:-1].transform(frame), dtype=float).mean(axis=0)


def _assert_same(model: LogisticModel, frame: pd.DataFrame, y, sample_weight=None, scoring=None) -> None:
    reference, design_mean = _reference_fit(model, frame, y, sample_weight)
    ours = model.fit(frame, y, sample_weight=sample_weight)
    new_numeric = ours.pipeline_[0].named_transformers_["numeric"]
    old_numeric = reference[0].named_transformers_["numeric"]
    assert isinstance(new_numeric, BlockwiseNumeric)
    assert np.array_equal(new_numeric["log"].logged_, old_numeric["log"].logged_)
    old_impute, new_impute = old_numeric["impute"], new_numeric["impute"]
    assert np.array_equal(new_impute.statistics_, old_impute.statistics_)
    assert new_impute.statistics_.tobytes() == old_impute.statistics_.tobytes()  # -0.0 and 0.0 told apart
    assert np.array_equal(new_impute.indicator_.features_, old_impute.indicator_.features_)
    for name in ("mean_", "var_", "scale_", "n_samples_seen_"):
        new, old = getattr(new_numeric["scale"], name), getattr(old_numeric["scale"], name)
        assert type(new) is type(old) and np.asarray(new).dtype == np.asarray(old).dtype, name
        assert np.asarray(new).tobytes() == np.asarray(old).tobytes(), name
    assert new_numeric["scale"].n_features_in_ == old_numeric["scale"].n_features_in_
    assert list(ours.pipeline_[:-1].get_feature_names_out()) == list(reference[:-1].get_feature_names_out())
    new_lr, old_lr = ours.pipeline_[-1], reference[-1]
    assert np.array_equal(new_lr.coef_, old_lr.coef_) and np.array_equal(new_lr.intercept_, old_lr.intercept_)
    assert np.array_equal(new_lr.n_iter_, old_lr.n_iter_)
    assert ours.design_mean_.tobytes() == design_mean.tobytes()
    for rows in [frame] + ([] if scoring is None else [scoring]):
        new_design, old_design = ours.design_matrix(rows), np.asarray(reference[:-1].transform(rows), dtype=float)
        assert new_design.tobytes(order="A") == old_design.tobytes(order="A")
        assert new_design.strides == old_design.strides
        assert np.array_equal(ours.predict_proba(rows), reference.predict_proba(rows))
        assert np.array_equal(ours.decision_function(rows), reference.decision_function(rows))


def _hand_made(n: int, seed: int, n_numeric: int = 37) -> pd.DataFrame:
    """Columns of every awkward kind: heavy tails, ties, NaNs, constants, all-NaN, signed zeros, integers."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    kinds = ["pareto", "normal", "ties", "constant", "all_nan", "zeros", "int", "sparse_nan", "lognormal"]
    for i in range(n_numeric):
        kind = kinds[i % len(kinds)]
        if kind == "pareto":
            values = rng.pareto(1.5, n) * 10
        elif kind == "normal":
            values = rng.normal(size=n)
        elif kind == "ties":
            values = rng.integers(0, 4, n).astype(float)  # an even count of values around two ties
        elif kind == "constant":
            values = np.full(n, 3.0)
        elif kind == "all_nan":
            values = np.full(n, np.nan)
        elif kind == "zeros":
            values = np.where(rng.random(n) < 0.5, 0.0, -0.0)
        elif kind == "int":
            values = rng.poisson(2.0, n)
        elif kind == "sparse_nan":
            values = np.where(rng.random(n) < 0.97, np.nan, rng.exponential(5.0, n))
        else:
            values = rng.lognormal(0.0, 2.0, n)
        if kind in ("pareto", "normal", "ties", "lognormal"):
            values = np.where(rng.random(n) < 0.1, np.nan, values)
        columns[f"{kind}_{i}"] = values.astype(np.float32) if i % 4 == 1 else values
    columns["level"] = pd.Categorical(rng.choice(["vp", "staff", "cxo", "rare"], n, p=[0.4, 0.4, 0.19, 0.01]))
    columns["source"] = pd.Categorical(rng.choice(["web", "event", None], n))
    return pd.DataFrame(columns)


def _labels(frame: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = np.nan_to_num(frame.select_dtypes("number").to_numpy(float)[:, :4]).sum(axis=1)
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-0.1 * (signal - np.median(signal))))).astype(int)


@pytest.mark.parametrize("n_numeric", [1, 2, 16, 17, 33, 37])
def test_hand_made_frames_fit_as_the_plain_pipeline(n_numeric):
    frame = _hand_made(2000, seed=n_numeric, n_numeric=n_numeric)
    y = _labels(frame, n_numeric)
    _assert_same(LogisticModel(min_category_count=5), frame, y, scoring=_hand_made(300, 99, n_numeric))


def test_weights_fit_as_the_plain_pipeline():
    frame = _hand_made(1500, seed=4)
    y = _labels(frame, 4)
    weights = np.random.default_rng(4).uniform(0.2, 2.0, len(frame))
    _assert_same(LogisticModel(C=0.3, class_weight="balanced"), frame, y, sample_weight=weights)


def test_numbers_only_and_an_array_fit_as_the_plain_pipeline():
    frame = _hand_made(1200, seed=5).select_dtypes("number")
    y = _labels(frame, 5)
    _assert_same(LogisticModel(), frame, y)
    values = frame.to_numpy(np.float64)
    named = pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])
    model = LogisticModel().fit(values, y)
    reference, design_mean = _reference_fit(LogisticModel(), named, y)
    assert np.array_equal(model.predict_proba(values), reference.predict_proba(named))
    assert model.design_mean_.tobytes() == design_mean.tobytes()


def test_simulated_training_rows_fit_as_the_plain_pipeline():
    trainset, _, _ = make_trainset(3000, seed=7)
    frame = trainset.frame
    rows = frame[frame["converted"].notna() & (frame["split"] == "train")]
    held = frame[frame["split"] == "test"]
    y = rows["converted"].to_numpy(int)
    _assert_same(LogisticModel(seed=3), rows[trainset.feature_names], y, scoring=held[trainset.feature_names])
    weights = rows["weight"].to_numpy(float) if "weight" in rows else np.linspace(0.5, 1.5, len(rows))
    _assert_same(LogisticModel(seed=3), rows[trainset.feature_names], y, sample_weight=weights)


def test_the_fitted_model_explains_and_pickles_deterministically():
    frame = _hand_made(800, seed=6)
    y = _labels(frame, 6)
    first, second = LogisticModel().fit(frame, y), LogisticModel().fit(frame, y)
    assert pickle.dumps(first) == pickle.dumps(second)
    restored = pickle.loads(pickle.dumps(first))
    assert np.array_equal(restored.predict_proba(frame), first.predict_proba(frame))
    reference, design_mean = _reference_fit(LogisticModel(), frame, y)
    reference.design_mean_ = design_mean
    ours, theirs = explain_margin(first, frame.head(50), []), explain_margin(reference, frame.head(50), [])
    assert np.array_equal(ours.values, theirs.values) and ours.features == theirs.features
    assert np.array_equal(ours.column_values, theirs.column_values) and ours.base_value == theirs.base_value


@pytest.mark.parametrize("width", [1, 2, 15, 16, 17, 31, 32, 33, 127])
def test_column_blocks_cover_every_column_once_and_none_alone(width):
    blocks = column_blocks(width, 16)
    covered = np.concatenate([np.arange(width)[b] for b in blocks])
    assert covered.tolist() == list(range(width))
    assert all(b.stop - b.start >= 2 for b in blocks) or width == 1


def test_tail_log_alone_gives_the_whole_matrix_figures():
    frame = _hand_made(1000, seed=8).select_dtypes("number")
    ours, reference = TailLog().fit(frame), _WholeTailLog().fit(frame)
    assert np.array_equal(ours.logged_, reference.logged_)
    assert ours.transform(frame).tobytes(order="A") == np.asfortranarray(reference.transform(frame)).tobytes(order="A")
    assert list(ours.get_feature_names_out()) == list(reference.get_feature_names_out())


def test_one_hot_blocks_written_in_row_chunks_fit_as_the_plain_pipeline(monkeypatch):
    import leadml.modeling.blockwise as blockwise

    monkeypatch.setattr(blockwise, "CHUNK_ROWS", 7)
    frame = _hand_made(500, seed=9, n_numeric=5)
    _assert_same(LogisticModel(min_category_count=5), frame, _labels(frame, 9), scoring=_hand_made(40, 10, 5))


def test_the_fit_is_the_same_whatever_the_blas_threads():
    """The regression is fitted on one BLAS thread: the caller's thread count (a laptop's 8 cores, a CI
    runner's 2) changes nothing, where scikit-learn alone, on this design, ends elsewhere."""
    if max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=1) < 2:
        pytest.skip("a BLAS of one thread: nothing to compare")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(16_000, 150)), columns=[f"x{k}" for k in range(150)])
    frame["x0"] = frame["x0"] * 3 + rng.exponential(size=len(frame))
    y = (frame.iloc[:, :40].sum(axis=1) + rng.logistic(size=len(frame)) * 4 > 0).astype(int).to_numpy()
    fitted = {}
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            fitted[threads] = LogisticModel().fit(frame, y)
            design = fitted[threads].design_matrix(frame)
            plain = LogisticRegression(max_iter=2000).fit(design, y)
            fitted[f"plain {threads}"] = plain
    assert np.array_equal(fitted[1].pipeline_[-1].coef_, fitted[2].pipeline_[-1].coef_)
    assert fitted[1].n_iter_ == fitted[2].n_iter_
    # the same fit left to the threads differs: the pin is what makes the two equal
    assert not np.array_equal(fitted["plain 1"].coef_, fitted["plain 2"].coef_)
