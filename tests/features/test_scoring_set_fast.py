"""`features_at` (derived fields once, event types from one event of each, pruned event columns)
gives the frame the builder's own fit and transform give, bit for bit.

The reference is the former path: ``FeatureBuilder.fit`` on the same rows and ``transform`` on the
pipeline's leads and events as loaded. Cases: simulated data with and without outcomes, and
hand-made tables with orphans, events at and after as_of, ties, placeholders and missing profile
values, leads created after as_of, CSV files with ``;`` and Latin-1.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leadml.core.config import load_pipeline
from leadml.data.sources import load_pipeline_data
from leadml.features.build import FeatureBuilder, make_snapshots
from leadml.features.scoring_set import derived_once, features_at, one_event_per_type, open_lead_snapshots
from leadml.features.snapshots import to_utc


def reference_features(pipeline: Path, as_of: str) -> pd.DataFrame:
    """The frame the former `features_at` returned: the builder's own fit and transform."""
    config = load_pipeline(pipeline)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_pipeline_data(config.data, need_outcomes=False)
    snapshots = open_lead_snapshots(data, to_utc(as_of))
    rows = snapshots
    if data.outcomes is not None and len(data.outcomes):
        made = make_snapshots(config, data)
        train = made.loc[(made["split"] == "train").to_numpy()]
        rows = train if len(train) else snapshots
    builder = FeatureBuilder(config.features, config.profile).fit(rows, data.leads, data.events)
    return pd.concat([snapshots, builder.transform(snapshots, data.leads, data.events)], axis=1)


def fast_features(pipeline: Path, as_of: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return features_at(pipeline, None, None, to_utc(as_of))


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    for column in expected.columns:
        if isinstance(expected[column].dtype, pd.CategoricalDtype):
            assert list(got[column].cat.categories) == list(expected[column].cat.categories), column


def write_pipeline(folder: Path, data: dict, features: dict | None = None) -> Path:
    path = folder / "pipeline.yaml"
    body: dict = {"name": "fast", "data": {"source": "tables", **data}}
    if features:
        body["features"] = features
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    from leadml.data.simulate import write_simulation

    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, 3000, seed=11)
    return folder


@pytest.mark.parametrize("with_outcomes", [False, True])
@pytest.mark.parametrize("as_of", ["2025-09-01", "2026-07-01"])
def test_simulated_features_equal_the_builder_path(simulated: Path, tmp_path: Path, with_outcomes, as_of) -> None:
    data = {"leads": str(simulated / "leads.parquet"), "events": str(simulated / "events.parquet")}
    if with_outcomes:
        data["outcomes"] = str(simulated / "outcomes.parquet")
    features = {"attribute_counts": {"page_view": {"page": ["pricing", "blog"]}}, "event_values": {}}
    pipeline = write_pipeline(tmp_path, data, features)
    assert_same(fast_features(pipeline, as_of), reference_features(pipeline, as_of))


