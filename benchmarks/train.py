"""Benchmark: fitting logistic regression and LightGBM on 100,000 and 1,000,000 training snapshots.

For each size a fresh process simulates enough leads for that many labelled snapshots, builds one
snapshot per lead (14 days after
creation, the demo pipeline's features) and fits each model on every labelled snapshot, LightGBM with
early stopping on the latest 10 % (the demo settings: up to 1,000 trees, learning rate 0.05, 7 leaves).
Reported: rows, features, seconds per model (fit only; the feature build is timed apart) and the
child's peak resident memory.

    python benchmarks/train.py --snapshots 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_child(n_snapshots: int) -> None:
    import numpy as np

    from leadml.core.config import load_pipeline, parse_pipeline
    from leadml.data.contract import validate_events, validate_leads, validate_outcomes
    from leadml.data.simulate import simulate
    from leadml.data.sources import PipelineData
    from leadml.features.build import FeatureBuilder
    from leadml.features.snapshots import build_snapshots
    from leadml.modeling.estimators import fit_model, make_models

    raw = load_pipeline(REPO / "pipelines" / "demo.yaml").resolved_dict()
    config = parse_pipeline(raw, source="demo.yaml", base=REPO / "pipelines")
    started = time.perf_counter()
    # about 75 % of the leads' day-14 snapshots are labelled (the rest are censored at the data's end)
    sim = simulate(int(n_snapshots / 0.72) + 1000, seed=1)
    leads = validate_leads(sim.leads)
    data = PipelineData(
        leads=leads,
        events=validate_events(sim.events, leads=leads),
        outcomes=validate_outcomes(sim.outcomes, leads=leads),
        data_end=sim.data_end,
    )
    simulate_seconds = time.perf_counter() - started
    started = time.perf_counter()
    snapshots = build_snapshots(
        data.leads, data.outcomes, days_after_creation=14, horizon_days=100, data_end=data.data_end
    )
    snapshots = snapshots.loc[snapshots["converted"].notna()].head(n_snapshots).reset_index(drop=True)
    builder = FeatureBuilder(config.features, config.profile).fit(snapshots, data.leads, data.events)
    X = builder.transform(snapshots, data.leads, data.events)
    y = snapshots["converted"].to_numpy()
    features_seconds = time.perf_counter() - started
    cut = int(len(X) * 0.9)
    fits = {}
    for name, model in make_models(config.models).items():
        started = time.perf_counter()
        fit_model(model, X.iloc[:cut], y[:cut], X.iloc[cut:], y[cut:])
        fits[name] = time.perf_counter() - started
    print(json.dumps({
        "rows": len(X), "features": X.shape[1], "positives": int(np.nansum(y)),
        "simulate_seconds": simulate_seconds, "features_seconds": features_seconds, "fit_seconds": fits,
        "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child)
        return
    print(
        f"{'leads':>10} {'rows':>10} {'feats':>5} {'features s':>10} {'logistic s':>10} {'lightgbm s':>10} {'peak RSS':>9}"
    )
    for n in args.snapshots:
        done = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"train benchmark failed at {n}: {done.stderr[-2000:]}")
        f = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{n:>10,} {f['rows']:>10,} {f['features']:>5} {f['features_seconds']:>10.1f} "
            f"{f['fit_seconds'].get('logistic', float('nan')):>10.1f} {f['fit_seconds'].get('lightgbm', float('nan')):>10.1f} "
            f"{f['maxrss_bytes'] / 1e9:>8.2f}G"
        )


if __name__ == "__main__":
    main()
