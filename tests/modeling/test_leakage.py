"""The leakage guard: what it flags on hand-made data, on the real data sets, and that train stops."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import load_pipeline, parse_pipeline
from leadml.features.build import build_trainset
from leadml.modeling.leakage import (
    LeakageError,
    certain_share,
    check_leakage,
    find_leakage,
    judge_leakage,
    missing_decides,
)
from tests.conftest import datasets_dir_or_skip

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def _data(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    status = np.where(
        y == 1,
        rng.choice(["closed won", "will revert", "call back"], n, p=[0.5, 0.3, 0.2]),
        rng.choice(["ringing", "no interest", "call back"], n, p=[0.5, 0.3, 0.2]),
    )
    return y, pd.DataFrame(
        {
            "visits": rng.poisson(2 + y, n).astype(float),  # honest signal
            "noise_id": pd.Categorical([f"page{i}" for i in rng.integers(0, 500, n)]),
            "sales_status": pd.Categorical(status),
            "call_seconds": np.where(y == 1, rng.gamma(5, 60, n), rng.gamma(1.5, 40, n)),
            "deal_size": np.where(y == 1, rng.normal(1000, 100, n), np.nan),
        }
    )


def test_flags_post_outcome_columns_and_not_honest_ones():
    y, features = _data()
    findings = {f.feature: f for f in find_leakage(features, y)}
    assert set(findings) == {"sales_status", "call_seconds", "deal_size"}
    assert findings["sales_status"].certain_share >= 0.5
    assert findings["deal_size"].missing_decides
    assert any("ROC-AUC" in r for r in findings["call_seconds"].reasons)


def test_many_levels_do_not_look_predictive_out_of_fold():
    y, features = _data(seed=1)
    assert find_leakage(features[["noise_id"]], y) == []


def test_missing_decides_needs_both_classes_and_a_clean_split():
    y = np.array([1, 1, 0, 0], dtype=float)
    assert missing_decides(pd.Series([1.0, 2.0, np.nan, np.nan]), y)
    assert missing_decides(pd.Series([np.nan, np.nan, 3.0, 4.0]), y)
    assert not missing_decides(pd.Series([1.0, np.nan, np.nan, np.nan]), y)
    assert not missing_decides(pd.Series([1.0, 2.0, 3.0, 4.0]), y)


def _separated(positives: int, negatives: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Hand-made rows: ``perfect`` is 1 exactly for the positives, ``filled_after`` is given only for them."""
    y = np.r_[np.ones(positives), np.zeros(negatives)]
    features = pd.DataFrame({
        "perfect": y.copy(),
        "filled_after": np.where(y == 1, np.arange(len(y), dtype=float), np.nan),
        "honest": np.arange(len(y), dtype=float) % 7,
    })  # fmt: skip
    return y, features


@pytest.mark.parametrize(
    ("positives", "negatives", "accused"),
    [
        (3, 200, []),  # 3 conversions: a column that separates them is chance, not a leak
        (29, 600, []),  # one short of the default support of 30
        (200, 29, []),  # the support holds for the rarer class whichever it is
        (30, 600, ["perfect", "filled_after"]),  # exactly the support: judged
        (60, 600, ["perfect", "filled_after"]),
    ],
)
def test_a_column_is_accused_only_with_enough_leads_of_each_class(positives, negatives, accused):
    y, features = _separated(positives, negatives)
    report = judge_leakage(features, y)
    assert sorted(f.feature for f in report.findings) == sorted(accused)
    assert (report.positives, report.negatives) == (positives, negatives)
    if accused:
        assert report.unjudged == () and report.note == ""
        findings = {f.feature: f for f in report.findings}
        assert findings["perfect"].auc == 1.0 and findings["filled_after"].missing_decides
    else:
        assert report.unjudged == ("perfect", "filled_after", "honest")
        assert report.note == (
            "leakage guard: could not judge 3 columns for lack of support (the training rows hold "
            f"{positives} positives and {negatives} negatives; judging needs leakage.min_class_support (30) "
            "of each): perfect, filled_after, honest"
        )
    assert find_leakage(features, y) == report.findings


def test_60_positives_and_600_negatives_accuse_by_every_sign():
    y, features = _separated(60, 600)
    findings = {f.feature: f for f in find_leakage(features, y)}
    assert findings["perfect"].certain_share == 1.0  # both levels near-certain: 60 positives, 600 negatives
    assert len(findings["perfect"].reasons) == 2
    assert findings["filled_after"].reasons[-1] == "missing exactly when the lead did not convert (or the reverse)"