def hand_made(folder: Path, fmt: str) -> dict:
    """Leads and events with the edge cases; ``fmt``: parquet, or csv (``;`` and Latin-1)."""
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5", "L6", "L7"],
            "created_at": [
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
                "2026-01-03T00:00:00Z",
                "2026-01-04T00:00:00Z",
                "2026-02-01T00:00:00Z",
                "2026-03-05T00:00:00Z",  # created after as_of: left out
                "2026-01-05T00:00:00Z",
            ],
            "job_title": ["VP Sales", "  Head of Marketing ", None, "MSc student", "Ingénieur", "CEO", "n/a"],
            "industry": ["Software", " software ", "Select", None, "Énergie", "Retail", "UNKNOWN"],
            "country": ["FR", "fr", "DE", "", "FR", "US", "DE"],
            "email_domain": ["acme.io", "gmail.com", None, "ann@web.de", "", "x.com", "gmail.com"],
            "budget": [10.0, np.nan, 3.5, 0.0, np.nan, 1.0, 2.0],
        }
    )
    when = pd.Timestamp("2026-03-01T00:00:00Z")
    events = pd.DataFrame(
        {
            "lead_id": ["L1", "L1", "L1", "L2", "L2", "L3", "L9", "L4", "L4", "L5", "L7"],
            "timestamp": [
                "2026-02-01T10:00:00Z",
                "2026-02-01T10:00:00Z",  # a tie
                "2026-03-01T00:00:00Z",  # at as_of: the future
                "2026-02-27T00:00:00Z",
                "2026-03-02T00:00:00Z",  # after as_of
                "2026-01-02T00:00:00Z",  # before the lead was created (kept, counted)
                "2026-02-01T00:00:00Z",  # an orphan (dropped)
                "2026-02-15T00:00:00Z",
                "2026-02-16T00:00:00Z",
                "2026-02-20T00:00:00Z",
                "2026-02-28T23:59:59Z",
            ],
            "event_type": [
                "page_view",
                " page_view",
                "form",
                "email_open",
                "page_view",
                "form",
                "page_view",
                "webinar ",
                "page_view",
                "email_open",
                "form",
            ],
            "page": ["pricing", "blog", None, None, "pricing", None, "pricing", None, "café", None, None],
        }
    )
    assert when > pd.Timestamp("2026-02-28T00:00:00Z")
    if fmt == "parquet":
        leads.to_parquet(folder / "leads.parquet", index=False)
        events.to_parquet(folder / "events.parquet", index=False)
        return {"leads": str(folder / "leads.parquet"), "events": str(folder / "events.parquet")}
    leads.to_csv(folder / "leads.csv", index=False, sep=";", encoding="latin-1")
    events.to_csv(folder / "events.csv", index=False, sep=";", encoding="latin-1")
    return {
        "leads": {"path": str(folder / "leads.csv"), "encoding": "latin-1"},
        "events": {"path": str(folder / "events.csv"), "encoding": "latin-1"},
        "csv_separator": ";",
    }


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("features", [None, {"attribute_counts": {"page_view": {"page": ["pricing", "café"]}}}])
def test_hand_made_features_equal_the_builder_path(tmp_path: Path, fmt: str, features: dict | None) -> None:
    data = {**hand_made(tmp_path, fmt), "on_orphans": "drop"}
    pipeline = write_pipeline(tmp_path, data, features)
    got, expected = fast_features(pipeline, "2026-03-01"), reference_features(pipeline, "2026-03-01")
    assert_same(got, expected)
    assert "L6" not in set(got["lead_id"])  # created after as_of


def test_orphans_still_refused_without_drop(tmp_path: Path) -> None:
    from leadml.core.errors import LeadDataError

    pipeline = write_pipeline(tmp_path, hand_made(tmp_path, "parquet"))
    with pytest.raises(LeadDataError, match="1 events of unknown leads"):
        fast_features(pipeline, "2026-03-01")


def test_derived_once_equals_add_derived_fields() -> None:
    from leadml.features.profile import add_derived_fields

    leads = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(8)],
            "job_title": pd.Series(["VP Sales", None, "cto", "VP Sales", "x", "MSc student", None, "cto"], dtype="str"),
            "job_level": pd.Categorical([None, "manager", None, "vp", None, None, None, "c_level"]),
            "email_domain": pd.Series(["a@gmail.com", "acme.io", "", None, "GMAIL.COM", "b.de", "x", "y"], dtype="str"),
        }
    )
    expected = add_derived_fields(leads).drop(columns=["job_title", "email_domain"])
    pd.testing.assert_frame_equal(derived_once(None, leads), expected, check_exact=True)


def test_one_event_per_type_keeps_every_type_and_column() -> None:
    events = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "event_type": pd.Categorical(["x", "y", "x", "z"], categories=["w", "x", "y", "z"]),
            "page": ["p", None, "q", "r"],
        }
    )
    few = one_event_per_type(events)
    assert few is not None and few["lead_id"].tolist() == ["a", "b", "d"]
    assert few.dtypes.equals(events.dtypes)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_leads_and_events_files_without_a_pipeline_equal_the_builder_path(tmp_path: Path, fmt: str) -> None:
    from leadml.data import contract

    paths = hand_made(tmp_path, fmt)
    leads_path, events_path = (paths[name] if fmt == "parquet" else paths[name]["path"] for name in ("leads", "events"))
    if fmt == "csv":  # the command line reads CSV with the defaults: write them so
        for path in (leads_path, events_path):
            Path(path).write_text(Path(path).read_text(encoding="latin-1").replace(";", ","), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = features_at(None, leads_path, events_path, to_utc("2026-03-01"), drop_orphans=True)
        leads = contract.load_leads(leads_path)
        events = contract.load_events(events_path, leads=leads, on_orphans="drop")
    from leadml.data.sources import PipelineData

    snapshots = open_lead_snapshots(PipelineData(leads=leads, events=events), to_utc("2026-03-01"))
    builder = FeatureBuilder().fit(snapshots, leads, events)
    assert_same(got, pd.concat([snapshots, builder.transform(snapshots, leads, events)], axis=1))
