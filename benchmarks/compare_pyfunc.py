"""The registered leadml model through MLflow's pyfunc beside a bare ``Booster.predict`` on the same rows.

The models and features are those of :mod:`compare_score` (60 and 500 trees, the features of
``case.score_leads`` simulated leads). Both are calls, so they are timed in one process, in the
job's chunks of 100,000 rows, A B A B: per chunk, ``Booster.predict`` on the booster's float
matrix of the chunk (categoricals as its codes; made before the timing), then the pyfunc's
``predict`` on the rows as a feature file gives them (categoricals as text), which includes
MLflow's input check against the signature, leadml's matrix, the compiled trees, calibration and
tiers. The compiled trees' kernel is loaded before the timing (once a process), then one round
of both calls over the chunks is run untimed (as the harness warms up its commands): the memory a
call keeps for the next one (the pyfunc's booster matrix, LightGBM's buffers) is made there, as in
a job or a Spark task that calls the model chunk after chunk. A round is the sum over the chunks;
the line has one pair of seconds per round.

Agreement: the pyfunc's probability equals the model's calibration of ``Booster.predict``'s, bit
for bit, on every chunk. Target (issue #19): the pyfunc at >= 0.9x ``Booster.predict``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from compare_score import prepared
from harness import Command, Comparison, Runs

TARGET = 0.9
CHUNK = 100_000


def compare(case, work: Path, rounds: int) -> list[Comparison]:
    env, models = prepared(case, work)
    lines = []
    for trees, pipeline, made in models:
        argv = [sys.executable, __file__, str(pipeline), made["features"], str(rounds)]
        done = subprocess.run(argv, env=env, check=True, stdout=subprocess.PIPE)
        timed = json.loads(done.stdout.decode().strip().splitlines()[-1])
        ours = Runs(Command(f"pyfunc.predict, {trees} trees", ["pyfunc.predict(text rows)"]),
                    timed["pyfunc"], [timed["peak_mb"]] * rounds)  # fmt: skip
        theirs = Runs(Command(f"Booster.predict, {trees} trees", ["booster.predict(matrix)"]),
                      timed["booster"], [timed["peak_mb"]] * rounds)  # fmt: skip
        lines.append(Comparison(
            work=f"model alone, {timed['rows']:,} rows, {trees} trees, one process", leadml=ours, peer=theirs,
            agreement=f"pyfunc probability = calibration of Booster.predict, exactly, every chunk: {timed['equal']}",
            agreed=bool(timed["equal"]), speed_target=TARGET, units=timed["rows"], unit_name="rows",
        ))  # fmt: skip
    return lines


def _time(pipeline: str, features: str, rounds: str) -> dict:
    """Seconds of each round of the two calls over the chunks, and whether every chunk agreed."""
    import resource
    import time

    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    from leadml.core.config import load_pipeline
    from leadml.modeling.lightgbm.compiled import MIN_ROWS
    from leadml.modeling.loading import Scorer, load_model

    loaded = load_model(load_pipeline(pipeline))
    scoring = loaded.scoring
    estimator = scoring.model.estimator
    pyfunc = mlflow.pyfunc.load_model(f"models:/{loaded.name}/{loaded.version}")
    table = pd.read_parquet(features, columns=scoring.feature_names)
    chunks = []
    for first in range(0, len(table), CHUNK):
        text = table.iloc[first : first + CHUNK]
        frame = text.copy()  # categoricals with the training categories, for the booster's matrix
        for column, levels in scoring.categories.items():
            frame[column] = pd.Categorical(frame[column], categories=levels)
        chunks.append((text, Scorer(scoring).matrix(frame)))
    pyfunc.predict(chunks[0][0].iloc[:MIN_ROWS])  # the compiled trees' kernel, loaded once a process
    for text, matrix in chunks:  # a warm-up round of both calls, not timed: memory each one keeps is made
        estimator.booster_.predict(matrix, num_iteration=estimator.n_trees_)
        pyfunc.predict(text)
    booster_s, pyfunc_s, equal = [], [], True
    for _ in range(int(rounds)):
        spent = {"booster": 0.0, "pyfunc": 0.0}
        for text, matrix in chunks:
            start = time.perf_counter()
            raw = estimator.booster_.predict(matrix, num_iteration=estimator.n_trees_)
            spent["booster"] += time.perf_counter() - start
            start = time.perf_counter()
            scores = pyfunc.predict(text)
            spent["pyfunc"] += time.perf_counter() - start
            expected = scoring.model.calibrator_.predict(raw)
            equal &= bool(np.array_equal(scores["probability"].to_numpy(), expected))
        booster_s.append(spent["booster"])
        pyfunc_s.append(spent["pyfunc"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": len(table), "booster": booster_s, "pyfunc": pyfunc_s, "equal": equal, "peak_mb": peak}


if __name__ == "__main__":
    print(json.dumps(_time(*sys.argv[1:4])))
