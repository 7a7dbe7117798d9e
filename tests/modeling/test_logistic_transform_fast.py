"""The logistic model's design matrix by chunks of rows gives the plain scikit-learn pipeline's bits.

The numeric columns are transformed a chunk of rows at a time (the signed log taken only where it
changes a value), and the one-hot columns looked up from the encoder's output for the levels
present; ``LogisticModel.predict_proba`` reads that design matrix. Each is compared here, bit for
bit, with ``_reference_fit`` of ``test_logistic_memory`` (scikit-learn's own ``ColumnTransformer``,
``SimpleImputer``, ``StandardScaler`` and ``OneHotEncoder``, and the whole-matrix ``TailLog``), on
chunks down to a few rows, signed zeros in logged columns, odd input dtypes, arrays and unseen levels.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import leadml.modeling.blockwise as blockwise
from leadml.modeling.blockwise import one_hot_into, signed_log1p_into
from leadml.modeling.logistic import LogisticModel
from leadml.modeling.model_inputs import signed_log1p
from tests.modeling.test_logistic_memory import _assert_same, _hand_made, _labels, _reference_fit

AWKWARD = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 5e-324, -5e-324, 1e-300, 1e300, -1e300, 1.0, -3.5, 7e12]


def _with_signed_zeros(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The heavy-tailed columns with some values replaced by 0.0 and some by -0.0."""
    rng = np.random.default_rng(seed)
    frame = frame.copy()
    for name in [c for c in frame.columns if c.startswith(("pareto", "lognormal"))]:
        draw = rng.random(len(frame))
        values = frame[name].to_numpy(copy=True)
        values[draw < 0.3] = 0.0
        values[draw > 0.8] = -0.0
        frame[name] = values
    return frame


def _bits(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values).tobytes()


@pytest.mark.parametrize("order", ["C", "F"])
def test_signed_log_in_place_gives_signed_log1p_bits(order):
    rng = np.random.default_rng(1)
    values = np.asarray(rng.choice(AWKWARD, size=(301, 7)), order=order)
    tails = rng.random(values.shape) < 0.3
    values[tails] = rng.pareto(1.2, size=int(tails.sum()))
    expected = signed_log1p(values)
    signed_log1p_into(values)
    assert _bits(values) == _bits(expected)  # -0.0 comes out +0.0 and +0.0 stays, as signed_log1p gives them
    assert values.flags.c_contiguous == (order == "C")


def test_signed_log_in_place_refuses_a_view_it_would_copy():
    values = np.ones((10, 6))
    with pytest.raises(ValueError, match="contiguous"):
        signed_log1p_into(values[:, ::2])


def test_runs_of_flags():
    runs = blockwise._runs(np.array([True, True, False, True, False, False, True]))
    assert [(s.start, s.stop) for s in runs] == [(0, 2), (3, 4), (6, 7)]
    assert blockwise._runs(np.zeros(3, dtype=bool)) == []


@pytest.mark.parametrize("cells", [1, 45, 1000, blockwise.CHUNK_CELLS])
def test_chunks_of_any_size_give_the_plain_pipeline_bits(monkeypatch, cells):
    """Chunks of 2 rows, a few, and one chunk; signed zeros in logged columns; the scores too."""
    monkeypatch.setattr(blockwise, "CHUNK_CELLS", cells)
    frame = _with_signed_zeros(_hand_made(700, seed=11), 11)
    scoring = _with_signed_zeros(_hand_made(301, seed=12), 12)
    model = LogisticModel(min_category_count=5)
    _assert_same(model, frame, _labels(frame, 11), scoring=scoring)
    numeric = model.pipeline_[0].named_transformers_["numeric"]
    names = numeric["log"].feature_names_in_[numeric["log"].logged_]
    assert np.signbit(scoring[names].to_numpy()).any()  # -0.0 reached a logged column


def test_odd_input_dtypes_and_extra_columns_give_the_plain_pipeline_bits(monkeypatch):
    """Integers, float16, nullable floats and integers with NA, columns reordered and extra: converted as before."""
    monkeypatch.setattr(blockwise, "CHUNK_CELLS", 300)
    frame = _hand_made(600, seed=13, n_numeric=20)
    model, reference = _fitted_and_reference(frame, 13)
    scoring = _hand_made(250, seed=14, n_numeric=20)
    odd = scoring.copy()
    numbers = list(scoring.select_dtypes("number").columns)
    odd[numbers[0]] = scoring[numbers[0]].astype("Float64")  # NaN becomes NA
    odd[numbers[6]] = scoring[numbers[6]].astype("Int64")
    odd[numbers[6]] = odd[numbers[6]].mask(np.arange(len(odd)) % 7 == 0)
    odd[numbers[2]] = scoring[numbers[2]].astype(np.float16)
    odd[numbers[10]] = scoring[numbers[10]].round().fillna(0).astype(np.int32)
    odd = odd[odd.columns[::-1]].assign(lead_id=np.arange(len(odd)))
    expected = reference.predict_proba(odd[frame.columns])
    assert _bits(model.predict_proba(odd)) == _bits(expected)
    assert _bits(model.decision_function(odd)) == _bits(reference.decision_function(odd[frame.columns]))
    design = model.design_matrix(odd)
    assert design.tobytes(order="A") == np.asarray(reference[:-1].transform(odd[frame.columns])).tobytes(order="A")


