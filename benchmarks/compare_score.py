"""``leadml score --no-reasons`` beside a plain LightGBM script on the same features, 60 and 500 trees.

Inputs, made once (untimed): the simulated leads and events of ``case.score_leads`` leads (about
20 events a lead; no outcomes file, so every lead is open at the data's end), two LightGBM models
of a fixed size (60 and 500 trees, a slow learning rate so that early stopping keeps them whole,
trained on other simulated leads as ``benchmarks/score.py`` trains them) registered in a SQLite
MLflow registry in the work folder, and per model its features of the scored leads
(``write_features``: the model's own feature set, categoricals as text) and its booster saved
as a LightGBM model file.

- leadml: ``python -m leadml score PIPELINE --as-of 2026-07-01 --no-reasons --out s.parquet``, the
  whole job: loading the model from the registry, reading the leads and events, building the
  features, the booster, calibration, tiers, sub-scores and grid tier, next action and due_at,
  out-of-range flags, drift, the scores file and the score history.
- peer: ``python benchmarks/peers/score_lightgbm.py``: reads the ready features, loads the booster
  file, ``Booster.predict`` on the frame, writes ``lead_id`` and the probability. It starts from
  features leadml built; nothing else of the job.

Agreement: the same lead ids in the same order, and every leadml probability equal, bit for bit,
to the model's calibration applied to the peer's booster probability (the calibration is
isotonic, a step function, or Platt's sigmoid; the check is exact equality either way).
Targets (issue #19): 150,000 leads/s at 60 trees, 100,000 at 500 trees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness import Command, Comparison, alternate
from run import simulated

AS_OF = "2026-07-01"  # the simulator's data end: every lead exists, none closed (no outcomes file)
MODELS = {60: 150_000.0, 500: 100_000.0}  # trees -> target leads/s
PEER = Path(__file__).resolve().parent / "peers" / "score_lightgbm.py"


def _step(name: str, *args: str, env: dict[str, str]) -> dict:
    """Run a preparation or check step of this module in a fresh process; its JSON answer."""
    done = subprocess.run([sys.executable, __file__, name, *args], env=env, check=True, stdout=subprocess.PIPE)
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def _pipeline(work: Path, data: Path, name: str) -> Path:
    path = work / f"score-{name}.yaml"
    path.write_text(f"name: bench\ndata:\n  source: tables\n  leads: {data / 'leads.parquet'}\n"
                    f"  events: {data / 'events.parquet'}\nmlflow:\n  registered_model: {name}\n")  # fmt: skip
    return path


def prepared(case, work: Path) -> tuple[dict[str, str], list[tuple[int, Path, dict]]]:
    """The registry's environment and, per model size, its pipeline and prepared files (made once)."""
    data = simulated(work, case.score_leads)
    models = work / "score-models"
    models.mkdir(exist_ok=True)
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{models / 'mlruns.db'}", MLFLOW_LOGGING_LEVEL="WARNING")
    train_leads = 20_000 if case.score_leads >= 1_000_000 else 5_000
    out = []
    for trees in MODELS:
        name = f"score{trees}"
        pipeline = _pipeline(work, data, name)
        ready = models / f"{name}-{case.score_leads}.json"
        if not ready.exists():
            if not (models / f"{name}.trained").exists():
                _step("train", str(pipeline), name, str(trees), str(train_leads), env=env)
                (models / f"{name}.trained").write_text("")
            ready.write_text(json.dumps(_step("prepare", str(pipeline), str(models / f"{name}-{case.score_leads}"),
                                              env=env)))  # fmt: skip
        out.append((trees, pipeline, json.loads(ready.read_text())))
    return env, out


