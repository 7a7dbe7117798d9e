"""examples/spark_streaming.py on a real local Spark: streamed scores equal batch scores, exactly once, alerts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from leadml.core.config import parse_pipeline
from leadml.data.simulate import write_simulation
from leadml.jobs.score import score_batch
from tests.test_spark import spark  # noqa: F401  (the session fixture: skips without pyspark or Java)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
AS_OF = pd.Timestamp("2026-03-01", tz="UTC")
CUT = AS_OF - pd.Timedelta(days=10)  # streamed events before it come in the first file, the others in the second
MODELS = {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 40}}


def example():
    """The example script as a module (``examples/`` is no package)."""
    spec = importlib.util.spec_from_file_location("spark_streaming", REPO / "examples" / "spark_streaming.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tables_pipeline(folder: Path, events: Path) -> dict:
    return {"name": "stream", "models": MODELS, "data": {"source": "tables", "leads": str(folder / "leads.parquet"),
                                                         "events": str(events), "outcomes": str(folder / "outcomes.parquet")}}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A model folder (LightGBM on 2,000 simulated leads), other simulated tables, and the events split into
    the stored history and two files to stream: a few open leads' events before as_of (and one closed
    lead's), the early ones first."""
    import mlflow.pyfunc

    from leadml.jobs.train import run_training
    from leadml.modeling.registry import LeadmlPyfunc, scoring_model

    folder = tmp_path_factory.mktemp("stream_world")
    config = parse_pipeline({"name": "stream_model", "data": {"simulator": {"leads": 2000, "seed": 5}},
                             "models": MODELS})  # fmt: skip
    run = run_training(config, log=False, n_boot=10)
    mlflow.pyfunc.save_model(str(folder / "model"), python_model=LeadmlPyfunc(scoring_model(run.result, run.trainset,
                                                                                           config.mql.tiers)))  # fmt: skip
    write_simulation(folder, 1200, seed=21, chunk_size=600)
    events = pd.read_parquet(folder / "events.parquet")
    full = score(folder, folder / "events.parquet", folder / "full.parquet")
    ranked = full.sort_values("probability", ascending=False)["lead_id"].tolist()
    chosen = set(ranked[:14]) | set(ranked[-200::25])
    outcomes = pd.read_parquet(folder / "outcomes.parquet")
    closed = outcomes[outcomes["closed_at"] < CUT - pd.Timedelta(days=30)]["lead_id"]
    closed_lead = next(lead for lead in closed if ((events["lead_id"] == lead) & (events["timestamp"] < CUT)).any())
    streamed = events["lead_id"].isin(chosen | {closed_lead}) & (events["timestamp"] < AS_OF)
    first, second = events[streamed & (events["timestamp"] < CUT)], events[streamed & (events["timestamp"] >= CUT)]
    events[~streamed].to_parquet(folder / "history.parquet")
    pd.concat([events[~streamed], first]).to_parquet(folder / "after_first.parquet")
    return {"folder": folder, "first": first, "second": second, "closed": closed_lead, "full": full,
            "after_first": score(folder, folder / "after_first.parquet", folder / "after_first_scores.parquet")}  # fmt: skip


def score(folder: Path, events: Path, out: Path) -> pd.DataFrame:
    """``score_batch`` of the tables with these events at AS_OF: the definition the stream must meet."""
    config = parse_pipeline(tables_pipeline(folder, events))
    score_batch(config, AS_OF, out, model_uri=str(folder / "model"), reasons=False, history=False, progress=False)
    return pd.read_parquet(out)


def drop(frame: pd.DataFrame, incoming: Path, name: str) -> None:
    """Events as a JSON lines file moved into the watched folder (written beside it first)."""
    incoming.mkdir(exist_ok=True)
    temporary = incoming.parent / f".{name}"
    frame.to_json(temporary, orient="records", lines=True, date_format="iso")
    temporary.rename(incoming / name)


