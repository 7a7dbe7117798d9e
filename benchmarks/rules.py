"""Benchmark: score 1,000,000 leads with 20,000,000 events by a 10-rule points file at one as_of.

Prints seconds, leads per second and peak memory (resident set, sampled every 5 ms, above the
level before the step) of ``RuleSet.score``, and, when ``leadml.features.behaviour.features`` is present,
of ``behaviour_features`` on the same snapshots and events in the same run, for comparison.

    /work/venv/bin/python benchmarks/rules.py                      # 1M leads, 20M events
    /work/venv/bin/python benchmarks/rules.py --leads 50000 --events 1000000   # a quick look

The data come from ``leadml.data.simulate.world`` (about 22 events per lead; a seeded uniform sample
of the events is kept to hit ``--events`` exactly), or from a quick generator of the same schema
when the simulator is absent.
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import psutil

from leadml.rules.ruleset import RuleSet

# Ten rules that exercise every kind of test: fields (in, equals, gte), where with one value and
# with a list, min_count, within_days, per_event with cap, decay (global and switched off).
BENCH_RULES = {
    "name": "benchmark-10",
    "decay": {"half_life_days": 30},
    "rules": [
        {"name": "Decision maker", "field": "job_level", "in": ["director", "vp", "c_level", "owner"], "points": 20},
        {"name": "Student", "field": "job_level", "equals": "student", "points": -30},
        {"name": "Budget 20k+", "field": "budget", "gte": 20000, "points": 10},
        {"name": "Form", "event": "form_submit", "points": 20},
        {"name": "E-mail clicks", "event": "email_click", "per_event": True, "cap": 15, "points": 3},
        {"name": "Pricing twice", "event": "page_view", "where": {"page": "pricing"}, "min_count": 2, "points": 25},
        {
            "name": "Content",
            "event": "page_view",
            "where": {"page": ["cases", "product"]},
            "within_days": 30,
            "per_event": True,
            "cap": 20,
            "points": 2,
        },
        {"name": "Demo", "event": "demo_request", "within_days": 90, "points": 30},
        {"name": "Community", "event": "community_join", "points": 15},
        {"name": "Unsubscribed", "event": "unsubscribe", "decay": False, "points": -25},
    ],
}


def make_data(n_leads: int, n_events: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Leads and events (exactly ``n_events``, or fewer when the simulation has fewer) and an as_of."""
    try:
        from leadml.data.simulate import simulate
    except ImportError:
        return quick_data(n_leads, n_events, seed)
    sim = simulate(n_leads, seed=seed)
    events = sim.events
    if len(events) > n_events:
        keep = np.sort(np.random.default_rng(seed).choice(len(events), n_events, replace=False))
        events = events.iloc[keep].reset_index(drop=True)
    return sim.leads, events, sim.data_end


def quick_data(n_leads: int, n_events: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """A plain generator of the simulator's schema (used only when the simulator is absent)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    ids = np.char.add("L", np.char.zfill(np.arange(1, n_leads + 1).astype(str), 7)).astype(object)
    leads = pd.DataFrame(
        {
            "lead_id": ids,
            "created_at": start + pd.to_timedelta(rng.uniform(0, 540, n_leads), unit="D"),
            "job_level": pd.Categorical.from_codes(
                rng.integers(0, 7, n_leads), ["student", "specialist", "manager", "director", "vp", "c_level", "owner"]
            ),
            "budget": np.where(rng.random(n_leads) < 0.4, rng.lognormal(10, 1, n_leads), np.nan),
        }
    )
    kinds = [
        "page_view",
        "email_open",
        "email_click",
        "form_submit",
        "download",
        "demo_request",
        "community_join",
        "unsubscribe",
    ]
    owner = np.sort(rng.integers(0, n_leads, n_events))
    times = leads["created_at"].to_numpy()[owner] + pd.to_timedelta(rng.exponential(40, n_events), unit="D").to_numpy()
    events = pd.DataFrame(
        {
            "lead_id": ids[owner],
            "timestamp": pd.DatetimeIndex(times),
            "event_type": pd.Categorical.from_codes(
                rng.choice(8, n_events, p=[0.5, 0.2, 0.08, 0.06, 0.06, 0.04, 0.03, 0.03]), kinds
            ),
            "page": pd.Categorical.from_codes(
                rng.integers(0, 7, n_events), ["blog", "pricing", "product", "docs", "cases", "careers", "delivery"]
            ),
        }
    ).sort_values(["lead_id", "timestamp"], ignore_index=True)
    return leads, events, start + pd.Timedelta(days=545)


def measure(step: Callable[[], object]) -> tuple[object, float, float]:
    """Run ``step``; return its result, wall seconds and peak RSS growth in MB (sampled every 5 ms)."""
    gc.collect()
    process = psutil.Process()
    base = process.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    started = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - started
    done.set()
    watcher.join()
    peak[0] = max(peak[0], process.memory_info().rss)
    return result, seconds, (peak[0] - base) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-behaviour", action="store_true", help="skip the behaviour-features comparison")
    args = parser.parse_args()

    started = time.perf_counter()
    leads, events, as_of = make_data(args.leads, args.events, args.seed)
    print(
        f"data: {len(leads):,} leads, {len(events):,} events, as_of {as_of:%Y-%m-%d} "
        f"({time.perf_counter() - started:.1f} s to make)"
    )
    ruleset = RuleSet.from_dict(BENCH_RULES, source="benchmark-10")
    try:
        from leadml.features.behaviour.features import behaviour_features
    except ImportError:
        behaviour_features = None
    # warm up both on a few leads (lazy imports, first-call costs) so the timings compare the work
    few = leads.iloc[:200]
    few_events = events[events["lead_id"].isin(few["lead_id"])]
    few_snapshots = pd.DataFrame(
        {"lead_id": few["lead_id"].to_numpy(), "as_of": pd.Series(as_of, index=few.index).dt.as_unit("ns")}
    )
    ruleset.score(few, few_events, as_of)
    if behaviour_features is not None and not args.no_behaviour:
        behaviour_features(few_snapshots, few_events, few)

    scores, seconds, peak_mb = measure(lambda: ruleset.score(leads, events, as_of))
    print(
        f"rules score ({len(ruleset.rules)} rules): {seconds:.2f} s, {len(leads) / seconds:,.0f} leads/s, "
        f"peak +{peak_mb:,.0f} MB"
    )
    tiers = scores["tier"].value_counts().to_dict()
    print("  tiers: " + ", ".join(f"{k} {v:,}" for k, v in tiers.items()))
    sample = json.loads(scores.loc[scores["points"].idxmax(), "breakdown"])
    print(f"  mean points {scores['points'].mean():.2f}; top lead's breakdown has {len(sample)} rules")
    del scores
    results = {"rules_seconds": seconds, "rules_peak_mb": peak_mb}

    if behaviour_features is not None and not args.no_behaviour:
        snapshots = pd.DataFrame(
            {"lead_id": leads["lead_id"].to_numpy(), "as_of": pd.Series(as_of, index=leads.index).dt.as_unit("ns")}
        )
        (features, _), b_seconds, b_peak = measure(lambda: behaviour_features(snapshots, events, leads))
        print(
            f"behaviour features ({features.shape[1]} columns): {b_seconds:.2f} s, "
            f"{len(leads) / b_seconds:,.0f} leads/s, peak +{b_peak:,.0f} MB"
        )
        print(f"rules / behaviour time: {seconds / b_seconds:.2f}")
        results.update(behaviour_seconds=b_seconds, behaviour_peak_mb=b_peak)
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))


if __name__ == "__main__":
    main()