def compare(case, work: Path, rounds: int) -> list[Comparison]:
    env, models = prepared(case, work)
    lines = []
    for trees, pipeline, made in models:
        out = work / f"score-{trees}"
        out.mkdir(exist_ok=True)
        leadml_cmd = Command(f"leadml score, {trees} trees",
                             [sys.executable, "-m", "leadml", "score", str(pipeline), "--as-of", AS_OF,
                              "--no-reasons", "--out", str(out / "s.parquet")], env=env)  # fmt: skip
        peer_cmd = Command(f"LightGBM script, {trees} trees",
                           [sys.executable, str(PEER), made["features"], made["booster"], made["columns"],
                            str(out / "peer.parquet")], env=env)  # fmt: skip
        ours, theirs = alternate(leadml_cmd, peer_cmd, rounds=rounds)
        checked = _step("check", str(pipeline), str(out / "s.parquet"), str(out / "peer.parquet"), env=env)
        lines.append(Comparison(
            work=f"score {checked['rows']:,} leads, {trees} trees, reasons off", leadml=ours, peer=theirs,
            agreement=f"the same lead ids in the same order: {checked['same_ids']}; probability = "
                      f"{checked['calibration']} calibration of the booster's, exactly: {checked['equal']}",
            agreed=bool(checked["same_ids"] and checked["equal"]), units=checked["rows"], unit_name="leads",
            rate_target=MODELS[trees],
        ))  # fmt: skip
    return lines


# -- steps, each in a fresh process ---------------------------------------------------------------
def _train(pipeline: str, name: str, trees: str, leads: str) -> dict:
    """Register a LightGBM model of exactly ``trees`` trees as the champion of ``name``."""
    from leadml.core.config import parse_pipeline
    from leadml.jobs.train import run_training

    lightgbm = {"n_estimators": int(trees), "early_stopping_rounds": int(trees), "learning_rate": 0.002}
    config = parse_pipeline({"name": "bench", "data": {"simulator": {"leads": int(leads), "seed": 3}},
                             "models": {"logistic": {"enabled": False}, "lightgbm": lightgbm},
                             "mlflow": {"registered_model": name}})  # fmt: skip
    run = run_training(config, n_boot=50)
    return {"version": run.outcome.version, "trees": int(run.result.model.estimator.n_trees_)}


def _prepare(pipeline: str, stem: str) -> dict:
    """The model's features of the scored leads, its booster file and the file's columns in its order."""
    from leadml.core.config import load_pipeline
    from leadml.jobs.feature_files import write_features
    from leadml.modeling.loading import load_model

    config = load_pipeline(pipeline)
    features = write_features(config, AS_OF, f"{stem}-features.parquet", progress=False)
    estimator = load_model(config).scoring.model.estimator
    estimator.booster_.save_model(f"{stem}-booster.txt", num_iteration=estimator.n_trees_)
    Path(f"{stem}-columns.json").write_text(json.dumps([str(c) for c in estimator.feature_names_in_]))
    return {"features": str(features), "booster": f"{stem}-booster.txt", "columns": f"{stem}-columns.json"}


def _check(pipeline: str, scores: str, peer: str) -> dict:
    """Same lead ids, and leadml's probability = the model's calibration of the peer's, exactly."""
    import numpy as np
    import pyarrow.parquet as pq

    from leadml.core.config import load_pipeline
    from leadml.modeling.loading import load_model

    calibrator = load_model(load_pipeline(pipeline)).scoring.model.calibrator_
    ours, theirs = pq.read_table(scores, columns=["lead_id", "probability"]), pq.read_table(peer)
    same_ids = ours.column("lead_id").equals(theirs.column("lead_id"))
    expected = calibrator.predict(theirs.column("probability").to_numpy())
    equal = bool(same_ids and np.array_equal(ours.column("probability").to_numpy(), expected))
    names = {"IsotonicRegression": "isotonic (a step function)", "_Sigmoid": "Platt's sigmoid", "_Identity": "no"}
    kind = names.get(type(calibrator).__name__, type(calibrator).__name__)
    return {"rows": ours.num_rows, "same_ids": bool(same_ids), "equal": equal, "calibration": kind}


if __name__ == "__main__":
    steps = {"train": _train, "prepare": _prepare, "check": _check}
    print(json.dumps(steps[sys.argv[1]](*sys.argv[2:])))