def run_stream(folder: Path, work: Path) -> None:
    """One ``--once`` run of the example script over the watched folder, as a user runs it."""
    (work / "stream.yaml").write_text(json.dumps(tables_pipeline(folder, folder / "history.parquet")))
    assert example().main([str(work / "stream.yaml"), "--model", str(folder / "model"), "--events-in",
                           str(work / "incoming"), "--out", str(work / "out"), "--once", "--as-of", AS_OF.isoformat(),
                           "--reasons", "mql"]) == 0  # fmt: skip


def table(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    frame[BATCH] = frame[BATCH].astype(int)
    return frame.sort_values([BATCH, "lead_id"]).reset_index(drop=True)


BATCH = "batch_id"


def expected_alerts(before: pd.DataFrame | None, after: pd.DataFrame) -> set[tuple]:
    """(lead, from tier, to tier) of the leads whose tier moved, as the server decides it."""
    previous = {} if before is None else dict(zip(before["lead_id"], before["tier"]))
    return {(lead, previous.get(lead), tier) for lead, tier, mql in zip(after["lead_id"], after["tier"], after["is_mql"])
            if (lead not in previous and mql) or (lead in previous and previous[lead] != tier)}  # fmt: skip


def test_streamed_scores_equal_batch_once_each_with_crossings(spark, world, tmp_path):  # noqa: F811
    folder, first, second = world["folder"], world["first"], world["second"]
    drop(first, tmp_path / "incoming", "first.json")
    run_stream(folder, tmp_path)
    drop(second, tmp_path / "incoming", "second.json")
    run_stream(folder, tmp_path)

    scores, alerts = table(tmp_path / "out" / "scores"), table(tmp_path / "out" / "alerts")
    assert sorted(scores[BATCH].unique()) == [0, 1]
    for batch, streamed, reference in ((0, first, world["after_first"]), (1, second, world["full"])):
        got = scores[scores[BATCH] == batch].set_index("lead_id")
        touched = set(streamed["lead_id"])
        want = reference[reference["lead_id"].isin(touched)].set_index("lead_id")
        assert set(got.index) == set(want.index)  # the touched leads that are open at as_of, and only those
        assert got.loc[want.index, "probability"].tolist() == want["probability"].tolist()  # exactly, bit for bit
        assert got.loc[want.index, "tier"].tolist() == want["tier"].tolist()
        assert (got["as_of"] == AS_OF).all()
    assert world["closed"] in set(first["lead_id"]) - set(scores["lead_id"])  # touched, closed: not scored
    untouched = set(world["full"]["lead_id"]) - set(first["lead_id"]) - set(second["lead_id"])
    assert untouched and not untouched & set(scores["lead_id"])

    first_scores = scores[scores[BATCH] == 0]
    want_first = expected_alerts(None, first_scores)
    want_second = expected_alerts(first_scores, scores[scores[BATCH] == 1])
    assert any(crossing[1] is not None for crossing in want_second)  # a lead the second file moved
    got = {batch: {(r.lead_id, None if pd.isna(r.from_tier) else r.from_tier, r.to_tier)
                   for r in alerts[alerts[BATCH] == batch].itertuples()} for batch in (0, 1)}  # fmt: skip
    assert got[0] == {(lead, None, tier) for lead, _, tier in want_first} and got[1] == want_second
    assert len(alerts) == len(want_first) + len(want_second)
    for row in alerts[alerts[BATCH] == 1].itertuples():
        since = json.loads(row.events_since)
        assert len(since) == int((second["lead_id"] == row.lead_id).sum())
        assert [e["timestamp"] for e in since] == sorted(e["timestamp"] for e in since)

    before = {name: len(table(tmp_path / "out" / name)) for name in ("events", "scores", "alerts")}
    run_stream(folder, tmp_path)  # the same checkpoint, no new file: nothing again
    assert {name: len(table(tmp_path / "out" / name)) for name in ("events", "scores", "alerts")} == before
    assert before["events"] == len(first) + len(second)
