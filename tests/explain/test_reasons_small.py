"""One lead's reasons are the batch's: the reasons step and ``reason_table`` give the same columns,
bit for bit, to a lead explained alone (as ``leadml serve`` explains it), in a small slice or in a
whole run.

``reason_table`` joins its texts in Python for up to ``SMALL_TABLE`` leads and with Arrow kernels
for more; a single value is made distinct without ``np.unique``. Both shortcuts must give the
strings, dtypes and index of the general path, so these tests compare them with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.explain import sentences
from leadml.explain.sentences import reason_table
from leadml.jobs.reasons import REASON_COLUMNS, ExplainReasons
from leadml.modeling.contributions import explain_margin
from tests.serve.conftest import AS_OF, serve_pipeline


class RecordingReasons(ExplainReasons):
    """The ``all`` reasons step, keeping the arguments and the answer of each call of a batch run."""

    def __init__(self) -> None:
        super().__init__("all")
        self.calls: list[tuple] = []

    def __call__(self, scoring, features, probability, lead_ids=None, threshold=None, matrix=None):
        answer = super().__call__(scoring, features, probability, lead_ids, threshold, matrix)
        self.calls.append((scoring, features, probability, lead_ids, threshold, matrix, answer))
        return answer


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory):
    """The reasons step's calls in ``leadml score --reasons all`` of a LightGBM on 2,000 simulated leads."""
    from leadml.jobs.score import score_batch
    from leadml.jobs.train import run_training
    from leadml.modeling.registry import scoring_model

    config = serve_pipeline()
    run = run_training(config, log=False, n_boot=10)
    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    step = RecordingReasons()
    out = tmp_path_factory.mktemp("reasons_small") / "batch.parquet"
    score_batch(config, AS_OF, out, model_uri=scoring, reasons=step, history=False, progress=False)
    assert step.calls and sum(len(call[1]) for call in step.calls) > 200
    return step.calls


def _lead_slice(call: tuple, positions: np.ndarray) -> tuple:
    """The step's arguments for some leads of a batch call (each lead keeps its own threshold)."""
    scoring, features, p, lead_ids, threshold, matrix, _ = call
    per_lead = np.ndim(threshold) > 0
    return (
        scoring,
        features.iloc[positions],
        p[positions],
        None if lead_ids is None else lead_ids.iloc[positions],
        np.asarray(threshold)[positions] if per_lead else threshold,
        None if matrix is None else matrix[positions],
    )


def test_each_lead_alone_gets_the_reason_columns_of_the_whole_run(batch_run):
    """Every lead explained alone (the service's request) equals its row of the run: the same
    texts, dtypes and index label. With ``all``, which leads are explained does not depend on the
    run, and a lead's SHAP values, probability and threshold are its own, so nothing else may differ."""
    step = ExplainReasons("all")
    for call in batch_run:
        batch = call[-1]
        assert list(batch.columns) == [*REASON_COLUMNS, "why"]
        for position in range(len(batch)):
            alone = step(*_lead_slice(call, np.array([position])))
            pd.testing.assert_frame_equal(alone, batch.iloc[[position]], check_exact=True)


def test_small_random_slices_get_the_reason_columns_of_the_whole_run(batch_run):
    """Random slices of 2 leads to ``SMALL_TABLE`` + 1, in random order (both ways of joining), equal their rows."""
    rng = np.random.default_rng(11)
    step = ExplainReasons("all")
    for call in batch_run:
        batch = call[-1]
        for size in [2, 3, 40, sentences.SMALL_TABLE, sentences.SMALL_TABLE + 1]:
            for _ in range(5):
                positions = rng.choice(len(batch), size=min(size, len(batch)), replace=False)
                pd.testing.assert_frame_equal(
                    step(*_lead_slice(call, positions)), batch.iloc[positions], check_exact=True
                )


def test_python_and_arrow_joins_give_the_same_table(batch_run, monkeypatch):
    """The two ways of joining the texts, on the same whole run: every lead forced through Python
    (``SMALL_TABLE`` above the run's size) equals every lead through Arrow (``SMALL_TABLE`` = 0),
    for the default reasons, more reasons than features have, and without a threshold."""
    scoring, features, p, _, threshold, matrix, _ = batch_run[0]
    info = scoring.builder.feature_info_
    contributions = explain_margin(scoring.model, features, info, matrix=matrix)
    bar = np.broadcast_to(np.asarray(threshold, dtype=float), p.shape)
    for options in ({"threshold": bar}, {"threshold": bar, "top_positive": 400, "top_negative": 1}, {}):
        tables = []
        for small in (len(features), 0):
            monkeypatch.setattr(sentences, "SMALL_TABLE", small)
            tables.append(reason_table(contributions, features, info, probability=p, **options))
        pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
        assert (tables[0]["reason_1"] != "").any() and tables[0]["reasons"].str.startswith("[").all()


@pytest.mark.parametrize("name", ["lightgbm", "logistic"])
def test_both_joins_agree_on_the_explain_models(name, trained, trainset, test_rows, train_features, monkeypatch):
    """The same check on the explanation tests' models (logistic too: one-hot levels and missing flags
    grouped into features), with each lead's own threshold so that decisive flags are both true and false."""
    info = trainset.feature_info
    contributions = explain_margin(trained.models[name], test_rows, info, background=train_features)
    rng = np.random.default_rng(3)
    bar = np.clip(contributions.probability + rng.normal(0, 0.05, len(test_rows)), 0.01, 0.99)
    tables = []
    for small in (len(test_rows), 0):
        monkeypatch.setattr(sentences, "SMALL_TABLE", small)
        tables.append(reason_table(contributions, test_rows, info, threshold=bar))
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    assert tables[0]["reasons"].str.contains('"decisive": true').any()
    for position in rng.choice(len(test_rows), size=30, replace=False):
        alone = reason_table(
            contributions.take([position]), test_rows.iloc[[position]], info, threshold=bar[[position]]
        )
        pd.testing.assert_frame_equal(alone, tables[1].iloc[[position]], check_exact=True)
