"""The pipeline config: shipped pipelines load; bad keys and values name the file and key path."""

from pathlib import Path

import pytest

from leadml.core.config import load_pipeline, parse_pipeline
from leadml.core.errors import ConfigError

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


@pytest.mark.parametrize(
    "name",
    ["demo.yaml", "x_education.yaml", "bank_marketing.yaml", "examples/hubspot.yaml", "examples/salesforce.yaml",
     "examples/pipedrive.yaml"],
)  # fmt: skip
def test_shipped_pipelines_load(name):
    config = load_pipeline(PIPELINES / name)
    assert config.name == Path(name).stem


def test_relative_paths_resolve_against_the_file(tmp_path):
    (tmp_path / "rules").mkdir()
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nrules: rules/r.yaml\ndata: {source: tables, leads: l.csv, events: e.csv}\n")
    config = load_pipeline(path)
    assert config.rules == (tmp_path / "rules" / "r.yaml").resolve()
    assert config.data.leads is not None and config.data.leads.path == (tmp_path / "l.csv").resolve()


def test_a_table_is_a_path_or_a_mapping_whose_keys_win_over_the_shared_ones(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\n"
        "data:\n"
        "  source: tables\n"
        "  columns: {lead_id: Lead ID, timestamp: When}\n"
        "  csv_separator: ';'\n"
        "  encoding: latin-1\n"
        "  timestamp_format: '%d/%m/%Y %H:%M'\n"
        "  leads: exports/leads.csv\n"
        "  events: {path: exports/tasks.csv, columns: {lead_id: Who}, timestamp_format: epoch_ms, encoding: cp1252}\n"
        "  outcomes:\n"
        "    path: /data/deals.csv\n"
        "    columns: {outcome: Stage}\n"
        "    won: closedwon\n"
        "    lost: [closedlost, 0]\n"
    )
    data = load_pipeline(path).data
    assert data.leads is not None and data.leads.path == (tmp_path / "exports" / "leads.csv").resolve()
    assert data.leads.columns == {} and data.leads.csv_separator is None  # as written
    leads, events, outcomes = data.table("leads"), data.table("events"), data.table("outcomes")
    assert leads is not None and events is not None and outcomes is not None
    assert leads.columns == {"lead_id": "Lead ID", "timestamp": "When"}
    assert (leads.csv_separator, leads.encoding, leads.timestamp_format) == (";", "latin-1", "%d/%m/%Y %H:%M")
    assert events.path == (tmp_path / "exports" / "tasks.csv").resolve()
    assert events.columns == {"lead_id": "Who", "timestamp": "When"}  # the table's map merges over data.columns
    assert (events.csv_separator, events.encoding, events.timestamp_format) == (";", "cp1252", "epoch_ms")
    assert outcomes.path == Path("/data/deals.csv")
    assert (outcomes.won, outcomes.lost, outcomes.open) == (["closedwon"], ["closedlost", "0"], None)
    assert outcomes.reading() == {"separator": ";", "encoding": "latin-1", "timestamp_format": "%d/%m/%Y %H:%M"}
    assert data.on_early_outcomes == "drop" and data.table("leads") == leads
    assert data.reshaping_keys() == ["data.columns", "data.timestamp_format", "data.events.columns",
                                     "data.events.timestamp_format", "data.outcomes.columns", "data.outcomes.won",
                                     "data.outcomes.lost"]  # fmt: skip


def test_events_are_optional_and_a_pipeline_without_reshaping_streams():
    data = parse_pipeline({"name": "p", "data": {"source": "tables", "leads": "l.parquet"}}).data
    assert data.events is None and data.table("events") is None and data.outcomes is None
    assert data.reshaping_keys() == []


def test_overriding_a_table_path_keeps_its_settings(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ndata: {source: tables, leads: {path: a.csv, columns: {lead_id: Record ID}}}\n")
    config = load_pipeline(path)
    moved = config.with_overrides({"data.leads.path": "june/contacts.csv"})
    assert moved.data.leads is not None and moved.data.leads.path == (tmp_path / "june" / "contacts.csv").resolve()
    assert moved.data.leads.columns == {"lead_id": "Record ID"}
    replaced = config.with_overrides({"data.leads": "b.csv"})  # a path alone: the table as it is, no settings
    assert replaced.data.leads is not None and replaced.data.leads.columns == {}
    assert replaced.data.leads.path == (tmp_path / "b.csv").resolve()


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
        ({"name": "p", "data": {"source": "tables", "events": "e.csv"}}, r"source 'tables' needs data\.leads \("),
        (
            {"name": "p", "data": {"source": "tables", "leads": {"path": "l.csv", "colums": {}}}},
            r"data\.leads\.colums is not a known key; did you mean columns\?",
        ),
        (
            {"name": "p", "data": {"source": "tables", "leads": "l.csv", "outcomes": {"path": "o.csv", "wn": []}}},
            r"data\.outcomes\.wn is not a known key; did you mean won\?",
        ),
        ({"name": "p", "data": {"source": "tables", "leads": {"columns": {}}}}, r"data\.leads\.path is required"),
        (
            {"name": "p", "data": {"source": "tables", "leads": 3}},
            r"data\.leads: Value error, give the table's path, or a mapping with its path and how to read it",
        ),
        (
            {"name": "p", "data": {"encoding": "latin-9"}},
            r"data\.encoding: Value error, unknown encoding 'latin-9'; e\.g\. utf-8, latin-1, cp1252",
        ),
        (
            {"name": "p", "data": {"source": "tables", "leads": {"path": "l.csv", "timestamp_format": "dd/mm/yyyy"}}},
            r"data\.leads\.timestamp_format: Value error, timestamp_format 'dd/mm/yyyy' is neither a strftime format",
        ),
        (
            {
                "name": "p",
                "data": {
                    "source": "tables",
                    "leads": "l.csv",
                    "outcomes": {"path": "o.csv", "won": ["Closed Won"], "open": "Closed Won"},
                },
            },
            r"data\.outcomes: Value error, outcome value\(s\) 'Closed Won' are in both won and open",
        ),  # fmt: skip
        (
            {"name": "p", "data": {"on_early_outcomes": "keep"}},
            r"data\.on_early_outcomes: Input should be 'error' or 'drop'",
        ),
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


def test_tables_named_without_a_source_are_read_never_replaced_by_the_simulator():
    from leadml.core.config import parse_pipeline
    from leadml.core.errors import ConfigError

    assert parse_pipeline({"name": "x", "data": {"leads": "l.csv", "outcomes": "o.csv"}}).data.source == "tables"
    assert parse_pipeline({"name": "x", "data": {"flat": "f.csv", "label": "won"}}).data.source == "flat"
    assert parse_pipeline({"name": "x"}).data.source == "simulator"
    with pytest.raises(ConfigError, match=r"source 'simulator' makes its own data, but data.leads is given"):
        parse_pipeline({"name": "x", "data": {"source": "simulator", "leads": "l.csv"}})
