"""The pipeline config: shipped pipelines load; bad keys and values name the file and key path."""

from pathlib import Path

import pytest

from leadml.core.config import load_pipeline, parse_pipeline
from leadml.core.errors import ConfigError

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


@pytest.mark.parametrize("name", ["demo.yaml", "x_education.yaml", "bank_marketing.yaml"])
def test_shipped_pipelines_load(name):
    config = load_pipeline(PIPELINES / name)
    assert config.name == name.removesuffix(".yaml")


def test_relative_paths_resolve_against_the_file(tmp_path):
    (tmp_path / "rules").mkdir()
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nrules: rules/r.yaml\ndata: {source: tables, leads: l.csv, events: e.csv}\n")
    config = load_pipeline(path)
    assert config.rules == (tmp_path / "rules" / "r.yaml").resolve()
    assert config.data.leads == (tmp_path / "l.csv").resolve()


def test_demo_pipeline_settings():
    config = load_pipeline(PIPELINES / "demo.yaml")
    assert (config.snapshots.policy, config.snapshots.every_days) == ("every_days", 30)  # leads of every age
    assert [(t.name, t.min, t.within_hours) for t in config.mql.tiers] == [
        ("MQL", "mql", 24),
        ("nurture", 0.1, 72),
        ("unqualified", None, None),
    ]
    assert config.features.windows == [7, 30, 90]
    assert config.features.attribute_counts["page_view"]["page"][0] == "pricing"
    assert config.rules.name == "seed_points.yaml"
    assert not config.is_flat
    assert load_pipeline(PIPELINES / "x_education.yaml").is_flat


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {"name": "p", "models": {"lightgbm": {"num_leafs": 3}}},
            r"models\.lightgbm\.num_leafs is not a known key; did you mean num_leaves\?",
        ),
        ({"name": "p", "snapshots": {"polcy": "fixed"}}, r"snapshots\.polcy is not a known key; did you mean policy\?"),
        ({"name": "p", "snapshots": {"policy": "fixed"}}, r"policy 'fixed' needs snapshots\.as_of"),
        ({"name": "p", "snapshots": {"horizon_days": 0}}, r"snapshots\.horizon_days: Input should be greater than 0"),
        ({"name": "p", "mql": {"policy": "capacity"}}, r"needs mql\.capacity_per_week"),
        ({"name": "p", "data": {"source": "flat"}}, r"source 'flat' needs data\.flat and data\.label"),
        ({"name": "p", "data": {"source": "tables", "leads": "l.csv"}}, r"needs data\.leads and data\.events"),
        ({"nme": "p"}, r"name is required"),
    ],
)
def test_bad_config_names_file_and_key(raw, message):
    with pytest.raises(ConfigError, match=r"p\.yaml: .*" + message):
        parse_pipeline(raw, source="p.yaml")


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_pipeline(tmp_path / "none.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty.yaml: the pipeline file is empty"):
        load_pipeline(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_pipeline(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_pipeline(listing)


@pytest.mark.parametrize("name", ["demo", "x_education", "bank_marketing"])
def test_no_overrides_give_the_same_config(name):
    config = load_pipeline(PIPELINES / f"{name}.yaml")
    assert config.with_overrides({}) == config


def test_overrides_are_validated_as_the_yaml_would_be(tmp_path):
    (tmp_path / "p.yaml").write_text("name: p\nmlflow:\n  promote_metric: roc_auc\n")
    config = load_pipeline(tmp_path / "p.yaml")
    changed = config.with_overrides({"mlflow.promote_margin": 0.02, "models.lightgbm.n_estimators": 50,
                                     "history.path": "scores/history"})  # fmt: skip
    assert changed.mlflow.promote_margin == 0.02 and changed.mlflow.promote_metric == "roc_auc"
    assert changed.models.lightgbm.n_estimators == 50 and config.models.lightgbm.n_estimators != 50
    assert changed.history.path == tmp_path / "scores" / "history"  # relative to the file, as in the file
    with pytest.raises(
        ConfigError, match=r"p.yaml: mlflow.promote_margn is not a known key; did you mean promote_margin"
    ):
        config.with_overrides({"mlflow.promote_margn": 0.1})
    with pytest.raises(ConfigError, match=r"mlflow.promote_margin: Input should be greater than or equal to 0"):
        config.with_overrides({"mlflow.promote_margin": -0.1})
    with pytest.raises(ConfigError, match="override 'name.first': name is a value, not a section"):
        config.with_overrides({"name.first": "x"})


def test_quiet_silences_the_pickle_reminder_but_not_warnings():
    import logging

    import leadml

    leadml.quiet()
    leadml.quiet()  # twice: one filter
    pyfunc = logging.getLogger("mlflow.pyfunc")

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("mlflow.pyfunc", logging.WARNING, __file__, 1, message, None, None)

    assert not pyfunc.filter(record("Passing a Python object ... serialized using CloudPickle ..."))
    assert pyfunc.filter(record("Failed to load the model"))
    assert sum(f.__name__ == "_not_the_pickle_reminder" for f in pyfunc.filters) == 1
    assert logging.getLogger("alembic").getEffectiveLevel() == logging.WARNING


def test_resolved_dict_is_plain_data():
    resolved = parse_pipeline({"name": "p"}).resolved_dict()
    assert resolved["snapshots"]["horizon_days"] == 120
    assert "source_path" not in resolved


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from leadml.rules.ruleset import RuleSet  # noqa: E402

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.sampled_from(["fixed", "simulator", "capacity", "won", "pricing"]),
)
_keys = st.sampled_from(
    [
        "name",
        "data",
        "source",
        "snapshots",
        "policy",
        "horizon_days",
        "as_of",
        "features",
        "windows",
        "models",
        "lightgbm",
        "num_leaves",
        "mql",
        "capacity_per_week",
        "tiers",
        "rules",
        "event",
        "points",
        "field",
        "equals",
        "min_count",
        "decay",
        "half_life_days",
        "min",
        "per_event",
        "cap",
        "where",
        "zzz",
    ]
)
_trees = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(_keys, children, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.dictionaries(_keys, _trees, max_size=6))
def test_fuzzed_pipelines_load_or_raise_config_error(raw):
    try:
        config = parse_pipeline(raw, source="fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml")
    else:
        assert config.name == raw["name"] or str(config.name) == str(raw["name"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.dictionaries(_keys, _trees, max_size=5))
def test_fuzzed_rules_files_load_or_raise_config_error(raw):
    try:
        RuleSet.from_dict(raw, source="rules.yaml")
    except ConfigError as exc:
        assert "rules.yaml" in str(exc)
