"""One lead scored alone gets the decision columns and policy it gets in the batch, to the bit.

The served path scores one lead a request through the batch job's own functions; their small-input
shortcuts (the row-by-row tree walk, numpy hand-off, the frame built once) must give each lead what
the batch gives it. Each check below computes a function on all open leads of the simulator at
once, then on each lead alone and on small slices, and compares. pandas infers a text column's
dtype from its values (``str`` when a string is present, ``object`` when all are None), so a slice's
text columns are compared as the scores file stores them (Arrow strings, missing as null).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from leadml.jobs import decisions
from leadml.jobs.decisions import (
    DECISION_COLUMNS,
    _as_read,
    _deadlines,
    _factorized,
    _grid_tiers,
    _int16,
    decision_columns,
    tier_actions,
)
from leadml.jobs.handoff import handoff_state
from leadml.jobs.score import SCORES_SCHEMA
from leadml.modeling.drift_reference import model_reference, out_of_range, out_of_range_names
from leadml.modeling.lightgbm import effects
from leadml.modeling.lightgbm.effects import tree_group_margin
from leadml.modeling.policy import apply_policy
from leadml.modeling.subscores import _compiled, _groups, subscores
from tests.modeling.test_subscore_tables import _odd_rows
from tests.serve.conftest import AS_OF, serve_pipeline

TIERS = [{"name": "A", "min": 0.5, "action": "Call", "within_hours": 24},
         {"name": "B", "min": 0.25, "action": "Send the case study", "within_hours": 1.5},
         {"name": "C", "min": 0.1, "within_hours": 48}, {"name": "unused"}]  # fmt: skip
SIZES = (2, 3, 5, 8, 9, 17)  # around ROW_WALK_MAX, where the tree walk changes method
# pyarrow reads a tz-aware column's ``.values`` (as the scores file's writes do): pandas warns each time
pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning an ndarray that drops timezone")


@pytest.fixture(scope="module")
def batch():
    """The simulator's open leads at AS_OF under a LightGBM model: config (tiers with actions and
    deadlines), scoring model, features, booster matrix, probabilities and lead ids."""
    from leadml.jobs.feature_source import feature_source
    from leadml.jobs.train import run_training
    from leadml.modeling.registry import scoring_model

    config = serve_pipeline(mql={"tiers": TIERS})
    run = run_training(serve_pipeline(), log=False, n_boot=10)
    scoring = scoring_model(run.result, run.trainset, serve_pipeline().mql.tiers)
    chunk = next(iter(feature_source(config, scoring.builder, pd.Timestamp(AS_OF, tz="UTC")).chunks))
    features = chunk.features.reset_index(drop=True)
    matrix = scoring.booster_matrix(features)
    p = scoring.probability(features, matrix)
    return config, scoring, features, matrix, p, chunk.snapshots["lead_id"].reset_index(drop=True)


def _slices(n: int) -> list[tuple[int, int]]:
    """Every lead alone, and a few slices of each size in :data:`SIZES`."""
    rng = np.random.default_rng(0)
    starts = [(int(i), int(i) + size) for size in SIZES for i in rng.integers(0, n - size, 4)]
    return [(i, i + 1) for i in range(n)] + starts


def _as_stored(frame: pd.DataFrame) -> dict[str, pa.Array]:
    """The decision columns as the scores file types them (what ``scores_table`` writes)."""
    return {name: pa.array(frame[name].array, type=SCORES_SCHEMA.field(name).type, from_pandas=True)
            for name in DECISION_COLUMNS}  # fmt: skip


def test_the_tree_walk_of_a_few_rows_is_the_batch_walk_on_every_kind_of_value(batch, monkeypatch):
    _, scoring, _, matrix, _, _ = batch
    estimator = scoring.model.estimator
    compiled = _compiled(estimator)
    rows = _odd_rows(compiled, matrix)
    names = list(estimator.feature_names_in_)
    groups = {**_groups(names, scoring.builder.feature_info_), "every feature": list(range(len(names))), "none": []}
    assert any(node.categories is not None for node in _splits(compiled)), "the model should split on a category"
    for name, columns in groups.items():
        monkeypatch.setattr(effects, "ROW_WALK_MAX", 0)
        walked = tree_group_margin(compiled, rows, columns)
        monkeypatch.undo()
        for size in range(1, effects.ROW_WALK_MAX + 1):
            parts = [tree_group_margin(compiled, rows[i : i + size], columns) for i in range(0, len(rows), size)]
            alone = np.concatenate(parts)
            assert np.array_equal(alone.view(np.int64), walked.view(np.int64)), (name, size)  # -0.0 too


def _splits(compiled) -> list:
    stack, found = list(compiled.trees), []
    while stack:
        node = stack.pop()
        if hasattr(node, "left"):
            found.append(node)
            stack += [node.left, node.right]
    return found


def test_each_lead_alone_gets_the_batch_s_decision_columns(batch):
    config, scoring, features, matrix, p, lead_ids = batch
    n = len(features)
    policy = apply_policy(p, scoring.threshold, scoring.tiers)
    tiers = policy["tier"].astype(str).to_numpy(dtype=object)
    rng = np.random.default_rng(1)
    is_mql = policy["is_mql"].to_numpy() | (rng.random(n) < 0.2)  # MQLs of every tier: routes, spells, deadlines
    ids = lead_ids.astype(str).to_numpy(dtype=object)
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    picked = rng.random(n) < 0.3
    spells = pd.Series(as_of - pd.to_timedelta(rng.integers(0, 200, picked.sum()), unit="h"), index=ids[picked])
    accepted = pd.Series(as_of + pd.to_timedelta(rng.integers(-100, 30, n), unit="h"), index=ids).iloc[::3]
    kinds = {"handoff": dict(lead_ids=lead_ids, is_mql=is_mql, spells=spells, accepted=accepted),
             "no lead ids": dict(is_mql=is_mql), "no sub-scores": dict(lead_ids=lead_ids, is_mql=is_mql,
                                                                       subscores=False)}  # fmt: skip
    for kind, options in kinds.items():
        whole = decision_columns(scoring, config, features, tiers, as_of, matrix=matrix, **options)
        if kind == "handoff":  # every column has values to compare
            assert whole["mql_route"].notna().any() and whole["next_action"].notna().any()
            assert whole["overdue"].any() and whole["out_of_range"].notna().any()
        assert list(whole.columns) == list(DECISION_COLUMNS)
        stored = _as_stored(whole)
        for start, stop in _slices(n) if kind == "handoff" else _slices(n)[::7]:
            part = {key: value.iloc[start:stop] if isinstance(value, pd.Series) and key == "lead_ids" else value
                    for key, value in options.items()}  # fmt: skip
            if "is_mql" in part:
                part["is_mql"] = is_mql[start:stop]
            alone = decision_columns(scoring, config, features.iloc[start:stop], tiers[start:stop], as_of,
                                     matrix=matrix[start:stop], **part)  # fmt: skip
            assert alone.index.equals(pd.RangeIndex(stop - start)) and list(alone.columns) == list(DECISION_COLUMNS)
            for name, column in _as_stored(alone).items():
                assert column.equals(stored[name].slice(start, stop - start)), (kind, start, stop, name)
            for name in ("fit_score", "engagement_score", "due_at", "mql_since", "overdue"):  # dtypes not inferred
                assert alone[name].dtype == whole[name].dtype, (kind, name)


def test_each_lead_alone_gets_the_batch_s_policy_sub_scores_and_ranges(batch):
    config, scoring, features, matrix, p, _ = batch
    whole = apply_policy(p, scoring.threshold, scoring.tiers)
    per_row = apply_policy(p, np.linspace(0.05, 0.3, len(p)), config.mql.tiers[:3] + scoring.tiers[3:])
    sub = subscores(scoring, features, config.mql.grid, matrix=matrix)
    reference = model_reference(scoring)
    flagged = out_of_range(reference, features, first=("lead__age_days",))
    names = out_of_range_names(reference, features, first=("lead__age_days",))
    assert flagged.ne("").any() and flagged.eq("").any()
    assert np.array_equal(names, flagged.where(flagged != "", None).to_numpy(dtype=object))
    for start, stop in _slices(len(p)):
        rows = slice(start, stop)
        pd.testing.assert_frame_equal(apply_policy(p[rows], scoring.threshold, scoring.tiers),
                                      whole.iloc[rows].reset_index(drop=True), check_exact=True)  # fmt: skip
        thresholds = np.linspace(0.05, 0.3, len(p))[rows]
        pd.testing.assert_frame_equal(apply_policy(p[rows], thresholds, config.mql.tiers[:3] + scoring.tiers[3:]),
                                      per_row.iloc[rows].reset_index(drop=True), check_exact=True)  # fmt: skip
        alone = subscores(scoring, features.iloc[rows], config.mql.grid, matrix=matrix[rows])
        pd.testing.assert_frame_equal(alone, sub.iloc[rows], check_exact=True)
        pd.testing.assert_series_equal(out_of_range(reference, features.iloc[rows], first=("lead__age_days",)),
                                       flagged.iloc[rows], check_exact=True)  # fmt: skip


def test_each_lead_alone_gets_the_batch_s_deadlines_and_hand_off():
    as_of = pd.Timestamp("2026-06-03", tz="UTC")
    rng = np.random.default_rng(2)
    n = 300
    names = np.array(["A", "B", "C", "unused", "unknown"], dtype=object)[rng.integers(0, 5, n)]
    configured = serve_pipeline(mql={"tiers": TIERS}).mql.tiers
    ids = [f"lead{i}" for i in range(n)]
    is_mql = rng.random(n) < 0.5
    spells = pd.Series(as_of - pd.to_timedelta(rng.integers(0, 100, n // 2), unit="h"), index=ids[::2])
    accepted = pd.Series(as_of + pd.to_timedelta(rng.integers(-50, 50, n // 3), unit="h"), index=ids[::3])
    actions = tier_actions(names, as_of, configured)
    state = handoff_state(ids, is_mql, actions["due_at"], as_of, spells=spells, accepted=accepted)
    assert actions["due_at"].notna().any() and state["overdue"].any() and state["mql_since"].notna().any()
    for start, stop in _slices(n):
        rows = slice(start, stop)
        alone = tier_actions(names[rows], as_of, configured)
        assert _texts(alone["next_action"]) == _texts(actions["next_action"].iloc[rows])
        pd.testing.assert_series_equal(alone["due_at"], actions["due_at"].iloc[rows].reset_index(drop=True))
        listed = handoff_state(ids[rows], is_mql[rows].tolist(), list(actions["due_at"].iloc[rows]), "2026-06-03",
                               spells=spells, accepted=accepted)  # fmt: skip
        pd.testing.assert_frame_equal(listed, state.iloc[rows].reset_index(drop=True), check_exact=True)


def _texts(column: pd.Series) -> list:
    return [None if pd.isna(value) else value for value in column]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_deadlines_summed_on_integers_are_pandas_sums(unit):
    hours = np.array([48.0, 1.5, 1 / 3, 2 / 7, 1e-9, 1e-10, 0.1, 7.25, 24 * 365 * 50.0, np.nan, 48.0])
    as_of = pd.Timestamp("2026-03-01 13:45:12.123456789", tz="UTC").as_unit(unit)
    by_pandas = pd.DatetimeIndex(as_of + pd.to_timedelta(hours, unit="h")).as_unit("ns").array
    summed = _deadlines(as_of, hours)
    assert summed.dtype == by_pandas.dtype and np.array_equal(summed.asi8, by_pandas.asi8)
    for i in range(len(hours)):  # alone, pandas may pick another unit for the hours: the same instants
        assert np.array_equal(_deadlines(as_of, hours[i : i + 1]).asi8, by_pandas.asi8[i : i + 1])
    for other in (as_of.tz_localize(None), as_of.tz_convert("Europe/Paris")):  # left to pandas
        expected = pd.DatetimeIndex(other + pd.to_timedelta(hours, unit="h")).as_unit("ns").array
        pd.testing.assert_extension_array_equal(_deadlines(other, hours), expected)


@pytest.mark.parametrize("values", [["Call"], [None], ["Call", None], [None, "Call", "Mail"], []])
def test_actions_and_grid_tiers_read_as_a_pandas_column_reads_them(values):
    column = pd.Series(values, dtype=None).to_numpy(dtype=object)
    for read in (_as_read(values), _grid_tiers({"grid_tier": np.array(values, dtype=object)}, len(values))):
        assert [(type(v), repr(v)) for v in read] == [(type(v), repr(v)) for v in column]


def test_int16_sub_scores_are_the_nullable_array_pandas_makes():
    scores = np.array([0, 17, 100], dtype=np.int16)
    made = _int16({"fit_score": scores}, "fit_score", 3)
    pd.testing.assert_extension_array_equal(made, pd.array(scores, dtype="Int16"))
    scores[0] = 5  # the column is its own copy
    assert made[0] == 0


def test_the_scores_table_reads_the_arrays_as_pandas_converts_the_frame(batch):
    """``scores_table`` turns :func:`decision_arrays` into Arrow itself (:func:`arrow_column`); each
    column equals pandas' conversion of :func:`decision_columns`' frame, for the batch and for one lead."""
    from leadml.jobs.decisions import decision_arrays
    from leadml.jobs.output import arrow_column

    config, scoring, features, matrix, p, lead_ids = batch
    policy = apply_policy(p, scoring.threshold, scoring.tiers)
    tiers = policy["tier"].astype(str).to_numpy(dtype=object)
    is_mql = policy["is_mql"].to_numpy()
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    picks = [(0, len(features)), *[(i, i + 1) for i in np.flatnonzero(is_mql)[:5]], (3, 4), (10, 19)]
    for with_subscores in (True, False):
        for start, stop in picks:
            args = (scoring, config, features.iloc[start:stop], tiers[start:stop], as_of)
            options = dict(matrix=matrix[start:stop], lead_ids=lead_ids.iloc[start:stop], is_mql=is_mql[start:stop],
                           subscores=with_subscores)  # fmt: skip
            arrays, frame = decision_arrays(*args, **options), decision_columns(*args, **options)
            for name in DECISION_COLUMNS:
                kind = SCORES_SCHEMA.field(name).type
                ours, theirs = arrow_column(arrays[name], kind), pa.Array.from_pandas(frame[name], type=kind)
                assert ours.equals(theirs), (with_subscores, start, stop, name)


def test_the_scores_tables_policy_arrays_equal_apply_policy(batch):
    """``scores_table`` takes score, tier text and MQL flag as arrays; they equal apply_policy's frame,
    for one threshold and one per lead, for the batch and for one lead."""
    from leadml.jobs.score import _policy

    config, scoring, features, matrix, p, lead_ids = batch
    per_lead = np.random.default_rng(3).uniform(0.05, 0.6, len(p))
    for threshold in (scoring.threshold, per_lead):
        for rows in (slice(None), slice(5, 6), slice(0, 0)):
            bar = threshold if np.ndim(threshold) == 0 else threshold[rows]
            policy = apply_policy(p[rows], bar, scoring.tiers)
            score, tiers, is_mql = _policy(p[rows], bar, scoring.tiers)
            assert np.array_equal(score, policy["score"].to_numpy()) and score.dtype == policy["score"].dtype
            assert tiers.tolist() == policy["tier"].astype(str).tolist() and tiers.dtype == object
            assert np.array_equal(is_mql, policy["is_mql"].to_numpy())


@pytest.mark.parametrize(
    "tiers",
    [["A"], ["B", "A", "B", "C"], [], ["A", np.str_("A"), "é", ""], ["A", None, "A"], [np.nan, "A", None],
     np.array(["C", "A", "C"]), np.array(["C", "A"], dtype=object), ["A", 1, "A"]],
)  # fmt: skip
def test_a_few_tiers_factorize_as_pandas_factorizes_them(tiers):
    """Text tiers up to SMALL_FACTORIZE are factorized on a dict: the codes and names of pd.factorize."""
    codes, names = _factorized(tiers)
    expected_codes, expected_names = pd.factorize(np.asarray(tiers, dtype=object), use_na_sentinel=False)
    assert np.array_equal(codes, expected_codes) and codes.dtype == expected_codes.dtype
    assert [(type(name), repr(name)) for name in names] == [(type(name), repr(name)) for name in expected_names]


def test_tier_actions_of_the_small_path_are_the_pandas_path_s(monkeypatch):
    """The decision columns' tiers, factorized on a dict, give each lead what pd.factorize gives it:
    simulated tier names, every lead alone and in slices, against SMALL_FACTORIZE off."""
    as_of = pd.Timestamp("2026-06-03", tz="UTC")
    rng = np.random.default_rng(5)
    configured = serve_pipeline(mql={"tiers": TIERS}).mql.tiers
    names = np.array(["A", "B", "C", "unused", "unknown"], dtype=object)[rng.integers(0, 5, 400)]
    by_dict = [tier_actions(names[start:stop], as_of, configured) for start, stop in _slices(len(names))[::3]]
    monkeypatch.setattr(decisions, "SMALL_FACTORIZE", -1)
    by_pandas = [tier_actions(names[start:stop], as_of, configured) for start, stop in _slices(len(names))[::3]]
    for ours, theirs in zip(by_dict, by_pandas, strict=True):
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
        assert _texts(ours["next_action"]) == _texts(theirs["next_action"])
