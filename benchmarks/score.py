"""Benchmark: the batch scoring job (``leadml score``) end to end, and its model-only part.

Makes simulated data (``leadml.data.simulate.world.write_simulation``: 1,000,000 leads with about 20
million events, and 100,000 leads for the memory comparison), trains LightGBM on 20,000 other
simulated leads and registers it as the champion in a SQLite MLflow registry in the work folder
(``leadml``, as the pipeline trains it, and ``large``, up to 500 trees at a slow learning rate),
then times in fresh processes:

- ``score_batch`` with ``reasons=False`` (``leadml score --no-reasons``) into Parquet and into CSV,
  for 1,000,000 and 100,000 leads: seconds of the call (it loads the model from the registry,
  streams the leads and events, builds the features, scores and writes), leads per second, and
  the process's peak memory (``ru_maxrss``); the scoring pipeline has no outcomes file and
  ``as_of`` is the data's end, so every lead is open and scored;
- ``score_batch`` with reasons (SHAP + sentences), 1,000,000 leads;
- the model alone on the 1,000,000 feature rows (written by ``write_features``), in the job's
  chunks of 100,000: a bare ``Booster.predict`` on the float matrix, the batch job's scorer
  (matrix from the frame, compiled trees, calibration, MQL policy), the generic
  ``LeadScoringModel.score`` and the MLflow pyfunc's ``predict`` (with MLflow's input schema
  check) on the rows as a feature file gives them (categoricals as text); for the pipeline's own
  model (early-stopped, a few dozen trees) and for a larger one (``--large-trees``, 500 by
  default). The three scoring paths must equal ``Booster.predict`` followed by the model's
  calibration bit for bit (checked on every chunk, outside the timing). The compiled trees'
  kernel is loaded once per process before the timing; its load time is printed.

    python benchmarks/score.py                      # data in a temp folder, removed at the end
    python benchmarks/score.py --dir DIR --reuse    # keep the data in DIR and time again
    python benchmarks/score.py --dir DIR --reuse --model-only   # only the model-only part
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AS_OF = "2026-07-01"  # the simulator's data end: every lead exists and none is closed (no outcomes file)
SIZES = {"1m": 1_000_000, "100k": 100_000}


def pipeline(folder: Path, size: str):
    from leadml.core.config import parse_pipeline

    data = folder / size
    return parse_pipeline({"name": "bench", "data": {"source": "tables", "leads": str(data / "leads.parquet"),
                                                     "events": str(data / "events.parquet")}})  # fmt: skip


# -- steps, each run in a fresh process ---------------------------------------------------------
def make_data(folder: Path, size: str) -> dict:
    from leadml.data.simulate import write_simulation

    paths = write_simulation(folder / size, SIZES[size], seed=5)
    import pyarrow.parquet as pq

    return {"leads": pq.ParquetFile(paths["leads"]).metadata.num_rows,
            "events": pq.ParquetFile(paths["events"]).metadata.num_rows}  # fmt: skip


def train(folder: Path, name: str, trees: str) -> dict:
    """Register a LightGBM model: ``leadml`` as the pipeline trains it (early stopping), or a fixed size."""
    from leadml.core.config import parse_pipeline
    from leadml.jobs.train import run_training

    # a slow learning rate keeps early stopping from cutting the fixed-size model short
    lightgbm = {} if trees == "auto" else {"n_estimators": int(trees), "early_stopping_rounds": int(trees),
                                           "learning_rate": 0.002}  # fmt: skip
    config = parse_pipeline({"name": "bench", "data": {"simulator": {"leads": 20_000, "seed": 3}},
                             "models": {"logistic": {"enabled": False}, "lightgbm": lightgbm},
                             "mlflow": {"registered_model": name}})  # fmt: skip
    run = run_training(config, n_boot=50)
    return {"version": run.outcome.version, "chosen": run.result.chosen, "features": len(run.result.feature_names),
            "trees": int(run.result.model.estimator.n_trees_)}  # fmt: skip


def score(folder: Path, size: str, out: str, reasons: str) -> dict:
    from leadml.jobs.score import score_batch

    config = pipeline(folder, size)
    start = time.perf_counter()
    summary = score_batch(config, AS_OF, folder / out, reasons=reasons == "1", progress=False, drift=False)
    seconds = time.perf_counter() - start
    return {"rows": summary.rows, "seconds": seconds, "chunks": summary.chunks, "streamed": summary.streamed,
            "bytes": (folder / out).stat().st_size}  # fmt: skip


def features(folder: Path, size: str) -> dict:
    from leadml.jobs.feature_files import write_features

    start = time.perf_counter()
    write_features(pipeline(folder, size), AS_OF, folder / "features.parquet", progress=False)
    return {"seconds": time.perf_counter() - start}


def model_only(folder: Path, name: str) -> dict:
    """Seconds of the model alone, four ways, on the same feature rows in the job's chunks of 100,000."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    from leadml.modeling.lightgbm.compiled import MIN_ROWS
    from leadml.modeling.loading import Scorer, load_model
    from leadml.modeling.policy import apply_policy

    table = pd.read_parquet(folder / "features.parquet")
    loaded = load_model(pipeline(folder, "1m"), f"models:/{name}@champion")
    scoring = loaded.scoring
    estimator = scoring.model.estimator
    pyfunc = mlflow.pyfunc.load_model(f"models:/{loaded.name}/{loaded.version}")
    # the compiled trees' kernel is loaded once a process (compiled once an install): timed apart
    start = time.perf_counter()
    scoring.probability(table[scoring.feature_names].iloc[:MIN_ROWS])
    kernel_load = time.perf_counter() - start
    times = dict.fromkeys(("booster", "job_scorer", "scoring_model", "pyfunc"), 0.0)
    identical = True
    for first in range(0, len(table), 100_000):
        text = table[scoring.feature_names].iloc[first : first + 100_000]  # categoricals as text, as in a file
        frame = text.copy()  # as the job has them: categoricals with the training categories
        for column, levels in scoring.categories.items():
            frame[column] = pd.Categorical(frame[column], categories=levels)
        scorer = Scorer(scoring)
        matrix = scorer.matrix(frame)
        calls = {  # each call binds this chunk's values (the lambdas run in this iteration only)
            "booster": lambda matrix=matrix: estimator.booster_.predict(matrix, num_iteration=estimator.n_trees_),
            "job_scorer": lambda scorer=scorer, frame=frame: apply_policy(
                scorer(frame), scoring.threshold, scoring.tiers
            ),
            "scoring_model": lambda frame=frame: scoring.score(frame),
            "pyfunc": lambda text=text: pyfunc.predict(text),
        }
        results = {}
        for key, call in calls.items():
            start = time.perf_counter()
            results[key] = call()
            times[key] += time.perf_counter() - start
        # Booster.predict, calibrated, is what training-time evaluation gives: every path must equal it
        reference = scoring.model.calibrator_.predict(results["booster"])
        probabilities = [results[key]["probability"].to_numpy() for key in ("job_scorer", "scoring_model", "pyfunc")]
        identical &= all(np.array_equal(reference, other) for other in probabilities)
    return {"rows": len(table), "columns": matrix.shape[1], "trees": int(estimator.n_trees_),
            "identical": bool(identical), "kernel_load": kernel_load, **times}  # fmt: skip


