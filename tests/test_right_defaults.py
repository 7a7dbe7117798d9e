"""Right answers by default (issue 18): a pipeline that names only its files trains and scores well.

Two hand-made exports, each given to leadml with no setting but its file paths:

- a sparse marketplace funnel (8,000 leads over a year, about 1 % won, within a 90-day horizon, most
  leads never closed): the defaults must train a learned model (not fall back to a cold start) and
  find a threshold that produces MQLs, both on validation and in the first scoring run;
- the HubSpot-shaped export of ``tests/test_crm_exports.py`` with its example pipeline: training
  snapshots and the first scoring run must look alike (at most 2 feature columns with PSI > 0.2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from leadml.cli.app import main
from leadml.core.config import load_pipeline
from leadml.data.io import read_output
from leadml.jobs.drift import drift_path

START = pd.Timestamp("2024-01-01", tz="UTC")
SOURCES = {"paid_search": 0.5, "organic": 0.4, "social": -0.6, "email": 0.1, "referral": 0.9, "display": -0.8}
SEGMENTS = {"health_beauty": 0.3, "car_accessories": -0.2, "home_decor": 0.0, "electronics": 0.5, "toys": -0.5}


def write_funnel(folder: Path, n_leads: int = 8000, seed: int = 5) -> Path:
    """A sparse funnel shaped like a marketplace's MQL -> closed-deal export, and its two-line pipeline.

    Leads arrive evenly over a year; a few web events each; about 1 % win within 90 days (from
    source, segment and engagement), a few are lost, and the rest stay open, as in the real export.
    """
    rng = np.random.default_rng(seed)
    created = START + pd.to_timedelta(np.sort(rng.uniform(0, 365, n_leads)), unit="D")
    source = rng.choice(list(SOURCES), n_leads)
    segment = rng.choice(list(SEGMENTS), n_leads)
    engaged = rng.gamma(1.0, 1.0, n_leads)
    odds = -5.6 + np.array([SOURCES[s] for s in source]) + np.array([SEGMENTS[s] for s in segment]) + 0.8 * engaged
    won = rng.uniform(size=n_leads) < 1 / (1 + np.exp(-odds))
    lost = ~won & (rng.uniform(size=n_leads) < 0.05)
    close_days = np.where(won, rng.gamma(2.0, 15.0, n_leads).clip(1, 85), rng.uniform(10, 200, n_leads))
    closed_at = created + pd.to_timedelta(close_days, unit="D")
    ids = [f"mql-{i:05d}" for i in range(n_leads)]
    leads = pd.DataFrame({"lead_id": ids, "created_at": created.strftime("%Y-%m-%d %H:%M:%S"),
                          "origin": source, "business_segment": segment})  # fmt: skip
    n_events = rng.poisson(1 + 2 * engaged)
    owner = np.repeat(np.arange(n_leads), n_events)
    horizon = np.where(won | lost, close_days, 200.0)[owner]
    at = created[owner] + pd.to_timedelta(rng.uniform(0, 1, len(owner)) * horizon, unit="D")
    kinds = rng.choice(["page_view", "email_open", "whatsapp_message", "catalog_download"], len(owner))
    events = pd.DataFrame({"lead_id": np.asarray(ids)[owner], "timestamp": at.strftime("%Y-%m-%d %H:%M:%S"),
                           "event_type": kinds})  # fmt: skip
    decided = won | lost
    outcomes = pd.DataFrame({"lead_id": np.asarray(ids)[decided], "outcome": won[decided].astype(int),
                             "closed_at": closed_at[decided].strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
    end = created.max()
    outcomes = outcomes.loc[pd.to_datetime(outcomes["closed_at"], utc=True) <= end]
    events = events.loc[pd.to_datetime(events["timestamp"], utc=True) <= end]
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("leads", leads), ("events", events), ("outcomes", outcomes)):
        frame.to_csv(folder / f"{name}.csv", index=False)
    pipeline = {"name": "funnel", "data": {"leads": "leads.csv", "events": "events.csv", "outcomes": "outcomes.csv"},
                "snapshots": {"horizon_days": 90}}  # fmt: skip
    path = folder / "funnel.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    return path


def _latest_run(tmp_path: Path) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], order_by=["start_time DESC"])
    assert runs, "training logged no run"
    return {"params": runs[0].data.params, "metrics": runs[0].data.metrics, "tags": runs[0].data.tags}


def test_a_sparse_funnel_trains_a_model_with_the_defaults_and_produces_mqls(tmp_path, capsys):
    pipeline = write_funnel(tmp_path / "funnel")
    config = load_pipeline(pipeline)
    assert config.snapshots.policy == "every_days" and config.mql.policy == "f1" and config.split.gap_days is None
    assert main(["train", str(pipeline)]) == 0
    run = _latest_run(tmp_path)
    assert run["tags"].get("leadml.cold_start", run["params"].get("cold_start")) in ("False", "false", None)
    chosen = run["params"].get("chosen_model") or run["tags"].get("leadml.chosen_model")
    assert chosen in ("logistic", "lightgbm"), f"the defaults fell back to {chosen}"
    assert main(["score", str(pipeline), "--as-of", "2024-12-30", "--out", str(tmp_path / "scores.csv")]) == 0
    scores = read_output(tmp_path / "scores.csv")
    assert 0 < int(scores["is_mql"].sum()) < len(scores) // 4


def _psi_over(table: pd.DataFrame, limit: float = 0.2) -> list[str]:
    features = table.loc[table["column"] != "probability"]
    return features.loc[features["psi"] > limit, "column"].tolist()


def test_a_hubspot_export_trains_on_the_population_it_scores(tmp_path):
    from tests.test_crm_exports import export, make_world

    pipeline = export("hubspot", tmp_path, make_world(n_leads=1500, seed=23))
    assert main(["train", str(pipeline)]) == 0
    as_of = "2024-10-01"
    out = tmp_path / "scores.csv"
    assert main(["score", str(pipeline), "--as-of", as_of, "--out", str(out)]) == 0
    drift = read_output(drift_path(out))
    assert len(drift) > 20  # every feature column was compared
    over = _psi_over(drift)
    assert len(over) <= 2, f"PSI > 0.2 between training and the first scoring run in {over}"


def _with_sql_stage(folder: Path, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add ``sql_at`` to the funnel: every won deal became SQL before it closed, and some open leads are
    SQL already (open deals, kept for their stage time). Returns the leads and the outcomes written."""
    rng = np.random.default_rng(seed)
    leads = pd.read_csv(folder / "leads.csv")
    outcomes = pd.read_csv(folder / "outcomes.csv")
    created = pd.to_datetime(leads.set_index("lead_id")["created_at"], utc=True)
    closed = pd.to_datetime(outcomes["closed_at"], utc=True)
    won = outcomes["outcome"] == 1
    start = created.loc[outcomes["lead_id"]].to_numpy()
    sql_at = pd.Series(start + (closed.to_numpy() - start) * 0.5).where(won.to_numpy())
    outcomes["sql_at"] = pd.to_datetime(sql_at, utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
    outcomes["outcome"] = np.where(won, "won", "lost")
    undecided = leads.loc[~leads["lead_id"].isin(outcomes["lead_id"])].sample(frac=0.05, random_state=seed)
    became = pd.to_datetime(undecided["created_at"], utc=True) + pd.to_timedelta(
        rng.uniform(5, 60, len(undecided)), unit="D"
    )
    open_rows = pd.DataFrame({"lead_id": undecided["lead_id"], "outcome": "open", "closed_at": "",
                              "sql_at": became.dt.strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
    outcomes = pd.concat([outcomes, open_rows], ignore_index=True)
    outcomes.to_csv(folder / "outcomes.csv", index=False)
    return leads, outcomes


def test_leads_past_the_target_stage_are_not_prospects_and_old_leads_are_marked(tmp_path):
    from leadml.jobs.score import ScoreOptions, score_batch

    pipeline = write_funnel(tmp_path / "sql", n_leads=3000, seed=9)
    leads, outcomes = _with_sql_stage(tmp_path / "sql")
    raw = yaml.safe_load(pipeline.read_text())
    raw["snapshots"] = {"horizon_days": 60, "target": "sql"}
    raw["data"]["outcomes"] = {"path": "outcomes.csv", "won": ["won"], "lost": ["lost"], "open": ["open"]}
    pipeline.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    assert main(["train", str(pipeline)]) == 0

    as_of = pd.Timestamp("2024-12-01", tz="UTC")
    summary = score_batch(load_pipeline(pipeline), as_of, tmp_path / "scores.parquet", ScoreOptions(progress=False))
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    created = pd.to_datetime(leads["created_at"], utc=True)
    closed = pd.to_datetime(outcomes["closed_at"].replace("", None), utc=True)
    sql_at = pd.to_datetime(outcomes["sql_at"], utc=True)
    was_closed = set(outcomes.loc[(closed < as_of).to_numpy(), "lead_id"])
    past_sql = set(outcomes.loc[(sql_at < as_of).to_numpy(), "lead_id"]) - was_closed
    prospects = set(leads.loc[(created <= as_of).to_numpy(), "lead_id"]) - was_closed - past_sql
    assert past_sql and set(scores["lead_id"]) == prospects  # exactly the prospects: no SQL lead is scored
    assert summary.past_target == len(past_sql)
    assert any(f"{len(past_sql):,} open leads already reached sql" in note for note in summary.notes)

    # the drift reference holds training's ranges: a lead older than every training snapshot is marked
    flagged = scores["out_of_range"].notna()
    assert flagged.any() and summary.out_of_range_leads == int(flagged.sum())
    age = scores.set_index("lead_id")["out_of_range"].eq("lead__age_days")
    first_seen = created.groupby(leads["lead_id"]).min()
    in_range = as_of - first_seen.loc[age[~age].index]
    outside = as_of - first_seen.loc[age[age].index]
    # age is looked at first: every lead flagged by it is older, or younger, than every lead that is not
    assert age.any() and ((outside > in_range.max()) | (outside < in_range.min())).all()
    assert (outside > in_range.max()).sum() > 0  # the old leads, older than any training snapshot
