"""The scoring job builds the next chunk's features in a thread (engineer C, issue 19): the same file and summary
as chunk by chunk in one thread, with reasons to the run's top cut or none, and an error in the thread ends the
job with that error, no file and no thread left."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadml.core.config import parse_pipeline
from leadml.core.errors import LeadDataError
from leadml.data.simulate import write_simulation
from leadml.jobs import score
from leadml.jobs.score import FeatureChunk, FeatureSource, ScoreOptions, score_batch
from leadml.jobs.train import run_training
from leadml.modeling.registry import scoring_model

AS_OF = "2026-03-01"
MODELS = {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 40}}


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple:
    """A small LightGBM scoring model and a pipeline of other simulated leads as Parquet tables."""
    config = parse_pipeline({"name": "ahead", "data": {"simulator": {"leads": 3000, "seed": 11}}, "models": MODELS})
    run = run_training(config, log=False, n_boot=10)
    folder = tmp_path_factory.mktemp("tables")
    write_simulation(folder, 2500, seed=12, chunk_size=500)
    data = {"source": "tables", "leads": str(folder / "leads.parquet"), "events": str(folder / "events.parquet")}
    tables = parse_pipeline({"name": "ahead", "data": data, "models": MODELS})
    return tables, scoring_model(run.result, run.trainset, config.mql.tiers)


def _in_one_thread(items):
    """``read_ahead`` without its thread: the chunks as the source makes them."""
    yield from items


@pytest.mark.parametrize("reasons", [False, True])
def test_chunks_built_ahead_make_the_same_file_and_summary(scored, tmp_path, monkeypatch, reasons):
    tables, scoring = scored
    options = ScoreOptions(reasons=reasons, chunk_leads=500, progress=False, history=False)
    ahead = score_batch(tables, AS_OF, tmp_path / "ahead.parquet", options, model_uri=scoring)
    monkeypatch.setattr(score, "read_ahead", _in_one_thread)
    plain = score_batch(tables, AS_OF, tmp_path / "plain.parquet", options, model_uri=scoring)
    assert ahead.chunks == plain.chunks > 1
    assert (tmp_path / "ahead.parquet").read_bytes() == (tmp_path / "plain.parquet").read_bytes()
    assert (ahead.rows, ahead.mql, ahead.tiers, ahead.out_of_range) == (plain.rows, plain.mql, plain.tiers,
                                                                         plain.out_of_range)  # fmt: skip


def test_an_error_building_a_chunk_ahead_ends_the_job_with_it(scored, tmp_path, monkeypatch):
    tables, scoring = scored
    made = score.feature_source

    def failing(*args, **kwargs) -> FeatureSource:
        source = made(*args, **kwargs)

        def chunks() -> Iterator[FeatureChunk]:
            try:
                yield next(source.chunks)
                raise LeadDataError("the second chunk cannot be read")
            finally:
                source.chunks.close()  # as the source's own generator ends on an error: its reader stops

        return FeatureSource(chunks(), source.total_leads, source.streamed, source.notes)

    monkeypatch.setattr(score, "feature_source", failing)
    out: Path = tmp_path / "s.parquet"
    with pytest.raises(LeadDataError, match="the second chunk cannot be read"):
        score_batch(tables, AS_OF, out, reasons=False, chunk_leads=500, progress=False, history=False,
                    model_uri=scoring)  # fmt: skip
    assert not out.exists()
    assert not [thread for thread in threading.enumerate() if thread.name == "leadml-read-ahead"]