# -- driver -------------------------------------------------------------------------------------
def measured(step: str, *args: str) -> tuple[float, float, dict]:
    """Run ``step`` in a fresh Python process: (seconds, peak RSS in MB, its JSON result)."""
    command = [sys.executable, __file__, "--step", step, *args]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    output = process.stdout.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"step {step} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return seconds, usage.ru_maxrss / 1024, json.loads(output.strip().splitlines()[-1])


def _dispatch(step: str, args: list[str]) -> dict:
    folder = Path(args[0])
    steps = {"data": lambda: make_data(folder, args[1]), "train": lambda: train(folder, *args[1:]),
             "score": lambda: score(folder, *args[1:]), "features": lambda: features(folder, args[1]),
             "model": lambda: model_only(folder, args[1])}  # fmt: skip
    if step not in steps:
        raise SystemExit(f"unknown step {step!r}")
    return steps[step]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None,
                        help="work folder (default: a temp folder, removed at the end)")  # fmt: skip
    parser.add_argument("--reuse", action="store_true", help="reuse the data and model already in --dir")
    parser.add_argument("--skip-reasons", action="store_true", help="do not time the job with reasons")
    parser.add_argument("--large-trees", type=int, default=500, help="trees of the second, larger model (default 500)")
    parser.add_argument("--model-only", action="store_true",
                        help="time only the model alone (1,000,000 feature rows), not the scoring job")  # fmt: skip
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.step:  # a child: the work folder is its first argument, MLflow's URI is inherited
        print(json.dumps(_dispatch(options.step, options.args)))
        return
    folder = (options.dir or Path(tempfile.mkdtemp(prefix="leadml-score-bench-"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlruns.db'}"
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for size in ("1m",) if options.model_only else SIZES:
        if not (options.reuse and (folder / size / "events.parquet").exists()):
            seconds, _, made = measured("data", str(folder), size)
            print(f"data {size}: {made['leads']:,} leads, {made['events']:,} events ({seconds:.0f} s)", flush=True)
    if not (options.reuse and (folder / "mlruns.db").exists()):
        for name, trees in (("leadml", "auto"), ("large", str(options.large_trees))):
            _, _, model = measured("train", str(folder), name, trees)
            print(f"model {name}: {model['chosen']} on {model['features']} features, {model['trees']} trees, "
                  f"registered version {model['version']}", flush=True)  # fmt: skip
    print(f"load average before timing: {os.getloadavg()[0]:.2f} (2 cores shared with other jobs)", flush=True)
    if not options.model_only:
        score_job(folder, options.skip_reasons)
    if not (options.model_only and options.reuse and (folder / "features.parquet").exists()):
        seconds_f, _, _ = measured("features", str(folder), "1m")
        print(f"features of 1,000,000 leads written in {seconds_f:.1f} s", flush=True)
    print("the model alone, in chunks of 100,000 rows:")
    for name in ("leadml", "large"):
        _, _, model = measured("model", str(folder), name)
        n = model["rows"]
        print(f"  model {name}: {model['trees']} trees, {n:,} rows x {model['columns']} features, every path "
              f"equal to Booster.predict + calibration: {model['identical']}; compiled trees' kernel loaded in "
              f"{model['kernel_load']:.2f} s, untimed (load average now {os.getloadavg()[0]:.2f})")  # fmt: skip
        for step in ("booster", "job_scorer", "scoring_model", "pyfunc"):
            print(f"    {step:<14} {model[step]:6.2f} s  {n / model[step]:>10,.0f} rows/s  "
                  f"{model['booster'] / model[step]:.2f}x Booster.predict", flush=True)  # fmt: skip
    if options.dir is None:
        shutil.rmtree(folder)


def score_job(folder: Path, skip_reasons: bool) -> None:
    """Time ``score_batch`` end to end: Parquet and CSV for 1M leads, Parquet for 100k, reasons."""
    rows = []
    for size, out, reasons in (("1m", "scores.parquet", "0"), ("1m", "scores.csv", "0"), ("100k", "s100k.parquet", "0"),
                               *((("1m", "reasons.parquet", "1"),) if not skip_reasons else ())):  # fmt: skip
        process, peak, result = measured("score", str(folder), size, out, reasons)
        rate = result["rows"] / result["seconds"]
        rows.append((size, out, reasons, result["seconds"], peak))
        print(f"score {size:>4} -> {out:<15} reasons={reasons}: {result['rows']:>9,} leads in "
              f"{result['seconds']:6.2f} s = {rate:>9,.0f} leads/s (process {process:.2f} s), peak {peak:,.0f} MB, "
              f"{result['chunks']} chunks, {result['bytes'] / 1e6:.0f} MB", flush=True)  # fmt: skip
    seconds = {out: s for _, out, _, s, _ in rows}
    peaks = {out: p for _, out, _, _, p in rows}
    print(f"CSV / Parquet time: {seconds['scores.csv'] / seconds['scores.parquet']:.2f}x (target <= 2)")
    print(f"peak 1M / 100k: {peaks['scores.parquet'] / peaks['s100k.parquet']:.2f}x (target <= 1.3; "
          f"1M peak {peaks['scores.parquet']:,.0f} MB, target < 2,048)")  # fmt: skip


if __name__ == "__main__":
    main()