@pytest.mark.parametrize("order", ["C", "F"])
def test_arrays_of_either_layout_give_the_plain_pipeline_bits(monkeypatch, order):
    monkeypatch.setattr(blockwise, "CHUNK_CELLS", 500)
    frame = _with_signed_zeros(_hand_made(800, seed=15, n_numeric=33).select_dtypes("number"), 15)
    y = _labels(frame, 15)
    values = np.asarray(frame.to_numpy(np.float64), order=order)
    named = pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])
    model = LogisticModel().fit(values, y)
    reference, design_mean = _reference_fit(LogisticModel(), named, y)
    assert model.design_mean_.tobytes() == design_mean.tobytes()
    assert _bits(model.predict_proba(values)) == _bits(reference.predict_proba(named))
    assert model.design_matrix(values).strides == np.asarray(reference[:-1].transform(named)).strides


def test_an_infinity_in_a_late_chunk_is_refused_as_check_array_refuses_it(monkeypatch):
    monkeypatch.setattr(blockwise, "CHUNK_CELLS", 200)
    frame = _hand_made(400, seed=16, n_numeric=9)
    model = LogisticModel(min_category_count=5).fit(frame, _labels(frame, 16))
    for value in (np.inf, -np.inf):
        broken = frame.copy()
        broken.iloc[390, 4] = value
        with pytest.raises(ValueError, match=r"^Input contains infinity or a value too large for dtype\('float64'\)"):
            model.predict_proba(broken)


def _encoder_and_frames():
    """A fitted encoder (rare levels pooled in one column but not all) and frames of levels it has not seen."""
    rng = np.random.default_rng(17)
    n = 400
    train = pd.DataFrame(
        {
            "level": pd.Categorical(rng.choice(["vp", "staff", "cxo", "rare"], n, p=[0.45, 0.45, 0.08, 0.02])),
            "source": pd.Categorical(rng.choice(["web", "event"], n)),  # no NaN, no rare level
            "size": pd.Categorical(rng.choice([10, 50, 200], n)),  # integer levels
            "region": pd.Categorical(rng.choice(["eu", "us", None], n)),  # NaN seen in training
        }
    )
    encoder = blockwise.OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20).fit(train)
    unseen = pd.DataFrame(
        {
            "level": pd.Categorical(rng.choice(["vp", "new", None], 90), categories=["vp", "new", "unused", "cxo"]),
            "source": pd.Categorical(rng.choice(["web", "other", None], 90)),
            "size": pd.Categorical(rng.choice([10, 999], 90)),
            "region": pd.Categorical(rng.choice(["us", None], 90)),
        }
    )
    return encoder, [train, train.iloc[::-1], train.iloc[:1], unseen]


def test_one_hot_levels_looked_up_give_the_encoders_bits_and_warnings():
    encoder, frames = _encoder_and_frames()
    for frame in frames:
        with warnings.catch_warnings(record=True) as general_warnings:
            warnings.simplefilter("always")
            expected = encoder.transform(frame).toarray()
        out = np.full((len(frame), expected.shape[1] + 3), -1.0)
        with warnings.catch_warnings(record=True) as fast_warnings:
            warnings.simplefilter("always")
            assert one_hot_into(encoder, frame, out[:, 2:-1])
        assert _bits(out[:, 2:-1]) == _bits(expected)
        assert (out[:, :2] == -1).all() and (out[:, -1] == -1).all()
        assert [str(w.message) for w in fast_warnings] == [str(w.message) for w in general_warnings]


def test_one_hot_of_other_inputs_is_left_to_the_encoder():
    encoder, frames = _encoder_and_frames()
    out = np.zeros((len(frames[0]), 9))
    assert not one_hot_into(encoder, frames[0].astype({"level": object}), out)
    assert not one_hot_into(encoder, frames[0].iloc[:0], out[:0])
    assert not one_hot_into(encoder, frames[0], out[:, :5])  # not the encoder's width
    assert not out.any()


def test_unseen_levels_and_object_columns_give_the_plain_pipeline_bits(monkeypatch):
    monkeypatch.setattr(blockwise, "CHUNK_ROWS", 50)
    frame = _hand_made(500, seed=18, n_numeric=5)
    model, reference = _fitted_and_reference(frame, 18)
    scoring = _hand_made(120, seed=19, n_numeric=5)
    scoring["level"] = pd.Categorical(np.where(np.arange(120) % 5 == 0, "intern", scoring["level"].astype(object)))
    for rows in (scoring, scoring.astype({"source": object})):  # an object column: the encoder's own path
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert _bits(model.predict_proba(rows)) == _bits(reference.predict_proba(rows))
            assert model.design_matrix(rows).tobytes(order="A") == reference[:-1].transform(rows).tobytes(order="A")


def _fitted_and_reference(frame: pd.DataFrame, seed: int):
    """The model and scikit-learn's plain pipeline, both fitted on ``frame`` and its seeded labels."""
    y = _labels(frame, seed)
    reference, _ = _reference_fit(LogisticModel(min_category_count=5), frame, y)
    return LogisticModel(min_category_count=5).fit(frame, y), reference


def test_a_frame_of_one_row_gives_the_plain_pipeline_bits():
    """One lead explained alone (a counterfactual, `leadml explain`): one row through the design matrix,
    numeric and one-hot blocks together, as scikit-learn's pipeline gives it."""
    frame = _hand_made(400, seed=21, n_numeric=7)
    model, reference = _fitted_and_reference(frame, 21)
    scoring = _hand_made(5, seed=22, n_numeric=7)
    for at in range(len(scoring)):
        row = scoring.iloc[[at]]
        assert _bits(model.predict_proba(row)) == _bits(reference.predict_proba(row))
        assert model.design_matrix(row).tobytes() == np.asarray(reference[:-1].transform(row)).tobytes()
