"""Promotion: the challenger takes champion only when the 95 % paired interval of its gain clears the margin."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient
from test_train import config, make_trainset

from leadml.modeling.promotion import ChampionComparison, promotion_verdict
from leadml.modeling.registry import CHALLENGER, CHAMPION, log_training, promote_version
from leadml.modeling.train import train_models


def _comparison(gain: float, low: float, high: float) -> ChampionComparison:
    return ChampionComparison("pr_auc", 0.40 + gain, 0.40, low, high, 0.8, 880)


def test_the_interval_rule_promotes_only_an_interval_wholly_above_the_margin():
    assert promotion_verdict(_comparison(0.012, -0.004, 0.029)) == (
        False,
        "kept the champion: the gain +0.0120 has a 95 % paired interval [-0.0040, +0.0290] that includes 0",
    )
    assert promotion_verdict(_comparison(0.04, 0.01, 0.07)) == (
        True,
        "the gain +0.0400 has a 95 % paired interval [+0.0100, +0.0700] wholly above 0",
    )
    worse = promotion_verdict(_comparison(-0.04, -0.07, -0.01))
    assert not worse[0] and worse[1].endswith("[-0.0700, -0.0100] wholly below 0")
    # the margin is what the interval must clear, not the gain
    assert promotion_verdict(_comparison(0.04, 0.01, 0.07), margin=0.02)[1].endswith("that includes the margin 0.02")
    assert promotion_verdict(_comparison(0.04, 0.03, 0.07), margin=0.02)[0]
    assert promotion_verdict(_comparison(0.01, 0.005, 0.015), margin=0.02)[1].endswith("wholly below 0.02")
    # an interval that only touches the margin does not lie above it
    assert not promotion_verdict(_comparison(0.03, 0.0, 0.06))[0]


def test_the_point_rule_promotes_on_the_gain_alone_and_nan_never_promotes():
    uncertain = _comparison(0.012, -0.004, 0.029)
    promoted, why = promotion_verdict(uncertain, rule="point")
    assert promoted and why.startswith("the gain +0.0120 is above 0 (mlflow.promote_rule: point")
    kept = promotion_verdict(uncertain, margin=0.02, rule="point")
    assert kept == (False, "kept the champion: the gain +0.0120 is not above 0.02 (mlflow.promote_rule: point; "
                           "its 95 % paired interval [-0.0040, +0.0290])")  # fmt: skip
    for rule in ("interval", "point"):
        assert not promotion_verdict(_comparison(np.nan, np.nan, np.nan), rule=rule)[0]
    assert not promotion_verdict(_comparison(0.05, np.nan, np.nan))[0]  # no interval: nothing to clear
    with pytest.raises(ValueError, match="promote_rule must be 'interval' or 'point', got 'gain'"):
        promotion_verdict(uncertain, rule="gain")  # type: ignore[arg-type]


# -- real trainings, logged and registered ------------------------------------------------------
@pytest.fixture(scope="module")
def strong():
    trainset, points, _ = make_trainset(4000, seed=5)
    return trainset, train_models(config(), trainset, points, n_boot=100)


@pytest.fixture(scope="module")
def cautious():
    """The same data with a logistic model penalised hard (C=0.01): a little worse, not clearly."""
    trainset, points, _ = make_trainset(4000, seed=5)
    return trainset, train_models(config(logistic={"C": 0.01}), trainset, points, n_boot=100)


@pytest.fixture(scope="module")
def weak():
    trainset, _, _ = make_trainset(4000, seed=5, columns=["industry"])
    return trainset, train_models(config(mql={}), trainset, None, n_boot=100)  # industry alone: clearly worse


def _config(rule: str, margin: float = 0.0):
    base = config()
    return base.model_copy(update={"mlflow": base.mlflow.model_copy(update={"promote_rule": rule,
                                                                             "promote_margin": margin})})  # fmt: skip


def _aliases() -> dict[str, str]:
    return {alias: str(version) for alias, version in MlflowClient().get_registered_model("leadml").aliases.items()}


def test_a_small_uncertain_gain_keeps_the_champion_under_interval_and_takes_it_under_point(strong, cautious):
    first = log_training(_config("interval"), *cautious)
    assert first.promoted and "first champion" in first.reason  # no champion yet: unchanged by the rule

    uncertain = log_training(_config("interval"), *strong)
    gain = uncertain.comparison
    assert gain.gain > 0 >= gain.gain_low, gain.text()  # better on these test rows, but not surely
    assert not uncertain.promoted and _aliases() == {CHAMPION: "1", CHALLENGER: "2"}
    assert uncertain.reason.startswith("version 2 does not beat champion version 1 on pr_auc; kept the champion: ")
    assert (f"the gain {gain.gain:+.4f} has a 95 % paired interval [{gain.gain_low:+.4f}, {gain.gain_high:+.4f}] "
            "that includes 0 (") in uncertain.reason  # fmt: skip
    assert f"on the same {gain.n_rows:,} test snapshots, better in" in uncertain.reason
    run = MlflowClient().get_run(uncertain.run_id)
    assert run.data.tags["leadml.promoted"] == "False" and run.data.tags["leadml.promotion"] == uncertain.reason
    assert run.data.metrics["champion.pr_auc.gain_low"] == pytest.approx(gain.gain_low)

    point = log_training(_config("point"), *strong)
    assert point.promoted and point.comparison.gain == pytest.approx(gain.gain)
    assert "beats champion version 1 on pr_auc; the gain" in point.reason and "promote_rule: point" in point.reason
    assert _aliases() == {CHAMPION: "3", CHALLENGER: "3"}


def test_a_clearly_better_challenger_takes_champion_under_both_rules(strong, weak):
    assert log_training(_config("interval"), *weak).promoted
    clear = log_training(_config("interval"), *strong)
    assert clear.promoted and clear.comparison.gain_low > 0, clear.reason
    assert clear.reason.startswith("version 2 beats champion version 1 on pr_auc; the gain ")
    assert clear.reason.endswith("of resamples)") and "wholly above 0 (" in clear.reason
    assert _aliases() == {CHAMPION: "2", CHALLENGER: "2"}

    promote_version(_config("point"), 1)  # the weak model is champion again
    assert log_training(_config("point"), *strong).promoted and _aliases()[CHAMPION] == "3"

    # a margin above the interval's low end keeps the champion under interval, not under point
    promote_version(_config("point"), 1)
    margin = round(clear.comparison.gain_low + 0.002, 3)
    assert margin < clear.comparison.gain
    within = log_training(_config("interval", margin), *strong)
    assert not within.promoted and f"that includes the margin {margin:g} (" in within.reason
    assert f"does not beat champion version 1 on pr_auc by more than {margin:g}; kept the champion" in within.reason
    assert log_training(_config("point", margin), *strong).promoted