def test_near_certain_levels_count_only_with_enough_leads_of_their_class():
    """200 positives and 2000 negatives; level 'x' holds 50 positives and nothing else: 50/2200 = 2.3 % of rows
    are near-certain, which accuses at a 2 % limit only when 50 positives are support enough."""
    y = np.r_[np.ones(200), np.zeros(2000)]
    level = np.where(np.arange(len(y)) < 50, "x", "y")
    features = pd.DataFrame({"stage": pd.Categorical(level)})
    codes = pd.factorize(features["stage"].astype(str))[0]
    assert certain_share(codes, y) == pytest.approx(50 / 2200)
    assert certain_share(codes, y, min_class_support=50) == pytest.approx(50 / 2200)
    assert certain_share(codes, y, min_class_support=51) == 0.0
    judged = judge_leakage(features, y, max_certain_share=0.02, min_class_support=50)
    assert [f.feature for f in judged.findings] == ["stage"] and judged.unjudged == ()
    assert judged.findings[0].certain_share == pytest.approx(50 / 2200)
    short = judge_leakage(features, y, max_certain_share=0.02, min_class_support=100)
    assert short.findings == [] and short.unjudged == ("stage",)
    assert short.note == (
        "leakage guard: could not judge 1 column for lack of support (the rows that decide them hold fewer "
        "than 100 leads of a class): stage"
    )


def test_check_leakage_logs_what_it_could_not_judge(caplog):
    y, features = _separated(3, 200)
    rows = features.assign(converted=y, split="train")

    class TrainSet:
        feature_names = list(features.columns)
        feature_info = []

        def part(self, *names):
            return rows

    config = parse_pipeline({"name": "tiny"})
    with caplog.at_level(logging.WARNING, logger="leadml.modeling.leakage"):
        assert check_leakage(TrainSet(), config) == []
    assert caplog.messages == [
        "tiny: leakage guard: could not judge 3 columns for lack of support (the training rows hold 3 positives "
        "and 200 negatives; judging needs leakage.min_class_support (30) of each): perfect, filled_after, honest"
    ]
    raw = config.resolved_dict()
    raw["leakage"]["min_class_support"] = 3
    with pytest.raises(LeakageError, match="suspected leakage, training stopped: 'perfect'"):
        check_leakage(TrainSet(), parse_pipeline(raw))


def test_the_simulator_has_no_leak(small_sim):
    from leadml.data.sources import PipelineData

    data = PipelineData.from_simulation(small_sim)
    config = parse_pipeline({"name": "sim", "snapshots": {"horizon_days": 100}})
    assert check_leakage(build_trainset(config, data), config) == []


def _real(pipeline, monkeypatch, **profile):
    monkeypatch.setenv("LEADML_DATASETS", str(datasets_dir_or_skip()))
    raw = load_pipeline(PIPELINES / pipeline).resolved_dict()
    raw["profile"].update(profile)
    return parse_pipeline(raw, source=pipeline, base=PIPELINES)


@pytest.mark.realdata
@pytest.mark.parametrize(
    "pipeline, column",
    [
        ("x_education.yaml", "Tags"),
        ("x_education.yaml", "Lead Quality"),
        ("bank_marketing.yaml", "duration"),
    ],
)
def test_the_guard_stops_training_on_known_leaks(pipeline, column, monkeypatch):
    config = _real(pipeline, monkeypatch, allow_leaky=[column])
    trainset = build_trainset(config)
    with pytest.raises(
        LeakageError, match=rf"suspected leakage, training stopped: '{column}'.*leakage\.allow: \[{column}\]"
    ):
        check_leakage(trainset, config)
    raw = config.resolved_dict()
    raw["leakage"]["allow"] = [column]
    allowed = parse_pipeline(raw, source=pipeline, base=PIPELINES)
    assert [f.feature for f in check_leakage(trainset, allowed)] == [column]


@pytest.mark.realdata
@pytest.mark.parametrize("pipeline", ["x_education.yaml", "bank_marketing.yaml"])
def test_the_shipped_real_pipelines_pass_the_guard(pipeline, monkeypatch):
    config = _real(pipeline, monkeypatch)
    assert check_leakage(build_trainset(config), config) == []


@pytest.mark.realdata
def test_leadml_train_stops_and_names_tags(tmp_path, monkeypatch):
    import subprocess
    import sys

    import yaml

    monkeypatch.setenv("LEADML_DATASETS", str(datasets_dir_or_skip()))
    raw = yaml.safe_load((PIPELINES / "x_education.yaml").read_text())
    raw["profile"]["allow_leaky"] = ["Tags"]
    raw["data"]["datasets_dir"] = str(datasets_dir_or_skip())
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, "-m", "leadml.cli.app", "train", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "suspected leakage" in result.stderr and "'Tags'" in result.stderr
