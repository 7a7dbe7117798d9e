"""Benchmark: the peak extra memory of the logistic model's fit, the plain pipeline against the blockwise one.

Each variant runs in a fresh process on the same synthetic frame shaped like a large training set
(float32 numeric columns, heavy tails and missing values in some, a few categorical columns):
``before`` is the previous implementation (whole-matrix TailLog and scikit-learn's pipeline, kept in
``tests/modeling/test_logistic_memory.py``), ``after`` is :class:`~leadml.modeling.logistic.LogisticModel`.
Reported: the peak of tracemalloc over the fit above the memory held before it (numpy's arrays are
traced), the child's peak resident memory, the fit's seconds, and whether both give the same
coefficients and design mean (bytes compared through a hash).

    python benchmarks/logistic_memory.py --rows 500000 --numeric 112 --categorical 15
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def synthetic_frame(rows: int, numeric: int, categorical: int, seed: int = 0):
    """A float32 feature frame with counts, heavy tails, missing values and low-cardinality categories, and labels."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = {}
    for i in range(numeric):
        kind = i % 4
        if kind == 0:
            values = rng.pareto(1.5, rows).astype(np.float32)
        elif kind == 1:
            values = rng.normal(size=rows).astype(np.float32)
        elif kind == 2:
            values = rng.poisson(3.0, rows).astype(np.float32)
        else:
            values = rng.exponential(50.0, rows).astype(np.float32)
        if i % 2 == 0:
            values[rng.random(rows) < 0.2] = np.nan
        columns[f"n{i}"] = values
    for i in range(categorical):
        columns[f"c{i}"] = pd.Categorical(rng.choice(["a", "b", "c", "d", "e"], rows, p=[0.4, 0.3, 0.2, 0.09, 0.01]))
    frame = pd.DataFrame(columns)
    signal = np.nan_to_num(frame[[f"n{i}" for i in range(min(numeric, 8))]].to_numpy(np.float64)).sum(axis=1)
    labels = (rng.random(rows) < 1 / (1 + np.exp(-(signal - np.median(signal)) / signal.std()))).astype(int)
    return frame, labels


def _digest(*arrays) -> str:
    return hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()[:16]


def run_child(variant: str, rows: int, numeric: int, categorical: int, max_iter: int) -> dict:
    sys.path.insert(0, str(REPO))
    from leadml.modeling.logistic import LogisticModel

    frame, labels = synthetic_frame(rows, numeric, categorical)
    model = LogisticModel(max_iter=max_iter)
    tracemalloc.start()
    held = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    if variant == "before":
        from tests.modeling.test_logistic_memory import _reference_fit

        pipeline, design_mean = _reference_fit(model, frame, labels)
        coef, intercept = pipeline[-1].coef_, pipeline[-1].intercept_
    else:
        model.fit(frame, labels)
        coef, intercept, design_mean = model.pipeline_[-1].coef_, model.pipeline_[-1].intercept_, model.design_mean_
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] - held
    tracemalloc.stop()
    return {
        "variant": variant,
        "rows": rows,
        "features": frame.shape[1],
        "design_columns": len(design_mean),
        "frame_mb": round(frame.memory_usage(deep=True).sum() / 2**20),
        "design_matrix_mb": round(rows * len(design_mean) * 8 / 2**20),
        "fit_peak_extra_mb": round(peak / 2**20),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "fit_seconds": round(seconds, 1),
        "result_digest": _digest(coef, intercept, design_mean),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--numeric", type=int, default=112)
    parser.add_argument("--categorical", type=int, default=15)
    parser.add_argument(
        "--max-iter", type=int, default=100, help="the solver's iterations (memory does not depend on them)"
    )
    parser.add_argument("--variants", nargs="+", default=["before", "after"], choices=["before", "after"])
    parser.add_argument("--child", choices=["before", "after"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.rows, args.numeric, args.categorical, args.max_iter)))
        return
    results = []
    for variant in args.variants:
        command = [sys.executable, __file__, "--child", variant, "--rows", str(args.rows), "--numeric",
                   str(args.numeric), "--categorical", str(args.categorical), "--max-iter", str(args.max_iter)]  # fmt: skip
        out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
    if len(results) == 2:
        same = results[0]["result_digest"] == results[1]["result_digest"]
        print(f"same coefficients, intercept and design mean, bit for bit: {same}")


if __name__ == "__main__":
    main()
